"""Start, probe and stop a real single-node Apache Kafka broker with ``java``.

The broker runs in KRaft combined mode on 127.0.0.1 with SCRAM on the client
listener, PLAIN on the controller listener and the StandardAuthorizer denying
everything not granted (see :mod:`bus.broker._properties`). The launcher:

* resolves the jars (:mod:`bus.broker._jars`), checks ``java`` and both ports;
* formats storage once, bootstrapping SCRAM users with KIP-900 ``--add-scram``;
* starts ``kafka.Kafka`` and reports ready only when the admin principal has
  authenticated and received broker metadata;
* stops with SIGTERM, then SIGKILL after a bound. A broker it started in the
  foreground also receives SIGKILL from the kernel if the launching process dies
  (``PR_SET_PDEATHSIG``), so no JVM outlives a killed test run.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import enum
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
import weakref
from base64 import urlsafe_b64encode
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from bus.broker._jars import KAFKA_VERSION, kafka_libs
from bus.broker._properties import (
    ADMIN_USER,
    BROKER_USER,
    SCRAM_MECHANISM,
    render_properties,
    server_properties,
)
from bus.errors import (
    BrokerError,
    BrokerNotRunningError,
    BrokerStartError,
    BrokerStartTimeoutError,
    JavaNotFoundError,
    KafkaAccessError,
    PortInUseError,
)
from bus.kafka import KafkaAdmin, KafkaConnection

__all__ = ["Broker", "BrokerConfig", "BrokerState", "find_java", "read_state"]

HOST = "127.0.0.1"
"""The broker binds loopback only."""

_LOG_TAIL_LINES = 40
_MIN_JAVA = 17
_PR_SET_PDEATHSIG = 1

_LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
# Every authorization decision that denies is logged at INFO: useful when an ACL test fails.
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = INFO
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
"""


class BrokerConfig(BaseModel):
    """Where and how to run the broker. Ports of 0 are chosen free at start."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data_dir: Path = Field(description="Holds storage, config, logs and credentials.")
    client_port: int = Field(default=0, ge=0, le=65535, description="SCRAM client listener.")
    controller_port: int = Field(default=0, ge=0, le=65535, description="KRaft controller.")
    kafka_version: str = KAFKA_VERSION
    heap_mb: int = Field(default=768, ge=256, description="JVM -Xmx in MiB.")
    start_timeout_s: float = Field(default=120.0, gt=0)
    stop_timeout_s: float = Field(default=30.0, gt=0)
    admin_password: SecretStr | None = Field(
        default=None,
        description="Password of the `admin` super user; generated and kept in data_dir if unset.",
    )


class BrokerState(enum.Enum):
    """Lifecycle of a :class:`Broker` handle."""

    NEW = "new"
    """Nothing started yet."""
    STARTING = "starting"
    """The JVM is running but has not yet proved it is ready."""
    RUNNING = "running"
    """Ready: the admin principal authenticated and got metadata."""
    STOPPING = "stopping"
    """SIGTERM sent; waiting for the JVM to exit."""
    STOPPED = "stopped"
    """The JVM has exited (or was never started by this handle)."""
    FAILED = "failed"
    """Start failed; the JVM, if any, was killed."""
    DETACHED = "detached"
    """Started with ``detach=True``: running, owned by no handle (see ``stop_detached``)."""


def find_java() -> tuple[str, int]:
    """Path and major version of ``$JAVA_HOME/bin/java`` or the ``java`` on PATH."""
    java_home = os.environ.get("JAVA_HOME")
    candidate = Path(java_home) / "bin" / "java" if java_home else None
    java = str(candidate) if candidate and candidate.is_file() else shutil.which("java")
    if java is None:
        raise JavaNotFoundError(
            "no `java` found on PATH or in $JAVA_HOME; Kafka 4 needs Java 17 or newer. "
            "Install one (Debian: `apt-get install openjdk-17-jre-headless`) or set JAVA_HOME"
        )
    try:
        out = subprocess.run(
            [java, "-version"], capture_output=True, text=True, check=False, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise JavaNotFoundError(
            f"could not run {java} -version ({exc}); fix or reinstall that Java, or point "
            "JAVA_HOME at a working JDK 17+"
        ) from exc
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        raise JavaNotFoundError(f"could not read the version of {java}: {out.stderr.strip()!r}")
    major = int(match.group(1))
    if major == 1 and match.group(2):  # "1.8.0" style
        major = int(match.group(2))
    if major < _MIN_JAVA:
        raise JavaNotFoundError(
            f"{java} is Java {major}; Kafka 4 needs Java {_MIN_JAVA} or newer. "
            "Install a newer JDK or point JAVA_HOME at one"
        )
    return java, major


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _check_port_free(port: int, purpose: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # The JVM binds with SO_REUSEADDR, so a port in TIME_WAIT is usable: probe the same way.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError as exc:
            raise PortInUseError(port, purpose) from exc


def _port_accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def _cluster_id() -> str:
    # Kafka's Uuid.randomUuid() avoids ids starting with '-' (they read as options).
    while True:
        cid = urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no log written)"
    return "\n".join(text[-lines:]) or "(log is empty)"


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


class _Paths:
    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir
        self.logs = data_dir / "kraft-logs"
        self.properties = data_dir / "server.properties"
        self.log4j = data_dir / "log4j2.properties"
        self.log = data_dir / "broker.log"
        self.credentials = data_dir / "credentials.json"
        self.state = data_dir / "broker.json"


def read_state(data_dir: Path) -> dict[str, int | str]:
    """The state file a started broker leaves in ``data_dir``."""
    path = _Paths(data_dir).state
    try:
        loaded: dict[str, int | str] = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise BrokerNotRunningError(
            f"no broker state in {data_dir}: start one with `liaison broker start`"
        ) from exc
    return loaded


def _pid_is_broker(pid: int, properties: Path) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"kafka.Kafka" in cmdline and str(properties).encode() in cmdline


_LIVE: weakref.WeakSet[Broker] = weakref.WeakSet()


@atexit.register
def _stop_all_at_exit() -> None:
    for broker in list(_LIVE):
        with contextlib.suppress(Exception):
            broker.stop()


class Broker:
    """A local Kafka broker process.

    >>> with Broker(BrokerConfig(data_dir=Path("/tmp/kafka"))) as broker:
    ...     admin_connection = broker.connection

    ``start()`` blocks until ready or raises; ``stop()`` is safe to call at any time
    and more than once. A broker started with ``detach=True`` outlives this process
    and is stopped later with :meth:`stop_detached`.
    """

    def __init__(
        self, config: BrokerConfig, *, progress: Callable[[str], None] | None = None
    ) -> None:
        self.config = config
        self._paths = _Paths(config.data_dir)
        self._say = progress or (lambda _msg: None)
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._state = BrokerState.NEW
        self._client_port = config.client_port
        self._controller_port = config.controller_port
        self._admin_password = ""

    # -- public surface --------------------------------------------------------------

    @property
    def state(self) -> BrokerState:
        return self._state

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def client_port(self) -> int:
        """The client listener's port (chosen at start when configured as 0)."""
        return self._client_port

    @property
    def controller_port(self) -> int:
        """The controller listener's port (chosen at start when configured as 0)."""
        return self._controller_port

    @property
    def bootstrap_servers(self) -> str:
        return f"{HOST}:{self._client_port}"

    @property
    def log_path(self) -> Path:
        return self._paths.log

    @property
    def connection(self) -> KafkaConnection:
        """Credentials of the ``admin`` super user."""
        if self._state is not BrokerState.RUNNING:
            raise BrokerNotRunningError(f"broker is {self._state.value}, not running")
        return KafkaConnection(
            bootstrap_servers=self.bootstrap_servers,
            username=ADMIN_USER,
            password=SecretStr(self._admin_password),
        )

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, *, detach: bool = False) -> None:
        """Start the broker and wait until it serves authenticated metadata."""
        if self._state is not BrokerState.NEW:
            raise BrokerError(f"this Broker handle is {self._state.value}; create a new one")
        java, _major = find_java()
        libs = kafka_libs(self.config.kafka_version, progress=self._say)
        self._paths.root.mkdir(parents=True, exist_ok=True)
        self._client_port = self._client_port or _free_port()
        self._controller_port = self._controller_port or _free_port()
        while self._controller_port == self._client_port:
            self._controller_port = _free_port()
        _check_port_free(self._client_port, "client")
        _check_port_free(self._controller_port, "controller")
        admin_pw, broker_pw = self._credentials()
        self._admin_password = admin_pw
        self._write_config(broker_pw)
        classpath = f"{libs}/*"
        if not (self._paths.logs / "meta.properties").exists():
            self._format(java, classpath, admin_pw, broker_pw)
        self._state = BrokerState.STARTING
        try:
            self._spawn(java, classpath, detach=detach)
            self._wait_ready()
        except BaseException:  # includes KeyboardInterrupt: never leave the JVM behind
            self._kill()
            self._state = BrokerState.FAILED
            raise
        self._state = BrokerState.RUNNING
        state = {
            "pid": self.pid or 0,
            "client_port": self._client_port,
            "controller_port": self._controller_port,
            "kafka_version": self.config.kafka_version,
            "bootstrap_servers": self.bootstrap_servers,
        }
        _write_private(self._paths.state, json.dumps(state, indent=2) + "\n")
        if detach:
            # Ownership passes to `liaison broker stop`; this handle lets go of the process.
            self._release()
            self._state = BrokerState.DETACHED
        else:
            _LIVE.add(self)

    def wait(self) -> int:
        """Block until the broker process exits on its own; return its exit code."""
        if self._proc is None:
            raise BrokerNotRunningError(f"broker is {self._state.value}; nothing to wait for")
        return self._proc.wait()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after ``stop_timeout_s``. Idempotent."""
        proc = self._proc
        if proc is None:
            return
        self._state = BrokerState.STOPPING
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=self.config.stop_timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._release()
        self._paths.state.unlink(missing_ok=True)
        self._state = BrokerState.STOPPED

    def kill(self) -> None:
        """SIGKILL the JVM, as a crash would (no controlled shutdown, no flush): for fault
        injection. The data directory stays; a new handle with the same ``data_dir`` and
        ports (:meth:`restart_config`) starts the broker again on the same data."""
        if self._proc is None:
            raise BrokerNotRunningError(f"broker is {self._state.value}; nothing to kill")
        self._kill()
        self._paths.state.unlink(missing_ok=True)
        self._state = BrokerState.STOPPED

    def restart_config(self) -> BrokerConfig:
        """This broker's configuration with the ports it actually used, so that a restart
        (after :meth:`stop` or :meth:`kill`) answers on the same address."""
        return self.config.model_copy(
            update={"client_port": self._client_port, "controller_port": self._controller_port}
        )

    @staticmethod
    def stop_detached(data_dir: Path, *, timeout_s: float = 30.0) -> int:
        """Stop the broker a detached start left in ``data_dir``; returns its pid."""
        paths = _Paths(data_dir)
        pid = int(read_state(data_dir)["pid"])
        if not _pid_is_broker(pid, paths.properties):
            paths.state.unlink(missing_ok=True)
            raise BrokerNotRunningError(
                f"the broker recorded in {paths.state} (pid {pid}) is no longer running"
            )
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while _pid_is_broker(pid, paths.properties) and time.monotonic() < deadline:
            time.sleep(0.2)  # not our child: no handle to wait on, so poll /proc
        if _pid_is_broker(pid, paths.properties):
            os.kill(pid, signal.SIGKILL)
        paths.state.unlink(missing_ok=True)
        return pid

    @staticmethod
    def detached_connection(data_dir: Path) -> KafkaConnection:
        """Admin credentials of the broker recorded in ``data_dir``."""
        state = read_state(data_dir)
        creds = json.loads(_Paths(data_dir).credentials.read_text())
        return KafkaConnection(
            bootstrap_servers=str(state["bootstrap_servers"]),
            username=ADMIN_USER,
            password=SecretStr(creds["admin"]),
        )

    @staticmethod
    def is_detached_running(data_dir: Path) -> bool:
        try:
            pid = int(read_state(data_dir)["pid"])
        except BrokerNotRunningError:
            return False
        return _pid_is_broker(pid, _Paths(data_dir).properties)

    # -- steps -----------------------------------------------------------------------

    def _credentials(self) -> tuple[str, str]:
        """Reuse the passwords the storage was formatted with; generate them the first time."""
        path = self._paths.credentials
        stored: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
        wanted = self.config.admin_password
        if stored and wanted is not None and wanted.get_secret_value() != stored["admin"]:
            raise BrokerError(
                f"{self._paths.root} was formatted with another admin password; "
                "unset it, or delete the data directory to start over"
            )
        if not stored:
            # token_urlsafe never yields ',' (which --add-scram cannot carry) or quotes.
            admin = wanted.get_secret_value() if wanted else secrets.token_urlsafe(24)
            if any(c in admin for c in ',"\\'):
                raise BrokerError("the admin password may not contain ',', '\"' or '\\'")
            stored = {"admin": admin, "broker": secrets.token_urlsafe(24)}
            _write_private(path, json.dumps(stored) + "\n")
        return stored["admin"], stored["broker"]

    def _write_config(self, broker_pw: str) -> None:
        props = server_properties(
            host=HOST,
            client_port=self._client_port,
            controller_port=self._controller_port,
            log_dir=str(self._paths.logs),
            broker_password=broker_pw,
        )
        _write_private(self._paths.properties, render_properties(props))
        self._paths.log4j.write_text(_LOG4J2)

    def _jvm(self, java: str, classpath: str, main: str, *args: str) -> list[str]:
        return [
            java,
            f"-Xmx{self.config.heap_mb}m",
            f"-Xms{min(256, self.config.heap_mb)}m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self._paths.log4j}",
            f"-Dkafka.logs.dir={self._paths.root}",
            "-cp",
            classpath,
            main,
            *args,
        ]

    def _format(self, java: str, classpath: str, admin_pw: str, broker_pw: str) -> None:
        self._say(f"formatting KRaft storage in {self._paths.logs}")
        cmd = self._jvm(
            java,
            classpath,
            "kafka.tools.StorageTool",
            "format",
            "--cluster-id",
            _cluster_id(),
            "--config",
            str(self._paths.properties),
            "--add-scram",
            f"{SCRAM_MECHANISM}=[name={ADMIN_USER},password={admin_pw}]",
            "--add-scram",
            f"{SCRAM_MECHANISM}=[name={BROKER_USER},password={broker_pw}]",
        )
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            out = (result.stdout + result.stderr).replace(admin_pw, "***").replace(broker_pw, "***")
            tail = "\n".join(out.strip().splitlines()[-_LOG_TAIL_LINES:])
            raise BrokerStartError(
                f"formatting storage in {self._paths.logs} failed (exit {result.returncode}); "
                f"delete {self._paths.root} to start over. Output:\n{tail}"
            )

    def _spawn(self, java: str, classpath: str, *, detach: bool) -> None:
        self._say(f"starting Kafka {self.config.kafka_version} on {self.bootstrap_servers}")
        self._log_file = self._paths.log.open("ab")
        on_main_thread = threading.current_thread() is threading.main_thread()
        # PDEATHSIG fires when the *thread* that forked exits, so only arm it from the
        # main thread; elsewhere the atexit hook is the safety net.
        preexec = _die_with_parent if (not detach and on_main_thread) else None
        self._proc = subprocess.Popen(
            self._jvm(java, classpath, "kafka.Kafka", str(self._paths.properties)),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            preexec_fn=preexec,
            start_new_session=detach,
            # A foreground broker gets a process group of its own: a terminal's Ctrl-C
            # reaches only its owner, which stops it last, after its clients have
            # committed (PR_SET_PDEATHSIG still ends it if the owner dies).
            process_group=None if detach else 0,
        )

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.config.start_timeout_s
        probe = KafkaConnection(
            bootstrap_servers=self.bootstrap_servers,
            username=ADMIN_USER,
            password=SecretStr(self._admin_password),
        )
        last_error = "client port never opened"
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BrokerStartError(
                    f"the broker exited with code {self._proc.returncode} while starting. "
                    f"Last {_LOG_TAIL_LINES} lines of {self._paths.log}:\n{_tail(self._paths.log)}"
                )
            # Kafka opens a fixed client port only once the broker is unfenced and ACLs
            # are loaded, so an open port is the signal to try an authenticated call.
            if _port_accepts(self._client_port):
                try:
                    with KafkaAdmin(probe, timeout_s=5.0) as admin:
                        if admin.broker_count() >= 1:
                            return
                except KafkaAccessError as exc:
                    last_error = str(exc)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=0.25)  # wakes at once if the JVM dies
        raise BrokerStartTimeoutError(
            f"the broker was not ready after {self.config.start_timeout_s:.0f}s "
            f"({last_error}); raise start_timeout_s on a slow machine. Last "
            f"{_LOG_TAIL_LINES} lines of {self._paths.log}:\n{_tail(self._paths.log)}"
        )

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._release()

    def _release(self) -> None:
        self._proc = None
        _LIVE.discard(self)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
