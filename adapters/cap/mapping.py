"""CAP 1.2 <-> bulletin mapping: pure functions, no I/O beyond reading the shipped XSD.

Parsing untrusted XML goes through :func:`parse_cap` only: xmlschema's
:class:`~xmlschema.XMLResource` with ``defuse="always"`` (any entity declaration,
hence every entity-expansion bomb and external entity, is refused before the
document is parsed) and ``allow="none"`` (the parser never opens a file or a URL,
not even a schema location named in the document). The document is then validated
against the OASIS CAP 1.2 XSD shipped next to this module (``CAP-v1.2.xsd``).

Writing builds an :mod:`xml.etree.ElementTree` tree, serialises it, and validates
the bytes with the same :func:`parse_cap` before anything is written anywhere.

The full mapping table is in the docstring of :mod:`adapters.cap`.
"""

from __future__ import annotations

import io
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from importlib.resources import files
from itertools import islice
from typing import Any

import xmlschema
from xmlschema.exceptions import XMLResourceForbidden, XMLResourceParseError

from adapters.cap.rules import CAP_NAMESPACE, cap_violations
from bus.adapters import DeliveredView, Redaction
from bus.bulletin import BULLETIN_ID_PATTERN, Bulletin, Marking, MsgType, Priority, Status

__all__ = [
    "CAP_NAMESPACE",
    "LIAISON_PARAMETER_PREFIX",
    "REDACTION_PARAMETER",
    "UNNAMED_AREA",
    "WITHHELD",
    "CapRefusal",
    "bulletin_from_cap",
    "cap_from_view",
    "cap_schema",
    "parse_cap",
    "priority_from_urgency",
]

LIAISON_PARAMETER_PREFIX = "liaison:"
"""``<parameter>`` value names Liaison writes (and reads back) for what CAP has no element for."""
REDACTION_PARAMETER = "liaison:redaction"
"""One ``<parameter>`` per redaction in the view's manifest: ``"<path> <action> <detail>"``."""
WITHHELD = "(withheld by sharing policy)"
"""Placeholder for a CAP-required element whose source field the sharing policy withheld."""
UNNAMED_AREA = "(unnamed area)"
"""Placeholder ``areaDesc`` for an area that has a shape but no place names."""

_PLACEHOLDERS = frozenset({WITHHELD, UNNAMED_AREA})
_XSD_FILE = "CAP-v1.2.xsd"
_MAX_REPORTED_ERRORS = 5
_MAX_PARSER_MESSAGE = 200
_BULLETIN_ID = re.compile(BULLETIN_ID_PATTERN)
# Characters XML 1.0 cannot carry at all, not even escaped.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_ADDRESS = re.compile(r'"([^"]*)"|(\S+)')
_CAP_SENDER = re.compile(r"^[^\s,<&]+$")

_STATUS_TO_CAP = {Status.ACTUAL: "Actual", Status.EXERCISE: "Exercise", Status.TEST: "Test"}
_STATUS_FROM_CAP = {cap: status for status, cap in _STATUS_TO_CAP.items()}
_MSG_TYPE_TO_CAP = {MsgType.NEW: "Alert", MsgType.UPDATE: "Update", MsgType.CANCEL: "Cancel"}
_MSG_TYPE_FROM_CAP = {cap: msg_type for msg_type, cap in _MSG_TYPE_TO_CAP.items()}

_CATEGORY_TO_CAP = {
    "GEO": "Geo",
    "MET": "Met",
    "SAFETY": "Safety",
    "SECURITY": "Security",
    "RESCUE": "Rescue",
    "FIRE": "Fire",
    "HEALTH": "Health",
    "ENV": "Env",
    "TRANSPORT": "Transport",
    "INFRA": "Infra",
    "CBRNE": "CBRNE",
    "OTHER": "Other",
}
_RESPONSE_TO_CAP = {
    "SHELTER": "Shelter",
    "EVACUATE": "Evacuate",
    "PREPARE": "Prepare",
    "EXECUTE": "Execute",
    "AVOID": "Avoid",
    "MONITOR": "Monitor",
    "ASSESS": "Assess",
    "ALLCLEAR": "AllClear",
    "NONE": "None",
}
_URGENCY_TO_CAP = {
    "IMMEDIATE": "Immediate",
    "EXPECTED": "Expected",
    "FUTURE": "Future",
    "PAST": "Past",
    "UNKNOWN": "Unknown",
}
_SEVERITY_TO_CAP = {
    "EXTREME": "Extreme",
    "SEVERE": "Severe",
    "MODERATE": "Moderate",
    "MINOR": "Minor",
    "UNKNOWN": "Unknown",
}
_CERTAINTY_TO_CAP = {
    "OBSERVED": "Observed",
    "LIKELY": "Likely",
    "POSSIBLE": "Possible",
    "UNLIKELY": "Unlikely",
    "UNKNOWN": "Unknown",
}


def _reverse(table: Mapping[str, str]) -> dict[str, str]:
    return {cap: ours for ours, cap in table.items()}


_CATEGORY_FROM_CAP = _reverse(_CATEGORY_TO_CAP)
_RESPONSE_FROM_CAP = _reverse(_RESPONSE_TO_CAP)
_URGENCY_FROM_CAP = _reverse(_URGENCY_TO_CAP)
_SEVERITY_FROM_CAP = _reverse(_SEVERITY_TO_CAP)
_CERTAINTY_FROM_CAP = _reverse(_CERTAINTY_TO_CAP)

_PRIORITY_FROM_URGENCY = {
    "IMMEDIATE": Priority.URGENT,
    "EXPECTED": Priority.HIGH,
    "FUTURE": Priority.NORMAL,
    "PAST": Priority.LOW,
    "UNKNOWN": Priority.NORMAL,
}

_TLP_CODES = {marking.label: marking for marking in Marking} | {"TLP:WHITE": Marking.CLEAR}
"""TLP 2.0 labels, plus TLP 1.0's WHITE, which TLP 2.0 renamed CLEAR."""
_MARKING_ORDER = list(Marking)  # CLEAR < GREEN < AMBER < AMBER+STRICT < RED

_CONTACT_FIELDS = ("name", "role", "organisation", "phone", "email")
_CONTACT_PARAMETER = LIAISON_PARAMETER_PREFIX + "contact."
_PRIORITY_PARAMETER = LIAISON_PARAMETER_PREFIX + "priority"
_POLICY_VERSION_PARAMETER = LIAISON_PARAMETER_PREFIX + "policy_version"


class CapRefusal(Exception):  # noqa: N818 - a verdict, like bus.errors.RecordRejected
    """A CAP document that cannot become a bulletin; ``reason`` is a short code for the rejects."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@cache
def cap_schema() -> xmlschema.XMLSchema:
    """The OASIS CAP 1.2 schema shipped with the adapter, built once per process."""
    data = files("adapters.cap").joinpath(_XSD_FILE).read_bytes()
    return xmlschema.XMLSchema(io.BytesIO(data), allow="none", defuse="always")


def _q(name: str) -> str:
    return f"{{{CAP_NAMESPACE}}}{name}"


def _said(exc: BaseException) -> str:
    """A parser's message, cut short: it may quote the untrusted document at length."""
    text = str(exc)
    if len(text) > _MAX_PARSER_MESSAGE:
        return text[:_MAX_PARSER_MESSAGE] + "..."
    return text


# -- parsing untrusted bytes -----------------------------------------------------------


def parse_cap(data: bytes) -> ET.Element:
    """Parse untrusted bytes into a schema-valid CAP 1.2 ``<alert>`` element.

    Raises :class:`CapRefusal` with reason ``unsafe_xml`` (a DTD declaring entities,
    an external entity or DTD, a document nested too deep), ``invalid_cap`` (not
    well-formed, an unknown or unusable character encoding, bytes that do not decode,
    not valid against the XSD, or not an ``<alert>``) or ``cap_rule`` (valid against
    the XSD but breaking a CAP 1.2 rule it cannot check, see :mod:`adapters.cap.rules`),
    with the parser's or validator's explanation (path and reason, or rule name, of
    each problem) in ``detail``. Nothing
    else escapes: whatever the parser or validator raises on these bytes is a refusal.
    """
    schema = cap_schema()  # outside the try: a broken install is not the document's fault
    try:
        resource = xmlschema.XMLResource(io.BytesIO(data), allow="none", defuse="always")
        errors = list(islice(schema.iter_errors(resource), _MAX_REPORTED_ERRORS))
    except XMLResourceForbidden as exc:
        raise CapRefusal(
            "unsafe_xml",
            f"refused before parsing: {exc}; CAP needs no DTD or entities, remove them",
        ) from exc
    except XMLResourceParseError as exc:
        raise CapRefusal("invalid_cap", f"not well-formed XML: {exc}") from exc
    except xmlschema.XMLResourceError as exc:
        # blocked access (allow="none") or a limit exceeded (xmlschema.limits)
        raise CapRefusal("unsafe_xml", f"refused: {exc}") from exc
    except RecursionError as exc:
        raise CapRefusal(
            "unsafe_xml", "refused: the document is nested too deep to parse safely"
        ) from exc
    except LookupError as exc:
        # expat hands an encoding it does not know to Python's codecs: an unknown name
        # ("U-F-8") or a codec that is not a text encoding ("rot13", "base64")
        raise CapRefusal(
            "invalid_cap",
            f"unsupported character encoding in the XML declaration: {_said(exc)}; "
            "CAP documents should be UTF-8",
        ) from exc
    except UnicodeError as exc:
        raise CapRefusal(
            "invalid_cap",
            f"the bytes cannot be decoded in the declared character encoding: {_said(exc)}; "
            "CAP documents should be UTF-8",
        ) from exc
    except ValueError as exc:
        # e.g. "multi-byte encodings are not supported" for a declared utf-32 or utf-7
        raise CapRefusal(
            "invalid_cap",
            f"the XML parser cannot read the document: {_said(exc)}; CAP documents should be UTF-8",
        ) from exc
    except Exception as exc:
        raise CapRefusal(
            "invalid_cap",
            "the XML parser or validator failed on the document "
            f"({type(exc).__name__}: {_said(exc)})",
        ) from exc
    if errors:
        problems = "; ".join(
            f"at {error.path or '/'}: {error.reason or error.message}" for error in errors
        )
        raise CapRefusal("invalid_cap", f"not valid against the OASIS CAP 1.2 schema: {problems}")
    root = resource.root
    if not isinstance(root, ET.Element) or root.tag != _q("alert"):
        tag = getattr(root, "tag", "?")
        raise CapRefusal(
            "invalid_cap", f"the document element is {tag}, not a CAP 1.2 alert {_q('alert')}"
        )
    broken = cap_violations(root)
    if broken:
        shown = "; ".join(str(v) for v in broken[:_MAX_REPORTED_ERRORS])
        more = (
            f" (and {len(broken) - _MAX_REPORTED_ERRORS} more)"
            if len(broken) > _MAX_REPORTED_ERRORS
            else ""
        )
        raise CapRefusal(
            "cap_rule",
            f"valid against the XSD but breaks CAP 1.2 rules the XSD cannot check: {shown}{more}",
        )
    return root


# -- CAP -> bulletin (JSON form) --------------------------------------------------------


def _text(parent: ET.Element, name: str) -> str | None:
    """The text of the first child ``name``: ``None`` if absent, ``""`` if empty."""
    child = parent.find(_q(name))
    if child is None:
        return None
    return child.text or ""


def _collapsed(text: str | None) -> str | None:
    """Whitespace collapsed, as the XSD reads an ``xs:anyURI``."""
    return None if text is None else " ".join(text.split())


def _texts(parent: ET.Element, name: str) -> list[str]:
    return [child.text or "" for child in parent.findall(_q(name))]


def _time(text: str, where: str) -> str:
    """A CAP dateTime as an RFC 3339 UTC timestamp (the bulletin's JSON form)."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise CapRefusal(
            "bad_time", f"<{where}> {text.strip()!r} is not a date-time: {exc}"
        ) from exc
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise CapRefusal("bad_time", f"<{where}> {text.strip()!r} has no UTC offset")
    try:
        return moment.astimezone(UTC).isoformat()
    except OverflowError as exc:  # 0001-01-01T00:00:00+14:00 is before year 1 in UTC
        raise CapRefusal(
            "bad_time", f"<{where}> {text.strip()!r} is out of range in UTC: {exc}"
        ) from exc


def _bulletin_id(text: str, where: str) -> str:
    if not _BULLETIN_ID.fullmatch(text):
        raise CapRefusal(
            "bad_identifier",
            f"<{where}> {text[:80]!r} cannot be a bulletin id: it must match "
            f"{BULLETIN_ID_PATTERN} (1 to 128 letters, digits, '.', '_', ':' or '-', "
            "starting with a letter or digit; no spaces); give the alert such an identifier",
        )
    return text


def _references(text: str) -> list[dict[str, str]]:
    references = []
    for triple in text.split():
        parts = triple.split(",")
        if len(parts) != 3:
            raise CapRefusal(
                "bad_references",
                f"<references> entry {triple[:80]!r} is not a 'sender,identifier,sent' triple; "
                "CAP separates triples with spaces and their parts with commas",
            )
        _, identifier, sent = parts
        references.append(
            {
                "bulletin_id": _bulletin_id(identifier, "references"),
                "issued_at": _time(sent, "references"),
            }
        )
    return references


def _marking(codes: Iterable[str], default: Marking, from_code: bool) -> Marking:
    """The most restrictive TLP code, else ``default``; an unknown ``TLP:`` code is refused."""
    if not from_code:
        return default
    found = []
    for code in codes:
        label = code.strip().upper()
        if not label.startswith("TLP:"):
            continue  # some other code: not carried
        marking = _TLP_CODES.get(label)
        if marking is None:
            known = ", ".join(m.label for m in Marking)
            raise CapRefusal(
                "unknown_tlp",
                f"<code> {code.strip()[:40]!r} looks like a TLP label but is none of TLP 2.0's "
                f"({known}); refusing it rather than guessing how widely it may be shared",
            )
        found.append(marking)
    return max(found, key=_MARKING_ORDER.index) if found else default


def _addresses(text: str | None) -> list[str]:
    """CAP addresses: space-separated, double-quoted when they contain spaces."""
    if not text:
        return []
    return [quoted or bare for quoted, bare in _ADDRESS.findall(text)]


def _coordinates(pair: str, where: str) -> dict[str, float]:
    try:
        lat_text, lon_text = pair.split(",")
        lat, lon = float(lat_text), float(lon_text)
    except ValueError as exc:
        raise CapRefusal(
            "bad_area", f"<{where}> holds {pair[:40]!r}, not a 'latitude,longitude' pair"
        ) from exc
    if not (math.isfinite(lat) and math.isfinite(lon)):
        raise CapRefusal("bad_area", f"<{where}> holds {pair[:40]!r}, not finite coordinates")
    return {"lat": lat, "lon": lon}


def _area(info: ET.Element) -> dict[str, Any] | None:
    place_names: list[str] = []
    polygon: list[dict[str, float]] | None = None
    point: dict[str, float] | None = None
    for area in info.findall(_q("area")):
        description = _text(area, "areaDesc") or ""
        if description not in _PLACEHOLDERS:
            place_names.append(description)
        for text in _texts(area, "polygon"):
            if polygon is None:
                polygon = [_coordinates(pair, "polygon") for pair in text.split()]
        for text in _texts(area, "circle"):
            if point is None:
                pieces = text.split()
                if len(pieces) != 2:
                    raise CapRefusal(
                        "bad_area", f"<circle> {text[:60]!r} is not 'latitude,longitude radius'"
                    )
                point = _coordinates(pieces[0], "circle")
    if not place_names and polygon is None and point is None:
        return None
    return {"place_names": place_names or None, "point": point, "polygon": polygon}


def _parameters(info: ET.Element) -> dict[str, str]:
    """Liaison's own ``<parameter>`` entries (the first of each name); others are not carried."""
    found: dict[str, str] = {}
    for parameter in info.findall(_q("parameter")):
        name = _text(parameter, "valueName") or ""
        if name.startswith(LIAISON_PARAMETER_PREFIX) and name not in found:
            found[name] = _text(parameter, "value") or ""
    return found


def _contact(info: ET.Element, parameters: Mapping[str, str]) -> dict[str, str | None] | None:
    person: dict[str, str | None] = dict.fromkeys(_CONTACT_FIELDS)
    structured = {k: v for k, v in parameters.items() if k.startswith(_CONTACT_PARAMETER)}
    if structured:
        # Written by a Liaison sink: the contact's fields, one parameter each.
        for name in _CONTACT_FIELDS:
            person[name] = structured.get(_CONTACT_PARAMETER + name)
    else:
        person["organisation"] = _text(info, "senderName")
        contact = _text(info, "contact")
        if contact is not None:
            # Free text that may hold contact details ("DET. X AT 555 0147"): it goes only
            # into a field tagged `contact` (and `pii`), so a rule that redacts either tag
            # withholds all of it. An e-mail address alone is `email`; anything else is
            # `phone`, never `name` (tagged `pii` only: a `contact` rule would let it through).
            stripped = contact.strip()
            if _EMAIL.fullmatch(stripped):
                person["email"] = stripped
            else:
                person["phone"] = contact
    return person if any(value is not None for value in person.values()) else None


def priority_from_urgency(urgency: str) -> Priority:
    """CAP urgency to priority: Immediate URGENT, Expected HIGH, Past LOW, else NORMAL."""
    return _PRIORITY_FROM_URGENCY.get(urgency, Priority.NORMAL)


def _enum(table: Mapping[str, str], text: str | None, where: str) -> str:
    value = table.get(text or "")
    if value is None:
        raise CapRefusal("invalid_cap", f"<{where}> {text!r} is not a CAP 1.2 {where}")
    return value


def bulletin_from_cap(
    root: ET.Element,
    *,
    agency: str,
    default_marking: Marking = Marking.AMBER,
    marking_from_code: bool = True,
) -> dict[str, Any]:
    """The bulletin (in its JSON form) that a parsed CAP ``<alert>`` stands for.

    ``root`` comes from :func:`parse_cap` (schema-valid). Raises :class:`CapRefusal`
    for what has no bulletin equivalent (System or Draft status, Ack or Error
    messages, no ``<info>``...). The result is not yet checked against the bulletin
    rules: :meth:`bus.adapters.Outlet.publish` does that and rejects it if need be.
    """
    identifier = _bulletin_id(_text(root, "identifier") or "", "identifier")
    status_text = _text(root, "status") or ""
    status = _STATUS_FROM_CAP.get(status_text)
    if status is None:
        raise CapRefusal(
            "unmapped_status",
            f"<status> {status_text!r} has no bulletin equivalent; only Actual, Exercise and "
            "Test alerts are shared (System and Draft messages stay in the sending system)",
        )
    msg_type_text = _text(root, "msgType") or ""
    msg_type = _MSG_TYPE_FROM_CAP.get(msg_type_text)
    if msg_type is None:
        raise CapRefusal(
            "unmapped_msg_type",
            f"<msgType> {msg_type_text!r} has no bulletin equivalent; only Alert, Update and "
            "Cancel messages are shared (Ack and Error are CAP-level acknowledgements)",
        )
    info = root.find(_q("info"))
    if info is None:
        raise CapRefusal(
            "no_info",
            "the alert has no <info> block, so no event, urgency, severity or certainty; "
            "an alert bulletin needs them",
        )
    marking = _marking(_texts(root, "code"), default_marking, marking_from_code)
    references_text = _text(root, "references")
    parameters = _parameters(info)

    event = _text(info, "event") or ""
    urgency = _enum(_URGENCY_FROM_CAP, _text(info, "urgency"), "urgency")
    priority_text = parameters.get(_PRIORITY_PARAMETER)
    if priority_text is None:
        priority = priority_from_urgency(urgency)
    elif priority_text in {p.value for p in Priority}:
        priority = Priority(priority_text)
    else:
        raise CapRefusal(
            "bad_parameter",
            f"parameter {_PRIORITY_PARAMETER} is {priority_text[:40]!r}; "
            f"use one of {', '.join(Priority)}",
        )
    onset, expires = _text(info, "onset"), _text(info, "expires")
    headline = _text(info, "headline")
    body: dict[str, Any] = {
        "event": event,
        "category": _enum(_CATEGORY_FROM_CAP, _text(info, "category"), "category"),
        "urgency": urgency,
        "severity": _enum(_SEVERITY_FROM_CAP, _text(info, "severity"), "severity"),
        "certainty": _enum(_CERTAINTY_FROM_CAP, _text(info, "certainty"), "certainty"),
        "headline": headline if headline is not None else event,
        "description": _text(info, "description"),
        "instruction": _text(info, "instruction"),
        "response_types": [
            _enum(_RESPONSE_FROM_CAP, text, "responseType") for text in _texts(info, "responseType")
        ],
        "onset": _time(onset, "onset") if onset is not None else None,
        "sender_contact": _contact(info, parameters),
        "web": _collapsed(_text(info, "web")),
    }
    return {
        "bulletin_id": identifier,
        "source_agency": agency,
        "kind": "alert",
        "issued_at": _time(_text(root, "sent") or "", "sent"),
        "expires_at": _time(expires, "expires") if expires is not None else None,
        "status": status.value,
        "msg_type": msg_type.value,
        "references": _references(references_text) if references_text else [],
        "priority": priority.value,
        "marking": marking.value,
        "releasable_to": _addresses(_text(root, "addresses")) if marking is Marking.RED else [],
        "area": _area(info),
        "body": body,
    }


# -- view -> CAP ---------------------------------------------------------------------------


def _add(parent: ET.Element, name: str, text: str | None = None) -> ET.Element:
    """Append a CAP element, replacing characters XML 1.0 cannot carry with U+FFFD."""
    child = ET.SubElement(parent, _q(name))
    if text is not None:
        child.text = _NOT_XML.sub("\ufffd", text)
    return child


def _maybe(parent: ET.Element, name: str, value: Any) -> None:
    """Append ``name`` only when ``value`` is present: a withheld field stays absent."""
    if value is not None:
        _add(parent, name, str(value))


def _parameter(parent: ET.Element, name: str, value: str) -> None:
    parameter = _add(parent, "parameter")
    _add(parameter, "valueName", name)
    _add(parameter, "value", value)


def _cap_time(value: Any) -> str:
    """``YYYY-MM-DDThh:mm:ss-00:00``: the XSD's pattern, sub-seconds cut off, and UTC
    written ``-00:00`` as CAP 1.2 requires (``<sent>``: "The timezone for UTC MUST be
    represented as -00:00")."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    text = moment.astimezone(UTC).replace(microsecond=0).isoformat()
    return text.removesuffix("+00:00") + "-00:00"


def _number(value: float) -> str:
    """A coordinate in plain decimal notation (never ``1e-05``), exactly as stored."""
    return format(Decimal(repr(float(value))), "f")


def _pair(point: Any) -> str:
    return f"{_number(point.lat)},{_number(point.lon)}"


def _quote_address(address: str) -> str:
    return f'"{address}"' if any(c.isspace() for c in address) else address


def _redaction_value(redaction: Redaction) -> str:
    return f"{redaction.path} {redaction.action} {redaction.detail}".rstrip()


def _contact_text(person: Mapping[str, Any]) -> str | None:
    parts = [str(person[name]) for name in _CONTACT_FIELDS if person.get(name) is not None]
    return ", ".join(parts) if parts else None


def _info(alert: ET.Element, view: DeliveredView) -> None:
    bulletin = view.bulletin
    body = bulletin.body
    info = _add(alert, "info")
    _add(info, "category", _CATEGORY_TO_CAP[body["category"]])
    _add(info, "event", body["event"])
    for response in body.get("response_types") or ():
        _add(info, "responseType", _RESPONSE_TO_CAP[response])
    _add(info, "urgency", _URGENCY_TO_CAP[body["urgency"]])
    _add(info, "severity", _SEVERITY_TO_CAP[body["severity"]])
    _add(info, "certainty", _CERTAINTY_TO_CAP[body["certainty"]])
    if body.get("onset") is not None:
        _add(info, "onset", _cap_time(body["onset"]))
    if bulletin.expires_at is not None:
        _add(info, "expires", _cap_time(bulletin.expires_at))
    person: Mapping[str, Any] = body.get("sender_contact") or {}
    _maybe(info, "senderName", person.get("organisation"))
    _maybe(info, "headline", body.get("headline"))
    _maybe(info, "description", body.get("description"))
    _maybe(info, "instruction", body.get("instruction"))
    _maybe(info, "web", body.get("web"))
    _maybe(info, "contact", _contact_text(person))
    _parameter(info, _PRIORITY_PARAMETER, bulletin.priority.value)
    _parameter(info, _POLICY_VERSION_PARAMETER, str(view.policy_version))
    for name in _CONTACT_FIELDS:
        if person.get(name) is not None:
            _parameter(info, _CONTACT_PARAMETER + name, str(person[name]))
    for redaction in view.redactions:
        _parameter(info, REDACTION_PARAMETER, _redaction_value(redaction))
    _areas(info, view)


def _areas(info: ET.Element, view: DeliveredView) -> None:
    """One ``<area>`` per place name; the shape goes into the first one."""
    area = view.bulletin.area
    if area is None:
        return
    names: Sequence[str] = area.place_names or ()
    if not names and area.point is None and area.polygon is None:
        return
    if not names:
        names = [WITHHELD if view.withheld("area.place_names") else UNNAMED_AREA]
    for i, name in enumerate(names):
        element = _add(info, "area")
        _add(element, "areaDesc", name)
        if i == 0 and area.polygon is not None:
            _add(element, "polygon", " ".join(_pair(p) for p in area.polygon))
        if i == 0 and area.point is not None:
            _add(element, "circle", f"{_pair(area.point)} 0")


def _alert(view: DeliveredView, cap_sender: str) -> ET.Element:
    """The ``<alert>`` element: envelope fields, then the one ``<info>`` block."""
    bulletin = view.bulletin
    alert = ET.Element(_q("alert"))
    _add(alert, "identifier", bulletin.bulletin_id)
    _add(alert, "sender", cap_sender)
    _add(alert, "sent", _cap_time(bulletin.issued_at))
    _add(alert, "status", _STATUS_TO_CAP[bulletin.status])
    _add(alert, "msgType", _MSG_TYPE_TO_CAP[bulletin.msg_type])
    _add(alert, "scope", "Restricted")
    restriction = f"{bulletin.marking.label} (Traffic Light Protocol 2.0)"
    if view.not_for_forwarding:
        restriction += "; not for forwarding"
    _add(alert, "restriction", restriction)
    _add(alert, "addresses", _quote_address(view.recipient))
    _add(alert, "code", bulletin.marking.label)
    if bulletin.references:
        triples = (
            f"{cap_sender},{ref.bulletin_id},{_cap_time(ref.issued_at)}"
            for ref in bulletin.references
        )
        _add(alert, "references", " ".join(triples))
    _info(alert, view)
    return alert


def cap_from_view(view: DeliveredView, *, sender: str | None = None) -> bytes:
    """A delivered alert view as a CAP 1.2 document, validated against the XSD.

    ``sender`` overrides the CAP ``<sender>`` (default: the bulletin's source agency).
    Raises :class:`CapRefusal` with reason ``unmapped_kind`` for a view of another
    kind, ``unmappable_view`` for a body that does not have the alert's shape, and
    ``cap_invalid_output`` if the document is not valid against the XSD or breaks a
    CAP 1.2 rule of :mod:`adapters.cap.rules` (a bug in this mapping): nothing invalid
    is ever written.
    """
    bulletin: Bulletin = view.bulletin
    if bulletin.kind != "alert":
        raise CapRefusal(
            "unmapped_kind",
            f"bulletin {bulletin.bulletin_id} is a {bulletin.kind!r}; the CAP sink maps only "
            "alerts (route other kinds to another adapter)",
        )
    cap_sender = sender if sender is not None else bulletin.source_agency
    try:
        alert = _alert(view, cap_sender)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise CapRefusal(
            "unmappable_view",
            f"the view of alert {bulletin.bulletin_id} does not have an alert's shape "
            f"({type(exc).__name__}: {exc}); it cannot become CAP",
        ) from exc
    ET.indent(alert)
    data: bytes = ET.tostring(
        alert, encoding="UTF-8", xml_declaration=True, default_namespace=CAP_NAMESPACE
    )
    try:
        parse_cap(data)
    except CapRefusal as exc:
        raise CapRefusal(
            "cap_invalid_output",
            f"the CAP written for {bulletin.bulletin_id} does not validate ({exc.detail}); "
            "this is a bug in the CAP adapter, please report it",
        ) from exc
    return data
