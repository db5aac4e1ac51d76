"""The admin API in a process of its own: ``python -m tests.support.api_server``.

It reads one JSON line on stdin, ``{"connection": {...}, "settings": {...}, "audit_key":
"<hex>"}`` (the secrets travel there, never in the arguments), serves on a free port
of 127.0.0.1, and prints its base URL on stdout once the API's state is loaded from
Kafka. SIGTERM stops it cleanly (uvicorn runs the API's shutdown).
"""

from __future__ import annotations

import json
import socket
import sys

import uvicorn

from bus.api import ApiSettings, create_app
from bus.audit import Signer
from bus.kafka import KafkaConnection
from bus.serving import http_config


class _AnnouncingServer(uvicorn.Server):
    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            sys.stdout.write(f"http://{host}:{port}\n")
            sys.stdout.flush()


def main() -> None:
    spec = json.loads(sys.stdin.readline())
    app = create_app(
        KafkaConnection.model_validate(spec["connection"]),
        ApiSettings.model_validate(spec["settings"]),
        signer=Signer(bytes.fromhex(spec["audit_key"])),
    )
    config = http_config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    _AnnouncingServer(config).run()


if __name__ == "__main__":
    main()
