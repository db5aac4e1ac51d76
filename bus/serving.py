"""uvicorn inside a program that owns its signals and needs to know when serving began,
and the HTTP limits every Liaison server applies (:func:`http_config`).

Limits: the request line and header fields together may take :data:`MAX_HEADER_BYTES`;
more is answered 431 (RFC 6585) as a real HTTP answer. A refused connection is closed
gracefully: the answer is sent, the sending side is shut down, and what the client is
still sending is read and dropped for up to :data:`LINGER_S` seconds before the socket
closes. Closing a socket with unread bytes would make the kernel reset the connection,
and the client would lose the answer (this is what nginx calls a lingering close).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Generator
from http import HTTPStatus
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = [
    "LINGER_S",
    "MAX_HEADER_BYTES",
    "EmbeddedServer",
    "LimitedH11Protocol",
    "http_config",
    "http_options",
    "serve_until",
]

MAX_HEADER_BYTES = 16 * 1024
"""The request line and all header fields of one request, in bytes."""

LINGER_S = 5.0
"""How long a refused connection keeps reading (and dropping) what the client sends."""

_SETTLED = (h11.IDLE, h11.DONE, h11.MUST_CLOSE, h11.CLOSED)
"""Client states in which nothing more of the current request is on its way."""


class _Connection(h11.Connection):
    """h11's connection, keeping the reason it refused a request, and holding the header
    section to :data:`MAX_HEADER_BYTES` exactly (h11 checks its buffer only while a
    section is incomplete, so a larger one arriving in a single read would pass)."""

    refusal: h11.RemoteProtocolError | None = None

    def next_event(self) -> Any:
        try:
            event = super().next_event()
            if isinstance(event, h11.Request) and _header_bytes(event) > MAX_HEADER_BYTES:
                raise h11.RemoteProtocolError("header section too large", error_status_hint=431)
        except h11.RemoteProtocolError as exc:
            self.refusal = exc
            raise
        return event


def _header_bytes(request: h11.Request) -> int:
    line = len(request.method) + len(request.target) + len(b"  HTTP/1.1\r\n")
    return line + sum(len(name) + len(value) + 4 for name, value in request.headers) + 2


_REFUSALS = {
    431: (
        "headers_too_large",
        f"the request line and headers exceed {MAX_HEADER_BYTES // 1024} KiB; send less",
    ),
    400: ("invalid_http", "the request is not valid HTTP/1.1"),
    501: (
        "transfer_encoding_not_implemented",
        "the only Transfer-Encoding taken is chunked (RFC 9112 6.1); send Content-Length",
    ),
}


class _LingeringTransport(asyncio.Transport):
    """The connection's transport, for uvicorn; ``close()`` closes gracefully when the
    client may still be sending (see the module's docstring)."""

    def __init__(self, inner: asyncio.Transport, protocol: LimitedH11Protocol) -> None:
        super().__init__()
        self.inner = inner
        self._protocol = protocol

    def close(self) -> None:
        self._protocol.close_gracefully()

    def is_closing(self) -> bool:
        return self.inner.is_closing() or self._protocol.lingering

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.inner.write(data)

    def abort(self) -> None:
        self.inner.abort()

    def can_write_eof(self) -> bool:
        return self.inner.can_write_eof()

    def write_eof(self) -> None:
        self.inner.write_eof()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.inner.get_extra_info(name, default)

    def is_reading(self) -> bool:
        return self.inner.is_reading()

    def pause_reading(self) -> None:
        self.inner.pause_reading()

    def resume_reading(self) -> None:
        self.inner.resume_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.inner.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        return self.inner.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self.inner.get_write_buffer_limits()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.inner.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self.inner.get_protocol()


class LimitedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol that answers oversized headers 431 (and bad HTTP 400) as
    JSON in the API's error shape, and closes refused connections gracefully."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn = _Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
        self.lingering = False
        self._linger_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        super().connection_made(_LingeringTransport(transport, self))

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            return  # the rest of a refused request: read, so that closing does not reset
        super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._linger_timer is not None:
            self._linger_timer.cancel()
        super().connection_lost(exc)

    def close_gracefully(self) -> None:
        inner = self.transport.inner if isinstance(self.transport, _LingeringTransport) else None
        if inner is None or self.lingering or inner.is_closing():
            return
        if self.conn.their_state in _SETTLED:
            inner.close()
            return
        self.lingering = True
        inner.resume_reading()
        if inner.can_write_eof():
            inner.write_eof()  # after what is buffered: the answer goes out first
        self._linger_timer = self.loop.call_later(LINGER_S, inner.close)

    def send_400_response(self, msg: str) -> None:
        refusal = self.conn.refusal if isinstance(self.conn, _Connection) else None
        hint = refusal.error_status_hint if refusal is not None else 400
        status = hint if hint in _REFUSALS else 400
        code, message = _REFUSALS[status]
        body = json.dumps({"error": {"code": code, "message": message}}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        # never h11's text: it quotes the offending line, which may hold a credential
        self.logger.info("refused a request: %s (answered %d)", code, status)
        for event in (
            h11.Response(status_code=status, headers=headers, reason=HTTPStatus(status).phrase),
            h11.Data(data=body),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event) or b"")
        self.transport.close()


def http_options() -> dict[str, Any]:
    """uvicorn's options for Liaison's HTTP limits (the module's docstring)."""
    return {"http": LimitedH11Protocol, "h11_max_incomplete_event_size": MAX_HEADER_BYTES}


def http_config(app: Any, **options: Any) -> uvicorn.Config:
    """uvicorn's configuration for ``app`` with Liaison's HTTP limits; ``options`` are
    uvicorn's own (host, port, log_level...)."""
    return uvicorn.Config(app, **http_options(), **options)


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server without its own SIGINT/SIGTERM handlers (the host program stops
    it with ``should_exit``); ``ready`` is set once it serves, or once startup failed
    (then ``started`` stays false)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets)
        finally:
            self.ready.set()

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().serve(sockets)
        finally:
            self.ready.set()

    @property
    def port(self) -> int:
        """The bound port (after ``ready``)."""
        (sock, *_) = self.servers[0].sockets
        port: int = sock.getsockname()[1]
        return port


async def serve_until(server: EmbeddedServer, stop: asyncio.Event) -> None:
    """Serve until ``stop`` is set (or the server ends by itself), then shut down cleanly.

    A stop during start-up lets the start-up finish, then shuts down (uvicorn runs the
    application's shutdown whenever it started). A failed start-up exits as uvicorn does
    (``SystemExit(3)``).
    """
    serving = asyncio.create_task(server.serve(), name="http server")
    stopping = asyncio.create_task(stop.wait(), name="stop")
    try:
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        server.should_exit = True
        stopping.cancel()
    await serving
