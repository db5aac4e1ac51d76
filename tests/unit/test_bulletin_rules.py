"""bus.bulletin rules: each broken rule is one Violation naming path, value and rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bus.bulletin import (
    Area,
    Bulletin,
    BulletinSchema,
    Limits,
    Marking,
    MsgType,
    Point,
    Reference,
    Rule,
    Status,
    Violation,
)
from bus.errors import BulletinInvalid
from tests.strategies import real_schema

SCHEMA = real_schema()
ISSUED = datetime(2031, 6, 1, 9, 30, tzinfo=UTC)
EARLIER = ISSUED - timedelta(hours=2)

BASE = Bulletin(
    bulletin_id="vale-fire:000042",
    source_agency="vale-fire",
    kind="situation_report",
    issued_at=ISSUED,
    expires_at=ISSUED + timedelta(hours=6),
    status=Status.EXERCISE,
    msg_type=MsgType.NEW,
    marking=Marking.AMBER,
    releasable_to=["north-river"],
    area=Area(place_names=["Harrowfen"]),
    body={
        "title": "Flooding at Harrowfen",
        "summary": "Water is rising near Tarnford.",
        "reporting_officer": None,
        "persons_involved": None,
        "casualties": {"injured": 1, "deceased": None, "missing": None, "displaced": 4},
        "incident_location": {"lat": -47.25, "lon": -30.5},
        "resources_deployed": ["pump crew 2"],
        "next_report_due": None,
    },
)


def _listed(error: BulletinInvalid) -> list[Violation]:
    """The error's violations, each checked to be a Violation."""
    violations = [v for v in error.violations if isinstance(v, Violation)]
    assert len(violations) == len(error.violations)
    return violations


def _found(bulletin: Bulletin, schema: BulletinSchema = SCHEMA) -> list[tuple[str, str, Rule]]:
    """(path, value, rule) of every violation, via validate(), which must raise."""
    with pytest.raises(BulletinInvalid) as caught:
        schema.validate(bulletin)
    violations = _listed(caught.value)
    assert violations == schema.violations(bulletin)
    return [(v.path, v.value, v.rule) for v in violations]


def _broken(**update: Any) -> Bulletin:
    """BASE with fields replaced, unvalidated, as a producer's bad input would be."""
    return BASE.model_copy(update=update)


def _body(**fields: Any) -> dict[str, Any]:
    return {**BASE.body, **fields}


def _parse_error(**changes: Any) -> list[tuple[str, str, Rule]]:
    data = {**BASE.model_dump(), **changes}
    with pytest.raises(BulletinInvalid) as caught:
        SCHEMA.parse(data)
    return [(v.path, v.value, v.rule) for v in _listed(caught.value)]


def test_the_base_bulletin_breaks_no_rule() -> None:
    assert SCHEMA.violations(BASE) == []
    assert SCHEMA.parse(BASE.model_dump()) == BASE


# -- Rule.FIELD (the envelope model) -------------------------------------------------


def test_a_bulletin_id_off_the_pattern_is_a_field_violation_naming_bulletin_id() -> None:
    assert _parse_error(bulletin_id="-starts with a dash") == [
        ("bulletin_id", "'-starts with a dash'", Rule.FIELD)
    ]


def test_several_field_errors_are_reported_together() -> None:
    found = _parse_error(source_agency="Vale Fire", issued_at="not a time", status="DRILL")
    assert {(path, rule) for path, _, rule in found} == {
        ("source_agency", Rule.FIELD),
        ("issued_at", Rule.FIELD),
        ("status", Rule.FIELD),
    }


def test_a_naive_issued_at_is_a_field_violation() -> None:
    found = _parse_error(issued_at=datetime(2031, 6, 1, 9, 30))
    assert [(path, rule) for path, _, rule in found] == [("issued_at", Rule.FIELD)]


def test_area_coordinates_out_of_range_are_coordinate_range_violations_with_their_path() -> None:
    # The same rule as for a Point in a body, so one dead-letter reason covers both.
    area = {"point": {"lat": 90.5, "lon": 10.0}, "polygon": None, "place_names": None}
    assert _parse_error(area=area) == [("area.point.lat", "90.5", Rule.COORDINATE_RANGE)]


def test_polygon_coordinates_out_of_range_are_reported_with_their_index() -> None:
    ring = [{"lat": 1.0, "lon": 1.0}, {"lat": 1.0, "lon": 180.5}, {"lat": 2.0, "lon": 2.0}]
    found = _parse_error(area={"polygon": [*ring, ring[0]]})
    assert found == [("area.polygon.1.lon", "180.5", Rule.COORDINATE_RANGE)]


def test_unknown_envelope_fields_are_field_violations() -> None:
    found = _parse_error(handling="eyes only")
    assert [(path, rule) for path, _, rule in found] == [("handling", Rule.FIELD)]


# -- kinds and bodies ----------------------------------------------------------------


def test_an_unknown_kind_is_reported_on_kind() -> None:
    assert _found(_broken(kind="weather")) == [("kind", "'weather'", Rule.UNKNOWN_KIND)]


def test_an_unknown_kind_cannot_be_converted_to_avro() -> None:
    with pytest.raises(BulletinInvalid) as caught:
        SCHEMA.to_avro(_broken(kind="weather"))
    assert [v.rule for v in _listed(caught.value)] == [Rule.UNKNOWN_KIND]


def test_a_decoded_record_whose_kind_disagrees_with_its_body_is_a_kind_mismatch() -> None:
    record = SCHEMA.to_avro(BASE)
    record["kind"] = "alert"
    with pytest.raises(BulletinInvalid) as caught:
        SCHEMA.from_avro(record)
    assert [(v.path, v.value, v.rule) for v in _listed(caught.value)] == [
        ("kind", "'alert'", Rule.KIND_MISMATCH)
    ]
    assert "situation_report" in str(caught.value)


def test_a_decoded_record_of_an_unknown_kind_is_an_unknown_kind_naming_the_known_ones() -> None:
    record = SCHEMA.to_avro(BASE)
    record["kind"] = "weather"
    with pytest.raises(BulletinInvalid) as caught:
        SCHEMA.from_avro(record)
    assert [(v.path, v.value, v.rule) for v in _listed(caught.value)] == [
        ("kind", "'weather'", Rule.UNKNOWN_KIND)
    ]
    assert f"known kinds: {', '.join(sorted(SCHEMA.kinds))}" in str(caught.value)


def test_a_body_field_of_the_wrong_type_is_a_body_schema_violation() -> None:
    found = _found(_broken(body=_body(title=42)))
    assert [(value, rule) for _, value, rule in found] == [("42", Rule.BODY_SCHEMA)]
    path = found[0][0]
    assert path.startswith("body.")
    assert path.endswith(".title")


def test_a_body_schema_violation_names_the_dotted_path_of_the_field() -> None:
    assert _found(_broken(body=_body(title=42))) == [("body.title", "42", Rule.BODY_SCHEMA)]


def test_a_body_field_the_kind_does_not_define_is_a_body_schema_violation() -> None:
    found = _found(_broken(body=_body(sumary="typo of summary")))
    assert [(path, rule) for path, _, rule in found] == [("body.sumary", Rule.BODY_SCHEMA)]


def test_a_missing_required_body_field_is_a_body_schema_violation() -> None:
    body = _body()
    del body["title"]
    found = _found(_broken(body=body))
    assert [rule for _, _, rule in found] == [Rule.BODY_SCHEMA]
    assert found[0][0].endswith(".title")


def test_a_bad_value_in_a_nested_body_record_is_a_body_schema_violation() -> None:
    found = _found(_broken(body=_body(casualties={"injured": "many"})))
    assert {rule for _, _, rule in found} == {Rule.BODY_SCHEMA}
    assert any(path.endswith(".injured") and value == "'many'" for path, value, _ in found)


def test_a_body_of_another_kind_is_a_body_schema_violation() -> None:
    notice = {"title": "Closure", "text": None, "contact": None, "effective_until": None}
    found = _found(_broken(kind="alert", body=notice))
    assert found
    assert {rule for _, _, rule in found} == {Rule.BODY_SCHEMA}


# -- envelope rules ------------------------------------------------------------------


@pytest.mark.parametrize("offset", [timedelta(0), timedelta(seconds=-1)])
def test_expires_at_not_after_issued_at_is_reported(offset: timedelta) -> None:
    expires = ISSUED + offset
    assert _found(_broken(expires_at=expires)) == [
        ("expires_at", expires.isoformat(), Rule.EXPIRES_AFTER_ISSUED)
    ]


@pytest.mark.parametrize("msg_type", [MsgType.UPDATE, MsgType.CANCEL])
def test_update_and_cancel_without_references_are_reported(msg_type: MsgType) -> None:
    assert _found(_broken(msg_type=msg_type)) == [("references", "[]", Rule.REFERENCES_REQUIRED)]


def test_a_new_bulletin_with_references_is_reported() -> None:
    refs = [Reference(bulletin_id="vale-fire:000041", issued_at=EARLIER)]
    assert _found(_broken(references=refs)) == [
        ("references", "['vale-fire:000041']", Rule.NEW_REFERENCES_NOTHING)
    ]


def test_a_reference_to_itself_is_reported() -> None:
    refs = [Reference(bulletin_id=BASE.bulletin_id, issued_at=EARLIER)]
    assert _found(_broken(msg_type=MsgType.UPDATE, references=refs)) == [
        ("references.0.bulletin_id", "'vale-fire:000042'", Rule.REFERENCE_SELF)
    ]


@pytest.mark.parametrize("offset", [timedelta(0), timedelta(minutes=5)])
def test_a_reference_not_issued_earlier_is_reported(offset: timedelta) -> None:
    refs = [
        Reference(bulletin_id="vale-fire:000040", issued_at=EARLIER),
        Reference(bulletin_id="vale-fire:000041", issued_at=ISSUED + offset),
    ]
    assert _found(_broken(msg_type=MsgType.CANCEL, references=refs)) == [
        ("references.1.issued_at", (ISSUED + offset).isoformat(), Rule.REFERENCE_EARLIER)
    ]


def test_an_update_of_an_earlier_bulletin_breaks_no_rule() -> None:
    refs = [Reference(bulletin_id="vale-fire:000041", issued_at=EARLIER)]
    assert SCHEMA.violations(_broken(msg_type=MsgType.UPDATE, references=refs)) == []


def test_red_without_releasable_to_is_reported() -> None:
    assert _found(_broken(marking=Marking.RED, releasable_to=[])) == [
        ("releasable_to", "[]", Rule.RED_NEEDS_RECIPIENTS)
    ]


def test_red_with_recipients_breaks_no_rule() -> None:
    assert SCHEMA.violations(_broken(marking=Marking.RED)) == []


@pytest.mark.parametrize("bad", ["Harbour Watch", "x", "-leading-dash", "under_score"])
def test_a_releasable_to_entry_that_is_not_an_agency_id_is_reported(bad: str) -> None:
    assert _found(_broken(releasable_to=["north-river", bad])) == [
        ("releasable_to.1", repr(bad), Rule.RECIPIENT_ID)
    ]


def test_an_open_polygon_is_reported() -> None:
    ring = [Point(lat=1, lon=1), Point(lat=1, lon=2), Point(lat=2, lon=2), Point(lat=2, lon=1)]
    assert _found(_broken(area=Area(polygon=ring))) == [
        ("area.polygon", "4 points", Rule.POLYGON_CLOSED)
    ]


def test_a_closed_polygon_of_fewer_than_four_points_is_reported() -> None:
    ring = [Point(lat=1, lon=1), Point(lat=1, lon=2), Point(lat=1, lon=1)]
    assert _found(_broken(area=Area(polygon=ring))) == [
        ("area.polygon", "3 points", Rule.POLYGON_CLOSED)
    ]


def test_a_closed_polygon_of_four_points_breaks_no_rule() -> None:
    ring = [Point(lat=1, lon=1), Point(lat=1, lon=2), Point(lat=2, lon=2), Point(lat=1, lon=1)]
    assert SCHEMA.violations(_broken(area=Area(polygon=ring))) == []


# -- coordinates in the body ---------------------------------------------------------


def test_body_point_coordinates_out_of_range_are_reported_with_their_path() -> None:
    body = _body(incident_location={"lat": -90.5, "lon": 180.25})
    assert _found(_broken(body=body)) == [
        ("body.incident_location.lat", "-90.5", Rule.COORDINATE_RANGE),
        ("body.incident_location.lon", "180.25", Rule.COORDINATE_RANGE),
    ]


def test_body_point_coordinates_on_the_limits_break_no_rule() -> None:
    body = _body(incident_location={"lat": -90.0, "lon": 180.0})
    assert SCHEMA.violations(_broken(body=body)) == []


def test_a_nan_latitude_in_the_body_is_out_of_range() -> None:
    body = _body(incident_location={"lat": float("nan"), "lon": 0.0})
    assert _found(_broken(body=body)) == [
        ("body.incident_location.lat", "nan", Rule.COORDINATE_RANGE)
    ]


# -- limits --------------------------------------------------------------------------


SMALL = BulletinSchema(SCHEMA.catalog, Limits(max_text_chars=40, max_items=2))


def test_the_base_bulletin_fits_the_small_limits() -> None:
    assert SMALL.violations(BASE) == []


def test_body_text_over_the_limit_is_reported_by_length_not_content() -> None:
    assert _found(_broken(body=_body(summary="s" * 41)), SMALL) == [
        ("body.summary", "41 characters", Rule.TEXT_TOO_LONG)
    ]


def test_envelope_text_over_the_limit_is_reported_with_its_path() -> None:
    area = Area(place_names=["Harrowfen", "T" * 41])
    assert _found(_broken(area=area), SMALL) == [
        ("area.place_names.1", "41 characters", Rule.TEXT_TOO_LONG)
    ]


def test_text_of_exactly_the_limit_breaks_no_rule() -> None:
    assert SMALL.violations(_broken(body=_body(summary="s" * 40))) == []


def test_too_many_envelope_items_are_reported() -> None:
    recipients = ["north-river", "harbour-watch", "upland-transit"]
    assert _found(_broken(releasable_to=recipients), SMALL) == [
        ("releasable_to", "3 items", Rule.TOO_MANY_ITEMS)
    ]


def test_too_many_body_items_are_reported() -> None:
    body = _body(resources_deployed=["pump crew 1", "pump crew 2", "drone 3"])
    assert _found(_broken(body=body), SMALL) == [
        ("body.resources_deployed", "3 items", Rule.TOO_MANY_ITEMS)
    ]


def test_limits_reach_into_arrays_of_nested_body_records() -> None:
    person = {"name": "N" * 41, "role": None, "organisation": None, "phone": None, "email": None}
    found = _found(_broken(body=_body(persons_involved=[person])), SMALL)
    assert found == [("body.persons_involved.0.name", "41 characters", Rule.TEXT_TOO_LONG)]


# -- everything at once --------------------------------------------------------------


def test_every_broken_rule_is_reported_at_once() -> None:
    open_ring = [Point(lat=1, lon=1), Point(lat=1, lon=2), Point(lat=2, lon=2), Point(lat=3, lon=3)]
    bulletin = _broken(
        expires_at=ISSUED - timedelta(hours=1),
        references=[Reference(bulletin_id=BASE.bulletin_id, issued_at=ISSUED)],
        marking=Marking.RED,
        releasable_to=[],
        area=Area(polygon=open_ring),
        body=_body(incident_location={"lat": 95.0, "lon": 0.0}),
    )
    with pytest.raises(BulletinInvalid) as caught:
        SCHEMA.validate(bulletin)
    rules = [v.rule for v in _listed(caught.value)]
    assert sorted(rules) == sorted(
        [
            Rule.EXPIRES_AFTER_ISSUED,
            Rule.NEW_REFERENCES_NOTHING,
            Rule.REFERENCE_SELF,
            Rule.REFERENCE_EARLIER,
            Rule.RED_NEEDS_RECIPIENTS,
            Rule.POLYGON_CLOSED,
            Rule.COORDINATE_RANGE,
        ]
    )
    message = str(caught.value)
    assert "breaks 7 rule(s)" in message
    assert all(f"[{rule.value}]" in message for rule in rules)


def test_a_violation_reads_as_path_message_value_and_rule() -> None:
    violation = Violation("releasable_to.0", "'X'", Rule.RECIPIENT_ID, "not an agency id")
    assert str(violation) == "releasable_to.0: not an agency id (value 'X') [recipient_id]"


def test_long_offending_values_are_shortened_to_80_characters() -> None:
    found = _parse_error(bulletin_id="!" * 200)
    assert len(found[0][1]) == 80
    assert found[0][1].endswith("...")


def test_every_rule_has_a_test_here() -> None:
    """A new Rule member fails this until someone adds a test showing its violation."""
    tested = {
        Rule.FIELD,
        Rule.UNKNOWN_KIND,
        Rule.KIND_MISMATCH,
        Rule.BODY_SCHEMA,
        Rule.EXPIRES_AFTER_ISSUED,
        Rule.REFERENCES_REQUIRED,
        Rule.NEW_REFERENCES_NOTHING,
        Rule.REFERENCE_EARLIER,
        Rule.REFERENCE_SELF,
        Rule.RED_NEEDS_RECIPIENTS,
        Rule.RECIPIENT_ID,
        Rule.COORDINATE_RANGE,
        Rule.POLYGON_CLOSED,
        Rule.TEXT_TOO_LONG,
        Rule.TOO_MANY_ITEMS,
    }
    assert set(Rule) == tested
