"""bus.bulletin.BulletinGenerator: reproducible, valid, fictional bulletins of every kind."""

from __future__ import annotations

import itertools
import json
import random
import re
import shutil
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings

from bus.bulletin import (
    BULLETIN_ID_PATTERN,
    DEFAULT_AGENCIES,
    DEFAULT_START,
    FICTIONAL_REGION,
    Bulletin,
    BulletinGenerator,
    BulletinSchema,
    Marking,
    MsgType,
)
from bus.codec import WireCodec
from bus.schemas import SchemaCatalog, canonical_json
from tests.strategies import SCHEMA_DIR, bulletins, real_schema, real_schema_text

SCHEMA = real_schema()
KINDS = sorted(SCHEMA.kinds)

NAME = re.compile(r"^[A-Z][a-z]+ [A-Z][a-z]+$")
PHONE = re.compile(r"^\+00 555 01\d\d$")
EMAIL = re.compile(r"^[a-z]+\.[a-z]+@[a-z0-9-]+\.example$")
PLACE = re.compile(r"^[A-Z][a-z]+$")


def _stream(n: int, kind: str | None = None, **options: Any) -> list[Bulletin]:
    return list(BulletinGenerator(SCHEMA, **options).stream(n, kind))


def _leaves(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    """(dotted path, value) of every scalar; list items share their list's path."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, f"{path}.{key}")
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item, path)
    else:
        yield path, value


def _in_region(lat: float, lon: float) -> bool:
    south, north, west, east = FICTIONAL_REGION
    return south <= lat <= north and west <= lon <= east


# -- reproducibility -----------------------------------------------------------------


def test_the_same_seed_generates_the_same_sequence() -> None:
    assert _stream(60, seed=11) == _stream(60, seed=11)


def test_different_seeds_generate_different_sequences() -> None:
    assert _stream(20, seed=1) != _stream(20, seed=2)


def test_generation_does_not_touch_the_global_random_state() -> None:
    random.seed(5)
    expected = random.random()
    random.seed(5)
    _stream(20, seed=3)
    assert random.random() == expected


# -- validity ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_every_generated_bulletin_of_every_kind_passes_validation(kind: str) -> None:
    generated = _stream(150, kind, seed=7)
    for bulletin in generated:
        assert bulletin.kind == kind
        assert SCHEMA.violations(bulletin) == []


@pytest.mark.parametrize("kind", KINDS)
def test_every_generated_bulletin_of_every_kind_survives_the_wire(kind: str) -> None:
    codec = WireCodec({1: real_schema_text()}.__getitem__)
    for bulletin in _stream(100, kind, seed=8):
        decoded = codec.decode(codec.encode(1, SCHEMA.to_avro(bulletin)))
        assert SCHEMA.from_avro(decoded.record) == bulletin


def test_without_a_kind_the_generator_picks_every_kind() -> None:
    assert {b.kind for b in _stream(200, seed=4)} == set(KINDS)


@pytest.mark.parametrize("null_probability", [0.0, 1.0])
def test_generated_bulletins_are_valid_whether_optional_fields_are_all_null_or_all_set(
    null_probability: float,
) -> None:
    for bulletin in _stream(100, seed=5, null_probability=null_probability):
        assert SCHEMA.violations(bulletin) == []


@settings(max_examples=50, deadline=None)
@given(bulletin=bulletins(SCHEMA))
def test_the_bulletins_strategy_draws_only_valid_bulletins(bulletin: Bulletin) -> None:
    assert SCHEMA.violations(bulletin) == []


@settings(max_examples=20, deadline=None)
@given(bulletin=bulletins(SCHEMA, "notice"))
def test_the_bulletins_strategy_for_a_kind_draws_only_that_kind(bulletin: Bulletin) -> None:
    assert bulletin.kind == "notice"


def test_the_bulletins_strategy_refuses_an_unknown_kind() -> None:
    with pytest.raises(ValueError, match="weather"):
        bulletins(SCHEMA, "weather")


# -- envelope ------------------------------------------------------------------------


def test_bulletin_ids_are_unique_match_the_pattern_and_name_the_source_agency() -> None:
    generated = _stream(300, seed=6)
    ids = [b.bulletin_id for b in generated]
    assert len(set(ids)) == len(ids)
    for bulletin in generated:
        assert re.fullmatch(BULLETIN_ID_PATTERN, bulletin.bulletin_id)
        assert bulletin.bulletin_id.startswith(f"{bulletin.source_agency}:")
        assert bulletin.source_agency in DEFAULT_AGENCIES


def test_issued_at_advances_strictly_from_start_in_whole_milliseconds() -> None:
    generated = _stream(200, seed=9)
    times = [b.issued_at for b in generated]
    assert times[0] > DEFAULT_START
    assert all(earlier < later for earlier, later in itertools.pairwise(times))
    assert all(t == Bulletin.millis(t) and t.utcoffset() == timedelta(0) for t in times)


def test_agencies_and_start_can_be_chosen() -> None:
    start = datetime(2040, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    generated = _stream(50, seed=1, agencies=["isle-ops", "fen-relief"], start=start)
    assert {b.source_agency for b in generated} == {"isle-ops", "fen-relief"}
    assert all(b.issued_at > start for b in generated)
    assert all(set(b.releasable_to) <= {"isle-ops", "fen-relief"} for b in generated)


def test_expires_at_is_sometimes_absent_and_otherwise_later_than_issued_at() -> None:
    generated = _stream(200, seed=10)
    assert any(b.expires_at is None for b in generated)
    later = [b for b in generated if b.expires_at is not None]
    assert later
    assert all(b.expires_at is not None and b.expires_at > b.issued_at for b in later)


def test_most_bulletins_are_new_and_updates_and_cancels_reference_earlier_ones() -> None:
    generated = _stream(400, seed=12)
    counts = Counter(b.msg_type for b in generated)
    assert counts[MsgType.NEW] > counts[MsgType.UPDATE] > 0
    assert counts[MsgType.CANCEL] > 0
    seen: dict[str, Bulletin] = {}
    for bulletin in generated:
        if bulletin.msg_type is MsgType.NEW:
            assert bulletin.references == []
        else:
            assert bulletin.references
            for ref in bulletin.references:
                earlier = seen[ref.bulletin_id]
                assert ref.issued_at == earlier.issued_at < bulletin.issued_at
                assert earlier.source_agency == bulletin.source_agency
                assert earlier.kind == bulletin.kind
        seen[bulletin.bulletin_id] = bulletin


def test_updates_of_a_requested_kind_reference_bulletins_of_that_kind() -> None:
    generator = BulletinGenerator(SCHEMA, seed=3, follow_up_probability=0.9)
    alerts = {b.bulletin_id for b in generator.stream(5, "alert")}
    notices = list(generator.stream(30, "notice"))
    follow_ups = [b for b in notices if b.msg_type is not MsgType.NEW]
    assert follow_ups
    assert all(r.bulletin_id not in alerts for b in follow_ups for r in b.references)


def test_every_red_bulletin_names_recipients_and_recipients_are_known_agencies() -> None:
    generated = _stream(300, seed=13)
    red = [b for b in generated if b.marking is Marking.RED]
    assert red
    assert all(b.releasable_to for b in red)
    assert all(set(b.releasable_to) <= set(DEFAULT_AGENCIES) for b in generated)
    assert {b.marking for b in generated} == set(Marking)


def test_areas_hold_place_names_points_and_closed_polygons_inside_the_region() -> None:
    generated = _stream(300, seed=14)
    areas = [b.area for b in generated if b.area is not None]
    assert len(areas) < len(generated)
    assert any(a.place_names for a in areas)
    points = [a.point for a in areas if a.point is not None]
    polygons = [a.polygon for a in areas if a.polygon is not None]
    assert points
    assert polygons
    assert all(_in_region(p.lat, p.lon) for p in points)
    for ring in polygons:
        assert len(ring) >= 4
        assert ring[0] == ring[-1]
        assert all(-90 <= p.lat <= 90 and -180 <= p.lon <= 180 for p in ring)
    for area in areas:
        assert all(PLACE.fullmatch(name) for name in area.place_names or [])


# -- body, generated from the schema -------------------------------------------------


def _tagged_values(generated: list[Bulletin]) -> dict[str, list[tuple[str, Any]]]:
    """Body leaf values by tag, across ``generated``, with their paths."""
    found: dict[str, list[tuple[str, Any]]] = {}
    for bulletin in generated:
        fields = SCHEMA.catalog.fields(bulletin.kind)
        for path, value in _leaves(bulletin.body, "body"):
            info = fields.get(path)
            if info is None or value is None:
                continue
            for tag in info.tags or {"(untagged)"}:
                found.setdefault(tag, []).append((path, value))
    return found


def test_body_values_follow_their_fields_liaison_tags() -> None:
    tagged = _tagged_values(_stream(300, seed=15))
    assert set(tagged) >= {"pii", "contact", "free_text", "count"}
    # contact marks the phone and e-mail fields and also every text that may hold them
    # (names, narrative, web): the phone and e-mail fields hold numbers and addresses.
    contact = [(p, v) for p, v in tagged["contact"] if p.endswith((".phone", ".email"))]
    assert contact
    for path, value in contact:
        assert PHONE.fullmatch(value) or EMAIL.fullmatch(value), (path, value)
    for path, value in tagged["pii"]:
        if path.endswith(".name"):
            assert NAME.fullmatch(value), (path, value)
    for path, value in tagged["free_text"]:
        assert value.endswith("."), (path, value)
    for path, value in tagged["count"]:
        assert isinstance(value, int), path
        assert 0 <= value <= 100, (path, value)


def test_body_phone_and_email_fields_hold_fictional_numbers_and_example_addresses() -> None:
    leaves = [leaf for b in _stream(200, seed=16) for leaf in _leaves(b.body, "body")]
    phones = [v for p, v in leaves if p.endswith(".phone") and v is not None]
    emails = [v for p, v in leaves if p.endswith(".email") and v is not None]
    assert phones
    assert emails
    assert all(PHONE.fullmatch(v) for v in phones)
    assert all(EMAIL.fullmatch(v) for v in emails)


def test_body_points_fall_inside_the_fictional_region() -> None:
    reports = _stream(100, "situation_report", seed=17)
    locations = [b.body["incident_location"] for b in reports if b.body["incident_location"]]
    assert locations
    assert all(_in_region(p["lat"], p["lon"]) for p in locations)


def test_body_timestamps_are_utc_milliseconds_later_than_issued_at() -> None:
    checked = 0
    for bulletin in _stream(200, seed=18):
        for _, value in _leaves(bulletin.body, "body"):
            if isinstance(value, datetime):
                assert value.tzinfo is not None
                assert value.utcoffset() == timedelta(0)
                assert value == Bulletin.millis(value)
                assert value > bulletin.issued_at
                checked += 1
    assert checked > 0


def test_optional_body_fields_are_null_at_probability_one_and_set_at_zero() -> None:
    def optional_values(null_probability: float) -> list[Any]:
        values = []
        for bulletin in _stream(60, seed=19, null_probability=null_probability):
            for path, info in SCHEMA.catalog.fields(bulletin.kind).items():
                if info.optional and path.count(".") == 1 and path.startswith("body."):
                    values.append(bulletin.body[path.removeprefix("body.")])
        return values

    assert all(v is None for v in optional_values(1.0))
    assert all(v is not None for v in optional_values(0.0))


def test_body_arrays_hold_zero_to_four_items() -> None:
    lengths = Counter(len(b.body["response_types"]) for b in _stream(200, "alert", seed=20))
    assert set(lengths) == {0, 1, 2, 3, 4}


def test_some_optional_fields_are_null_at_the_default_probability() -> None:
    descriptions = [b.body["description"] for b in _stream(100, "alert", seed=21)]
    assert None in descriptions
    assert any(d is not None for d in descriptions)


def _field(name: str, typ: Any) -> dict[str, Any]:
    return {"name": name, "type": typ, "doc": f"The {name}."}


EXOTIC = {
    "type": "record",
    "name": "Exotic",
    "namespace": "liaison.bulletin.kind",
    "doc": "Every Avro shape the real kinds do not use.",
    "liaison.kind": "exotic",
    "fields": [
        _field("flag", "boolean"),
        _field("ratio", "float"),
        _field("level", "double"),
        _field("tally", "long"),
        _field("blob", "bytes"),
        _field("digest", {"type": "fixed", "name": "Digest", "size": 4}),
        _field("labels", {"type": "map", "values": "string"}),
        _field("day", {"type": "int", "logicalType": "date"}),
        _field("ref_uuid", {"type": "string", "logicalType": "uuid"}),
        _field("subject", ["null", "liaison.bulletin.Person", "liaison.bulletin.Point"]),
        _field("either", ["string", "liaison.bulletin.Casualties", "liaison.bulletin.Point"]),
        _field("grid", {"type": "array", "items": {"type": "array", "items": "double"}}),
        _field("mood", {"type": "enum", "name": "Mood", "symbols": ["CALM", "TENSE"]}),
        _field("tree", "liaison.bulletin.kind.Node"),
        _field("micros", {"type": "long", "logicalType": "timestamp-micros"}),
    ],
}
NODE = {
    "type": "record",
    "name": "Node",
    "namespace": "liaison.bulletin.kind",
    "doc": "A recursive type.",
    "fields": [_field("label", "string"), _field("children", {"type": "array", "items": "Node"})],
}


def _schema_dir_with(tmp_path: Path, *types: dict[str, Any]) -> Path:
    directory = tmp_path / "schemas"
    shutil.copytree(SCHEMA_DIR, directory)
    envelope_path = directory / "liaison.bulletin.Bulletin.avsc"
    envelope = json.loads(envelope_path.read_text())
    body = next(f for f in envelope["fields"] if f["name"] == "body")
    for typ in types:
        full = f"{typ['namespace']}.{typ['name']}"
        (directory / f"{full}.avsc").write_text(json.dumps(typ, indent=2))
        if "liaison.kind" in typ:
            body["type"].append(full)
    envelope_path.write_text(json.dumps(envelope, indent=2))
    return directory


def test_bodies_of_every_avro_shape_are_generated_valid_and_survive_the_wire(
    tmp_path: Path,
) -> None:
    schema = BulletinSchema(SchemaCatalog.load(_schema_dir_with(tmp_path, EXOTIC, NODE)))
    codec = WireCodec({3: canonical_json(schema.composed)}.__getitem__)
    generated = list(BulletinGenerator(schema, seed=22).stream(150, "exotic"))
    for bulletin in generated:
        assert schema.violations(bulletin) == []
        decoded = codec.decode(codec.encode(3, schema.to_avro(bulletin)))
        assert schema.from_avro(decoded.record) == bulletin
    subjects = [b.body["subject"] for b in generated if b.body["subject"] is not None]
    assert {name for name, _ in subjects} == {"liaison.bulletin.Person", "liaison.bulletin.Point"}
    assert any(b.body["tree"]["children"] for b in generated)


# -- misuse --------------------------------------------------------------------------


def test_asking_for_an_unknown_kind_is_refused_with_the_known_kinds() -> None:
    generator = BulletinGenerator(SCHEMA)
    with pytest.raises(ValueError, match=r"unknown kind 'weather'.*alert"):
        generator.bulletin("weather")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"agencies": []}, "agencies is empty"),
        ({"agencies": ["Not An Id"]}, "Not An Id"),
        ({"start": datetime(2031, 1, 1)}, "timezone-aware"),
        ({"null_probability": 1.5}, "null_probability"),
        ({"follow_up_probability": -0.1}, "follow_up_probability"),
    ],
)
def test_invalid_generator_options_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BulletinGenerator(SCHEMA, **options)


def test_a_negative_stream_length_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        BulletinGenerator(SCHEMA).stream(-1)


def test_start_in_another_zone_is_normalised_to_utc() -> None:
    start = datetime(2031, 5, 1, 8, tzinfo=timezone(timedelta(hours=-3)))
    bulletin = BulletinGenerator(SCHEMA, start=start).bulletin()
    assert bulletin.issued_at.tzinfo == UTC
    assert bulletin.issued_at > start
