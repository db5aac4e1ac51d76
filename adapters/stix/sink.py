"""Views out: a :class:`DeliveredView` of any kind as a STIX 2.1 bundle, and the sink.

See the package docstring for the mapping table. Everything here is deterministic:
the same view always gives the same bytes (ids are UUIDv5, timestamps come from the
bulletin), so a redelivered view is recognisable even outside the outbox.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import stix2
from pydantic import BaseModel, ConfigDict, Field

from adapters._files import Outbox
from adapters.stix.tlp import TLP2_MARKING_IDS, tlp2_marking_definition
from bus.adapters import AdapterContext, DeliveredView, Redaction
from bus.bulletin import Bulletin, BulletinSchema
from bus.errors import RecordRejected

__all__ = [
    "LABEL_PREFIX",
    "LIAISON_EPOCH",
    "LIAISON_NAMESPACE",
    "NOT_FOR_FORWARDING_LABEL",
    "RELEASABLE_TO_PREFIX",
    "StixSink",
    "StixSinkConfig",
    "build_sink",
    "redaction_line",
    "view_to_bundle",
]

LIAISON_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:liaison:adapters:stix")
"""The UUIDv5 namespace of every id the adapter derives."""

LIAISON_EPOCH = "2024-01-01T00:00:00.000Z"
"""``created``/``modified`` of derived objects not tied to one bulletin (agency
identities, statement markings): each id always comes with the same version."""

LABEL_PREFIX = "liaison:"
"""Labels the adapter writes (and reads back) look like ``liaison:status=ACTUAL``."""

NOT_FOR_FORWARDING_LABEL = "liaison:not-for-forwarding"
"""Set on the report of a view the recipient must not pass on (AMBER+STRICT, RED)."""

RELEASABLE_TO_PREFIX = "Liaison: releasable only to the agencies "
"""The statement marking that carries ``releasable_to`` (comma-separated agency ids)."""

_REDACTION_PREFIX = "Liaison: changed or withheld by the sharing policy: "

# The body field whose value names the report, per kind; other kinds use the first
# of _TITLE_FALLBACK present. rfi_response has none: its report is named after the
# request it answers.
_TITLE_FIELD: dict[str, str] = {
    "alert": "headline",
    "situation_report": "title",
    "request_for_information": "question",
    "notice": "title",
}
_TITLE_FALLBACK = ("headline", "title", "subject", "question", "event")
_TEXT_FIELD: dict[str, str] = {
    "alert": "description",
    "situation_report": "summary",
    "request_for_information": "context",
    "rfi_response": "answer",
    "notice": "text",
}
_TEXT_FALLBACK = ("text", "description", "summary", "answer", "context")
# report_types is an open vocabulary (report-type-ov); warnings and incident reports
# are threat reports, the other kinds name themselves.
_REPORT_TYPES: dict[str, str] = {"alert": "threat-report", "situation_report": "threat-report"}


class StixSinkConfig(BaseModel):
    """Settings of a ``stix`` sink: one STIX 2.1 bundle file per delivered view."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    directory: Path = Field(
        description="The outbox: one ``<source agency>/<bulletin id>.json`` bundle per view "
        "(':' becomes '%3A'), "
        "written atomically; an existing file means the view was already delivered."
    )


@dataclass(frozen=True)
class _Selected:
    """A body field chosen to fill a STIX property: its liaison path and value."""

    path: str
    value: str


def _derived_id(stix_type: str, *parts: str) -> str:
    """``<type>--<UUIDv5>`` of the type and ``parts``: the same parts give the same id."""
    return f"{stix_type}--{uuid.uuid5(LIAISON_NAMESPACE, '|'.join((stix_type, *parts)))}"


def _pick(
    body: Mapping[str, Any], preferred: str | None, fallback: Sequence[str]
) -> _Selected | None:
    """The kind's own field if the kind is known (absent or withheld: None, no guessing),
    else the first fallback field holding text."""
    for name in [preferred] if preferred else fallback:
        value = body.get(name)
        if isinstance(value, str):
            return _Selected(f"body.{name}", value)
    return None


def _title(bulletin: Bulletin) -> _Selected:
    body = bulletin.body
    if bulletin.kind == "rfi_response":
        request = body.get("in_reply_to")
        if isinstance(request, str):
            return _Selected("body.in_reply_to", f"Response to {request}")
    chosen = _pick(body, _TITLE_FIELD.get(bulletin.kind), _TITLE_FALLBACK)
    if chosen is not None:
        return chosen
    return _Selected("", f"{bulletin.kind} {bulletin.bulletin_id}")


def _text(bulletin: Bulletin) -> _Selected | None:
    return _pick(bulletin.body, _TEXT_FIELD.get(bulletin.kind), _TEXT_FALLBACK)


def _enum_branches(typ: Any, ns: str, types: Mapping[str, Any]) -> tuple[bool, bool]:
    """Whether an Avro field type is an enum, or an array of enums (through unions)."""
    is_enum = is_array = False
    for branch in typ if isinstance(typ, list) else [typ]:
        if isinstance(branch, dict) and branch.get("type") == "array":
            is_array = is_array or _enum_branches(branch.get("items"), ns, types)[0]
        elif isinstance(branch, dict) and branch.get("type") == "enum":
            is_enum = True
        elif isinstance(branch, str):
            full = branch if "." in branch else f"{ns}.{branch}"
            named = types.get(full)
            is_enum = is_enum or (isinstance(named, dict) and named.get("type") == "enum")
    return is_enum, is_array


def _enum_labels(bulletin: Bulletin, schema: BulletinSchema) -> list[str]:
    """``liaison:<field>=<SYMBOL>`` for every enum field of the body (from the kind's schema)."""
    full = schema.kinds.get(bulletin.kind)
    record = schema.catalog.types.get(full) if full else None
    if not isinstance(record, dict):
        return []
    ns = str(full).rpartition(".")[0]
    labels: list[str] = []
    for field in record.get("fields", []):
        value = bulletin.body.get(field["name"])
        if value is None:
            continue
        is_enum, is_array = _enum_branches(field["type"], ns, schema.catalog.types)
        if is_enum and isinstance(value, str):
            labels.append(f"{LABEL_PREFIX}{field['name']}={value}")
        elif is_array and isinstance(value, list):
            labels.extend(f"{LABEL_PREFIX}{field['name']}={v}" for v in value if isinstance(v, str))
    return labels


def _labels(view: DeliveredView, schema: BulletinSchema) -> list[str]:
    b = view.bulletin
    labels = [
        f"{LABEL_PREFIX}kind={b.kind}",
        f"{LABEL_PREFIX}status={b.status}",
        f"{LABEL_PREFIX}priority={b.priority}",
        f"{LABEL_PREFIX}msg_type={b.msg_type}",
    ]
    if view.not_for_forwarding:
        labels.append(NOT_FOR_FORWARDING_LABEL)
    return labels + _enum_labels(b, schema)


def _what_was_done(redaction: Redaction) -> str:
    action = f"{redaction.action} {redaction.detail}" if redaction.detail else redaction.action
    rules = ", ".join(redaction.rules) if redaction.rules else "none named"
    return f"{action} (rules {rules})"


def redaction_line(redaction: Redaction) -> str:
    """One redaction as the note lists it: ``<path>: <action> <detail> (rules ...)``."""
    return f"{redaction.path}: {_what_was_done(redaction)}"


def _statement(text: str, name: str) -> Any:
    return stix2.v21.MarkingDefinition(
        id=_derived_id("marking-definition", "statement", text),
        created=LIAISON_EPOCH,
        name=name,
        definition_type="statement",
        definition=stix2.v21.StatementMarking(statement=text),
    )


class _Markings:
    """The marking definitions a bundle needs, and the granular markings of one object."""

    def __init__(self, view: DeliveredView) -> None:
        self.view = view
        self.definitions: dict[str, Any] = {}
        tlp = tlp2_marking_definition(view.bulletin.marking)
        self.definitions[str(tlp.id)] = tlp
        self.object_refs = [TLP2_MARKING_IDS[view.bulletin.marking]]
        if view.bulletin.releasable_to:
            text = RELEASABLE_TO_PREFIX + ", ".join(view.bulletin.releasable_to)
            statement = _statement(text, "Liaison releasable_to")
            self.definitions[str(statement.id)] = statement
            self.object_refs.append(str(statement.id))

    def granular(self, selectors: Mapping[str, str]) -> list[dict[str, Any]]:
        """Granular markings for the STIX properties (selector -> liaison path) redacted."""
        by_marking: dict[str, list[str]] = {}
        for selector, path in selectors.items():
            redaction = self.view.withheld(path) if path else None
            if redaction is None:
                continue
            statement = _statement(
                _REDACTION_PREFIX + _what_was_done(redaction), "Liaison redaction"
            )
            self.definitions[str(statement.id)] = statement
            by_marking.setdefault(str(statement.id), []).append(selector)
        return [{"marking_ref": ref, "selectors": sel} for ref, sel in by_marking.items()]


def _common(markings: _Markings, selectors: Mapping[str, str], **properties: Any) -> dict[str, Any]:
    granular = markings.granular(selectors)
    out = {**properties, "object_marking_refs": list(markings.object_refs)}
    if granular:
        out["granular_markings"] = granular
    return out


def _note(view: DeliveredView, report_id: str, markings: _Markings) -> Any | None:
    b = view.bulletin
    if not view.redactions and not view.not_for_forwarding:
        return None
    lines = [
        f"Liaison view of bulletin {b.bulletin_id} for {view.recipient}, "
        f"sharing policy version {view.policy_version}"
        + (f", delivered under rules {', '.join(view.rules)}." if view.rules else "."),
    ]
    if view.not_for_forwarding:
        lines.append(
            f"NOT FOR FORWARDING ({b.marking.label}): {view.recipient} must not pass "
            "this bulletin on."
        )
    if view.redactions:
        lines.append("Fields changed or withheld by the sharing policy (values never shown):")
        lines.extend(f"- {redaction_line(r)}" for r in view.redactions)
    parts = []
    if view.redactions:
        parts.append(f"{len(view.redactions)} field(s) changed or withheld by the sharing policy")
    if view.not_for_forwarding:
        parts.append("not for forwarding")
    return stix2.v21.Note(
        id=_derived_id("note", "view", view.recipient, b.bulletin_id),
        created=b.issued_at,
        modified=b.issued_at,
        abstract="Liaison: " + "; ".join(parts),
        content="\n".join(lines),
        authors=["Liaison"],
        object_refs=[report_id],
        object_marking_refs=list(markings.object_refs),
    )


def _location(view: DeliveredView, identity_id: str, markings: _Markings) -> Any | None:
    b = view.bulletin
    if b.area is None or b.area.point is None:
        return None
    properties: dict[str, Any] = {
        "latitude": b.area.point.lat,
        "longitude": b.area.point.lon,
    }
    selectors = {"latitude": "area.point.lat", "longitude": "area.point.lon"}
    if b.area.place_names:
        properties["name"] = "; ".join(b.area.place_names)
        selectors["name"] = "area.place_names"
    return stix2.v21.Location(
        **_common(
            markings,
            selectors,
            id=_derived_id("location", "view", view.recipient, b.bulletin_id, "area.point"),
            created=b.issued_at,
            modified=b.issued_at,
            created_by_ref=identity_id,
            **properties,
        )
    )


def _identity(agency: str) -> Any:
    return stix2.v21.Identity(
        id=_derived_id("identity", "agency", agency),
        created=LIAISON_EPOCH,
        modified=LIAISON_EPOCH,
        name=agency,
        identity_class="organization",
        description=f"The Liaison agency {agency}.",
    )


def _external_references(b: Bulletin) -> list[dict[str, str]]:
    refs = [{"source_name": "liaison", "external_id": b.bulletin_id}]
    web = b.body.get("web")
    if isinstance(web, str) and web:
        refs.append({"source_name": b.source_agency, "url": web})
    return refs


def _bundle(view: DeliveredView, schema: BulletinSchema) -> Any:
    b = view.bulletin
    markings = _Markings(view)
    identity = _identity(b.source_agency)
    location = _location(view, str(identity.id), markings)
    title, text = _title(b), _text(b)
    report_properties: dict[str, Any] = {"name": title.value}
    selectors = {"name": title.path}
    if text is not None:
        report_properties["description"] = text.value
        selectors["description"] = text.path
    report = stix2.v21.Report(
        **_common(
            markings,
            selectors,
            id=_derived_id("report", "view", view.recipient, b.bulletin_id),
            created=b.issued_at,
            modified=b.issued_at,
            published=b.issued_at,
            created_by_ref=str(identity.id),
            report_types=[_REPORT_TYPES.get(b.kind, b.kind.replace("_", "-"))],
            labels=_labels(view, schema),
            external_references=_external_references(b),
            object_refs=[str(identity.id)] + ([str(location.id)] if location is not None else []),
            **report_properties,
        )
    )
    note = _note(view, str(report.id), markings)
    objects = [*markings.definitions.values(), identity]
    objects += [o for o in (location, report, note) if o is not None]
    return stix2.v21.Bundle(
        objects=objects, id=_derived_id("bundle", "view", view.recipient, b.bulletin_id)
    )


def view_to_bundle(view: DeliveredView, schema: BulletinSchema) -> str:
    """The view as a STIX 2.1 bundle (JSON text); :class:`RecordRejected` if STIX refuses it.

    ``schema`` names the kind's enum fields, which become labels.
    """
    try:
        bundle = _bundle(view, schema)
        return str(bundle.serialize(pretty=True))
    except (stix2.exceptions.STIXError, ValueError, TypeError) as exc:
        raise RecordRejected(
            f"bulletin {view.dedup_key} cannot be expressed in STIX 2.1: {exc}; "
            "the view is kept in the rejects instead",
            reason="invalid_stix",
        ) from exc


class StixSink:
    """Writes each delivered view as a STIX 2.1 bundle file into an outbox directory.

    Idempotent by bulletin id (:class:`adapters._files.Outbox`): a redelivered view
    finds its file and writes nothing. An unwritable directory raises a retriable
    :class:`bus.errors.DeliveryError`.
    """

    def __init__(self, config: StixSinkConfig, context: AdapterContext) -> None:
        self.config = config
        self.schema = context.schema
        self.log = context.log
        self.outbox = Outbox(config.directory, ".json")

    async def start(self) -> None:
        await asyncio.to_thread(self.outbox.prepare)

    async def deliver(self, view: DeliveredView) -> None:
        data = view_to_bundle(view, self.schema).encode("utf-8")
        if not await self.outbox.write(view.dedup_key, data):
            self.log.info("bulletin %s is already in the outbox; not written again", view.dedup_key)

    async def stop(self) -> None:
        return None


def build_sink(config: StixSinkConfig, context: AdapterContext) -> StixSink:
    """The :class:`bus.adapters.SinkFactory` build function."""
    return StixSink(config, context)
