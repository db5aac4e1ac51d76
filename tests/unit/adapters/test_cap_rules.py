"""CAP 1.2 rules the XSD cannot check: the specification's own examples keep them, each
broken rule is named, the source refuses what breaks one, and the sink never writes it.

The examples in ``cap_examples/`` are CAP 1.2's Appendix A alerts, element for element,
with their agencies and places made fictional (each file says what was changed).
"""

from __future__ import annotations

import asyncio
import io
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import xmlschema
from hypothesis import given
from hypothesis import strategies as st

from adapters.cap import ADAPTER, CapSinkConfig, CapSourceConfig
from adapters.cap.mapping import CapRefusal, bulletin_from_cap, cap_from_view, cap_schema, parse_cap
from adapters.cap.rules import CAP_NAMESPACE, RULES, cap_violations
from bus.adapters import AdapterContext, DeliveredView
from bus.adapters.testing import KIT_AGENCY, MemoryOutlet, sample_views
from bus.bulletin import Area, BulletinGenerator, BulletinSchema, Marking, MsgType, Point
from bus.errors import RecordRejected
from bus.schemas import SchemaCatalog

EXAMPLES = Path(__file__).parent / "cap_examples"
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.xml"))
NS = {"cap": CAP_NAMESPACE}
SCHEMA = BulletinSchema(SchemaCatalog.load())


@pytest.fixture(scope="module")
def schema() -> BulletinSchema:
    return SCHEMA


def example(name: str) -> bytes:
    return (EXAMPLES / name).read_bytes()


def xsd_valid(data: bytes) -> bool:
    resource = xmlschema.XMLResource(io.BytesIO(data), allow="none", defuse="always")
    return bool(cap_schema().is_valid(resource))


def tree(data: bytes) -> ET.Element:
    """Parsed without the adapter's checks (the examples are trusted test data)."""
    return ET.fromstring(data)  # noqa: S314 - our own fixtures, not untrusted input


# -- the specification's examples ------------------------------------------------------------


def test_the_four_appendix_a_examples_are_here() -> None:
    assert [p.name[:2] for p in EXAMPLE_FILES] == ["a1", "a2", "a3", "a4"]


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.stem)
def test_the_specifications_examples_pass_the_source(path: Path, schema: BulletinSchema) -> None:
    data = path.read_bytes()
    assert xsd_valid(data)
    assert cap_violations(tree(data)) == []
    bulletin = schema.from_json(bulletin_from_cap(parse_cap(data), agency=KIT_AGENCY))
    assert bulletin.kind == "alert"
    assert bulletin.issued_at.tzinfo is not None


def test_the_earthquake_update_references_the_earlier_report(schema: BulletinSchema) -> None:
    data = example("a3_earthquake_report_update.xml")
    bulletin = schema.from_json(bulletin_from_cap(parse_cap(data), agency=KIT_AGENCY))
    assert bulletin.msg_type is MsgType.UPDATE
    assert [(r.bulletin_id, r.issued_at) for r in bulletin.references] == [
        ("TRI13970876.1", datetime(2003, 6, 12, 3, 30, tzinfo=UTC))
    ]
    assert bulletin.area is not None
    assert bulletin.area.point == Point(lat=-47.9525, lon=-30.5527)


def test_the_thunderstorm_polygon_is_carried(schema: BulletinSchema) -> None:
    data = example("a2_severe_thunderstorm_warning.xml")
    bulletin = schema.from_json(bulletin_from_cap(parse_cap(data), agency=KIT_AGENCY))
    assert bulletin.area is not None
    assert bulletin.area.polygon is not None
    assert len(bulletin.area.polygon) == 5
    assert bulletin.area.polygon[0] == bulletin.area.polygon[-1]


# -- each rule, broken, is named ------------------------------------------------------------

A1 = "a1_homeland_security_advisory.xml"
A2 = "a2_severe_thunderstorm_warning.xml"
A3 = "a3_earthquake_report_update.xml"

Edit = tuple[str, bytes, bytes]
BROKEN: dict[str, list[Edit]] = {
    "utc_minus_zero": [
        (A1, b"2003-04-02T14:39:01-05:00", b"2003-04-02T19:39:01+00:00"),
        (A2, b"<expires>2003-06-17T16:00:00-07:00", b"<expires>2003-06-17T23:00:00+00:00"),
        (
            A3,
            b"TRI13970876.1,2003-06-11T20:30:00-07:00",
            b"TRI13970876.1,2003-06-12T03:30:00+00:00",
        ),
        (A1, b"<senderName>", b"<onset>2003-04-02T19:39:01+00:00</onset><senderName>"),
    ],
    "identifier_characters": [
        (A1, b"<identifier>43b080713727", b"<identifier>43b080713727,2"),
        (A3, b",TRI13970876.1,", b",TRI&amp;1,"),
    ],
    "sender_characters": [
        (A1, b"<sender>hsas@", b"<sender>hsas desk@"),
        (A3, b"<references>quakenet@", b"<references>&lt;quakenet@"),
    ],
    "references_format": [
        (A3, b",TRI13970876.1,2003", b";TRI13970876.1;2003"),
        (A3, b"TRI13970876.1,2003-06-11T20:30:00-07:00", b"TRI13970876.1,2003-06-11 20:30"),
    ],
    "addresses_required": [(A1, b"<scope>Public</scope>", b"<scope>Private</scope>")],
    "quotes_balanced": [
        (A1, b"<scope>Public</scope>", b'<scope>Public</scope><addresses>"north river</addresses>'),
    ],
    "polygon_points": [
        (
            A2,
            b"-47.47,-30.14 -47.34,-29.95 -47.52,-29.74 -47.62,-29.89 -47.47,-30.14",
            b"-47.47,-30.14 -47.34,-29.95 -47.47,-30.14",
        )
    ],
    "polygon_closed": [(A2, b"-47.62,-29.89 -47.47,-30.14", b"-47.62,-29.89 -47.48,-30.14")],
    "coordinate_pair": [
        (A2, b"-47.34,-29.95", b"-97.34,-29.95"),
        (A3, b"-47.9525,-30.5527 0", b"-47.9525;-30.5527 0"),
        (A3, b"-47.9525,-30.5527 0", b"1e1,-30.5527 0"),
    ],
    "circle_format": [
        (A3, b"-47.9525,-30.5527 0<", b"-47.9525,-30.5527<"),
        (A3, b"-47.9525,-30.5527 0<", b"-47.9525,-30.5527 -2<"),
    ],
    "ceiling_needs_altitude": [(A3, b"0</circle>", b"0</circle><ceiling>1200</ceiling>")],
    "web_absolute_uri": [(A1, b"<web>http://www.", b"<web>www.")],
    "resource_uri": [(A1, b"<uri>http://www.", b"<uri>www.")],
    "resource_digest": [(A1, b"</uri>", b"</uri><digest>not-a-sha1</digest>")],
    "mime_type": [(A1, b"<mimeType>image/gif", b"<mimeType>gif image")],
    "deref_base64": [
        (A1, b"</uri>", b"</uri><derefUri>not base64!</derefUri>"),
        (A1, b"</uri>", b"</uri><derefUri>R0lGOD</derefUri>"),
    ],
}


def test_every_rule_has_a_violating_example() -> None:
    assert set(BROKEN) == set(RULES)


CASES = [(rule, *edit) for rule, edits in BROKEN.items() for edit in edits]


@pytest.mark.parametrize(("rule", "name", "old", "new"), CASES)
def test_each_broken_rule_is_named_and_the_source_refuses_it(
    rule: str, name: str, old: bytes, new: bytes
) -> None:
    original = example(name)
    assert original.count(old) >= 1
    data = original.replace(old, new, 1)
    assert xsd_valid(data), "the rule is one the XSD cannot check"
    found = cap_violations(tree(data))
    assert {v.rule for v in found} == {rule}, found
    with pytest.raises(CapRefusal) as caught:
        parse_cap(data)
    assert caught.value.reason == "cap_rule"
    assert f"[{rule}]" in caught.value.detail
    assert found[0].where in caught.value.detail


def test_a_relative_uri_is_allowed_with_deref_uri() -> None:
    data = example(A1).replace(
        b"<uri>http://www.marrowdale-security.example/public/getAdvisoryImage</uri>",
        b"<uri>advisory.gif</uri><derefUri>R0lGODlhAQABAAAAACw=</derefUri>",
    )
    assert xsd_valid(data)
    assert cap_violations(tree(data)) == []


def test_altitude_with_ceiling_and_utc_written_minus_zero_are_fine() -> None:
    data = (
        example(A3)
        .replace(b"0</circle>", b"0</circle><altitude>100</altitude><ceiling>1200</ceiling>")
        .replace(b"2003-06-11T20:56:00-07:00", b"2003-06-12T03:56:00-00:00")
    )
    assert cap_violations(tree(data)) == []


async def test_the_source_rejects_a_broken_rule_naming_it(
    tmp_path: Path, schema: BulletinSchema
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    config = CapSourceConfig(directory=tmp_path / "in", poll_interval_s=0.05)
    context = AdapterContext(agency=KIT_AGENCY, instance="t", schema=schema, state_dir=state)
    source = ADAPTER.source.build(config, context)  # type: ignore[union-attr]
    await source.start()
    for name, data in {
        "utc.xml": example(A1).replace(b"-05:00</sent>", b"+00:00</sent>"),
        "good.xml": example(A1),
    }.items():
        (tmp_path / "in" / f".{name}").write_bytes(data)
        (tmp_path / "in" / f".{name}").rename(tmp_path / "in" / name)
    outlet, stop = MemoryOutlet(schema, KIT_AGENCY), asyncio.Event()
    task = asyncio.create_task(source.run(outlet, stop))
    try:
        await outlet.wait_for(published=1, rejected=1)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await source.stop()
    assert [(r["origin"], r["reason"]) for r in outlet.rejected] == [("utc.xml", "cap_rule")]
    assert "alert/sent" in outlet.rejected[0]["detail"]
    assert "[utc_minus_zero]" in outlet.rejected[0]["detail"]
    assert [b.bulletin_id for b in outlet.published] == ["43b080713727"]


# -- everything the sink writes keeps the rules ---------------------------------------------


def assert_keeps_every_rule(data: bytes) -> None:
    assert xsd_valid(data)
    assert cap_violations(parse_cap(data)) == []
    assert b"+00:00" not in data


def test_policy_redacted_views_of_every_sample_pass_the_validator(schema: BulletinSchema) -> None:
    for seed in range(6):
        for view in sample_views(schema, ["alert"], count=10, seed=seed):
            assert_keeps_every_rule(cap_from_view(view))


@given(seed=st.integers(0, 2**32 - 1))
def test_generated_alerts_become_cap_that_keeps_every_rule(seed: int) -> None:
    generator = BulletinGenerator(SCHEMA, seed=seed, follow_up_probability=0.5)
    for bulletin in generator.stream(10, "alert"):
        recipient = bulletin.releasable_to[0] if bulletin.marking is Marking.RED else KIT_AGENCY
        view = DeliveredView(recipient=recipient, policy_version=1, bulletin=bulletin)
        data = cap_from_view(view)
        assert_keeps_every_rule(data)
        root = parse_cap(data)
        times = [root.findtext("cap:sent", "", NS)] + [
            e.text or ""
            for e in root.iterfind("cap:info/*", NS)
            if e.tag.endswith(("onset", "expires"))
        ]
        assert all(t.endswith("-00:00") for t in times), times


Mutator = Callable[[DeliveredView], DeliveredView]


def _with_area(area: Area) -> Mutator:
    def mutate(view: DeliveredView) -> DeliveredView:
        return view.model_copy(update={"bulletin": view.bulletin.model_copy(update={"area": area})})

    return mutate


@pytest.mark.parametrize(
    "mutate",
    [
        _with_area(Area(polygon=[Point(lat=1, lon=1), Point(lat=2, lon=2), Point(lat=1, lon=1)])),
        _with_area(
            Area(
                polygon=[
                    Point(lat=1, lon=1),
                    Point(lat=2, lon=2),
                    Point(lat=2, lon=1),
                    Point(lat=1, lon=2),
                ]
            )
        ),
        _with_area(Area(point=Point(lat=95, lon=1))),
    ],
    ids=["too-few-points", "open-ring", "latitude-out-of-range"],
)
async def test_the_sink_never_writes_an_alert_that_breaks_a_rule(
    mutate: Mutator, tmp_path: Path, schema: BulletinSchema
) -> None:
    """A view is not re-validated (a redaction may legitimately break a bulletin rule), so
    the sink checks its own output and refuses, writing nothing."""
    (view,) = sample_views(schema, ["alert"], count=1)
    state = tmp_path / "state"
    state.mkdir()
    sink = ADAPTER.sink.build(  # type: ignore[union-attr]
        CapSinkConfig(directory=tmp_path / "out"),
        AdapterContext(agency=KIT_AGENCY, instance="t", schema=schema, state_dir=state),
    )
    await sink.start()
    with pytest.raises(RecordRejected) as caught:
        await sink.deliver(mutate(view))
    await sink.stop()
    assert caught.value.reason == "cap_invalid_output"
    assert "[polygon_" in str(caught.value) or "[coordinate_pair]" in str(caught.value)
    assert not list((tmp_path / "out").rglob("*.xml"))
