"""The four long-running services through the real CLI, against the real broker.

* Whom they run as (issue 15, point 2): without credentials a service exits 2 saying what
  to set, and never authenticates (it used to fall back to the local broker's ``admin``);
  a super user is refused, by name or by what the broker says it may do, unless
  ``--allow-super-user``, which prints a warning at every start.
* How they stop (point 9): SIGTERM at any moment of start-up or of work ends in a clean
  exit (0). A process can only catch a signal once its interpreter runs its first line: the
  earliest moment tested is when it has a SIGTERM handler (``SigCgt`` in /proc), and the
  next is while it imports its heavy modules (the Kafka client's library is mapped), the
  window in which SIGTERM used to kill it.

Waits are on events (output lines, /proc, process exit) with deadlines.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest
import yaml

from bus.broker import Broker
from bus.kafka import Acl, AclOperation, KafkaConnection, ResourceType
from bus.sandbox import Bus
from tests.conftest import PrincipalFactory

LIAISON = str(Path(sys.executable).parent / "liaison")
SERVICES = (("edge", "run"), ("adapter", "run"), ("api", "serve"), ("registry", "serve"))
WORKING = {
    ("edge", "run"): "waiting for a policy",
    ("adapter", "run"): "adapter instance(s) running",
    ("api", "serve"): "Application startup complete",
    ("registry", "serve"): "Application startup complete",
}
NO_CREDENTIALS = "needs credentials of its own and uses no default"
AUTHENTICATED = "Authenticated as"


class Service:
    """``liaison <args>`` as a process; stdout and stderr read line by line."""

    def __init__(self, args: Sequence[str], env: Mapping[str, str]) -> None:
        self.args, self.env = list(args), dict(env)
        self.lines: list[str] = []
        self._more = asyncio.Event()
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> Service:
        self.proc = await asyncio.create_subprocess_exec(
            LIAISON,
            *self.args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**self.env, "COLUMNS": "400"},
        )
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            self.lines.append(line.decode(errors="replace"))
            self._more.set()
        self._more.set()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    async def wait_for(self, text: str, *, timeout_s: float = 90) -> None:
        """Until a line holds ``text``; fails if the process ends first."""
        assert self._reader is not None

        async def seen() -> None:
            while not any(text in line for line in self.lines):
                if self._reader is not None and self._reader.done():
                    raise AssertionError(f"exited before {text!r}:\n{self.output}")
                self._more.clear()
                await self._more.wait()

        await asyncio.wait_for(seen(), timeout_s)

    async def wait_until(
        self, check: Callable[[int], bool], what: str, *, timeout_s: float = 60
    ) -> None:
        """Until ``check(pid)`` holds (it reads /proc), polling; fails if the process ends."""
        assert self.proc is not None
        pid = self.proc.pid

        async def holds() -> None:
            while not check(pid):
                if self.proc is not None and self.proc.returncode is not None:
                    raise AssertionError(f"exited before {what}:\n{self.output}")
                await asyncio.sleep(0.002)  # sleep-ok: /proc has no change notification

        await asyncio.wait_for(holds(), timeout_s)

    async def exit_code_unless(self, text: str, *, timeout_s: float = 60) -> int | None:
        """The exit code; ``None`` if a line holding ``text`` comes first (then it is killed)."""
        assert self.proc is not None
        exited = asyncio.create_task(self.proc.wait())
        said = asyncio.create_task(self.wait_for(text, timeout_s=timeout_s))
        try:
            await asyncio.wait(
                {exited, said}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
            text_came = said.done() and not said.cancelled() and said.exception() is None
        finally:
            said.cancel()
            with contextlib.suppress(asyncio.CancelledError, AssertionError, TimeoutError):
                await said
        if text_came:
            await self.kill()
            return None
        return await self.exit_code(timeout_s=timeout_s)

    def terminate(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)

    async def exit_code(self, *, timeout_s: float = 90) -> int:
        assert self.proc is not None
        assert self._reader is not None
        code = await asyncio.wait_for(self.proc.wait(), timeout_s)
        await asyncio.wait_for(self._reader, timeout_s)
        return code

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            await self._reader


def catches_sigterm(pid: int) -> bool:
    """The process has a handler for SIGTERM (bit 15 of SigCgt in /proc/<pid>/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) & (1 << (signal.SIGTERM - 1)))


def importing_kafka(pid: int) -> bool:
    """The process has mapped the Kafka client's native library (confluent-kafka)."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False
    return "confluent_kafka" in maps or "librdkafka" in maps


# -- environments ---------------------------------------------------------------------------


def bare_env(broker: Broker) -> dict[str, str]:
    """No LIAISON_KAFKA_* at all, but the local broker's directory at hand: the old
    fallback would have connected as its admin."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIAISON_")}
    env["LIAISON_BROKER_DIR"] = str(broker.config.data_dir)
    return env


def as_principal(base: Mapping[str, str], connection: KafkaConnection) -> dict[str, str]:
    return {
        **base,
        "LIAISON_KAFKA_BOOTSTRAP": connection.bootstrap_servers,
        "LIAISON_KAFKA_USERNAME": connection.username,
        "LIAISON_KAFKA_PASSWORD": connection.password.get_secret_value(),
    }


def service_args(command: tuple[str, str], tmp_path: Path, agency: str, prefix: str) -> list[str]:
    """The command line of each service, on free ports."""
    if command == ("adapter", "run"):
        config = tmp_path / "adapters.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "agency": agency,
                    "prefix": prefix,
                    "rejects_dir": str(tmp_path / "rejects"),
                    "state_dir": str(tmp_path / "state"),
                    "instances": [
                        {
                            "name": "inbox",
                            "type": "jsonl",
                            "direction": "source",
                            "config": {"directory": str(tmp_path / "inbox")},
                        }
                    ],
                }
            )
        )
        (tmp_path / "inbox").mkdir(exist_ok=True)
        return [*command, str(config)]
    if command == ("api", "serve"):
        return [*command, "--port", "0", "--tokens", str(tmp_path / "tokens.json")]
    if command == ("registry", "serve"):
        return [*command, "--port", "0", "--topic", f"{prefix}.schemas"]
    return list(command)


def keys_env(bus: Bus) -> dict[str, str]:
    """What edge run and api serve need besides credentials."""
    return {
        "LIAISON_PSEUDONYM_KEY": bus.keys.master.get_secret_value().hex(),
        "LIAISON_AUDIT_KEY": bus.audit_key,
        "LIAISON_TOPIC_PREFIX": bus.names.prefix,
    }


# -- point 2: whom a service runs as --------------------------------------------------------


@pytest.mark.parametrize("command", SERVICES, ids=" ".join)
async def test_without_credentials_a_service_exits_saying_what_to_set(
    command: tuple[str, str], broker: Broker, bus: Bus, tmp_path: Path
) -> None:
    env = {**bare_env(broker), **keys_env(bus)}
    service = await Service(
        service_args(command, tmp_path, bus.agency("a"), bus.names.prefix), env
    ).start()
    try:
        code = await service.exit_code_unless(AUTHENTICATED)
    finally:
        await service.kill()

    assert code == 2, service.output
    assert NO_CREDENTIALS in service.output
    assert "LIAISON_KAFKA_CREDENTIALS" in service.output
    assert AUTHENTICATED not in service.output, "it connected to the broker"


@pytest.mark.parametrize("command", SERVICES, ids=" ".join)
async def test_as_the_admin_a_service_is_refused_before_it_connects(
    command: tuple[str, str], broker: Broker, bus: Bus, tmp_path: Path
) -> None:
    env = {**as_principal(bare_env(broker), broker.connection), **keys_env(bus)}
    service = await Service(
        service_args(command, tmp_path, bus.agency("a"), bus.names.prefix), env
    ).start()
    try:
        code = await service.exit_code_unless(AUTHENTICATED)
    finally:
        await service.kill()

    assert code == 2, service.output
    assert "refusing to run" in service.output
    assert "--allow-super-user" in service.output
    assert AUTHENTICATED not in service.output


async def test_a_principal_the_broker_treats_as_super_is_refused_whatever_its_name(
    broker: Broker, bus: Bus, new_principal: PrincipalFactory, tmp_path: Path
) -> None:
    """Not named admin, but allowed the brokers' own CLUSTER_ACTION (and DESCRIBE, without
    which the broker reports no cluster operation): a super user in all but name. The
    service asks the broker, and refuses."""
    cluster_action = await asyncio.to_thread(
        new_principal,
        lambda p: [
            Acl(
                principal=p,
                resource_type=ResourceType.CLUSTER,
                resource_name="kafka-cluster",
                operation=operation,
            )
            for operation in (AclOperation.DESCRIBE, AclOperation.CLUSTER_ACTION)
        ],
    )
    env = {**as_principal(bare_env(broker), cluster_action), **keys_env(bus)}
    service = await Service(["edge", "run"], env).start()
    try:
        code = await service.exit_code(timeout_s=60)
    finally:
        await service.kill()

    assert code == 2, service.output
    assert f"refusing to run `liaison edge run` as {cluster_action.username}" in service.output


@pytest.mark.parametrize("command", SERVICES, ids=" ".join)
async def test_with_the_loud_flag_a_super_user_runs_and_is_warned_about(
    command: tuple[str, str], broker: Broker, bus: Bus, tmp_path: Path
) -> None:
    env = {**as_principal(bare_env(broker), broker.connection), **keys_env(bus)}
    args = [*service_args(command, tmp_path, bus.agency("a"), bus.names.prefix)]
    service = await Service([*args, "--allow-super-user"], env).start()
    try:
        await service.wait_for("a SUPER USER of the broker")
        await service.wait_for(WORKING[command])  # it does run
        service.terminate()
        code = await service.exit_code()
    finally:
        await service.kill()

    assert code == 0, service.output


async def test_the_edge_principal_runs_the_router_without_a_warning(
    broker: Broker, bus: Bus
) -> None:
    env = {**as_principal(bare_env(broker), bus.edge), **keys_env(bus)}
    service = await Service(["edge", "run"], env).start()
    try:
        await service.wait_for("waiting for a policy")
        service.terminate()
        code = await service.exit_code()
    finally:
        await service.kill()

    assert code == 0, service.output
    assert "SUPER USER" not in service.output
    assert f"{AUTHENTICATED} {bus.edge.username} " in service.output


# -- point 9: a clean stop at every moment --------------------------------------------------


EDGE_MOMENTS = ("catches SIGTERM", "imports", "connected", "waiting for a policy", "routing")


@pytest.mark.parametrize("moment", EDGE_MOMENTS)
async def test_the_router_stops_cleanly_on_sigterm_at_every_moment(
    moment: str, broker: Broker, bus: Bus
) -> None:
    env = {**as_principal(bare_env(broker), bus.edge), **keys_env(bus)}
    if moment == "routing":
        await bus.publish_policy(bus.policy([]))
    service = await Service(["edge", "run"], env).start()
    try:
        if moment == "catches SIGTERM":
            await service.wait_until(catches_sigterm, "a SIGTERM handler")
        elif moment == "imports":
            await service.wait_until(importing_kafka, "the Kafka client imported")
        elif moment == "connected":
            await service.wait_for(AUTHENTICATED)
        elif moment == "waiting for a policy":
            await service.wait_for("waiting for a policy")
        else:
            await service.wait_for("policy version 1 in force")
        service.terminate()
        code = await service.exit_code()
    finally:
        await service.kill()

    assert code == 0, f"SIGTERM at {moment!r}: exit {code}\n{service.output}"
    assert "stopped" in service.output


SERVICE_MOMENTS = ("catches SIGTERM", "imports", "working")


@pytest.mark.parametrize("moment", SERVICE_MOMENTS)
@pytest.mark.parametrize("command", SERVICES[1:], ids=" ".join)
async def test_the_other_services_stop_cleanly_on_sigterm_at_every_moment(
    command: tuple[str, str],
    moment: str,
    broker: Broker,
    bus: Bus,
    admin_service: KafkaConnection,
    tmp_path: Path,
) -> None:
    principal = bus.agencies[bus.agency("a")] if command == ("adapter", "run") else admin_service
    env = {**as_principal(bare_env(broker), principal), **keys_env(bus)}
    args = service_args(command, tmp_path, bus.agency("a"), bus.names.prefix)
    service = await Service(args, env).start()
    try:
        if moment == "catches SIGTERM":
            await service.wait_until(catches_sigterm, "a SIGTERM handler")
        elif moment == "imports":
            await service.wait_until(importing_kafka, "the Kafka client imported")
        else:
            await service.wait_for(WORKING[command])
        service.terminate()
        code = await service.exit_code()
    finally:
        await service.kill()

    assert code == 0, f"SIGTERM at {moment!r}: exit {code}\n{service.output}"


# -- the standalone registry applies the HTTP limits of every Liaison server ---------------


async def _exchange(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()


async def test_registry_serve_answers_431_and_413_at_once_in_confluents_shape(
    broker: Broker, bus: Bus, tmp_path: Path
) -> None:
    from tests.support.api import provision_admin_service

    service_principal = await provision_admin_service(bus)
    env = {**as_principal(bare_env(broker), service_principal), **keys_env(bus)}
    args = service_args(("registry", "serve"), tmp_path, bus.agency("a"), bus.names.prefix)
    service = await Service(args, env).start()
    try:
        await service.wait_for("Uvicorn running on")
        line = next(x for x in service.lines if "Uvicorn running on" in x)
        port = int(line.split("http://127.0.0.1:", 1)[1].split()[0])
        headers = await _exchange(
            port,
            b"GET /subjects HTTP/1.1\r\nHost: r\r\nX-Padding: " + b"a" * (1 << 20) + b"\r\n\r\n",
        )
        body = await _exchange(
            port,
            b"POST /subjects/s/versions HTTP/1.1\r\nHost: r\r\n"
            b"Content-Type: application/json\r\nContent-Length: 10000000\r\n\r\n{",
        )
        service.terminate()
        code = await service.exit_code()
    finally:
        await service.kill()

    assert headers.split(b" ", 2)[1] == b"431"
    assert body.split(b" ", 2)[1] == b"413"
    assert b'"error_code"' in body.split(b"\r\n\r\n", 1)[1]
    assert code == 0, service.output
