"""The admin API on a real port, in a thread of its own, for tests that speak HTTP to it."""

from __future__ import annotations

import asyncio
import json
import secrets
import select
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import uvicorn

from bus.api import ApiSettings, TokenStore, create_app
from bus.kafka import KafkaConnection, wait_until_authenticates
from bus.provision import Provisioner, admin_service_acls
from bus.sandbox import Bus
from bus.serving import http_config

__all__ = [
    "ApiHarness",
    "ServerProcess",
    "ServerThread",
    "provision_admin_service",
    "running_api",
    "until",
]

T = TypeVar("T")


def until(condition: Callable[[], T], what: str, *, timeout_s: float = 30.0) -> T:
    """``condition()``'s first truthy answer, checking every 50 ms; fail at the deadline.

    For state the API folds from Kafka in the background (dead letters, agencies): it
    offers no event to wait on, so the wait is a deadline, not a fixed pause.
    """
    deadline = time.monotonic() + timeout_s
    pause = threading.Event()
    while not (answer := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s}s: {what}")
        pause.wait(0.05)
    return answer


class _Server(uvicorn.Server):
    """Sets ``ready`` once serving: after the lifespan (the API's Kafka state) has loaded."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()


class ServerThread:
    """uvicorn serving ``app`` on 127.0.0.1 (a free port) until :meth:`stop`."""

    def __init__(self, app: Any) -> None:
        self.server = _Server(
            http_config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
        )
        self._thread = threading.Thread(target=self._run, name="admin-api", daemon=True)
        self._failure: BaseException | None = None

    def _run(self) -> None:
        try:
            asyncio.run(self.server.serve())
        except BaseException as exc:  # noqa: BLE001 - reported to the test by start()
            self._failure = exc
        finally:
            self.server.ready.set()  # wakes start() when startup failed

    def start(self, timeout_s: float = 60.0) -> str:
        """Serve; returns the base URL once the API is up."""
        self._thread.start()
        if not self.server.ready.wait(timeout_s) or not self.server.started:
            self.stop()
            raise RuntimeError(f"the admin API did not start within {timeout_s}s: {self._failure}")
        (sock,) = self.server.servers[0].sockets
        host, port = sock.getsockname()[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(60)


class ServerProcess:
    """The API served by a child interpreter (:mod:`tests.support.api_server`) until
    :meth:`stop`.

    For tests driven by Hypothesis: the API's Kafka clients (aiokafka) draw from the
    interpreter's global ``random`` all the time, and Hypothesis takes any change of that
    state during a draw for a strategy using ``random`` (a deprecation warning, an error
    here). In a process of its own the API cannot touch the test's ``random``.
    """

    def __init__(self, connection: KafkaConnection, settings: ApiSettings, audit_key: str) -> None:
        self._spec = {
            "audit_key": audit_key,
            "connection": {
                **connection.model_dump(mode="json"),
                "password": connection.password.get_secret_value(),
            },
            "settings": settings.model_dump(mode="json"),
        }
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60.0) -> str:
        """Serve; returns the base URL once the API is up."""
        root = Path(__file__).resolve().parents[2]
        process = self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.api_server"],
            cwd=root,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert process.stdin is not None
        assert process.stdout is not None
        process.stdin.write(json.dumps(self._spec).encode() + b"\n")
        process.stdin.close()
        ready, _, _ = select.select([process.stdout], [], [], timeout_s)
        url = process.stdout.readline().decode().strip() if ready else ""
        if not url.startswith("http://"):
            self.stop()
            raise RuntimeError(
                f"the admin API process did not start within {timeout_s}s "
                f"(exit code {process.returncode}; its log is above)"
            )
        return url

    def stop(self) -> None:
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


@dataclass
class ApiHarness:
    """A running admin API over a sandbox bus, with a token per role."""

    bus: Bus
    url: str
    tokens: dict[str, str]
    store: TokenStore
    admin_service: KafkaConnection
    extra: dict[str, Any] = field(default_factory=dict)

    def client(self, role: str | None = "admin") -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)


async def provision_admin_service(bus: Bus) -> KafkaConnection:
    """The admin service's own principal (not a super user) for this bus."""
    name = f"admin.{uuid.uuid4().hex[:8]}"
    password = secrets.token_urlsafe(18)
    provisioner = Provisioner(bus.admin, names=bus.names)
    await provisioner.grant(name, admin_service_acls(f"User:{name}", bus.names), password)
    bus.principals.append(name)
    connection = bus.admin.with_credentials(name, password)
    await asyncio.to_thread(wait_until_authenticates, connection)
    return connection


@contextmanager
def running_api(
    bus: Bus,
    service: KafkaConnection,
    tmp_path: Path,
    *,
    own_process: bool = False,
    **settings: Any,
) -> Iterator[ApiHarness]:
    """Tokens for admin, auditor and agencies a and b; the API serving until exit.

    ``own_process`` serves it from a child interpreter (:class:`ServerProcess`), else
    from a thread of this one. ``settings`` overrides :class:`ApiSettings` fields (e.g.
    ``checkpoint_every``).
    """
    store = TokenStore(tmp_path / "tokens.json")
    tokens = {
        "admin": store.create("admin")[0],
        "auditor": store.create("auditor")[0],
        "a": store.create(f"agency:{bus.agency('a')}")[0],
        "b": store.create(f"agency:{bus.agency('b')}")[0],
    }
    api_settings = ApiSettings(
        prefix=bus.names.prefix, tokens_path=store.path, lag_interval_s=0.5, **settings
    )
    server = (
        ServerProcess(service, api_settings, bus.audit_key)
        if own_process
        else ServerThread(create_app(service, api_settings, schema=bus.schema, signer=bus.signer))
    )
    url = server.start()
    try:
        yield ApiHarness(bus=bus, url=url, tokens=tokens, store=store, admin_service=service)
    finally:
        server.stop()
