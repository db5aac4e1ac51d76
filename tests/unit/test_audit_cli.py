"""``liaison audit`` without a broker: what an auditor is told when no credentials are set.

An auditor has no broker of their own to start: without credentials, every command that
reads the log must say which credentials to give (and where) or how to verify an exported
bundle offline, and take ``--data-dir`` as the other commands do.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from bus.audit import Signer
from bus.cli import app

runner = CliRunner()
KEY = Signer(bytes(range(32))).public.to_json()["public_key"]


def liaison(*args: str, **env: str | None) -> Result:
    settings: dict[str, str | None] = {
        "LIAISON_KAFKA_CREDENTIALS": None,
        "LIAISON_KAFKA_BOOTSTRAP": None,
        "LIAISON_BROKER_DIR": None,
        "COLUMNS": "250",
        **env,
    }
    result = runner.invoke(app, list(args), env=settings)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def said(result: Result) -> str:
    return " ".join(result.stderr.split())


READING = [
    pytest.param(["verify", "--public-key", KEY], id="verify"),
    pytest.param(["prove", "police:000001"], id="prove"),
    pytest.param(["export", "--out", "unused"], id="export"),
    pytest.param(["report", "--agency", "police"], id="report"),
]


@pytest.mark.parametrize("command", READING)
def test_without_credentials_an_auditor_is_told_what_to_give_not_to_start_a_broker(
    tmp_path: Path, command: list[str]
) -> None:
    empty = tmp_path / "no-broker"

    result = liaison("audit", *command, "--data-dir", str(empty))

    assert result.exit_code == 2, result.output
    text = said(result)
    for hint in (
        "LIAISON_KAFKA_CREDENTIALS",
        "LIAISON_KAFKA_BOOTSTRAP",
        "LIAISON_KAFKA_USERNAME",
        "LIAISON_KAFKA_PASSWORD",
        "--bundle DIR --public-key",
        str(empty),
    ):
        assert hint in text, hint
    assert "broker start" not in text


def test_the_data_dir_may_come_from_the_environment(tmp_path: Path) -> None:
    empty = tmp_path / "from-env"

    result = liaison("audit", "verify", "--public-key", KEY, LIAISON_BROKER_DIR=str(empty))

    assert result.exit_code == 2, result.output
    assert str(empty) in said(result)


def test_verify_asks_for_a_trust_anchor_before_it_reads_anything(tmp_path: Path) -> None:
    result = liaison("audit", "verify", "--data-dir", str(tmp_path / "none"))

    assert result.exit_code == 2, result.output
    assert "no trust anchor" in said(result)
