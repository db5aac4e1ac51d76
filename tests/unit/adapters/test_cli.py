"""``liaison adapter list|check``: no broker needed."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from bus.cli import app

runner = CliRunner()


def test_list_shows_every_built_in_type_and_its_directions() -> None:
    result = runner.invoke(app, ["adapter", "list"])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split()[1] for line in result.output.splitlines() if line}
    assert rows == {
        "cap": "source/sink",
        "jsonl": "source/sink",
        "stix": "source/sink",
        "webhook": "source/sink",
    }


def test_check_accepts_a_good_file_without_kafka(tmp_path: Path) -> None:
    config = tmp_path / "a.yaml"
    config.write_text(
        "agency: north-river\ninstances:\n"
        f"  - {{name: in, type: jsonl, direction: source, config: {{directory: {tmp_path}}}}}\n"
        f"  - {{name: out, type: cap, direction: sink, config: {{directory: {tmp_path}}}}}\n"
    )
    result = runner.invoke(app, ["adapter", "check", str(config)])
    assert result.exit_code == 0, result.output
    assert "in: jsonl source ok" in result.output
    assert "out: cap sink ok" in result.output


def test_check_names_the_bad_setting_and_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "a.yaml"
    config.write_text(
        "agency: north-river\ninstances:\n"
        "  - {name: in, type: jsonl, direction: source, config: {directroy: x}}\n"
    )
    result = runner.invoke(app, ["adapter", "check", str(config)])
    assert result.exit_code == 2
    assert "instance 'in' config.directroy" in " ".join(result.output.split())
