"""bus.serving's refusals: what a malformed request gets, and what the log keeps of it.

A real uvicorn server with Liaison's limits on a loopback port, a trivial app, raw sockets.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from starlette.types import Receive, Scope, Send

from bus.serving import EmbeddedServer, http_config

SECRET = "lsn_0123456789ab_TOPSECRETtopsecretTOPSECRET"


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


@pytest.fixture
async def port() -> AsyncIterator[int]:
    server = EmbeddedServer(http_config(_app, host="127.0.0.1", port=0, lifespan="off"))
    serving = asyncio.create_task(server.serve())
    await asyncio.wait_for(server.ready.wait(), 30)
    assert server.started
    try:
        yield server.port
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 30)


async def _exchange(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


async def test_a_malformed_line_holding_a_token_is_refused_and_the_token_never_logged(
    port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    answer = await _exchange(
        port, f"GET / HTTP/1.1\r\nHost: x\r\nAuthorization Bearer {SECRET}\r\n\r\n".encode()
    )
    assert _status(answer) == 400
    assert SECRET.encode() not in answer
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "refused a request" in logged
    assert "TOPSECRET" not in logged


async def test_an_unsupported_transfer_coding_gets_501(port: int) -> None:
    """RFC 9112 6.1: a server that receives a transfer coding it does not understand
    SHOULD answer 501 (Not Implemented)."""
    answer = await _exchange(port, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n")
    assert _status(answer) == 501
    assert b"transfer_encoding_not_implemented" in answer
