"""bus.schemas.incompatibilities: Confluent's compatibility modes on Avro's resolution rules.

Avro resolution: a reader ignores writer fields it does not know; a reader field the
writer lacks needs a default; types must match or promote (int -> long, ...).
BACKWARD asks whether the new schema reads old data, FORWARD whether old schemas
read new data, FULL both; the _TRANSITIVE modes ask it of every earlier version.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import pytest

from bus.errors import InvalidSchemaError
from bus.schemas import DEFAULT_MODE, CompatibilityMode, incompatibilities, parse_avro
from tests.strategies import real_schema_text

BACKWARD_MODES = {CompatibilityMode.BACKWARD, CompatibilityMode.BACKWARD_TRANSITIVE}
FORWARD_MODES = {CompatibilityMode.FORWARD, CompatibilityMode.FORWARD_TRANSITIVE}
FULL_MODES = {CompatibilityMode.FULL, CompatibilityMode.FULL_TRANSITIVE}
TRANSITIVE_MODES = {m for m in CompatibilityMode if m.value.endswith("_TRANSITIVE")}

READS_OLD = "new schema cannot read data of version"
OLD_READS = "cannot read data of new schema"


def _record(*fields: dict[str, Any], name: str = "Sample") -> str:
    return json.dumps({"type": "record", "name": name, "namespace": "test", "fields": list(fields)})


def _enum(*symbols: str, **extra: Any) -> dict[str, Any]:
    return {"type": "enum", "name": "Level", "symbols": list(symbols), **extra}


NAME = {"name": "name", "type": "string"}


class Change(NamedTuple):
    """One schema change and whether new reads old (backward) and old reads new (forward)."""

    old: str
    new: str
    backward: bool
    forward: bool


CHANGES = {
    # Confluent: "add optional fields" is allowed in every mode.
    "add-field-with-default": Change(
        _record(NAME),
        _record(NAME, {"name": "team", "type": "string", "default": "none"}),
        backward=True,
        forward=True,
    ),
    # The new reader finds no value and no default in old data; old readers ignore it.
    "add-field-without-default": Change(
        _record(NAME),
        _record(NAME, {"name": "team", "type": "string"}),
        backward=False,
        forward=True,
    ),
    # The new reader ignores it in old data; old readers find no value and no default.
    "delete-field-without-default": Change(
        _record(NAME, {"name": "team", "type": "string"}),
        _record(NAME),
        backward=True,
        forward=False,
    ),
    # Confluent: "delete optional fields" is allowed in every mode.
    "delete-field-with-default": Change(
        _record(NAME, {"name": "team", "type": "string", "default": "none"}),
        _record(NAME),
        backward=True,
        forward=True,
    ),
    "change-field-type": Change(
        _record(NAME),
        _record({"name": "name", "type": "int"}),
        backward=False,
        forward=False,
    ),
    # int promotes to long when read, never the other way.
    "widen-int-to-long": Change(
        _record({"name": "count", "type": "int"}),
        _record({"name": "count", "type": "long"}),
        backward=True,
        forward=False,
    ),
    # A union reader reads a plain writer; a plain reader cannot read the null branch.
    "make-field-nullable": Change(
        _record(NAME),
        _record({"name": "name", "type": ["null", "string"], "default": None}),
        backward=True,
        forward=False,
    ),
    # Renaming is deleting one required field and adding another.
    "rename-field": Change(
        _record(NAME),
        _record({"name": "label", "type": "string"}),
        backward=False,
        forward=False,
    ),
    # An alias lets the new reader find the old name; old readers know no alias.
    "rename-field-with-alias": Change(
        _record(NAME),
        _record({"name": "label", "type": "string", "aliases": ["name"]}),
        backward=True,
        forward=False,
    ),
    "add-enum-symbol": Change(
        _record({"name": "level", "type": _enum("LOW", "HIGH")}),
        _record({"name": "level", "type": _enum("LOW", "HIGH", "SEVERE")}),
        backward=True,
        forward=False,
    ),
    # With an enum default, an old reader maps the unknown symbol to the default.
    "add-enum-symbol-with-enum-default": Change(
        _record({"name": "level", "type": _enum("LOW", "HIGH", default="LOW")}),
        _record({"name": "level", "type": _enum("LOW", "HIGH", "SEVERE", default="LOW")}),
        backward=True,
        forward=True,
    ),
    "remove-enum-symbol": Change(
        _record({"name": "level", "type": _enum("LOW", "HIGH", "SEVERE")}),
        _record({"name": "level", "type": _enum("LOW", "HIGH")}),
        backward=False,
        forward=True,
    ),
    "rename-record": Change(
        _record(NAME),
        _record(NAME, name="Renamed"),
        backward=False,
        forward=False,
    ),
}


def _expected_ok(change: Change, mode: CompatibilityMode) -> bool:
    if mode is CompatibilityMode.NONE:
        return True
    if mode in BACKWARD_MODES:
        return change.backward
    if mode in FORWARD_MODES:
        return change.forward
    return change.backward and change.forward


@pytest.mark.parametrize("mode", list(CompatibilityMode), ids=str)
@pytest.mark.parametrize("name", list(CHANGES))
def test_each_change_is_allowed_exactly_in_the_modes_confluent_allows_it(
    name: str, mode: CompatibilityMode
) -> None:
    change = CHANGES[name]
    problems = incompatibilities(change.new, [change.old], mode)
    assert (problems == []) is _expected_ok(change, mode), problems


@pytest.mark.parametrize("name", [n for n, c in CHANGES.items() if not c.backward])
def test_a_backward_break_says_the_new_schema_cannot_read_old_data(name: str) -> None:
    change = CHANGES[name]
    problems = incompatibilities(change.new, [change.old], CompatibilityMode.FULL)
    assert any(p.startswith(f"{READS_OLD} 1: ") for p in problems)


@pytest.mark.parametrize("name", [n for n, c in CHANGES.items() if not c.forward])
def test_a_forward_break_says_the_old_schema_cannot_read_new_data(name: str) -> None:
    change = CHANGES[name]
    problems = incompatibilities(change.new, [change.old], CompatibilityMode.FULL)
    assert any(p.startswith(f"version 1 {OLD_READS}: ") for p in problems)


def test_a_missing_default_names_the_field_and_its_location() -> None:
    change = CHANGES["add-field-without-default"]
    [problem] = incompatibilities(change.new, [change.old], CompatibilityMode.BACKWARD)
    assert "team" in problem
    assert "/fields/1" in problem


# -- transitive modes ----------------------------------------------------------------

# v1 has `count` as an int with a default, v2 drops it, v3 brings it back as a string.
# Each step is FULL compatible with the one before; v3 and v1 cannot read each other.
V1 = _record(NAME, {"name": "count", "type": "int", "default": 0})
V2 = _record(NAME)
V3 = _record(NAME, {"name": "count", "type": "string", "default": ""})


@pytest.mark.parametrize("mode", list(CompatibilityMode), ids=str)
def test_each_step_of_the_three_versions_is_compatible_with_the_one_before(
    mode: CompatibilityMode,
) -> None:
    assert incompatibilities(V2, [V1], mode) == []
    assert incompatibilities(V3, [V2], mode) == []


@pytest.mark.parametrize("mode", sorted(set(CompatibilityMode) - TRANSITIVE_MODES), ids=str)
def test_non_transitive_modes_check_only_the_latest_version(mode: CompatibilityMode) -> None:
    assert incompatibilities(V3, [V1, V2], mode) == []


@pytest.mark.parametrize(
    ("mode", "directions"),
    [
        (CompatibilityMode.BACKWARD_TRANSITIVE, [READS_OLD]),
        (CompatibilityMode.FORWARD_TRANSITIVE, [OLD_READS]),
        (CompatibilityMode.FULL_TRANSITIVE, [READS_OLD, OLD_READS]),
    ],
    ids=str,
)
def test_transitive_modes_catch_a_break_with_an_older_version(
    mode: CompatibilityMode, directions: list[str]
) -> None:
    problems = incompatibilities(V3, [V1, V2], mode)
    assert len(problems) == len(directions)
    for problem, direction in zip(problems, directions, strict=True):
        assert direction in problem
        assert "version 1" in problem
        assert "version 2" not in problem
        assert "count" in problem or "/fields/1" in problem


def test_the_default_mode_is_backward_transitive() -> None:
    assert DEFAULT_MODE is CompatibilityMode.BACKWARD_TRANSITIVE


# -- edge cases ----------------------------------------------------------------------


@pytest.mark.parametrize("mode", list(CompatibilityMode), ids=str)
def test_a_first_version_is_compatible_with_no_history(mode: CompatibilityMode) -> None:
    assert incompatibilities(V1, [], mode) == []


@pytest.mark.parametrize("mode", list(CompatibilityMode), ids=str)
def test_the_real_bulletin_schema_is_compatible_with_itself(mode: CompatibilityMode) -> None:
    text = real_schema_text()
    assert incompatibilities(text, [text], mode) == []


INVALID = {
    "not-json": "not json",
    "empty": "",
    "record-without-name": '{"type": "record", "fields": []}',
    "unknown-type": '{"type": "nonexistent"}',
    "undefined-reference": _record({"name": "x", "type": "test.Missing"}),
    "enum-without-symbols": '{"type": "enum", "name": "E"}',
}


@pytest.mark.parametrize("text", list(INVALID.values()), ids=list(INVALID))
def test_invalid_schema_text_is_an_invalid_schema_error(text: str) -> None:
    with pytest.raises(InvalidSchemaError, match="not a valid Avro schema"):
        parse_avro(text)


@pytest.mark.parametrize("text", list(INVALID.values()), ids=list(INVALID))
def test_invalid_new_schema_text_is_refused_by_the_compatibility_check(text: str) -> None:
    with pytest.raises(InvalidSchemaError):
        incompatibilities(text, [V1], CompatibilityMode.BACKWARD)


def test_an_invalid_existing_version_is_refused_by_the_compatibility_check() -> None:
    with pytest.raises(InvalidSchemaError):
        incompatibilities(V1, ["not json"], CompatibilityMode.FORWARD)
