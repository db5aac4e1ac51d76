"""The launcher itself: clear failures, clean stops, no orphan JVMs, restarts, the CLI.

Each test here starts its own broker (a few seconds each) because what is under
test is the broker's lifecycle, not something that runs on it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bus.broker import Broker, BrokerConfig, BrokerState
from bus.broker._compose import compose_cluster_id, format_properties
from bus.broker._jars import kafka_libs
from bus.broker._launcher import find_java
from bus.broker._properties import render_properties
from bus.errors import (
    BrokerNotRunningError,
    BrokerStartError,
    BrokerStartTimeoutError,
    PortInUseError,
)
from bus.kafka import KafkaAdmin, KafkaConnection, Producer, Record, TopicSpec, read_to_end
from tests.support import jvm_pids_using, wait_for_exit

pytestmark = pytest.mark.integration

LIAISON = str(Path(sys.executable).parent / "liaison")


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "broker"
    yield path
    # Whatever a test did, it must not leave a JVM behind.
    leftovers = jvm_pids_using(path)
    for pid in leftovers:
        os.kill(pid, signal.SIGKILL)
    assert leftovers == [], f"orphan JVM(s) left running: {leftovers}"


def test_a_broker_that_dies_while_starting_reports_its_last_log_lines(data_dir: Path) -> None:
    logs = data_dir / "kraft-logs"
    logs.mkdir(parents=True)
    (logs / "meta.properties").write_text("version=1\nnode.id=not-a-number\n")
    broker = Broker(BrokerConfig(data_dir=data_dir))

    with pytest.raises(BrokerStartError) as caught:
        broker.start()

    message = str(caught.value)
    assert "exited with code" in message
    assert "Last 40 lines" in message
    assert str(data_dir / "broker.log") in message
    assert broker.state is BrokerState.FAILED


def test_a_broker_not_ready_in_time_is_killed_and_the_timeout_named(data_dir: Path) -> None:
    broker = Broker(BrokerConfig(data_dir=data_dir, start_timeout_s=0.5))

    with pytest.raises(BrokerStartTimeoutError) as caught:
        broker.start()

    assert "not ready after" in str(caught.value)
    assert "start_timeout_s" in str(caught.value)
    assert jvm_pids_using(data_dir) == []


def test_a_taken_port_is_named_before_anything_starts(data_dir: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]

        with pytest.raises(PortInUseError) as caught:
            Broker(BrokerConfig(data_dir=data_dir, client_port=port)).start()

    assert str(port) in str(caught.value)
    assert "--client-port" in str(caught.value)


def test_a_restart_keeps_topics_and_credentials(data_dir: Path) -> None:
    with Broker(BrokerConfig(data_dir=data_dir)) as first:
        password = first.connection.password.get_secret_value()
        with KafkaAdmin(first.connection) as admin:
            admin.create_topics([TopicSpec("survives.restart")])

    with Broker(BrokerConfig(data_dir=data_dir)) as second, KafkaAdmin(second.connection) as admin:
        topics = admin.list_topics()
        same_password = second.connection.password.get_secret_value() == password

    assert "survives.restart" in topics
    assert same_password


def test_a_sigkilled_broker_restarts_on_its_data_at_the_same_address(data_dir: Path) -> None:
    """``kill()`` is a crash (SIGKILL, no controlled shutdown); ``restart_config()`` brings
    the broker back on the same data, port and credentials, with acknowledged records."""
    broker = Broker(BrokerConfig(data_dir=data_dir))
    broker.start()
    try:
        connection = broker.connection
        with KafkaAdmin(connection) as admin:
            admin.create_topics([TopicSpec("survives.sigkill")])
        acknowledged = asyncio.run(_send_one(connection, "survives.sigkill"))
        jvm_pid = broker.pid
        assert jvm_pid is not None

        broker.kill()

        assert broker.state is BrokerState.STOPPED
        assert wait_for_exit(jvm_pid, timeout_s=5)
        with pytest.raises(BrokerNotRunningError):
            broker.kill()
        config = broker.restart_config()
        assert (config.client_port, config.controller_port) == (
            broker.client_port,
            broker.controller_port,
        )
        with Broker(config) as again:
            assert again.bootstrap_servers == connection.bootstrap_servers
            records = asyncio.run(_read_all(connection, "survives.sigkill"))  # same password
    finally:
        broker.stop()

    assert [(r.offset, r.value) for r in records] == [(acknowledged, b"acknowledged")]


async def _send_one(connection: KafkaConnection, topic: str) -> int:
    async with Producer(connection) as producer:
        return (await producer.send(topic, b"acknowledged")).offset


async def _read_all(connection: KafkaConnection, topic: str) -> list[Record]:
    return await read_to_end(connection, topic)


def test_killing_the_launching_process_kills_the_broker(data_dir: Path) -> None:
    script = (
        "import sys, pathlib\n"
        "from bus.broker import Broker, BrokerConfig\n"
        f"b = Broker(BrokerConfig(data_dir=pathlib.Path({str(data_dir)!r})))\n"
        "b.start()\n"
        "print(b.pid, flush=True)\n"
        "sys.stdin.read()\n"
    )
    launcher = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert launcher.stdout is not None
        jvm_pid = int(launcher.stdout.readline())

        launcher.kill()  # SIGKILL: no atexit, no finally, nothing in Python runs
        launcher.wait()

        assert wait_for_exit(jvm_pid, timeout_s=30), "the JVM outlived its launcher"
    finally:
        launcher.kill()
        launcher.wait()
        if launcher.stdin:
            launcher.stdin.close()
        if launcher.stdout:
            launcher.stdout.close()


async def _read_line_containing(stream: asyncio.StreamReader, needle: str, timeout_s: float) -> str:
    async def scan() -> str:
        while True:
            line = (await stream.readline()).decode()
            if not line:
                raise AssertionError(f"stream ended before a line containing {needle!r}")
            if needle in line:
                return line

    return await asyncio.wait_for(scan(), timeout_s)


async def test_ctrl_c_on_a_foreground_cli_broker_stops_it(data_dir: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        LIAISON,
        "broker",
        "start",
        "--data-dir",
        str(data_dir),
        "--client-port",
        "0",
        "--controller-port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.stdout is not None
    await _read_line_containing(proc.stdout, "ready", timeout_s=120)
    jvm_pid = int(json.loads((data_dir / "broker.json").read_text())["pid"])

    proc.send_signal(signal.SIGINT)
    code = await asyncio.wait_for(proc.wait(), timeout=60)

    assert code == 0
    assert wait_for_exit(jvm_pid, timeout_s=5)
    assert not (data_dir / "broker.json").exists()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LIAISON, "broker", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "COLUMNS": "200"},
        check=False,
    )


def test_cli_detached_start_status_stop(data_dir: Path) -> None:
    dd = ["--data-dir", str(data_dir)]
    started = _cli("start", "--detach", "--client-port", "0", "--controller-port", "0", *dd)
    assert started.returncode == 0, started.stderr
    jvm_pid = int(json.loads((data_dir / "broker.json").read_text())["pid"])

    running = _cli("status", *dd)
    stopped = _cli("stop", *dd)
    after = _cli("status", *dd)

    assert running.returncode == 0, running.stdout + running.stderr
    assert "1 broker(s) answering" in running.stdout
    assert stopped.returncode == 0, stopped.stderr
    assert f"pid {jvm_pid}" in stopped.stdout
    assert wait_for_exit(jvm_pid, timeout_s=5)
    assert after.returncode == 1
    assert "no broker running" in after.stdout
    credentials = data_dir / "credentials.json"
    assert credentials.stat().st_mode & 0o077 == 0, "credentials must be private to the owner"
    password = json.loads(credentials.read_text())["admin"]
    assert password not in started.stdout + started.stderr + running.stdout + stopped.stdout


def test_storage_formatted_the_compose_way_boots_with_scram(data_dir: Path) -> None:
    """docker-compose.yml formats with a minimal file and --add-scram; prove that on 4.3.1."""
    java, _ = find_java()
    libs = kafka_libs()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        controller_port = s.getsockname()[1]
    data_dir.mkdir(parents=True)
    props = format_properties(
        host="127.0.0.1",
        client_port=9092,
        controller_port=controller_port,
        log_dir=str(data_dir / "kraft-logs"),
    )
    (data_dir / "format.properties").write_text(render_properties(props))
    secrets = {"admin": "compose-admin-pw", "broker": "compose-broker-pw"}
    (data_dir / "credentials.json").write_text(json.dumps(secrets))
    formatted = subprocess.run(
        [
            java,
            "-cp",
            f"{libs}/*",
            "kafka.tools.StorageTool",
            "format",
            "--ignore-formatted",
            "--cluster-id",
            compose_cluster_id(),
            "--config",
            str(data_dir / "format.properties"),
            "--add-scram",
            f"SCRAM-SHA-512=[name=admin,password={secrets['admin']}]",
            "--add-scram",
            f"SCRAM-SHA-512=[name=broker,password={secrets['broker']}]",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr

    config = BrokerConfig(data_dir=data_dir, controller_port=controller_port)
    with Broker(config) as broker, KafkaAdmin(broker.connection) as admin:
        users = admin.scram_users()

    assert users == {"admin": ["SCRAM-SHA-512"], "broker": ["SCRAM-SHA-512"]}
