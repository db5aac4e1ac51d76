"""`liaison` starts quickly: its modules import no heavy dependency until a command needs it.

Not timed (timing belongs to benchmarks/startup.py): each check runs the CLI in a fresh
interpreter and looks at ``sys.modules`` afterwards.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = (
    "aiokafka",
    "confluent_kafka",
    "fastapi",
    "starlette",
    "uvicorn",
    "fastavro",
    "cryptography",
    "httpx",
    "yaml",
    "prometheus_client",
    "stix2",
    "xmlschema",
    "bus.kafka",
    "bus.api",
    "bus.audit",
    "bus.policy",
    "bus.edge._router",  # bus.edge itself is light: the re-send rule's defaults (bus.edge._seen)
    "bus.registry",
    "bus.adapters",
)
RENDERING = ("rich.table", "rich.progress")
"""typer draws ``--help`` with rich tables; importing the CLI must not load them."""

_PROBE = """
import json, sys
from bus.cli import app
try:
    app(sys.argv[1:], prog_name="liaison")
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def _loaded_after(*args: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    modules: list[str] = json.loads(result.stderr.strip().splitlines()[-1])
    return set(modules)


def _heavy(modules: set[str], heavy: tuple[str, ...] = HEAVY) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(f"{h}.") for h in heavy))


def test_importing_the_cli_imports_no_heavy_module() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import json, sys, bus.cli; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert _heavy(set(json.loads(result.stdout)), HEAVY + RENDERING) == []


@pytest.mark.parametrize(
    "args",
    [
        ("--help",),
        ("edge", "--help"),
        ("edge", "run", "--help"),
        ("api", "--help"),
        ("audit", "--help"),
        ("demo", "--help"),
        ("broker", "cache"),
    ],
    ids=" ".join,
)
def test_help_and_quick_commands_import_no_heavy_module(args: tuple[str, ...]) -> None:
    assert _heavy(_loaded_after(*args)) == []


def test_a_command_still_imports_what_it_needs() -> None:
    """The probe sees imports: a command that compiles a policy loads the policy engine."""
    assert "bus.policy" in _loaded_after("policy", "check", "examples/policy.yaml")


def test_the_registry_topic_default_is_the_registrys() -> None:
    from bus.cli import _REGISTRY_TOPIC
    from bus.registry import DEFAULT_TOPIC

    assert _REGISTRY_TOPIC == DEFAULT_TOPIC
