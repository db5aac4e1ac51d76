"""uvicorn inside a program that owns its signals and needs to know when serving began."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator

import uvicorn

__all__ = ["EmbeddedServer"]


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
