"""The cap adapter: the contract kit, the CAP <-> bulletin mapping, and hostile input."""

from __future__ import annotations

import asyncio
import io
import re
import secrets
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
import xmlschema
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, SecretBytes

from adapters._files import Outbox
from adapters.cap import ADAPTER, CapSinkConfig, CapSource, CapSourceConfig, mapping
from adapters.cap.mapping import (
    CAP_NAMESPACE,
    REDACTION_PARAMETER,
    UNNAMED_AREA,
    WITHHELD,
    CapRefusal,
    bulletin_from_cap,
    cap_from_view,
    cap_schema,
    parse_cap,
)
from bus.adapters import AdapterContext, DeliveredView
from bus.adapters.testing import (
    KIT_AGENCY,
    KIT_PEER,
    MemoryOutlet,
    SinkContract,
    SourceContract,
    sample_views,
)
from bus.bulletin import (
    Area,
    Bulletin,
    BulletinGenerator,
    BulletinSchema,
    Marking,
    MsgType,
    Point,
    Priority,
    Status,
)
from bus.errors import RecordRejected
from bus.policy import RedactionKeys, compile_policy, parse_policy
from bus.schemas import SchemaCatalog

NS = {"cap": CAP_NAMESPACE}
SENT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d-00:00$")
"""CAP 1.2: UTC is written -00:00 (<sent>: "The timezone for UTC MUST be represented as -00:00")."""


# -- helpers ---------------------------------------------------------------------------


def as_view(bulletin: Bulletin, recipient: str = KIT_AGENCY) -> DeliveredView:
    """A bulletin as an unredacted view, the way a sink receives it."""
    return DeliveredView(recipient=recipient, policy_version=1, bulletin=bulletin)


def recipient_for(bulletin: Bulletin) -> str:
    """A recipient that may see the bulletin (RED goes only to releasable_to)."""
    if bulletin.marking is Marking.RED:
        return bulletin.releasable_to[0]
    return KIT_AGENCY


def drop_file(directory: Path, name: str, data: bytes) -> Path:
    """Write under a hidden name, then rename into the inbox (the documented protocol)."""
    directory.mkdir(parents=True, exist_ok=True)
    hidden = directory / f".{name}.part"
    hidden.write_bytes(data)
    return hidden.rename(directory / name)


def xsd_valid(data: bytes) -> bool:
    """Validated independently of the adapter's own parse_cap."""
    resource = xmlschema.XMLResource(io.BytesIO(data), allow="none", defuse="always")
    return bool(cap_schema().is_valid(resource))


def root_of(data: bytes) -> ET.Element:
    return parse_cap(data)


def parameters(data: bytes, name: str) -> list[str]:
    root = root_of(data)
    return [
        p.findtext("cap:value", "", NS)
        for p in root.iterfind("cap:info/cap:parameter", NS)
        if p.findtext("cap:valueName", "", NS) == name
    ]


INFO = """
  <info>
    <language>en-GB</language>
    <category>Met</category>
    <category>Safety</category>
    <event>Rising flooding at Brindlemoor</event>
    <responseType>Prepare</responseType>
    <responseType>AllClear</responseType>
    <urgency>{urgency}</urgency>
    <severity>Severe</severity>
    <certainty>Likely</certainty>
    <audience>Field crews</audience>
    <eventCode><valueName>SAME</valueName><value>FLW</value></eventCode>
    <onset>2031-03-14T09:00:00+02:00</onset>
    <expires>2031-03-15T08:00:00+02:00</expires>
    <senderName>Brindlemoor Watch</senderName>
    {headline}
    <description>Water levels keep rising near Tarnfen.</description>
    <instruction>Keep to higher ground.</instruction>
    <web>https://kit-agency.example/alerts/1</web>
    {contact}
    <parameter><valueName>EAS-ORG</valueName><value>WXR</value></parameter>
    <area>
      <areaDesc>Brindlemoor</areaDesc>
      <circle>-47.5,-30.25 5.5</circle>
    </area>
    <area>
      <areaDesc>Tarnfen</areaDesc>
      <polygon>-47.1,-30.1 -47.2,-30.1 -47.2,-30.2 -47.1,-30.1</polygon>
      <geocode><valueName>FIPS6</valueName><value>006113</value></geocode>
    </area>
  </info>
  <info>
    <category>Geo</category>
    <event>A second info block, which is not carried</event>
    <urgency>Past</urgency>
    <severity>Minor</severity>
    <certainty>Unlikely</certainty>
  </info>
"""


def cap_document(
    *,
    identifier: str = "kit-agency.flood-1",
    status: str = "Actual",
    msg_type: str = "Alert",
    codes: tuple[str, ...] = ("TLP:GREEN",),
    addresses: str | None = None,
    references: str | None = None,
    urgency: str = "Expected",
    headline: str | None = "Flood warning for Brindlemoor",
    contact: str | None = "+00 555 0101",
    info: str | None = None,
    prolog: str = '<?xml version="1.0" encoding="UTF-8"?>',
) -> bytes:
    """A hand-written CAP 1.2 alert, as an agency's own system would produce it."""
    parts = [
        prolog,
        f'<alert xmlns="{CAP_NAMESPACE}">',
        f"  <identifier>{identifier}</identifier>",
        "  <sender>duty@kit-agency.example</sender>",
        "  <sent>2031-03-14T08:00:00+02:00</sent>",
        f"  <status>{status}</status>",
        f"  <msgType>{msg_type}</msgType>",
        "  <source>Flood desk</source>",
        "  <scope>Restricted</scope>",
        "  <restriction>Emergency services only</restriction>",
    ]
    if addresses is not None:
        parts.append(f"  <addresses>{addresses}</addresses>")
    parts += [f"  <code>{code}</code>" for code in codes]
    parts.append("  <note>Drill material</note>")
    if references is not None:
        parts.append(f"  <references>{references}</references>")
    if info is None:
        info = INFO.format(
            urgency=urgency,
            headline="" if headline is None else f"<headline>{headline}</headline>",
            contact="" if contact is None else f"<contact>{contact}</contact>",
        )
    parts += [info, "</alert>"]
    return "\n".join(parts).encode()


def without_sender() -> bytes:
    """Well-formed XML that the CAP schema refuses: <sender> is required."""
    return cap_document().replace(b"<sender>duty@kit-agency.example</sender>", b"")


def from_cap(data: bytes, **options: Any) -> dict[str, Any]:
    return bulletin_from_cap(parse_cap(data), agency=KIT_AGENCY, **options)


def refusal(data: bytes, **options: Any) -> CapRefusal:
    with pytest.raises(CapRefusal) as caught:
        from_cap(data, **options)
    assert caught.value.detail, "a refusal must explain itself"
    return caught.value


@pytest.fixture(scope="module")
def schema() -> BulletinSchema:
    return BulletinSchema(SchemaCatalog.load())


def context(tmp_path: Path, schema: BulletinSchema) -> AdapterContext:
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    return AdapterContext(agency=KIT_AGENCY, instance="t", schema=schema, state_dir=state)


# -- the contract kit ----------------------------------------------------------------------


class TestCapSource(SourceContract):
    adapter = ADAPTER
    kinds: ClassVar[Sequence[str] | None] = ["alert"]

    def valid_config(self, tmp_path: Path) -> dict[str, Any]:
        return {"directory": str(tmp_path / "inbox"), "poll_interval_s": 0.05}

    def invalid_configs(self, tmp_path: Path) -> list[dict[str, Any]]:
        good = self.valid_config(tmp_path)
        return [
            *super().invalid_configs(tmp_path),
            {**good, "poll_interval_s": 0},
            {**good, "default_marking": "PURPLE"},
            {**good, "max_bytes": 0},
            {"poll_interval_s": 1},
        ]

    async def feed(
        self, config: BaseModel, bulletins: list[Bulletin], schema: BulletinSchema
    ) -> int:
        assert isinstance(config, CapSourceConfig)
        for bulletin in bulletins:
            data = cap_from_view(as_view(bulletin, recipient_for(bulletin)))
            drop_file(config.directory, f"{bulletin.bulletin_id.replace(':', '_')}.xml", data)
        drop_file(config.directory, "no-sender.xml", without_sender())
        drop_file(config.directory, "truncated.xml", cap_document()[:200])
        drop_file(config.directory, "bomb.xml", BILLION_LAUGHS)
        return 3


class TestCapSink(SinkContract):
    adapter = ADAPTER
    kinds: ClassVar[Sequence[str] | None] = ["alert"]

    def valid_config(self, tmp_path: Path) -> dict[str, Any]:
        return {"directory": str(tmp_path / "outbox")}

    def invalid_configs(self, tmp_path: Path) -> list[dict[str, Any]]:
        good = self.valid_config(tmp_path)
        return [
            *super().invalid_configs(tmp_path),
            {**good, "sender": "two words"},
            {**good, "sender": "a,b"},
            {"sender": "kit"},
        ]

    async def read_back(self, config: BaseModel) -> list[str]:
        assert isinstance(config, CapSinkConfig)
        return [
            root_of(path.read_bytes()).findtext("cap:identifier", "", NS)
            for path in Outbox(config.directory, ".xml").written()
        ]

    async def break_native(self, config: BaseModel) -> None:
        assert isinstance(config, CapSinkConfig)
        config.directory.rename(config.directory.with_name("outbox.away"))
        config.directory.write_text("a plain file where the outbox was")

    async def heal_native(self, config: BaseModel) -> None:
        assert isinstance(config, CapSinkConfig)
        config.directory.unlink()
        config.directory.with_name("outbox.away").rename(config.directory)


# -- bulletin -> CAP -> bulletin ---------------------------------------------------------


def after_round_trip(bulletin: Bulletin, recipient: str) -> Bulletin:
    """What survives CAP: whole seconds, no releasable_to beyond the recipient (if RED)."""

    def seconds(moment: datetime) -> datetime:
        return moment.replace(microsecond=0)

    area = bulletin.area
    if area is not None:
        names = area.place_names or None
        area = (
            None
            if names is None and area.point is None and area.polygon is None
            else Area(place_names=names, point=area.point, polygon=area.polygon)
        )
    body = dict(bulletin.body)
    if body["onset"] is not None:
        body["onset"] = seconds(body["onset"])
    contact = body["sender_contact"]
    if contact is not None and all(value is None for value in contact.values()):
        body["sender_contact"] = None
    return bulletin.model_copy(
        update={
            "issued_at": seconds(bulletin.issued_at),
            "expires_at": None if bulletin.expires_at is None else seconds(bulletin.expires_at),
            "references": [
                r.model_copy(update={"issued_at": seconds(r.issued_at)})
                for r in bulletin.references
            ],
            "releasable_to": [recipient] if bulletin.marking is Marking.RED else [],
            "area": area,
            "body": body,
        }
    )


@pytest.mark.parametrize("seed", range(8))
def test_generated_alerts_survive_a_round_trip_through_cap(
    schema: BulletinSchema, seed: int
) -> None:
    generator = BulletinGenerator(schema, seed=seed, follow_up_probability=0.4)
    seen: set[object] = set()
    for bulletin in generator.stream(60, "alert"):
        recipient = recipient_for(bulletin)
        data = cap_from_view(as_view(bulletin, recipient))
        assert xsd_valid(data)
        back = schema.from_json(
            bulletin_from_cap(
                parse_cap(data), agency=bulletin.source_agency, default_marking=Marking.CLEAR
            )
        )
        assert back == after_round_trip(bulletin, recipient)
        seen |= {bulletin.status, bulletin.msg_type, bulletin.marking, bulletin.priority}
    # the loop did exercise every status, message type, marking and priority
    assert seen >= {*Status, *MsgType, *Marking, *Priority}


def test_the_sink_writes_what_the_cap_schema_and_liaison_promise(schema: BulletinSchema) -> None:
    bulletin = next(
        b
        for b in BulletinGenerator(schema, seed=4, follow_up_probability=1.0).stream(50, "alert")
        if b.references and b.body["sender_contact"] and b.area and b.area.polygon
    )
    view = DeliveredView(
        recipient="harbour-watch",
        policy_version=7,
        not_for_forwarding=True,
        bulletin=bulletin.model_copy(update={"marking": Marking.AMBER_STRICT}),
    )
    root = root_of(cap_from_view(view, sender="duty-desk@north-river.example"))
    text = {name: root.findtext(f"cap:{name}", None, NS) for name in ("sender", "sent", "scope")}
    assert text == {
        "sender": "duty-desk@north-river.example",
        "sent": bulletin.issued_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S-00:00"),
        "scope": "Restricted",
    }
    assert SENT.fullmatch(text["sent"] or "")
    restriction = root.findtext("cap:restriction", "", NS)
    assert "TLP:AMBER+STRICT" in restriction
    assert "not for forwarding" in restriction
    assert root.findtext("cap:addresses", "", NS) == "harbour-watch"
    assert [c.text for c in root.iterfind("cap:code", NS)] == ["TLP:AMBER+STRICT"]
    triples = (root.findtext("cap:references", "", NS)).split()
    assert [t.split(",")[1] for t in triples] == [r.bulletin_id for r in bulletin.references]
    for triple in triples:
        sender, _, sent = triple.split(",")
        assert sender == "duty-desk@north-river.example"
        assert SENT.fullmatch(sent)
    info = root.find("cap:info", NS)
    assert info is not None
    assert info.findtext("cap:headline", None, NS) == bulletin.body["headline"]
    values = {
        p.findtext("cap:valueName", "", NS): p.findtext("cap:value", "", NS)
        for p in info.iterfind("cap:parameter", NS)
    }
    assert values["liaison:priority"] == bulletin.priority.value
    assert values["liaison:policy_version"] == "7"


def test_text_xml_cannot_carry_is_replaced_and_the_output_still_validates(
    schema: BulletinSchema,
) -> None:
    bulletin = BulletinGenerator(schema, seed=1).bulletin("alert")
    body = {**bulletin.body, "description": "bell \x07 nul \x00 <b>&amp;</b> \ufffe end"}
    data = cap_from_view(
        as_view(bulletin.model_copy(update={"body": body, "marking": Marking.GREEN}))
    )
    assert xsd_valid(data)
    info = root_of(data).find("cap:info", NS)
    assert info is not None
    assert (
        info.findtext("cap:description", "", NS) == "bell \ufffd nul \ufffd <b>&amp;</b> \ufffd end"
    )


def test_a_point_becomes_a_circle_of_radius_zero_and_an_unnamed_shape_a_placeholder(
    schema: BulletinSchema,
) -> None:
    bulletin = BulletinGenerator(schema, seed=2).bulletin("alert")
    area = Area(place_names=None, point=Point(lat=-47.00001, lon=-30.5))
    data = cap_from_view(
        as_view(bulletin.model_copy(update={"area": area, "marking": Marking.GREEN}))
    )
    areas = root_of(data).findall("cap:info/cap:area", NS)
    assert [a.findtext("cap:areaDesc", "", NS) for a in areas] == [UNNAMED_AREA]
    assert areas[0].findtext("cap:circle", "", NS) == "-47.00001,-30.5 0"
    assert from_cap(data)["area"] == {
        "place_names": None,
        "point": {"lat": -47.00001, "lon": -30.5},
        "polygon": None,
    }


# -- redacted views -------------------------------------------------------------------------


def test_policy_redacted_views_validate_keep_withheld_fields_absent_and_list_redactions(
    schema: BulletinSchema,
) -> None:
    views = sample_views(schema, ["alert"], count=40, seed=3)
    assert any(v.withheld("area.place_names") for v in views)
    for view in views:
        data = cap_from_view(view)
        assert xsd_valid(data)
        root = root_of(data)
        expected = [f"{r.path} {r.action} {r.detail}".rstrip() for r in view.redactions]
        assert parameters(data, REDACTION_PARAMETER) == expected
        body, area = view.bulletin.body, view.bulletin.area
        info = root.find("cap:info", NS)
        assert info is not None
        for field, element in (
            ("description", "description"),
            ("instruction", "instruction"),
            ("web", "web"),
            ("onset", "onset"),
        ):
            assert (info.find(f"cap:{element}", NS) is None) == (body[field] is None), field
        descriptions = [a.findtext("cap:areaDesc", "", NS) for a in info.iterfind("cap:area", NS)]
        if area is not None and area.place_names:
            assert descriptions == area.place_names
        elif view.withheld("area.place_names") and area is not None:
            # a shape keeps its <area>, named by the placeholder; no shape, no <area>
            shaped = area.point is not None or area.polygon is not None
            assert descriptions == ([WITHHELD] if shaped else [])
        assert all(
            d in (WITHHELD, UNNAMED_AREA) or (area and d in (area.place_names or ()))
            for d in descriptions
        )


CANARY_POLICY: dict[str, Any] = {
    "version": 3,
    "agencies": {
        KIT_PEER: {"name": "Kit Peer (fictional)", "accepts": ["ACTUAL"]},
        KIT_AGENCY: {"name": "Kit Agency (fictional)", "accepts": ["ACTUAL"]},
    },
    "rules": [
        {
            "id": "canary",
            "source": {"agencies": [KIT_PEER]},
            "recipients": {"agencies": [KIT_AGENCY]},
            "kinds": ["alert"],
            "max_marking": "AMBER",
            "redact": [
                {"field": "area.place_names", "action": "drop"},
                {"field": "body.description", "action": "drop"},
                {"field": "body.sender_contact.name", "action": "mask", "token": "[withheld]"},
                {"tag": "contact", "action": "pseudonymize"},
                {"field": "body.instruction", "action": "truncate", "max_chars": 12},
                {"field": "area.point", "action": "generalize", "grid_km": 10},
            ],
        }
    ],
}


def test_no_redacted_value_reaches_the_cap_document(schema: BulletinSchema) -> None:
    compiled = compile_policy(
        parse_policy(CANARY_POLICY, origin="canary policy"),
        schema,
        RedactionKeys(master=SecretBytes(secrets.token_bytes(32))),
    )
    marker = f"CANARY{secrets.token_hex(6).upper()}"
    original = BulletinGenerator(schema, seed=9, agencies=[KIT_PEER]).bulletin("alert")
    bulletin = original.model_copy(
        update={
            "status": Status.ACTUAL,
            "msg_type": MsgType.NEW,
            "references": [],
            "marking": Marking.AMBER,
            "releasable_to": [],
            "area": Area(
                place_names=[f"{marker}-place", "Tarnfen"],
                point=Point(lat=-47.123456, lon=-30.654321),
            ),
            "body": {
                **original.body,
                "event": f"KEPT-{marker}",
                "description": f"{marker}-description",
                "instruction": f"Stay indoors {marker}-instruction",
                "sender_contact": {
                    "name": f"{marker}-name",
                    "role": "duty officer",
                    "organisation": "Tarnfen Watch",
                    "phone": f"+00 555 0100 {marker}-phone",
                    "email": f"{marker.lower()}-email@kit-peer.example",
                },
            },
        }
    )
    (policy_view,) = compiled.evaluate(bulletin).views
    view = DeliveredView.from_avro(policy_view.avro(schema.kinds["alert"]))
    data = cap_from_view(view)
    text = data.decode()
    assert xsd_valid(data)
    assert f"KEPT-{marker}" in text, "the canary test must be able to fail"
    # The instruction is free text, tagged contact as well: pseudonymize (tag contact)
    # is more restrictive than truncate (the field), so no word of it is left.
    assert "Stay indoors" not in text
    instruction = root_of(data).findtext("cap:info/cap:instruction", "", NS)
    assert instruction.startswith("pseudonym:")
    for leaked in ("place", "description", "instruction", "name", "phone", "email"):
        assert f"{marker}-{leaked}" not in text
        assert f"{marker.lower()}-{leaked}" not in text
    assert marker.lower() not in text
    assert text.count(marker) == 1  # only the event, which no rule redacts
    assert "47.123456" not in text
    assert "30.654321" not in text
    assert {p.split()[0] for p in parameters(data, REDACTION_PARAMETER)} == {
        r.path for r in view.redactions
    }
    assert "area.place_names DROP" in parameters(data, REDACTION_PARAMETER)
    info = root_of(data).find("cap:info", NS)
    assert info is not None
    assert info.find("cap:description", NS) is None
    assert [a.findtext("cap:areaDesc", "", NS) for a in info.iterfind("cap:area", NS)] == [WITHHELD]


# -- CAP -> bulletin ------------------------------------------------------------------------


def test_a_hand_written_cap_alert_maps_to_a_valid_bulletin(schema: BulletinSchema) -> None:
    data = from_cap(cap_document())
    bulletin = schema.from_json(data)
    assert bulletin.bulletin_id == "kit-agency.flood-1"
    assert bulletin.source_agency == KIT_AGENCY
    assert bulletin.issued_at == datetime(2031, 3, 14, 6, 0, tzinfo=UTC)
    assert bulletin.expires_at == datetime(2031, 3, 15, 6, 0, tzinfo=UTC)
    assert (bulletin.status, bulletin.msg_type, bulletin.marking) == (
        Status.ACTUAL,
        MsgType.NEW,
        Marking.GREEN,
    )
    assert bulletin.priority is Priority.HIGH  # from urgency Expected
    assert bulletin.releasable_to == []
    assert bulletin.area == Area(
        place_names=["Brindlemoor", "Tarnfen"],
        point=Point(lat=-47.5, lon=-30.25),  # the circle's centre; its radius is lost
        polygon=[
            Point(lat=-47.1, lon=-30.1),
            Point(lat=-47.2, lon=-30.1),
            Point(lat=-47.2, lon=-30.2),
            Point(lat=-47.1, lon=-30.1),
        ],
    )
    assert bulletin.body == {
        "event": "Rising flooding at Brindlemoor",
        "category": "MET",  # the first category only
        "urgency": "EXPECTED",
        "severity": "SEVERE",
        "certainty": "LIKELY",
        "headline": "Flood warning for Brindlemoor",
        "description": "Water levels keep rising near Tarnfen.",
        "instruction": "Keep to higher ground.",
        "response_types": ["PREPARE", "ALLCLEAR"],
        "onset": datetime(2031, 3, 14, 7, 0, tzinfo=UTC),
        "sender_contact": {
            "name": None,
            "role": None,
            "organisation": "Brindlemoor Watch",
            "phone": "+00 555 0101",
            "email": None,
        },
        "web": "https://kit-agency.example/alerts/1",
    }


@pytest.mark.parametrize(
    ("urgency", "priority"),
    [
        ("Immediate", "URGENT"),
        ("Expected", "HIGH"),
        ("Future", "NORMAL"),
        ("Past", "LOW"),
        ("Unknown", "NORMAL"),
    ],
)
def test_priority_follows_urgency(urgency: str, priority: str) -> None:
    assert from_cap(cap_document(urgency=urgency))["priority"] == priority


def test_a_missing_headline_falls_back_to_the_event(schema: BulletinSchema) -> None:
    data = from_cap(cap_document(headline=None))
    assert data["body"]["headline"] == "Rising flooding at Brindlemoor"
    schema.from_json(data)


@pytest.mark.parametrize(
    ("contact", "field"),
    [
        ("duty.officer@kit-agency.example", "email"),
        ("+00 (555) 0101-22", "phone"),
        # Free text may hold contact details: never `name` (tagged pii only), a field
        # tagged contact, so a rule that redacts tag contact withholds all of it.
        ("Flood desk, ask for the duty officer", "phone"),
        ("DET. VANTERLY, 77TH DIV, TARNFEN POLICE DEPT AT 555 555-0147", "phone"),
    ],
)
def test_free_text_contact_lands_in_the_fitting_person_field(contact: str, field: str) -> None:
    person = from_cap(cap_document(contact=contact))["body"]["sender_contact"]
    assert person[field] == contact
    assert person["organisation"] == "Brindlemoor Watch"  # from senderName
    assert [k for k, v in person.items() if v is not None] == sorted(
        {field, "organisation"}, key=["name", "role", "organisation", "phone", "email"].index
    )


@pytest.mark.parametrize(
    ("codes", "default", "marking"),
    [
        ((), Marking.AMBER, "AMBER"),
        (("FLOOD-2031",), Marking.AMBER, "AMBER"),  # not a TLP code: the default
        (("FLOOD-2031",), Marking.GREEN, "GREEN"),
        (("TLP:CLEAR",), Marking.AMBER, "CLEAR"),
        (("TLP:WHITE",), Marking.AMBER, "CLEAR"),
        (("tlp:amber+strict",), Marking.CLEAR, "AMBER_STRICT"),
        (("TLP:GREEN", "TLP:AMBER", "other"), Marking.CLEAR, "AMBER"),  # the most restrictive
    ],
)
def test_the_marking_comes_from_a_tlp_code_else_the_default(
    codes: tuple[str, ...], default: Marking, marking: str
) -> None:
    assert from_cap(cap_document(codes=codes), default_marking=default)["marking"] == marking


def test_codes_are_ignored_when_marking_from_code_is_off() -> None:
    data = from_cap(
        cap_document(codes=("TLP:CLEAR",)), default_marking=Marking.RED, marking_from_code=False
    )
    assert data["marking"] == "RED"


def test_red_alerts_are_releasable_to_their_addresses(schema: BulletinSchema) -> None:
    document = cap_document(codes=("TLP:RED",), addresses='north-river "vale-fire"')
    bulletin = schema.from_json(from_cap(document))
    assert bulletin.marking is Marking.RED
    assert bulletin.releasable_to == ["north-river", "vale-fire"]
    amber = from_cap(cap_document(codes=("TLP:AMBER",), addresses="north-river"))
    assert amber["releasable_to"] == []


def test_references_become_bulletin_references(schema: BulletinSchema) -> None:
    document = cap_document(
        msg_type="Update",
        references="duty@kit-agency.example,kit-agency.flood-0,2031-03-14T07:30:00+02:00 "
        "other@kit-agency.example,kit-agency:7,2031-03-13T23:00:00-01:00",
    )
    bulletin = schema.from_json(from_cap(document))
    assert bulletin.msg_type is MsgType.UPDATE
    assert [(r.bulletin_id, r.issued_at) for r in bulletin.references] == [
        ("kit-agency.flood-0", datetime(2031, 3, 14, 5, 30, tzinfo=UTC)),
        ("kit-agency:7", datetime(2031, 3, 14, 0, 0, tzinfo=UTC)),
    ]


# -- refused input ----------------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE alert [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
  <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
  <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
  <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
  <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
  <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&lol9;</identifier></alert>
"""


def hostile_documents(tmp_path: Path) -> dict[str, bytes]:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    body = cap_document().split(b"?>", 1)[1]
    return {
        "billion laughs": BILLION_LAUGHS,
        "external entity": cap_document(
            prolog=f'<!DOCTYPE alert [<!ENTITY x SYSTEM "{secret.as_uri()}">]>',
            identifier="&x;",
        ),
        "parameter entity": (
            f'<?xml version="1.0"?><!DOCTYPE alert [<!ENTITY % p SYSTEM "{secret.as_uri()}"> %p;]>'
        ).encode()
        + body,
        "external dtd": f'<!DOCTYPE alert SYSTEM "{secret.as_uri()}">'.encode() + body,
        "deep nesting": (
            f'<alert xmlns="{CAP_NAMESPACE}">'.encode()
            + b"<a>" * 5000
            + b"</a>" * 5000
            + b"</alert>"
        ),
    }


def test_entity_attacks_and_external_access_are_refused_before_parsing(tmp_path: Path) -> None:
    for name, document in hostile_documents(tmp_path).items():
        with pytest.raises(CapRefusal) as caught:
            parse_cap(document)
        assert caught.value.reason == "unsafe_xml", name
        assert "TOP-SECRET-CONTENT" not in caught.value.detail, name


@pytest.mark.parametrize(
    ("document", "reason", "explained"),
    [
        (b"", "invalid_cap", "not well-formed"),
        (b"not xml at all", "invalid_cap", "not well-formed"),
        (cap_document()[:300], "invalid_cap", "not well-formed"),
        (without_sender(), "invalid_cap", "/alert"),
        (cap_document().replace(b"<sender>", b"<x>"), "invalid_cap", "mismatched tag"),
        (cap_document(urgency="Soon"), "invalid_cap", "urgency"),
        (cap_document().replace(b"+02:00</sent>", b"Z</sent>"), "invalid_cap", "sent"),
        (f'<value xmlns="{CAP_NAMESPACE}">x</value>'.encode(), "invalid_cap", "not a CAP 1.2"),
        (b'<alert xmlns="urn:example:not-cap"/>', "invalid_cap", "alert"),
        (cap_document(status="System"), "unmapped_status", "System"),
        (cap_document(status="Draft"), "unmapped_status", "Draft"),
        (cap_document(msg_type="Ack"), "unmapped_msg_type", "Ack"),
        (cap_document(msg_type="Error"), "unmapped_msg_type", "Error"),
        (cap_document(identifier="two words"), "cap_rule", "[identifier_characters]"),
        (cap_document(identifier="-leading-dash"), "bad_identifier", "must match"),
        (cap_document(identifier="x" * 129), "bad_identifier", "128"),
        (cap_document(codes=("TLP:PURPLE",)), "unknown_tlp", "TLP:PURPLE"),
        (cap_document(info=""), "no_info", "<info>"),
        (
            cap_document(msg_type="Update", references="kit-agency.flood-0"),
            "cap_rule",
            "[references_format]",
        ),
        (
            cap_document(msg_type="Update", references="s,bad?id,2031-03-14T07:30:00+02:00"),
            "bad_identifier",
            "references",
        ),
        (
            cap_document().replace(b"T08:00:00+02:00</sent>", b"T24:00:00+02:00</sent>"),
            "bad_time",
            "sent",
        ),
        (
            cap_document().replace(b"-47.5,-30.25 5.5", b"north,east 5"),
            "cap_rule",
            "circle[1]: 'north,east' is not a latitude,longitude pair of decimals",
        ),
        (
            cap_document().replace(b"-47.5,-30.25 5.5", b"nan,-30.25 5"),
            "cap_rule",
            "[coordinate_pair]",
        ),
        (
            cap_document().replace(
                b"<parameter><valueName>EAS-ORG",
                b"<parameter><valueName>liaison:priority</valueName><value>SOONISH</value>"
                b"</parameter><parameter><valueName>EAS-ORG",
            ),
            "bad_parameter",
            "SOONISH",
        ),
    ],
)
def test_unmappable_cap_is_refused_with_a_clear_reason(
    document: bytes, reason: str, explained: str
) -> None:
    caught = refusal(document)
    assert caught.reason == reason
    assert explained in caught.detail


def declared(encoding: str) -> str:
    return f'<?xml version="1.0" encoding="{encoding}"?>'


@pytest.mark.parametrize(
    ("document", "explained"),
    [
        # expat hands names it does not know to Python's codecs, which raise LookupError
        (cap_document(prolog=declared("U-F-8")), "U-F-8"),
        (cap_document(prolog=declared("x" * 5000)), "unknown encoding"),
        (cap_document(prolog=declared("rot13")), "not a text encoding"),
        (cap_document(prolog=declared("base64")), "not a text encoding"),
        # a codec that cannot decode with the parser's error handler raises UnicodeError
        (cap_document(prolog=declared("idna")), "cannot be decoded"),
        # multi-byte codecs expat cannot use raise ValueError
        (cap_document(prolog=declared("utf-32")), "multi-byte encodings"),
        (cap_document(prolog=declared("UTF-7")), "multi-byte encodings"),
        (cap_document(prolog=declared("shift_jis")), "multi-byte encodings"),
        # latin-1 decodes every byte, but \x01 and \x02 are not XML characters
        (
            cap_document(prolog=declared("latin-1")).replace(b"flood-1", b"flood-\x01\x02"),
            "not well-formed",
        ),
        (cap_document(prolog=declared("ascii")).replace(b"flood-1", b"flood-\xff"), "well-formed"),
        (cap_document(prolog=declared("utf-8")).replace(b"flood-1", b"flood-\xc3"), "well-formed"),
        (cap_document(prolog=declared("cp1252")).replace(b"flood-1", b"flood-\x81"), "well-formed"),
        # a UTF-16 byte-order mark followed by garbage: odd length, a lone surrogate
        (b"\xff\xfe" + b"\x00\xd8garbage\xff", "not well-formed"),
        (b"\xfe\xff" + b"\xd8\x00<\x00", "not well-formed"),
        (b"\xff\xfe" + cap_document(), "not well-formed"),
        (b"\xff\xfe\x00\x00" + cap_document(), "not well-formed"),
        # UTF-8 bytes that claim to be UTF-16, or carry a BOM that contradicts the declaration
        (cap_document(prolog=declared("utf-16")), "encoding"),
        (b"\xef\xbb\xbf" + cap_document(prolog=declared("utf-16")), "encoding"),
    ],
)
def test_bogus_or_mismatched_encodings_are_refused_not_crashed(
    document: bytes, explained: str
) -> None:
    with pytest.raises(CapRefusal) as caught:
        parse_cap(document)
    assert caught.value.reason == "invalid_cap"
    assert explained in caught.value.detail
    assert len(caught.value.detail) < 500  # the document is never echoed at length


def test_declared_encodings_the_parser_supports_are_read() -> None:
    for encoding in ("UTF-8", "utf-8", "latin-1", "ISO-8859-1", "US-ASCII", "cp1252"):
        assert parse_cap(cap_document(prolog=declared(encoding))).tag == f"{{{CAP_NAMESPACE}}}alert"
    utf16 = cap_document(prolog=declared("UTF-16")).decode().encode("utf-16")
    assert parse_cap(utf16).tag == f"{{{CAP_NAMESPACE}}}alert"


@pytest.mark.parametrize(
    ("raised", "reason", "explained"),
    [
        (RecursionError("maximum recursion depth exceeded"), "unsafe_xml", "nested too deep"),
        (LookupError("unknown encoding: U-F-8"), "invalid_cap", "U-F-8"),
        (UnicodeDecodeError("utf-8", b"\xc3", 0, 1, "unexpected end"), "invalid_cap", "decoded"),
        (ValueError("multi-byte encodings are not supported"), "invalid_cap", "multi-byte"),
        (TypeError("something unforeseen"), "invalid_cap", "TypeError: something unforeseen"),
    ],
)
def test_any_parser_failure_becomes_a_refusal(
    monkeypatch: pytest.MonkeyPatch, raised: Exception, reason: str, explained: str
) -> None:
    def parser(*args: object, **kwargs: object) -> None:
        raise raised

    monkeypatch.setattr("xmlschema.XMLResource", parser)
    with pytest.raises(CapRefusal) as caught:
        parse_cap(cap_document())
    assert caught.value.reason == reason
    assert explained in caught.value.detail


@pytest.mark.parametrize(
    "sent", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "0001-01-01T00:59:59+01:00"]
)
def test_a_valid_time_outside_the_utc_range_is_refused(sent: str) -> None:
    document = cap_document().replace(
        b"2031-03-14T08:00:00+02:00</sent>", f"{sent}</sent>".encode()
    )
    caught = refusal(document)
    assert caught.reason == "bad_time"
    assert "out of range" in caught.detail


def outcome(data: bytes) -> dict[str, Any] | CapRefusal:
    """The mapped bulletin, or the refusal: anything else raised is a bug."""
    try:
        return from_cap(data)
    except CapRefusal as exc:
        return exc


@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_crash_the_parser(data: bytes) -> None:
    result = outcome(data)
    if isinstance(result, CapRefusal):
        assert result.reason
        assert result.detail


@given(st.data())
def test_damaged_cap_documents_are_refused_or_mapped_never_crash(data: st.DataObject) -> None:
    document = bytearray(cap_document())
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, len(document) - 1))
        document[position] = data.draw(st.integers(0, 255))
    result = outcome(bytes(document))
    if isinstance(result, CapRefusal):
        assert result.reason
        assert result.detail
    else:
        assert result["kind"] == "alert"


# -- the sink's refusals -----------------------------------------------------------------------


def test_a_view_of_another_kind_is_rejected_as_unmapped(schema: BulletinSchema) -> None:
    (view,) = sample_views(schema, ["notice"], count=1)
    with pytest.raises(CapRefusal) as caught:
        cap_from_view(view)
    assert caught.value.reason == "unmapped_kind"


async def test_output_that_does_not_validate_is_never_written(
    tmp_path: Path, schema: BulletinSchema, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(mapping._CATEGORY_TO_CAP, "MET", "Weather")  # not in the XSD
    bulletin = BulletinGenerator(schema, seed=1).bulletin("alert")
    view = as_view(bulletin.model_copy(update={"marking": Marking.GREEN}))
    view = view.model_copy(
        update={
            "bulletin": view.bulletin.model_copy(
                update={"body": {**bulletin.body, "category": "MET"}}
            )
        }
    )
    config = CapSinkConfig(directory=tmp_path / "out")
    sink = ADAPTER.sink.build(config, context(tmp_path, schema))  # type: ignore[union-attr]
    await sink.start()
    with pytest.raises(RecordRejected) as caught:
        await sink.deliver(view)
    await sink.stop()
    assert caught.value.reason == "cap_invalid_output"
    assert "category" in str(caught.value)
    assert list((tmp_path / "out").glob("*.xml")) == []


def test_a_body_without_the_alert_shape_is_refused(schema: BulletinSchema) -> None:
    bulletin = BulletinGenerator(schema, seed=1).bulletin("alert")
    broken = bulletin.model_copy(
        update={"marking": Marking.GREEN, "body": {**bulletin.body, "urgency": "WHENEVER"}}
    )
    with pytest.raises(CapRefusal) as caught:
        cap_from_view(as_view(broken))
    assert caught.value.reason == "unmappable_view"


# -- the source end to end ----------------------------------------------------------------------


async def run_source(
    tmp_path: Path,
    schema: BulletinSchema,
    files: dict[str, bytes],
    *,
    published: int,
    rejected: int,
    **settings: Any,
) -> MemoryOutlet:
    config = CapSourceConfig(directory=tmp_path / "in", poll_interval_s=0.05, **settings)
    source = ADAPTER.source.build(config, context(tmp_path, schema))  # type: ignore[union-attr]
    await source.start()
    for name, data in files.items():
        drop_file(tmp_path / "in", name, data)
    outlet, stop = MemoryOutlet(schema), asyncio.Event()
    task = asyncio.create_task(source.run(outlet, stop))
    try:
        await outlet.wait_for(published=published, rejected=rejected)
        for _ in range(100):  # the last file moves aside just after its record is handed over
            if not list((tmp_path / "in").glob("*.xml")):
                break
            await asyncio.sleep(0.02)  # sleep-ok: bounded poll for the file to move aside
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await source.stop()
    return outlet


async def test_the_source_publishes_and_rejects_by_file(
    tmp_path: Path, schema: BulletinSchema
) -> None:
    outlet = await run_source(
        tmp_path,
        schema,
        {
            "good.xml": cap_document(),
            "draft.xml": cap_document(identifier="kit-agency.draft", status="Draft"),
            "bomb.xml": BILLION_LAUGHS,
            "red-without-addresses.xml": cap_document(identifier="r", codes=("TLP:RED",)),
            "ignored.txt": b"not an xml file name",
        },
        published=1,
        rejected=3,
    )
    assert [b.bulletin_id for b in outlet.published] == ["kit-agency.flood-1"]
    reasons = {r["origin"]: r["reason"] for r in outlet.rejected}
    assert reasons == {
        "draft.xml": "unmapped_status",
        "bomb.xml": "unsafe_xml",
        "red-without-addresses.xml": "invalid_bulletin",
    }
    processed = sorted(p.name for p in (tmp_path / "in" / "processed").iterdir())
    assert processed == ["bomb.xml", "draft.xml", "good.xml", "red-without-addresses.xml"]
    assert (tmp_path / "in" / "ignored.txt").exists()


async def test_large_files_are_rejected_unparsed(tmp_path: Path, schema: BulletinSchema) -> None:
    outlet = await run_source(
        tmp_path, schema, {"big.xml": cap_document()}, published=0, rejected=1, max_bytes=100
    )
    assert outlet.rejected[0]["reason"] == "too_large"


async def test_unreadable_files_move_to_failed(
    tmp_path: Path, schema: BulletinSchema, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreadable(self: CapSource, path: Path) -> bytes:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(CapSource, "_read", unreadable)
    outlet = await run_source(
        tmp_path, schema, {"locked.xml": cap_document()}, published=0, rejected=1
    )
    assert outlet.rejected == [
        {
            "origin": "locked.xml",
            "reason": "unreadable",
            "detail": outlet.rejected[0]["detail"],
        }
    ]
    assert "Permission denied" in outlet.rejected[0]["detail"]
    assert (tmp_path / "in" / "failed" / "locked.xml").exists()


async def test_a_mapping_bug_is_rejected_not_raised(
    tmp_path: Path, schema: BulletinSchema, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: CapSource, data: bytes, agency: str) -> dict[str, object]:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(CapSource, "_map", broken)
    outlet = await run_source(
        tmp_path, schema, {"any.xml": cap_document()}, published=0, rejected=1
    )
    assert outlet.rejected[0]["reason"] == "cap_mapping_error"
    assert (tmp_path / "in" / "processed" / "any.xml").exists()


async def test_the_sink_writes_each_alert_once_and_names_the_file_by_id(
    tmp_path: Path, schema: BulletinSchema
) -> None:
    views = sample_views(schema, ["alert"], count=2)
    config = CapSinkConfig(directory=tmp_path / "out", sender="kit-desk")
    sink = ADAPTER.sink.build(config, context(tmp_path, schema))  # type: ignore[union-attr]
    await sink.start()
    for view in [*views, views[0]]:
        await sink.deliver(view)
    await sink.stop()
    written = Outbox(tmp_path / "out", ".xml").written()
    assert [p.relative_to(tmp_path / "out").as_posix() for p in written] == [
        f"{v.bulletin.source_agency}/{v.bulletin.bulletin_id.replace(':', '%3A')}.xml"
        for v in views
    ]
    for path in written:
        assert xsd_valid(path.read_bytes())
        assert root_of(path.read_bytes()).findtext("cap:sender", "", NS) == "kit-desk"


def test_sent_keeps_the_pattern_for_odd_times(schema: BulletinSchema) -> None:
    bulletin = BulletinGenerator(schema, seed=1).bulletin("alert")
    early = datetime(999, 1, 1, 0, 0, 0, 999000, tzinfo=UTC)
    odd = bulletin.model_copy(
        update={
            "issued_at": early,
            "expires_at": early + timedelta(hours=1),
            "marking": Marking.GREEN,
            "references": [],
            "msg_type": MsgType.NEW,
        }
    )
    sent = root_of(cap_from_view(as_view(odd))).findtext("cap:sent", "", NS)
    assert sent == "0999-01-01T00:00:00-00:00"


async def test_a_symbolic_link_is_never_followed(tmp_path: Path, schema: BulletinSchema) -> None:
    elsewhere = tmp_path / "not-yours.xml"
    elsewhere.write_bytes(cap_document())
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "link.xml").symlink_to(elsewhere)
    outlet = await run_source(tmp_path, schema, {}, published=0, rejected=1)
    assert outlet.rejected[0]["reason"] == "unreadable"
    assert "symbolic link" in outlet.rejected[0]["detail"]
    assert (tmp_path / "in" / "failed" / "link.xml").is_symlink()
    assert elsewhere.exists()
