"""bus.service without a broker: which credentials a service accepts, and its stop signals."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import pytest
import typer

from bus.cli import app
from bus.errors import ConfigError
from bus.service import SERVICES, StopSignals, catch_early, service_connection

EDGE = ("edge", "run")
FULL = {
    "LIAISON_KAFKA_BOOTSTRAP": "127.0.0.1:9092",
    "LIAISON_KAFKA_USERNAME": "liaison.edge",
    "LIAISON_KAFKA_PASSWORD": "secret-value",
}


def test_no_credentials_at_all_say_what_to_set_and_never_guess() -> None:
    with pytest.raises(ConfigError) as caught:
        service_connection(EDGE, environ={})

    message = str(caught.value)
    assert "LIAISON_KAFKA_CREDENTIALS" in message
    assert "liaison agency service edge" in message
    assert "never the local broker's admin" in message


@pytest.mark.parametrize("unset", sorted(FULL))
def test_part_of_the_credentials_is_refused_naming_what_is_missing(unset: str) -> None:
    environ = {k: v for k, v in FULL.items() if k != unset}

    with pytest.raises(ConfigError, match=unset):
        service_connection(EDGE, environ=environ)


def test_explicit_credentials_are_used_as_given() -> None:
    connection = service_connection(EDGE, environ=FULL)

    assert connection.username == "liaison.edge"
    assert connection.password.get_secret_value() == "secret-value"


def test_a_credentials_file_is_used(tmp_path: Path) -> None:
    path = tmp_path / "edge.json"
    path.write_text(
        json.dumps({"bootstrap_servers": "h:1", "username": "liaison.edge", "password": "p"})
    )

    connection = service_connection(EDGE, environ={"LIAISON_KAFKA_CREDENTIALS": str(path)})

    assert (connection.bootstrap_servers, connection.username) == ("h:1", "liaison.edge")


@pytest.mark.parametrize("user", ["admin", "broker"])
def test_a_known_super_user_is_refused_unless_allowed(user: str) -> None:
    environ = {**FULL, "LIAISON_KAFKA_USERNAME": user}

    with pytest.raises(ConfigError, match="--allow-super-user") as caught:
        service_connection(EDGE, environ=environ)
    assert "secret-value" not in str(caught.value)
    assert service_connection(EDGE, environ=environ, allow_super_user=True).username == user


def test_every_service_command_exists_and_takes_the_loud_flag() -> None:
    """SERVICES drives the early signal handlers: it must name the CLI's services."""
    command = typer.main.get_command(app)
    assert isinstance(command, typer.core.TyperGroup)
    found = set()
    for group_name, group in command.commands.items():
        assert isinstance(group, typer.core.TyperGroup | typer.core.TyperCommand)
        for name, sub in getattr(group, "commands", {}).items():
            if any("--allow-super-user" in p.opts for p in sub.params):
                found.add((group_name, name))
    assert found == set(SERVICES)


def test_a_signal_before_the_loop_is_recorded_and_sets_the_event_at_once() -> None:
    signals = StopSignals()
    before = signal.getsignal(signal.SIGTERM)
    with signals.handling():
        os.kill(os.getpid(), signal.SIGTERM)  # handled, so the test process lives on
        assert signals.requested

        async def main() -> bool:
            event = signals.event()
            try:
                return event.is_set()
            finally:
                signals.release()

        assert asyncio.run(main())
    assert signal.getsignal(signal.SIGTERM) == before


def test_a_signal_inside_the_loop_sets_the_event() -> None:
    signals = StopSignals()
    before = signal.getsignal(signal.SIGINT)

    async def main() -> None:
        event = signals.event()
        try:
            asyncio.get_running_loop().call_later(0.01, os.kill, os.getpid(), signal.SIGINT)
            await asyncio.wait_for(event.wait(), 10)
        finally:
            signals.release()

    with signals.handling():
        asyncio.run(main())
        assert signals.signum == signal.SIGINT
    assert signal.getsignal(signal.SIGINT) == before


def test_catch_early_only_for_services() -> None:
    before = signal.getsignal(signal.SIGTERM)
    catch_early(["policy", "check", "x.yaml"])
    assert signal.getsignal(signal.SIGTERM) is before
