"""Built-in adapters use only bus's public API, as a third-party adapter must.

Public means: a module path with no segment starting with ``_``, and a name listed in
that module's ``__all__``. No adapter may import a Kafka client library: all Kafka
access goes through the runtime, under the agency's credentials.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from tests.conftest import repo_root

FORBIDDEN_LIBRARIES = ("aiokafka", "confluent_kafka", "kafka")
ADAPTERS = repo_root() / "adapters"


def _module_all(module: str) -> set[str] | None:
    try:
        return set(getattr(importlib.import_module(module), "__all__", ()))
    except ImportError:
        return None


def _is_submodule(module: str, name: str) -> bool:
    try:
        importlib.import_module(f"{module}.{name}")
    except ImportError:
        return False
    return True


def violations(source: str, filename: str) -> list[str]:
    """Every import in ``source`` that reaches past bus's public API."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        targets: list[tuple[str, str | None]]
        if isinstance(node, ast.Import):
            targets = [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            targets = [(node.module, alias.name) for alias in node.names]
        else:
            continue
        for module, name in targets:
            where = f"{filename}:{node.lineno}"
            root = module.split(".")[0]
            if root in FORBIDDEN_LIBRARIES:
                found.append(f"{where}: imports {module}; use bus.adapters' runtime instead")
            if root != "bus":
                continue
            if any(part.startswith("_") for part in module.split(".")):
                found.append(f"{where}: imports private module {module}")
                continue
            if name is None:
                continue
            exported = _module_all(module)
            if exported is None:
                found.append(f"{where}: {module} does not exist")
            elif name not in exported and not _is_submodule(module, name):
                found.append(f"{where}: {module}.{name} is not in {module}.__all__")
    return found


def adapter_files() -> list[Path]:
    return sorted(ADAPTERS.rglob("*.py"))


def test_there_are_adapters_to_check() -> None:
    names = {p.parent.name for p in adapter_files() if p.name == "__init__.py"}
    assert {"jsonl", "webhook", "cap", "stix"} <= names


@pytest.mark.parametrize("path", adapter_files(), ids=lambda p: str(p.relative_to(ADAPTERS)))
def test_adapter_module_imports_only_the_public_api(path: Path) -> None:
    assert violations(path.read_text(encoding="utf-8"), str(path)) == []


def test_the_analysis_catches_each_kind_of_reach() -> None:
    source = "\n".join(
        [
            "import aiokafka",
            "from confluent_kafka import Producer",
            "from bus.kafka._clients import Producer",
            "import bus.edge._router",
            "from bus.edge import _Outputs",
            "from bus.no_such_module import thing",
            "from bus.adapters import DeliveredView",  # public: allowed
            "from bus import errors",  # a public submodule: allowed
        ]
    )
    found = violations(source, "example.py")
    assert [line.split(":")[1] for line in found] == ["1", "2", "3", "4", "5", "6"]
