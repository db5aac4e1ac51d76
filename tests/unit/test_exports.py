"""Each public package's ``__all__`` is sorted and lists exactly its public names.

The httpx check: a name imported into a package but left out of ``__all__`` (or
listed but no longer defined) fails here, not in a user's import.
"""

from __future__ import annotations
import __future__

import inspect
import re
from types import ModuleType

import pytest

import bus.broker
import bus.errors
import bus.kafka

PACKAGES = [bus.errors, bus.kafka, bus.broker]


def _isort_key(name: str) -> tuple[int, str]:
    """The order ruff's RUF022 enforces: CONSTANTS, then Classes, then everything else."""
    if re.fullmatch(r"[A-Z0-9_]+", name) and len(name) > 1:
        return (0, name)
    if name[:1].isupper():
        return (1, name)
    return (2, name)


def _public_names(module: ModuleType) -> set[str]:
    """Its public names: ``dir()``, so that a package loading some lazily (PEP 562
    ``__getattr__``/``__dir__``, as bus.broker does) is held to the names it resolves."""
    return {
        name
        for name in dir(module)
        if not name.startswith("_")
        and not inspect.ismodule(obj := getattr(module, name))
        and not isinstance(obj, __future__._Feature)
    }


@pytest.mark.parametrize("module", PACKAGES, ids=lambda m: m.__name__)
def test_all_is_sorted(module: ModuleType) -> None:
    assert module.__all__ == sorted(module.__all__, key=_isort_key)


@pytest.mark.parametrize("module", PACKAGES, ids=lambda m: m.__name__)
def test_all_has_no_duplicates(module: ModuleType) -> None:
    assert len(set(module.__all__)) == len(module.__all__)


@pytest.mark.parametrize("module", PACKAGES, ids=lambda m: m.__name__)
def test_all_lists_exactly_the_public_names(module: ModuleType) -> None:
    assert set(module.__all__) == _public_names(module)


def test_errors_exports_only_classes_defined_in_bus_errors() -> None:
    for name in bus.errors.__all__:
        obj = getattr(bus.errors, name)
        assert inspect.isclass(obj), name
        assert obj.__module__ == "bus.errors", name
