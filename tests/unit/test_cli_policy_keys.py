"""Only commands that make pseudonyms need (or warn about) the pseudonym key."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bus.cli import app

POLICY = str(Path(__file__).resolve().parents[2] / "examples" / "policy.yaml")
WARNING = "LIAISON_PSEUDONYM_KEY is unset"


def _closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def _env(**extra: str | None) -> dict[str, str | None]:
    return {
        "LIAISON_PSEUDONYM_KEY": None,
        "LIAISON_PSEUDONYM_KEY_FILE": None,
        "COLUMNS": "250",
        **extra,
    }


@pytest.mark.parametrize(
    "args", [("policy", "check", POLICY), ("policy", "diff", POLICY, POLICY)], ids=" ".join
)
def test_checking_and_diffing_a_policy_need_no_pseudonym_key(args: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, list(args), env=_env())

    assert result.exit_code == 0, result.output
    assert WARNING not in result.output


def test_publishing_a_policy_compiles_it_without_the_key_warning() -> None:
    """The broker cannot be reached (the command fails after compiling): the compile step,
    where the warning came from, stays silent."""
    env = _env(
        LIAISON_KAFKA_CREDENTIALS=None,
        LIAISON_KAFKA_BOOTSTRAP=_closed_port(),
        LIAISON_KAFKA_USERNAME="nobody",
        LIAISON_KAFKA_PASSWORD="nothing",
    )
    result = CliRunner().invoke(app, ["policy", "publish", POLICY], env=env)

    assert result.exit_code == 2, result.output
    assert "KafkaUnavailableError" in result.output
    assert WARNING not in result.output


def test_a_dry_run_shows_pseudonyms_so_it_still_says_when_their_key_is_random() -> None:
    result = CliRunner().invoke(app, ["policy", "dry-run", POLICY], env=_env())

    assert result.exit_code == 0, result.output
    assert WARNING in result.output
    keyed = CliRunner().invoke(
        app, ["policy", "dry-run", POLICY], env=_env(LIAISON_PSEUDONYM_KEY="ab" * 32)
    )
    assert keyed.exit_code == 0, keyed.output
    assert WARNING not in keyed.output
