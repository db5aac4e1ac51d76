"""bus.broker._launcher without a JVM: the Java check, the port check, the cluster id.

``java`` is a small shell script here that prints what ``java -version`` prints.
Real JDKs print it to stderr, and so does the script.
"""

from __future__ import annotations

import base64
import re
import socket
import stat
import types
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bus.broker import Broker, BrokerConfig, BrokerState, _launcher, find_java, read_state
from bus.errors import BrokerNotRunningError, JavaNotFoundError, PortInUseError


def _fake_java(bin_dir: Path, version_line: str) -> Path:
    bin_dir.mkdir(parents=True, exist_ok=True)
    java = bin_dir / "java"
    java.write_text(f"#!/bin/sh\necho '{version_line}' >&2\n")
    java.chmod(java.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return java


@pytest.fixture
def empty_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PATH holds one empty directory, so no real `java` can be found."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    return empty


# -- find_java --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version_line", "major"),
    [
        ('openjdk version "17.0.1" 2021-10-19', 17),
        ('openjdk version "21" 2023-09-19', 21),
        ('openjdk version "25-ea" 2025-09-16', 25),
        ('java version "17.0.12" 2024-07-16 LTS', 17),
    ],
)
@pytest.mark.usefixtures("empty_path")
def test_find_java_returns_java_home_java_and_its_major_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version_line: str, major: int
) -> None:
    java = _fake_java(tmp_path / "jdk" / "bin", version_line)
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jdk"))
    assert find_java() == (str(java), major)


@pytest.mark.parametrize(
    ("version_line", "major"),
    [
        ('openjdk version "11.0.2" 2019-01-15', 11),
        ('openjdk version "1.8.0_292"', 8),
        ('openjdk version "16.0.2" 2021-07-20', 16),
    ],
)
@pytest.mark.usefixtures("empty_path")
def test_find_java_refuses_java_older_than_17_naming_both_versions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version_line: str, major: int
) -> None:
    java = _fake_java(tmp_path / "jdk" / "bin", version_line)
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jdk"))
    with pytest.raises(JavaNotFoundError) as caught:
        find_java()
    message = str(caught.value)
    assert f"{java} is Java {major};" in message
    assert "needs Java 17 or newer" in message
    assert "JAVA_HOME" in message


@pytest.mark.usefixtures("empty_path")
def test_find_java_reports_output_it_cannot_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_java(tmp_path / "jdk" / "bin", "not a jvm")
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jdk"))
    with pytest.raises(JavaNotFoundError, match=r"could not read the version .*not a jvm"):
        find_java()


def test_find_java_prefers_java_home_over_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home_java = _fake_java(tmp_path / "jdk" / "bin", 'openjdk version "21.0.4"')
    path_dir = tmp_path / "path-bin"
    _fake_java(path_dir, 'openjdk version "17.0.1"')
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jdk"))
    monkeypatch.setenv("PATH", str(path_dir))
    assert find_java() == (str(home_java), 21)


def test_find_java_uses_path_when_java_home_has_no_java(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "not-a-jdk").mkdir()
    path_java = _fake_java(tmp_path / "path-bin", 'openjdk version "17.0.1"')
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "not-a-jdk"))
    monkeypatch.setenv("PATH", str(tmp_path / "path-bin"))
    assert find_java() == (str(path_java), 17)


@pytest.mark.usefixtures("empty_path")
def test_find_java_without_any_java_says_how_to_install_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(JavaNotFoundError) as caught:
        find_java()
    message = str(caught.value)
    assert "no `java` found on PATH or in $JAVA_HOME" in message
    assert "Java 17 or newer" in message
    assert "apt-get install openjdk-17-jre-headless" in message
    assert "set JAVA_HOME" in message


# -- _check_port_free --------------------------------------------------------------------


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def test_check_port_free_raises_port_in_use_naming_the_port(listening_port: int) -> None:
    with pytest.raises(PortInUseError) as caught:
        _launcher._check_port_free(listening_port, "client")
    assert caught.value.port == listening_port
    assert caught.value.purpose == "client"
    assert f"port {listening_port} on 127.0.0.1" in str(caught.value)
    assert "--client-port" in str(caught.value)
    assert isinstance(caught.value.__cause__, OSError)


def test_check_port_free_accepts_a_port_nothing_holds() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    # Bound but never connected, so the port is free again at once (no TIME_WAIT).
    _launcher._check_port_free(port, "controller")


# -- _cluster_id -------------------------------------------------------------------------

_URLSAFE_22 = re.compile(r"[A-Za-z0-9_-]{22}")


def test_cluster_id_is_22_url_safe_characters_encoding_16_bytes() -> None:
    cid = _launcher._cluster_id()
    assert _URLSAFE_22.fullmatch(cid)
    assert not cid.startswith("-")
    assert len(base64.urlsafe_b64decode(cid + "==")) == 16


def test_cluster_ids_are_fresh_and_never_start_with_a_dash() -> None:
    ids = [_launcher._cluster_id() for _ in range(500)]
    assert len(set(ids)) == len(ids)
    assert all(_URLSAFE_22.fullmatch(cid) and not cid.startswith("-") for cid in ids)


def test_cluster_id_draws_again_when_the_encoding_would_start_with_a_dash(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dashed = uuid.UUID(bytes=b"\xf8" + bytes(15))  # 0b111110.. encodes to '-'
    plain = uuid.UUID(bytes=b"\x00" + bytes(range(1, 16)))
    draws = iter([dashed, plain])
    monkeypatch.setattr(_launcher, "uuid", types.SimpleNamespace(uuid4=lambda: next(draws)))
    assert base64.urlsafe_b64encode(dashed.bytes).startswith(b"-")
    assert _launcher._cluster_id() == base64.urlsafe_b64encode(plain.bytes).rstrip(b"=").decode()


# -- a handle that never started ----------------------------------------------------------


def test_new_broker_handle_has_no_connection_until_running(tmp_path: Path) -> None:
    broker = Broker(BrokerConfig(data_dir=tmp_path))
    assert broker.state is BrokerState.NEW
    with pytest.raises(BrokerNotRunningError, match="broker is new, not running"):
        _ = broker.connection


def test_stop_on_a_never_started_handle_does_nothing(tmp_path: Path) -> None:
    broker = Broker(BrokerConfig(data_dir=tmp_path))
    broker.stop()
    assert broker.state is BrokerState.NEW
    assert broker.pid is None


def test_read_state_without_a_started_broker_says_how_to_start_one(tmp_path: Path) -> None:
    with pytest.raises(BrokerNotRunningError, match="liaison broker start"):
        read_state(tmp_path)
