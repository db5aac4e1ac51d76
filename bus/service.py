"""What the long-running ``liaison`` services share: how they stop, and whom they run as.

The services are ``liaison edge run``, ``liaison adapter run``, ``liaison api serve`` and
``liaison registry serve``.

**Stopping.** SIGTERM and SIGINT mean "stop cleanly" (exit 0) at every moment of a
service's life. :func:`catch_early` installs the handlers before the CLI imports anything
slow, when the command line names a service; until the service's event loop runs, a
signal is only recorded, and the service checks for it before each step that would
connect; once the loop runs, the signal sets its stop event (:meth:`StopSignals.event`).
The handlers stay installed until the process exits: asyncio's own
(``loop.add_signal_handler``) are removed when the loop closes, which reopened a window in
which SIGTERM killed the process.

**Credentials.** A service runs as its own, least-privileged principal, named explicitly:
:func:`service_connection` reads ``LIAISON_KAFKA_CREDENTIALS`` (a credentials file written
by provisioning) or all three of ``LIAISON_KAFKA_BOOTSTRAP``/``USERNAME``/``PASSWORD``, and
never guesses (no default user, no local broker's ``admin``). A super user is refused, by
name before connecting (:data:`KNOWN_SUPER_USERS`) and by what the broker says the
principal may do (:func:`is_super_user`), unless ``--allow-super-user`` asks for it; then
every start prints a warning.

This module imports nothing heavy at import time: the CLI imports it first.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from bus.broker._properties import ADMIN_USER, BROKER_USER
from bus.errors import ConfigError, KafkaAuthorizationError

if TYPE_CHECKING:
    import asyncio

    from bus.kafka import KafkaConnection

__all__ = [
    "KNOWN_SUPER_USERS",
    "SERVICES",
    "StopSignals",
    "catch_early",
    "is_super_user",
    "service_connection",
    "stop_signals",
]

SERVICES: Mapping[tuple[str, str], str] = {
    ("edge", "run"): (
        "the edge principal: `liaison agency service edge` writes its credentials file "
        "(.liaison/credentials/liaison.edge.json)"
    ),
    ("adapter", "run"): (
        "the agency's own principal: `liaison agency add AGENCY` (or `liaison api agencies "
        "add`) writes its credentials file (.liaison/credentials/AGENCY.json)"
    ),
    ("api", "serve"): (
        "the admin-service principal: `liaison agency service admin` writes its credentials "
        "file (.liaison/credentials/liaison.admin.json)"
    ),
    ("registry", "serve"): (
        "the admin-service principal, which may write the schemas topic: `liaison agency "
        "service admin` writes its credentials file (.liaison/credentials/liaison.admin.json)"
    ),
}
"""Each service command, and the principal it should run as (for error messages)."""

KNOWN_SUPER_USERS = frozenset({ADMIN_USER, BROKER_USER})
"""The super users the launcher and the compose file configure (``super.users``)."""

SUPER_USER_OPERATION = "CLUSTER_ACTION"
"""A cluster operation only brokers need (inter-broker requests) and no Liaison principal is
granted: the broker authorizes it for its super users, as it authorizes everything."""

ALLOW_SUPER_USER_FLAG = "--allow-super-user"

_Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


class StopSignals:
    """SIGTERM/SIGINT recorded from the moment :meth:`install` runs; handed to an asyncio
    event once a loop runs."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._installed = False
        self._wake: Callable[[], None] | None = None

    @property
    def requested(self) -> bool:
        """Whether a stop signal has arrived."""
        return self.signum is not None

    @property
    def installed(self) -> bool:
        return self._installed

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.signum = signum
        wake = self._wake
        if wake is not None:
            wake()

    def install(self) -> dict[signal.Signals, _Handler]:
        """Install the handlers (main thread only; elsewhere, nothing); returns the previous
        ones."""
        if self._installed or threading.current_thread() is not threading.main_thread():
            return {}
        previous: dict[signal.Signals, _Handler] = {
            sig: signal.signal(sig, self._handle) for sig in self.SIGNALS
        }
        self._installed = True
        return previous

    @contextmanager
    def handling(self) -> Iterator[StopSignals]:
        """Handlers installed for a service command. If :func:`catch_early` installed them,
        they stay (the process is that service); if this installs them (the CLI called in
        another program's process, e.g. by a test), the previous ones return afterwards."""
        previous = self.install()
        try:
            yield self
        finally:
            if previous:
                for sig, handler in previous.items():
                    signal.signal(sig, signal.SIG_DFL if handler is None else handler)
                self._installed = False
                self.signum = None

    def event(self) -> asyncio.Event:
        """An event in the running loop, set by a stop signal: at once if one came earlier.
        Call it from inside the loop; :meth:`release` (or the loop's end) detaches it."""
        import asyncio

        loop = asyncio.get_running_loop()
        event = asyncio.Event()

        def wake() -> None:
            with suppress(RuntimeError):  # the loop has closed: the signal stays recorded
                loop.call_soon_threadsafe(event.set)

        self._wake = wake  # before looking at `requested`: no signal falls in between
        if self.requested:
            event.set()
        return event

    def release(self) -> None:
        """Detach the event (the loop is about to close); signals are still recorded."""
        self._wake = None


stop_signals = StopSignals()
"""The process's one instance."""


def catch_early(argv: Sequence[str]) -> None:
    """Install the stop handlers now if ``argv`` (the command line after the program) names
    a service: called by :mod:`bus.cli` before its imports."""
    if tuple(argv[:2]) in SERVICES:
        stop_signals.install()


# -- credentials ---------------------------------------------------------------------------

_ENV = ("LIAISON_KAFKA_BOOTSTRAP", "LIAISON_KAFKA_USERNAME", "LIAISON_KAFKA_PASSWORD")


def _who(command: tuple[str, str]) -> str:
    return SERVICES.get(command, "its own principal")


def service_connection(
    command: tuple[str, str],
    *,
    allow_super_user: bool = False,
    environ: Mapping[str, str] | None = None,
) -> KafkaConnection:
    """The credentials the service was given explicitly; :class:`ConfigError` (saying
    what to set) when there are none, when they are incomplete, or when they name a known
    super user and ``allow_super_user`` is false. Connects to nothing."""
    from pydantic import SecretStr

    from bus.credentials import connection_from_file
    from bus.kafka import KafkaConnection

    env = os.environ if environ is None else environ
    name = f"liaison {' '.join(command)}"
    path = env.get("LIAISON_KAFKA_CREDENTIALS")
    if path:
        connection = connection_from_file(Path(path))
    else:
        given = {key: env.get(key, "") for key in _ENV}
        missing = [key for key, value in given.items() if not value]
        if len(missing) == len(_ENV):
            raise ConfigError(
                f"`{name}` needs credentials of its own and uses no default (never the local "
                f"broker's admin): set LIAISON_KAFKA_CREDENTIALS to the credentials file of "
                f"{_who(command)}; or set LIAISON_KAFKA_BOOTSTRAP, LIAISON_KAFKA_USERNAME and "
                "LIAISON_KAFKA_PASSWORD"
            )
        if missing:
            raise ConfigError(
                f"`{name}` was given only part of its credentials: {', '.join(missing)} "
                "unset (set all three, or LIAISON_KAFKA_CREDENTIALS to a credentials file)"
            )
        connection = KafkaConnection(
            bootstrap_servers=given["LIAISON_KAFKA_BOOTSTRAP"],
            username=given["LIAISON_KAFKA_USERNAME"],
            password=SecretStr(given["LIAISON_KAFKA_PASSWORD"]),
        )
    if connection.username in KNOWN_SUPER_USERS and not allow_super_user:
        raise _super_user_refused(command, connection.username, "")
    return connection


def _super_user_refused(command: tuple[str, str], username: str, how: str) -> ConfigError:
    name = f"liaison {' '.join(command)}"
    return ConfigError(
        f"refusing to run `{name}` as {username}, a super user of the broker{how}: it would "
        f"bypass every ACL. Run it as {_who(command)}; only if you mean it (a test, an "
        f"emergency), pass {ALLOW_SUPER_USER_FLAG}"
    )


def is_super_user(connection: KafkaConnection, *, timeout_s: float = 10.0) -> bool:
    """Whether the broker authorizes ``connection``'s principal for an operation that only
    brokers and super users have (:data:`SUPER_USER_OPERATION`). Blocks; connects once."""
    from bus.kafka import KafkaAdmin

    with KafkaAdmin(connection, timeout_s=timeout_s) as admin:
        return SUPER_USER_OPERATION in admin.cluster_operations()


def check_not_super_user(
    command: tuple[str, str], connection: KafkaConnection, *, allow_super_user: bool
) -> str | None:
    """Ask the broker (blocks): raises :class:`ConfigError` for a super user unless allowed;
    returns the warning to print when one is allowed, else ``None``."""
    if connection.username in KNOWN_SUPER_USERS:
        return super_user_warning(command, connection.username)
    try:
        superuser = is_super_user(connection)
    except KafkaAuthorizationError:
        superuser = False
    if not superuser:
        return None
    if not allow_super_user:
        raise _super_user_refused(
            command, connection.username, f" (it may {SUPER_USER_OPERATION} on the cluster)"
        )
    return super_user_warning(command, connection.username)


def super_user_warning(command: tuple[str, str], username: str) -> str:
    return (
        f"WARNING: `liaison {' '.join(command)}` runs as {username}, a SUPER USER of the "
        f"broker ({ALLOW_SUPER_USER_FLAG}): every ACL is bypassed; run it as "
        f"{_who(command)} instead"
    )
