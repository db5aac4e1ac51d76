"""uvicorn inside a program that owns its signals and needs to know when serving began."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator

import uvicorn

__all__ = ["EmbeddedServer", "serve_until"]


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
