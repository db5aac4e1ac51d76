"""The STIX 2.1 adapter: the contract kit both ways, and the mapping itself."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest
import stix2
from pydantic import BaseModel, SecretBytes, ValidationError

from adapters._files import Outbox
from adapters.stix import (
    ADAPTER,
    TLP2_EXTENSION_ID,
    TLP2_MARKING_IDS,
    StixSinkConfig,
    StixSourceConfig,
    bundle_records,
    parse_bundle,
    view_to_bundle,
)
from adapters.stix.sink import NOT_FOR_FORWARDING_LABEL, redaction_line
from adapters.stix.source import InvalidStix, Publish, Reject
from adapters.stix.tlp import tlp2_marking_definition
from bus.adapters import (
    AdapterContext,
    DeliveredView,
    RetryPolicy,
    Sink,
    Source,
    deliver_with_retry,
)
from bus.adapters.testing import (
    KIT_AGENCY,
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
from bus.errors import ConfigError
from bus.policy import RedactionKeys, compile_policy, parse_policy
from bus.schemas import SchemaCatalog

SCHEMA = BulletinSchema(SchemaCatalog.load())
TIMEOUT_S = 10.0

# What the OASIS repository oasis-open/cti-stix-common-objects publishes for TLP 2.0
# (objects/marking-definition/*.json and extension-definition-specifications/tlp-2.0/).
OASIS_TLP2: dict[Marking, tuple[str, str, str]] = {
    Marking.CLEAR: (
        "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
        "TLP:CLEAR",
        "clear",
    ),
    Marking.GREEN: (
        "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
        "TLP:GREEN",
        "green",
    ),
    Marking.AMBER: (
        "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
        "TLP:AMBER",
        "amber",
    ),
    Marking.AMBER_STRICT: (
        "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
        "TLP:AMBER+STRICT",
        "amber+strict",
    ),
    Marking.RED: ("marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1", "TLP:RED", "red"),
}


# -- helpers ----------------------------------------------------------------------------


def write_atomically(directory: Path, name: str, data: bytes) -> None:
    """The inbox protocol: write under a hidden name, then rename into place."""
    directory.mkdir(parents=True, exist_ok=True)
    hidden = directory / f".{name}.tmp"
    hidden.write_bytes(data)
    hidden.replace(directory / name)


def view_of(bulletin: Bulletin, **view: Any) -> DeliveredView:
    return DeliveredView(recipient=KIT_AGENCY, policy_version=1, bulletin=bulletin, **view)


def objects_of(text: str | bytes) -> list[Mapping[str, Any]]:
    return parse_bundle(text.encode() if isinstance(text, str) else text)


def only(objects: list[Mapping[str, Any]], stix_type: str) -> Mapping[str, Any]:
    (found,) = [o for o in objects if o["type"] == stix_type]
    return found


def of_type(objects: list[Mapping[str, Any]], stix_type: str) -> list[Mapping[str, Any]]:
    return [o for o in objects if o["type"] == stix_type]


def liaison_id(report: Mapping[str, Any]) -> str:
    (ref,) = [r for r in report["external_references"] if r["source_name"] == "liaison"]
    return str(ref["external_id"])


def records(text: str | bytes, default: Marking = Marking.AMBER) -> list[Publish | Reject]:
    return bundle_records(
        objects_of(text), file_name="in.json", agency=KIT_AGENCY, default_marking=default
    )


def published(text: str | bytes, default: Marking = Marking.AMBER) -> Bulletin:
    (record,) = [r for r in records(text, default) if isinstance(r, Publish)]
    return SCHEMA.from_json(record.bulletin)


def notice(seed: int = 3, **update: Any) -> Bulletin:
    """A valid notice of KIT_AGENCY, NEW, with ``update`` applied."""
    bulletin = BulletinGenerator(SCHEMA, seed=seed, agencies=[KIT_AGENCY]).bulletin("notice")
    fields: dict[str, Any] = {"msg_type": MsgType.NEW, "references": [], "status": Status.ACTUAL}
    fields.update(update)
    changed = bulletin.model_copy(update=fields)
    SCHEMA.validate(changed)
    return changed


_IDENTITY = "identity--0c4ea0e3-3b6c-4e8b-9f3c-6a1f0e4c9b71"
_T = datetime(2031, 3, 14, 6, 0, tzinfo=UTC)


def stix_report(**properties: Any) -> Any:
    defaults: dict[str, Any] = {
        "name": "Harbour closure at Quellhaven",
        "published": _T,
        "created": _T,
        "modified": _T,
        "object_refs": [_IDENTITY],
    }
    return stix2.v21.Report(**{**defaults, **properties})


def stix_bundle(*objects: Any) -> str:
    identity = stix2.v21.Identity(
        id=_IDENTITY, name="Fictional Threat Desk", created=_T, modified=_T
    )
    return str(stix2.v21.Bundle(identity, *objects).serialize())


# -- the contract kit ---------------------------------------------------------------------


class TestStixSource(SourceContract):
    adapter = ADAPTER
    kinds: ClassVar[Sequence[str] | None] = ["notice"]

    def valid_config(self, tmp_path: Path) -> dict[str, Any]:
        return {"directory": str(tmp_path / "inbox"), "poll_interval_s": 0.02}

    def invalid_configs(self, tmp_path: Path) -> list[dict[str, Any]]:
        good = self.valid_config(tmp_path)
        return [
            {**good, "no_such_setting": 1},
            {**good, "poll_interval_s": 0},
            {**good, "default_marking": "PURPLE"},
            {"poll_interval_s": 1.0},
        ]

    async def feed(
        self, config: BaseModel, bulletins: list[Bulletin], schema: BulletinSchema
    ) -> int:
        assert isinstance(config, StixSourceConfig)
        inbox = config.directory
        for i, bulletin in enumerate(bulletins):
            bundle = view_to_bundle(view_of(bulletin), schema)
            write_atomically(inbox, f"bulletin-{i}.json", bundle.encode())
        write_atomically(inbox, "broken.json", b'{"type": "bundle", "objects": [')
        indicator = stix2.v21.Indicator(
            name="Unrelated indicator",
            pattern="[ipv4-addr:value = '198.51.100.7']",
            pattern_type="stix",
            valid_from=_T,
        )
        write_atomically(inbox, "unmapped.json", stix_bundle(indicator).encode())
        lone = stix_report()
        write_atomically(inbox, "lone-report.json", lone.serialize().encode())
        return 3


class TestStixSink(SinkContract):
    adapter = ADAPTER
    kinds: ClassVar[Sequence[str] | None] = None  # every kind is mapped

    def valid_config(self, tmp_path: Path) -> dict[str, Any]:
        return {"directory": str(tmp_path / "outbox")}

    def invalid_configs(self, tmp_path: Path) -> list[dict[str, Any]]:
        return [{**self.valid_config(tmp_path), "no_such_setting": 1}, {}]

    @staticmethod
    def _directory(config: BaseModel) -> Path:
        assert isinstance(config, StixSinkConfig)
        return config.directory

    async def read_back(self, config: BaseModel) -> list[str]:
        ids = []
        for path in Outbox(self._directory(config), ".json").written():
            ids.append(liaison_id(only(objects_of(path.read_bytes()), "report")))
        return ids

    async def break_native(self, config: BaseModel) -> None:
        directory = self._directory(config)
        directory.mkdir(parents=True, exist_ok=True)
        directory.rename(directory.with_name(directory.name + ".aside"))
        directory.write_text("not a directory")

    async def heal_native(self, config: BaseModel) -> None:
        directory = self._directory(config)
        directory.unlink()
        directory.with_name(directory.name + ".aside").rename(directory)


# -- sink mapping ---------------------------------------------------------------------------


def test_every_kind_maps_to_a_bundle_strict_stix2_accepts() -> None:
    views = sample_views(SCHEMA)
    assert {v.bulletin.kind for v in views} == set(SCHEMA.kinds)
    for view in views:
        text = view_to_bundle(view, SCHEMA)
        bundle = stix2.parse(text, allow_custom=False)  # no custom properties anywhere
        assert isinstance(bundle, stix2.v21.Bundle)
        objects = list(bundle.objects)
        report = only(objects, "report")
        assert liaison_id(report) == view.bulletin.bulletin_id
        assert report["name"]
        assert report["published"] == view.bulletin.issued_at
        assert f"liaison:kind={view.bulletin.kind}" in report["labels"]
        assert f"liaison:status={view.bulletin.status.value}" in report["labels"]
        assert f"liaison:priority={view.bulletin.priority.value}" in report["labels"]
        assert f"liaison:msg_type={view.bulletin.msg_type.value}" in report["labels"]
        assert report["object_marking_refs"][0] == TLP2_MARKING_IDS[Marking.GREEN]
        identity = only(objects, "identity")
        assert identity["name"] == view.bulletin.source_agency
        assert report["created_by_ref"] == identity["id"]


def test_the_kinds_title_and_main_text_fill_name_and_description() -> None:
    expected = {
        "alert": ("headline", "description"),
        "situation_report": ("title", "summary"),
        "request_for_information": ("question", "context"),
        "notice": ("title", "text"),
    }
    for view in sample_views(SCHEMA, count=4):
        report = only(objects_of(view_to_bundle(view, SCHEMA)), "report")
        body = view.bulletin.body
        if view.bulletin.kind == "rfi_response":
            assert report["name"] == f"Response to {body['in_reply_to']}"
            assert report.get("description") == body["answer"]
            continue
        title, text = expected[view.bulletin.kind]
        assert report["name"] == body[title]
        assert report.get("description") == body[text]


def test_alert_enums_become_labels() -> None:
    (view,) = sample_views(SCHEMA, ["alert"], count=1)
    labels = only(objects_of(view_to_bundle(view, SCHEMA)), "report")["labels"]
    for name in ("category", "urgency", "severity", "certainty"):
        assert f"liaison:{name}={view.bulletin.body[name]}" in labels


def test_the_same_view_gives_the_same_bytes() -> None:
    for view in sample_views(SCHEMA, count=1):
        assert view_to_bundle(view, SCHEMA) == view_to_bundle(view, SCHEMA)


def test_every_redaction_appears_in_the_note_and_never_a_value() -> None:
    views = sample_views(SCHEMA, count=3)
    assert any(v.redactions for v in views)
    for view in views:
        objects = objects_of(view_to_bundle(view, SCHEMA))
        report = only(objects, "report")
        if not view.redactions:
            assert not of_type(objects, "note")
            continue
        note = only(objects, "note")
        assert list(note["object_refs"]) == [report["id"]]
        assert str(len(view.redactions)) in note["abstract"]
        lines = note["content"].splitlines()
        for redaction in view.redactions:
            line = redaction_line(redaction)
            assert f"- {line}" in lines
            assert line.startswith(f"{redaction.path}: {redaction.action}")
            assert f"(rules {', '.join(redaction.rules)})" in line


def test_a_redacted_field_in_the_bundle_carries_a_granular_marking() -> None:
    views = [v for v in sample_views(SCHEMA, count=3) if v.withheld("area.point")]
    views += [v for v in sample_views(SCHEMA, ["alert"], count=3) if v.redactions]
    assert views
    for view in views:
        objects = objects_of(view_to_bundle(view, SCHEMA))
        statements = {
            o["id"]: o["definition"]["statement"]
            for o in of_type(objects, "marking-definition")
            if o.get("definition_type") == "statement"
        }
        marked: dict[str, str] = {}
        for obj in objects:
            for granular in obj.get("granular_markings", ()):
                for selector in granular["selectors"]:
                    marked[f"{obj['type']}.{selector}"] = statements[granular["marking_ref"]]
        if view.withheld("area.point") and view.bulletin.area and view.bulletin.area.point:
            assert "GENERALIZE grid_km=10" in marked["location.latitude"]
            assert "GENERALIZE grid_km=10" in marked["location.longitude"]
        if view.bulletin.kind == "alert" and view.withheld("body.description"):
            assert "TRUNCATE max_chars=40" in marked["report.description"]


def test_not_for_forwarding_is_a_label_and_a_line_in_the_note() -> None:
    bulletin = notice(marking=Marking.AMBER_STRICT)
    objects = objects_of(view_to_bundle(view_of(bulletin, not_for_forwarding=True), SCHEMA))
    assert NOT_FOR_FORWARDING_LABEL in only(objects, "report")["labels"]
    note = only(objects, "note")
    assert "NOT FOR FORWARDING (TLP:AMBER+STRICT)" in note["content"]
    assert "not for forwarding" in note["abstract"]


def test_dropped_fields_are_absent_from_the_bundle() -> None:
    bulletin = notice(area=Area(point=Point(lat=-47.1, lon=-30.2), place_names=["Tarnmoor"]))
    dropped = bulletin.model_copy(
        update={"area": None, "body": {**bulletin.body, "text": None, "contact": None}}
    )
    view = DeliveredView.model_validate(
        {
            "recipient": KIT_AGENCY,
            "policy_version": 2,
            "rules": ["r1"],
            "redactions": [
                {"path": "area", "action": "DROP", "rules": ["r1"]},
                {"path": "body.text", "action": "DROP", "rules": ["r1"]},
                {"path": "body.contact", "action": "DROP", "rules": ["r1", "r2"]},
            ],
            "bulletin": dropped,
        }
    )
    text = view_to_bundle(view, SCHEMA)
    objects = objects_of(text)
    assert not of_type(objects, "location")
    assert "description" not in only(objects, "report")
    assert "Tarnmoor" not in text
    assert "null" not in text
    content = only(objects, "note")["content"]
    assert "- area: DROP (rules r1)" in content.splitlines()
    assert "- body.contact: DROP (rules r1, r2)" in content.splitlines()


_CANARY_POLICY: dict[str, Any] = {
    "version": 1,
    "agencies": {
        "canary-source": {"name": "Canary Source (fictional)", "accepts": ["ACTUAL"]},
        "canary-sink": {"name": "Canary Sink (fictional)", "accepts": ["ACTUAL"]},
    },
    "rules": [
        {
            "id": "canary-rule",
            "source": {"agencies": ["canary-source"]},
            "recipients": {"agencies": ["canary-sink"]},
            "kinds": ["*"],
            "max_marking": "AMBER",
            "redact": [
                {"field": "area.place_names", "action": "drop"},
                {"field": "body.description", "action": "drop"},
                {"tag": "pii", "action": "drop"},
                {"tag": "free_text", "action": "truncate", "max_chars": 40},
            ],
        }
    ],
}


def test_a_canary_in_a_withheld_field_never_reaches_the_bundle() -> None:
    canaries = [f"CANARY{secrets.token_hex(6)}" for _ in range(5)]
    generator = BulletinGenerator(SCHEMA, seed=5, agencies=["canary-source"])
    original = generator.bulletin("alert")
    bulletin = original.model_copy(
        update={
            "marking": Marking.GREEN,
            "status": Status.ACTUAL,
            "msg_type": MsgType.NEW,
            "references": [],
            "releasable_to": [],
            "area": Area(place_names=[canaries[0]], point=Point(lat=-47.2, lon=-30.4)),
            "body": {
                **original.body,
                "description": f"Flooding reported. {canaries[1]}",
                "instruction": f"{'Keep clear of the lower quay. ' * 3}{canaries[2]}",
                "sender_contact": {
                    "name": canaries[3],
                    "role": "duty officer",
                    "organisation": "Quellhaven Watch",
                    "phone": None,
                    "email": f"{canaries[4]}@canary-source.example",
                },
            },
        }
    )
    SCHEMA.validate(bulletin)
    keys = RedactionKeys(master=SecretBytes(secrets.token_bytes(32)))
    compiled = compile_policy(parse_policy(_CANARY_POLICY, origin="canary"), SCHEMA, keys)
    (policy_view,) = compiled.evaluate(bulletin).views
    view = DeliveredView.from_avro(policy_view.avro(SCHEMA.kinds["alert"]))
    actions = {r.path: r.action for r in view.redactions}
    assert actions["area.place_names"] == "DROP"
    assert actions["body.description"] == "DROP"
    assert actions["body.instruction"] == "TRUNCATE"
    data = view_to_bundle(view, SCHEMA).encode()
    for canary in canaries:
        assert canary.encode() not in data
    assert str(bulletin.body["headline"]).encode() in data  # the check can fail both ways


# -- markings -----------------------------------------------------------------------------


@pytest.mark.parametrize("marking", list(Marking))
def test_tlp2_marking_definitions_have_the_oasis_shape(marking: Marking) -> None:
    ref, name, level = OASIS_TLP2[marking]
    assert TLP2_MARKING_IDS[marking] == ref
    assert json.loads(tlp2_marking_definition(marking).serialize()) == {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": ref,
        "created": "2022-10-01T00:00:00.000Z",
        "name": name,
        "extensions": {
            TLP2_EXTENSION_ID: {"extension_type": "property-extension", "tlp_2_0": level}
        },
    }


@pytest.mark.parametrize("marking", list(Marking))
def test_markings_map_both_ways(marking: Marking) -> None:
    releasable = ["vale-fire", "harbour-watch"] if marking is Marking.RED else []
    bulletin = notice(marking=marking, releasable_to=releasable)
    objects = objects_of(view_to_bundle(view_of(bulletin), SCHEMA))
    ref = OASIS_TLP2[marking][0]
    for stix_type in ("report",) + (("location",) if of_type(objects, "location") else ()):
        assert ref in only(objects, stix_type)["object_marking_refs"]
    assert only([o for o in objects if o["id"] == ref], "marking-definition")["name"] == (
        marking.label
    )
    back = published(view_to_bundle(view_of(bulletin), SCHEMA), default=Marking.CLEAR)
    assert back.marking is marking
    assert back.releasable_to == releasable


@pytest.mark.parametrize(
    ("tlp1", "marking"),
    [
        (stix2.v21.TLP_WHITE, Marking.CLEAR),
        (stix2.v21.TLP_GREEN, Marking.GREEN),
        (stix2.v21.TLP_AMBER, Marking.AMBER),
        (stix2.v21.TLP_RED, Marking.RED),
    ],
)
def test_stix2_tlp1_markings_are_accepted(tlp1: Any, marking: Marking) -> None:
    report = stix_report(object_marking_refs=[tlp1])
    (record,) = records(stix_bundle(tlp1, report), Marking.CLEAR)
    assert isinstance(record, Publish)
    assert record.bulletin["marking"] == marking.value


def test_a_report_without_tlp_takes_the_default_marking() -> None:
    assert published(stix_bundle(stix_report()), Marking.AMBER_STRICT).marking is (
        Marking.AMBER_STRICT
    )


def test_the_most_restrictive_tlp_wins_granular_markings_included() -> None:
    report = stix_report(
        description="Quay closed.",
        object_marking_refs=[TLP2_MARKING_IDS[Marking.GREEN], stix2.v21.TLP_AMBER.id],
        granular_markings=[
            {"marking_ref": TLP2_MARKING_IDS[Marking.AMBER_STRICT], "selectors": ["description"]}
        ],
    )
    (record,) = records(stix_bundle(report))
    assert isinstance(record, Publish)
    assert record.bulletin["marking"] == "AMBER_STRICT"


def test_default_marking_accepts_tlp_labels() -> None:
    config = StixSourceConfig.model_validate(
        {"directory": "x", "default_marking": "TLP:AMBER+STRICT"}
    )
    assert config.default_marking is Marking.AMBER_STRICT
    config = StixSourceConfig.model_validate({"directory": "x", "default_marking": "white"})
    assert config.default_marking is Marking.CLEAR
    with pytest.raises(ValidationError):
        StixSourceConfig.model_validate({"directory": "x", "default_marking": "TLP:PURPLE"})


# -- source mapping -----------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
def test_notice_to_stix_to_notice_keeps_the_mappable_fields(seed: int) -> None:
    original = notice(seed=seed, priority=Priority.HIGH, status=Status.EXERCISE)
    if seed % 2:
        original = original.model_copy(
            update={"area": Area(point=Point(lat=-47.5, lon=-29.25), place_names=["Ashwick"])}
        )
    back = published(view_to_bundle(view_of(original), SCHEMA))
    assert back.bulletin_id == original.bulletin_id
    assert back.source_agency == KIT_AGENCY
    assert back.kind == "notice"
    assert back.issued_at == original.issued_at
    assert back.status is original.status
    assert back.priority is original.priority
    assert back.marking is original.marking
    assert back.releasable_to == original.releasable_to
    assert back.body["title"] == original.body["title"]
    assert back.body["text"] == original.body["text"]
    if original.area is not None and original.area.point is not None:
        assert back.area == Area(point=original.area.point, place_names=original.area.place_names)
    else:
        assert back.area is None


def test_a_report_becomes_a_notice() -> None:
    report = stix_report(
        description="The harbour is closed to small craft until further notice.",
        labels=["liaison:priority=URGENT", "harbour"],
    )
    bulletin = published(stix_bundle(report))
    assert bulletin.kind == "notice"
    assert bulletin.body["title"] == "Harbour closure at Quellhaven"
    assert bulletin.body["text"] == report["description"]
    assert bulletin.issued_at == _T
    assert bulletin.status is Status.ACTUAL
    assert bulletin.priority.value == "URGENT"
    assert bulletin.msg_type is MsgType.NEW


def test_derived_bulletin_ids_are_stable_and_follow_the_report_version() -> None:
    report = stix_report(external_references=[{"source_name": "liaison", "external_id": "no id!"}])
    first = published(stix_bundle(report)).bulletin_id
    uuid = str(report.id).partition("--")[2]
    assert first == f"stix:{uuid}:20310314T060000.000000Z"
    assert published(stix_bundle(report)).bulletin_id == first
    newer = report.new_version(modified=datetime(2031, 3, 14, 7, 0, tzinfo=UTC))
    assert published(stix_bundle(newer)).bulletin_id != first


def test_the_first_location_with_coordinates_is_the_point() -> None:
    place = stix2.v21.Location(latitude=-47.25, longitude=-30.5, name="Quellhaven; Ashwick")
    region = stix2.v21.Location(region="south-america")
    report = stix_report(object_refs=[region.id, place.id])
    result = records(stix_bundle(place, region, report))
    (notice_record,) = [r for r in result if isinstance(r, Publish)]
    assert notice_record.bulletin["area"] == {
        "place_names": ["Quellhaven", "Ashwick"],
        "point": {"lat": -47.25, "lon": -30.5},
        "polygon": None,
    }
    (rejected,) = [r for r in result if isinstance(r, Reject)]
    assert rejected.origin == f"in.json#{region.id}"
    assert rejected.reason == "unmapped_object"
    assert str(report.id) in rejected.detail


def test_every_other_object_is_rejected_one_by_one() -> None:
    indicator = stix2.v21.Indicator(
        pattern="[domain-name:value = 'quay.example']", pattern_type="stix", valid_from=_T
    )
    report = stix_report(object_refs=[indicator.id])
    note = stix2.v21.Note(content="Seen twice.", object_refs=[report.id])
    relationship = stix2.v21.Relationship(indicator.id, "related-to", _IDENTITY)
    custom = {
        "type": "x-fictional-thing",
        "spec_version": "2.1",
        "id": "x-fictional-thing--4b6c2d0e-8a7f-4c1e-9d3b-2f5a6e7c8d90",
        "colour": "teal",
    }
    text = str(
        stix2.v21.Bundle(
            [indicator, report, note, relationship, custom], allow_custom=True
        ).serialize()
    )
    result = records(text)
    assert [type(r).__name__ for r in result] == ["Reject", "Publish", "Reject", "Reject", "Reject"]
    rejected = [r for r in result if isinstance(r, Reject)]
    assert [r.origin for r in rejected] == [
        f"in.json#{indicator.id}",
        f"in.json#{note.id}",
        f"in.json#{relationship.id}",
        f"in.json#{custom['id']}",
    ]
    assert {r.reason for r in rejected} == {"unmapped_object"}
    assert "indicator" in rejected[0].detail
    assert str(report.id) in rejected[0].detail


def test_a_revoked_or_not_for_forwarding_report_is_rejected() -> None:
    revoked = stix_report(revoked=True)
    (record,) = records(stix_bundle(revoked))
    assert isinstance(record, Reject)
    assert record.reason == "revoked"
    view = view_of(
        notice(marking=Marking.RED, releasable_to=["vale-fire"]), not_for_forwarding=True
    )
    result = records(view_to_bundle(view, SCHEMA))
    assert [r.reason for r in result if isinstance(r, Reject)] == [
        "not_for_forwarding",
        "unmapped_object",  # the view's note
    ]


@pytest.mark.parametrize(
    ("data", "found"),
    [
        (b"{not json", "JSONDecodeError"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        (b"", "JSONDecodeError"),
        (b"null", "TypeError"),
        (b"[1, 2]", "no 'type'"),
        (b'{"type": 5}', "expected a STIX 2.1 bundle"),
        (b"[" * 50_000 + b"]" * 50_000, "RecursionError"),
        (b'{"type": "bundle", "id": "bundle--nope", "objects": []}', "bundle--nope"),
        (
            b'{"type": "bundle", "id": "bundle--2e5656a8-a05c-404c-b346-113af7a08fb3",'
            b' "objects": [{"type": "report", "spec_version": "2.1", "name": "x"}]}',
            "required properties for Report",
        ),
    ],
)
def test_unparseable_input_is_invalid_stix_with_the_parsers_message(
    data: bytes, found: str
) -> None:
    with pytest.raises(InvalidStix, match=found):
        parse_bundle(data)


# -- the source, end to end, on bad input ------------------------------------------------------


def _context(tmp_path: Path) -> AdapterContext:
    return AdapterContext(
        agency=KIT_AGENCY, instance="stix-test", schema=SCHEMA, state_dir=tmp_path / "state"
    )


def build_source(config: StixSourceConfig, tmp_path: Path) -> Source:
    assert ADAPTER.source is not None
    source: Source = ADAPTER.source.build(config, _context(tmp_path))
    return source


def build_sink(config: StixSinkConfig, tmp_path: Path) -> Sink:
    assert ADAPTER.sink is not None
    sink: Sink = ADAPTER.sink.build(config, _context(tmp_path))
    return sink


async def test_bad_input_never_crashes_the_source(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    config = StixSourceConfig(directory=inbox, poll_interval_s=0.02)
    source = build_source(config, tmp_path)
    outlet, stop = MemoryOutlet(SCHEMA), asyncio.Event()
    red = stix_report(
        name="Red without recipients", object_marking_refs=[TLP2_MARKING_IDS[Marking.RED]]
    )
    long_name = stix_report(name="x" * 30_000)
    good = stix_report(name="The one good report")
    files: dict[str, bytes] = {
        "garbage.json": b"\x00\x01\x02 not json at all",
        "latin1.json": "caf\u00e9 \u00e0 la cr\u00e8me".encode("latin-1"),
        "empty.json": b"",
        "deep.json": b"[" * 100_000 + b"]" * 100_000,
        "lone.json": good.serialize().encode(),
        "red.json": stix_bundle(red).encode(),
        "long.json": stix_bundle(long_name).encode(),
        "good.json": stix_bundle(good).encode(),
        "ignored.txt": b"not a bundle and not *.json",
    }
    await source.start()
    try:
        task = asyncio.create_task(source.run(outlet, stop))
        for name, data in files.items():
            write_atomically(inbox, name, data)
        await outlet.wait_for(published=1, rejected=7, timeout_s=TIMEOUT_S)
        # The source ending is the event that must not happen: wait for it, briefly.
        ended, _ = await asyncio.wait({task}, timeout=0.1)
        assert not ended, "the source stopped on bad input"
        stop.set()
        await asyncio.wait_for(task, TIMEOUT_S)
    finally:
        stop.set()
        await source.stop()
    assert [b.body["title"] for b in outlet.published] == ["The one good report"]
    reasons = {r["origin"].partition("#")[0]: r["reason"] for r in outlet.rejected}
    assert reasons == {
        "garbage.json": "invalid_stix",
        "latin1.json": "invalid_stix",
        "empty.json": "invalid_stix",
        "deep.json": "invalid_stix",
        "lone.json": "invalid_stix",
        "red.json": "invalid_bulletin",
        "long.json": "invalid_bulletin",
    }
    assert len(outlet.rejected) == 7
    red_detail = next(r["detail"] for r in outlet.rejected if r["origin"].startswith("red.json"))
    assert "red_needs_recipients" in red_detail
    failed = sorted(p.name for p in (inbox / "failed").iterdir())
    assert failed == ["deep.json", "empty.json", "garbage.json", "latin1.json", "lone.json"]
    processed = sorted(p.name for p in (inbox / "processed").iterdir())
    assert processed == ["good.json", "long.json", "red.json"]
    assert (inbox / "ignored.txt").exists()


async def test_sink_start_refuses_an_unusable_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a directory")
    config = StixSinkConfig(directory=blocker / "outbox")
    sink = build_sink(config, tmp_path)
    with pytest.raises(ConfigError, match="outbox"):
        await sink.start()


async def test_a_view_stix_cannot_express_is_rejected_not_a_crash(tmp_path: Path) -> None:
    bulletin = notice(area=Area(point=Point(lat=-47.0, lon=-30.0)))
    off_the_globe = bulletin.model_copy(update={"area": Area(point=Point(lat=95.0, lon=-30.0))})
    sink = build_sink(StixSinkConfig(directory=tmp_path / "outbox"), tmp_path)
    await sink.start()
    try:
        result = await deliver_with_retry(
            sink, view_of(off_the_globe), retry=RetryPolicy(), stop=asyncio.Event()
        )
    finally:
        await sink.stop()
    assert not result.delivered
    assert result.reason == "invalid_stix"
    assert "latitude" in result.detail
    assert Outbox(tmp_path / "outbox", ".json").written() == []


def test_a_deprecated_but_valid_object_is_unmapped_not_invalid() -> None:
    with pytest.warns(stix2.exceptions.STIXDeprecationWarning):
        observed = stix2.v21.ObservedData(
            first_observed=_T,
            last_observed=_T,
            number_observed=1,
            objects={"0": {"type": "ipv4-addr", "value": "198.51.100.7"}},
        )
    (record,) = records(stix2.v21.Bundle(observed).serialize())
    assert isinstance(record, Reject)
    assert record.reason == "unmapped_object"
    assert record.origin == f"in.json#{observed.id}"
