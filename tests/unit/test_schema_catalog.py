"""The schema files and bus.schemas catalog: conventions, composition, and kinds as data."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bus.bulletin import BulletinGenerator, BulletinSchema
from bus.codec import WireCodec
from bus.errors import SchemaFileError
from bus.schemas import (
    BULLETIN,
    SchemaCatalog,
    canonical_json,
    compose,
    default_schema_dir,
    parse_avro,
)
from tests.strategies import SCHEMA_DIR

CATALOG = SchemaCatalog.load(SCHEMA_DIR)
FILES = sorted(SCHEMA_DIR.glob("*.avsc"))
KNOWN_TAGS = {"pii", "contact", "location", "free_text", "count"}
PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


def _named(schema: Any, ns: str | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
    """(full name, definition) of every named type defined in ``schema``, nested ones too."""
    if isinstance(schema, list):
        for branch in schema:
            yield from _named(branch, ns)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind in ("record", "enum", "fixed"):
            name = schema["name"]
            space = schema.get("namespace", ns)
            full = name if "." in name or not space else f"{space}.{name}"
            yield full, schema
            for f in schema.get("fields", ()):
                yield from _named(f["type"], full.rpartition(".")[0])
        elif kind == "array":
            yield from _named(schema["items"], ns)
        elif kind == "map":
            yield from _named(schema["values"], ns)


def _fields() -> Iterator[tuple[str, dict[str, Any]]]:
    """(``record.field``, field) for every field of every record in every schema file."""
    for path in FILES:
        for full, schema in _named(json.loads(path.read_text())):
            for f in schema.get("fields", ()):
                yield f"{full}.{f['name']}", f


def _containers(schema: Any) -> Iterator[tuple[str, Any]]:
    """(``array`` or ``map``, item type) of every array and map anywhere in ``schema``."""
    if isinstance(schema, list):
        for branch in schema:
            yield from _containers(branch)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind == "array":
            yield "array", schema["items"]
            yield from _containers(schema["items"])
        elif kind == "map":
            yield "map", schema["values"]
            yield from _containers(schema["values"])
        elif kind == "record":
            for f in schema["fields"]:
                yield from _containers(f["type"])
        elif isinstance(kind, dict | list):
            yield from _containers(kind)


def _encodes_to_nothing(
    schema: Any, types: dict[str, dict[str, Any]], seen: frozenset[str] = frozenset()
) -> bool:
    """True when some value of ``schema`` is written as zero bytes.

    A decoder then reads any block count without consuming input: an array or map of
    such items lets a few bytes claim billions of entries.
    """
    if isinstance(schema, str):
        if schema in PRIMITIVES:
            return schema == "null"
        if schema in seen or schema not in types:
            return False
        return _encodes_to_nothing(types[schema], types, seen | {schema})
    if isinstance(schema, list):
        return False  # a union writes its branch index
    kind = schema.get("type")
    if kind == "record":
        return all(_encodes_to_nothing(f["type"], types, seen) for f in schema["fields"])
    if kind == "fixed":
        return bool(schema["size"] == 0)
    if kind in ("enum", "array", "map"):
        return False  # an index or a block count
    return _encodes_to_nothing(kind, types, seen)


def _qualified(schema: Any, ns: str) -> Any:
    """A short type name as the full name it stands for in namespace ``ns``."""
    if isinstance(schema, str) and "." not in schema and schema not in PRIMITIVES:
        return f"{ns}.{schema}"
    return schema


def _copy_schemas(tmp_path: Path) -> Path:
    directory = tmp_path / "schemas"
    shutil.copytree(SCHEMA_DIR, directory, ignore=shutil.ignore_patterns("released"))
    return directory


# -- conventions of the real files ---------------------------------------------------


def test_the_schema_files_define_fields_at_all() -> None:
    assert len(list(_fields())) > 30


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_named_type_has_a_doc(path: Path) -> None:
    for full, schema in _named(json.loads(path.read_text())):
        assert str(schema.get("doc", "")).strip(), f"{full} has no doc"


def test_every_field_has_a_doc() -> None:
    undocumented = [name for name, f in _fields() if not str(f.get("doc", "")).strip()]
    assert undocumented == []


def test_every_tagged_field_is_optional_with_a_null_default() -> None:
    """Redaction replaces a tagged value with null, so null must be allowed and the default."""
    wrong = [
        name
        for name, f in _fields()
        if f.get("liaison.tags")
        and not (
            isinstance(f["type"], list) and f["type"][0] == "null" and f.get("default", 0) is None
        )
    ]
    assert wrong == []


def test_every_tag_is_one_the_redaction_rules_know() -> None:
    tags = {tag for _, f in _fields() for tag in f.get("liaison.tags", ())}
    assert tags
    assert tags <= KNOWN_TAGS


def test_every_kind_is_in_the_body_union_and_every_body_branch_is_a_kind() -> None:
    envelope = CATALOG.types[BULLETIN]
    body = next(f for f in envelope["fields"] if f["name"] == "body")
    branches = set(body["type"])
    kinds = CATALOG.kinds()
    assert set(kinds.values()) == branches
    for branch in branches:
        assert CATALOG.types[branch].get("liaison.kind"), f"{branch} has no liaison.kind"


def test_the_known_kinds_are_declared() -> None:
    assert CATALOG.kinds() == {
        "alert": "liaison.bulletin.kind.Alert",
        "notice": "liaison.bulletin.kind.Notice",
        "request_for_information": "liaison.bulletin.kind.RequestForInformation",
        "rfi_response": "liaison.bulletin.kind.RfiResponse",
        "situation_report": "liaison.bulletin.kind.SituationReport",
    }


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_each_file_is_named_by_the_full_name_of_its_type(path: Path) -> None:
    schema = json.loads(path.read_text())
    assert path.name == f"{schema['namespace']}.{schema['name']}.avsc"


def test_no_array_or_map_holds_items_that_encode_to_zero_bytes() -> None:
    offenders = [
        f"{name}: {container} of {items}"
        for name, schema in CATALOG.types.items()
        for container, items in _containers(schema)
        if _encodes_to_nothing(_qualified(items, name.rpartition(".")[0]), CATALOG.types)
    ]
    assert offenders == []


@pytest.mark.parametrize(
    "items",
    [
        "null",
        {"type": "record", "name": "Empty", "fields": []},
        {"type": "record", "name": "Nulls", "fields": [{"name": "n", "type": "null"}]},
        {"type": "fixed", "name": "Nothing", "size": 0},
    ],
    ids=["null", "empty-record", "record-of-nulls", "zero-fixed"],
)
def test_the_zero_byte_check_recognises_items_that_encode_to_nothing(items: Any) -> None:
    assert _encodes_to_nothing(items, {})


@pytest.mark.parametrize(
    "items",
    ["string", "liaison.bulletin.Point", ["null", "string"], {"type": "enum", "symbols": ["A"]}],
)
def test_the_zero_byte_check_passes_items_that_always_take_a_byte(items: Any) -> None:
    assert not _encodes_to_nothing(items, CATALOG.types)


# -- composition ---------------------------------------------------------------------


def test_composing_is_deterministic_across_loads_and_file_order() -> None:
    first = canonical_json(SchemaCatalog.load(SCHEMA_DIR).composed())
    second = canonical_json(SchemaCatalog.load(SCHEMA_DIR).composed())
    reordered = canonical_json(compose(BULLETIN, dict(reversed(list(CATALOG.types.items())))))
    assert first == second == reordered


def test_the_composed_schema_defines_each_named_type_once_with_its_full_name() -> None:
    composed = CATALOG.composed()
    counts = Counter(full for full, _ in _named(composed))
    reachable = {name for name in CATALOG.types if name in counts}
    assert counts == Counter(reachable)
    assert all("." in schema["name"] for _, schema in _named(composed))


def test_the_composed_schema_keeps_docs_and_liaison_attributes() -> None:
    text = canonical_json(CATALOG.composed())
    assert text.count('"liaison.kind"') == len(CATALOG.kinds())
    assert '"liaison.tags"' in text
    assert "Traffic Light Protocol" in text


def test_the_composed_schema_is_valid_avro() -> None:
    assert parse_avro(canonical_json(CATALOG.composed())).type == "record"


def test_canonical_json_keeps_field_order_and_ends_with_a_newline() -> None:
    text = canonical_json({"z": 1, "a": 2})
    assert text.index('"z"') < text.index('"a"')
    assert text.endswith("}\n")


def test_composing_an_unknown_name_is_refused() -> None:
    with pytest.raises(SchemaFileError, match=r"liaison\.bulletin\.Nowhere"):
        compose("liaison.bulletin.Nowhere", CATALOG.types)


def test_fields_are_indexed_by_dotted_path_with_tags_and_optionality() -> None:
    fields = CATALOG.fields("situation_report")
    officer_name = fields["body.reporting_officer.name"]
    assert officer_name.tags == frozenset({"pii", "contact"})
    assert officer_name.optional
    assert officer_name.record == "liaison.bulletin.Person"
    assert not fields["bulletin_id"].optional
    assert "body.incident_location.lat" in fields
    assert not any(path.startswith("body.event") for path in fields)


def test_fields_of_an_unknown_kind_are_refused_with_the_known_kinds() -> None:
    with pytest.raises(SchemaFileError, match=r"unknown kind 'weather'.*alert"):
        CATALOG.fields("weather")


def test_the_schema_directory_can_be_set_by_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LIAISON_SCHEMAS_DIR", str(tmp_path))
    assert default_schema_dir() == tmp_path


def test_the_default_schema_directory_is_the_repository_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LIAISON_SCHEMAS_DIR", raising=False)
    assert default_schema_dir().resolve() == SCHEMA_DIR


# -- broken schema directories -------------------------------------------------------


def test_a_misnamed_file_is_refused_naming_the_file_and_its_type(tmp_path: Path) -> None:
    directory = _copy_schemas(tmp_path)
    (directory / "liaison.bulletin.Point.avsc").rename(directory / "liaison.bulletin.Pt.avsc")
    with pytest.raises(SchemaFileError) as caught:
        SchemaCatalog.load(directory)
    assert "liaison.bulletin.Pt.avsc" in str(caught.value)
    assert "liaison.bulletin.Point" in str(caught.value)


def test_a_dangling_reference_is_refused_naming_both_types(tmp_path: Path) -> None:
    directory = _copy_schemas(tmp_path)
    (directory / "liaison.bulletin.Casualties.avsc").unlink()
    with pytest.raises(SchemaFileError) as caught:
        SchemaCatalog.load(directory)
    assert "liaison.bulletin.kind.SituationReport refers to liaison.bulletin.Casualties" in str(
        caught.value
    )


def test_a_kind_declared_twice_is_refused_naming_both_types(tmp_path: Path) -> None:
    directory = _copy_schemas(tmp_path)
    alarm = json.loads((directory / "liaison.bulletin.kind.Alert.avsc").read_text())
    alarm["name"] = "Alarm"
    (directory / "liaison.bulletin.kind.Alarm.avsc").write_text(json.dumps(alarm))
    catalog = SchemaCatalog.load(directory)
    with pytest.raises(SchemaFileError) as caught:
        catalog.kinds()
    message = str(caught.value)
    assert "'alert'" in message
    assert "liaison.bulletin.kind.Alarm" in message
    assert "liaison.bulletin.kind.Alert" in message
    with pytest.raises(SchemaFileError):
        BulletinSchema(catalog)


def test_a_file_that_is_not_json_is_refused_naming_the_file(tmp_path: Path) -> None:
    directory = _copy_schemas(tmp_path)
    (directory / "liaison.bulletin.Point.avsc").write_text('{"type": "record",')
    with pytest.raises(SchemaFileError, match=r"liaison\.bulletin\.Point\.avsc is not valid JSON"):
        SchemaCatalog.load(directory)


@pytest.mark.parametrize("content", ['["null", "string"]', '{"type": "array", "items": "int"}'])
def test_a_file_without_one_named_type_is_refused_naming_the_file(
    tmp_path: Path, content: str
) -> None:
    directory = _copy_schemas(tmp_path)
    (directory / "liaison.bulletin.Extra.avsc").write_text(content)
    with pytest.raises(SchemaFileError, match=r"liaison\.bulletin\.Extra\.avsc must hold one"):
        SchemaCatalog.load(directory)


def test_a_missing_directory_is_refused_saying_how_to_point_elsewhere(tmp_path: Path) -> None:
    with pytest.raises(SchemaFileError, match="LIAISON_SCHEMAS_DIR"):
        SchemaCatalog.load(tmp_path / "absent")


# -- adding a kind needs no code -----------------------------------------------------

WEATHER = {
    "type": "record",
    "name": "WeatherObservation",
    "namespace": "liaison.bulletin.kind",
    "doc": "A reading from a weather station.",
    "liaison.kind": "weather_observation",
    "fields": [
        {"name": "station", "type": "string", "doc": "Station name."},
        {
            "name": "observed_at",
            "type": {"type": "long", "logicalType": "timestamp-millis"},
            "doc": "When the instruments were read.",
        },
        {"name": "temperature_c", "type": "double", "doc": "Air temperature, Celsius."},
        {"name": "raining", "type": "boolean", "doc": "Whether rain was falling."},
        {
            "name": "wind",
            "type": {
                "type": "enum",
                "name": "WindForce",
                "doc": "Wind force, coarsely.",
                "symbols": ["CALM", "BREEZE", "GALE", "STORM"],
            },
            "doc": "Wind force.",
        },
        {
            "name": "position",
            "type": ["null", "liaison.bulletin.Point"],
            "default": None,
            "doc": "Where the station stands.",
            "liaison.tags": ["location"],
        },
        {
            "name": "observer",
            "type": ["null", "liaison.bulletin.Person"],
            "default": None,
            "doc": "Who read the instruments.",
            "liaison.tags": ["pii", "contact"],
        },
        {
            "name": "remarks",
            "type": ["null", "string"],
            "default": None,
            "doc": "Anything else noticed.",
            "liaison.tags": ["free_text"],
        },
        {
            "name": "gauges",
            "type": {"type": "map", "values": "double"},
            "default": {},
            "doc": "Other readings by gauge name.",
        },
        {
            "name": "people_sheltering",
            "type": ["null", "int"],
            "default": None,
            "doc": "People in the station's shelter.",
            "liaison.tags": ["count"],
        },
    ],
}


def _with_weather_kind(tmp_path: Path) -> Path:
    directory = _copy_schemas(tmp_path)
    full = "liaison.bulletin.kind.WeatherObservation"
    (directory / f"{full}.avsc").write_text(json.dumps(WEATHER, indent=2))
    envelope_path = directory / f"{BULLETIN}.avsc"
    envelope = json.loads(envelope_path.read_text())
    next(f for f in envelope["fields"] if f["name"] == "body")["type"].append(full)
    envelope_path.write_text(json.dumps(envelope, indent=2))
    return directory


def test_a_new_kind_is_a_schema_file_and_a_body_branch_and_no_code(tmp_path: Path) -> None:
    catalog = SchemaCatalog.load(_with_weather_kind(tmp_path))
    schema = BulletinSchema(catalog)
    assert schema.kinds["weather_observation"] == "liaison.bulletin.kind.WeatherObservation"
    codec = WireCodec({1: canonical_json(schema.composed)}.__getitem__)
    generated = list(BulletinGenerator(schema, seed=2).stream(60, "weather_observation"))
    for bulletin in generated:
        assert bulletin.kind == "weather_observation"
        assert schema.violations(bulletin) == []
        decoded = codec.decode(codec.encode(1, schema.to_avro(bulletin)))
        assert schema.from_avro(decoded.record) == bulletin
    assert {b.body["wind"] for b in generated} <= {"CALM", "BREEZE", "GALE", "STORM"}
    assert any(b.body["observer"] for b in generated)
    assert catalog.fields("weather_observation")["body.observer.phone"].tags == {"pii", "contact"}


def test_a_new_kind_is_checked_by_the_body_rules_like_the_others(tmp_path: Path) -> None:
    schema = BulletinSchema(SchemaCatalog.load(_with_weather_kind(tmp_path)))
    bulletin = BulletinGenerator(schema, seed=3).bulletin("weather_observation")
    broken = bulletin.model_copy(
        update={"body": {**bulletin.body, "position": {"lat": 0.0, "lon": 200.0}}}
    )
    assert [(v.path, v.rule.value) for v in schema.violations(broken)] == [
        ("body.position.lon", "coordinate_range")
    ]
