"""Bundles in: STIX 2.1 reports as ``notice`` bulletins, and the directory source.

See the package docstring for the mapping table. Parsing is stix2's; this module
only reads the parsed objects. The mapping is pure (:func:`bundle_records`), so a
file always gives the same records: re-reading it gives the same bulletin ids.
"""

from __future__ import annotations

import asyncio
import re
import threading
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import stix2
from pydantic import BaseModel, ConfigDict, Field, field_validator

from adapters._files import Inbox
from adapters.stix.sink import LABEL_PREFIX, NOT_FOR_FORWARDING_LABEL, RELEASABLE_TO_PREFIX
from adapters.stix.tlp import marking_from_ref, most_restrictive
from bus.adapters import AdapterContext, Outlet
from bus.bulletin import BULLETIN_ID_PATTERN, Bulletin, Marking, Priority, Status

__all__ = [
    "METADATA_TYPES",
    "InvalidStix",
    "Publish",
    "Reject",
    "StixSource",
    "StixSourceConfig",
    "build_source",
    "bundle_records",
    "parse_bundle",
]

METADATA_TYPES = frozenset({"identity", "marking-definition", "extension-definition"})
"""Objects that describe other objects (who, how marked, which extension); never rejected."""

_BULLETIN_ID = re.compile(BULLETIN_ID_PATTERN)
_DETAIL_CHARS = 500
# stix2 changes the global warning filters only through this module, one parse at a
# time: catch_warnings is process-wide, not per thread.
_PARSE_LOCK = threading.Lock()


class StixSourceConfig(BaseModel):
    """Settings of a ``stix`` source: a directory polled for STIX 2.1 bundle files."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    directory: Path = Field(
        description="The inbox: write ``*.json`` bundles elsewhere (or under a name starting "
        "with '.') and rename them in. Handled files move to ``processed/``, unreadable ones "
        "to ``failed/``."
    )
    poll_interval_s: float = Field(
        default=1.0, gt=0, description="Seconds between two looks at the inbox."
    )
    default_marking: Marking = Field(
        default=Marking.AMBER,
        description="The marking of a report that carries no TLP marking (TLP 2.0 or 1.0), "
        "e.g. AMBER, AMBER_STRICT or TLP:AMBER+STRICT.",
    )

    @field_validator("default_marking", mode="before")
    @classmethod
    def _tlp_label(cls, value: Any) -> Any:
        """Accept the TLP label (``TLP:AMBER+STRICT``) as well as the enum symbol."""
        if isinstance(value, str):
            symbol = value.strip().upper().removeprefix("TLP:").replace("+", "_")
            return "CLEAR" if symbol == "WHITE" else symbol
        return value


class InvalidStix(ValueError):  # noqa: N818 - reads as a verdict, like BulletinInvalid
    """The file is not a STIX 2.1 bundle stix2 accepts; the message is the parser's."""


@dataclass(frozen=True)
class Publish:
    """A bulletin (JSON form) to hand to :meth:`Outlet.publish`."""

    origin: str
    bulletin: dict[str, Any]


@dataclass(frozen=True)
class Reject:
    """A STIX object (or file) that becomes no bulletin, for :meth:`Outlet.reject`."""

    origin: str
    reason: str
    detail: str


def _shorten(text: str) -> str:
    return text if len(text) <= _DETAIL_CHARS else text[: _DETAIL_CHARS - 3] + "..."


def parse_bundle(data: bytes) -> list[Mapping[str, Any]]:
    """The top-level objects of a STIX 2.1 bundle, as stix2 parsed them.

    Objects of types stix2 does not know (custom ``x-...`` objects) come back as plain
    mappings. Raises :class:`InvalidStix` with stix2's message for anything else.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidStix(f"not UTF-8 text: {exc}") from exc
    try:
        with _PARSE_LOCK, warnings.catch_warnings():
            # A deprecated property (observed-data's 'objects') is still valid STIX 2.1.
            warnings.simplefilter("ignore", stix2.exceptions.STIXDeprecationWarning)
            parsed = stix2.parse(text, allow_custom=True, version="2.1")
    except Exception as exc:
        # On malformed input stix2 raises anything (JSONDecodeError, STIXError, TypeError,
        # KeyError, RecursionError...): all mean "not a valid bundle", and the message is
        # what the integrator needs.
        raise InvalidStix(_shorten(f"{type(exc).__name__}: {exc}")) from exc
    if not isinstance(parsed, stix2.v21.Bundle):
        found = parsed.get("type") if isinstance(parsed, Mapping) else type(parsed).__name__
        raise InvalidStix(f"expected a STIX 2.1 bundle, found {found!r}")
    return [o for o in parsed.get("objects", ()) if isinstance(o, Mapping)]


def _refs(obj: Mapping[str, Any]) -> list[str]:
    """Every marking-definition id applied to ``obj``, object-level and granular."""
    refs = [str(r) for r in obj.get("object_marking_refs", ())]
    refs += [str(g["marking_ref"]) for g in obj.get("granular_markings", ()) if "marking_ref" in g]
    return refs


def _label_value(labels: Sequence[str], name: str) -> str | None:
    prefix = f"{LABEL_PREFIX}{name}="
    return next((label.removeprefix(prefix) for label in labels if label.startswith(prefix)), None)


def _bulletin_id(report: Mapping[str, Any]) -> str:
    """The liaison external id if valid, else one derived from the report's id and version."""
    for ref in report.get("external_references", ()):
        external = ref.get("external_id")
        if (
            ref.get("source_name") == "liaison"
            and isinstance(external, str)
            and _BULLETIN_ID.fullmatch(external)
        ):
            return external
    modified = report.get("modified") or report.get("created")
    version = f":{modified:%Y%m%dT%H%M%S.%fZ}" if modified is not None else ""
    return f"stix:{str(report['id']).partition('--')[2]}{version}"


def _releasable_to(refs: Iterable[str], by_id: Mapping[str, Mapping[str, Any]]) -> list[str]:
    agencies: list[str] = []
    for ref in refs:
        definition = by_id.get(ref, {}).get("definition")
        statement = definition.get("statement") if isinstance(definition, Mapping) else None
        if isinstance(statement, str) and statement.startswith(RELEASABLE_TO_PREFIX):
            listed = statement.removeprefix(RELEASABLE_TO_PREFIX).split(",")
            agencies += [a.strip() for a in listed if a.strip() and a.strip() not in agencies]
    return agencies


def _location(
    report: Mapping[str, Any], by_id: Mapping[str, Mapping[str, Any]]
) -> Mapping[str, Any] | None:
    """The first location the report references that has a latitude and a longitude."""
    for ref in report.get("object_refs", ()):
        found = by_id.get(str(ref))
        if (
            found is not None
            and found.get("type") == "location"
            and found.get("latitude") is not None
            and found.get("longitude") is not None
        ):
            return found
    return None


def _notice(
    report: Mapping[str, Any],
    by_id: Mapping[str, Mapping[str, Any]],
    *,
    origin: str,
    agency: str,
    default_marking: Marking,
) -> tuple[Publish | Reject, str | None]:
    """One report as a notice (or why not), and the id of the location it used."""
    labels = [str(label) for label in report.get("labels", ())]
    if report.get("revoked"):
        return Reject(origin, "revoked", "the report is revoked: its producer withdrew it"), None
    if NOT_FOR_FORWARDING_LABEL in labels:
        detail = (
            "the report is a Liaison view marked not for forwarding (TLP:AMBER+STRICT or "
            "TLP:RED): it must not be published again"
        )
        return Reject(origin, "not_for_forwarding", detail), None
    location = _location(report, by_id)
    refs = _refs(report) + (_refs(location) if location is not None else [])
    marking = most_restrictive(m for m in map(marking_from_ref, refs) if m is not None)
    status = _label_value(labels, "status")
    priority = _label_value(labels, "priority")
    area: dict[str, Any] | None = None
    if location is not None:
        name = location.get("name")
        places = [p.strip() for p in str(name).split(";") if p.strip()] if name else []
        area = {
            "place_names": places or None,
            "point": {"lat": float(location["latitude"]), "lon": float(location["longitude"])},
            "polygon": None,
        }
    description = report.get("description")
    bulletin = {
        "bulletin_id": _bulletin_id(report),
        "source_agency": agency,
        "kind": "notice",
        "issued_at": Bulletin.millis(report["published"]).isoformat(),
        "expires_at": None,
        "status": status if status in {s.value for s in Status} else Status.ACTUAL.value,
        "msg_type": "NEW",
        "references": [],
        "priority": priority if priority in {p.value for p in Priority} else "NORMAL",
        "marking": (marking or default_marking).value,
        "releasable_to": _releasable_to(refs, by_id),
        "area": area,
        "body": {
            "title": str(report["name"]),
            "text": str(description) if description is not None else None,
            "contact": None,
            "effective_until": None,
        },
    }
    return Publish(origin, bulletin), str(location["id"]) if location is not None else None


def bundle_records(
    objects: Sequence[Mapping[str, Any]],
    *,
    file_name: str,
    agency: str,
    default_marking: Marking,
) -> list[Publish | Reject]:
    """What the source does with each top-level object of a bundle, in bundle order.

    A report becomes a notice (or a rejection saying why not); identities, marking
    and extension definitions are metadata; the location a report took its point
    from is part of that notice; every other object is rejected as
    ``unmapped_object``, never silently ignored.
    """
    by_id = {str(o["id"]): o for o in objects if isinstance(o.get("id"), str)}
    referenced_by: dict[str, str] = {}
    notices: dict[int, Publish | Reject] = {}
    used: set[str] = set()
    for i, obj in enumerate(objects):
        if obj.get("type") != "report":
            continue
        for ref in obj.get("object_refs", ()):
            referenced_by.setdefault(str(ref), str(obj.get("id")))
        try:
            notices[i], location = _notice(
                obj,
                by_id,
                origin=_origin(file_name, obj, i),
                agency=agency,
                default_marking=default_marking,
            )
        except Exception as exc:  # noqa: BLE001 - a shape stix2 accepted that we did not foresee
            reason, detail = "unmappable_report", _shorten(f"{type(exc).__name__}: {exc}")
            notices[i], location = Reject(_origin(file_name, obj, i), reason, detail), None
        if location is not None:
            used.add(location)
    # A second pass, so that an object listed before the report that uses it is known.
    records: list[Publish | Reject] = []
    for i, obj in enumerate(objects):
        if i in notices:
            records.append(notices[i])
        elif obj.get("type") not in METADATA_TYPES and not _in(obj.get("id"), used):
            detail = _unmapped(obj, referenced_by)
            records.append(Reject(_origin(file_name, obj, i), "unmapped_object", detail))
    return records


def _in(stix_id: Any, ids: set[str]) -> bool:
    return isinstance(stix_id, str) and stix_id in ids


def _origin(file_name: str, obj: Mapping[str, Any], index: int) -> str:
    """``file.json#<stix id>``; ``file.json#[index]`` for an object without an id."""
    stix_id = obj.get("id")
    return f"{file_name}#{stix_id}" if isinstance(stix_id, str) else f"{file_name}#[{index}]"


def _unmapped(obj: Mapping[str, Any], referenced_by: Mapping[str, str]) -> str:
    stix_type, stix_id = obj.get("type"), str(obj.get("id"))
    detail = (
        f"a STIX {stix_type} has no Liaison equivalent: only reports become bulletins "
        "(notices), with the first referenced location that has coordinates as their point"
    )
    report = referenced_by.get(stix_id)
    if report is not None:
        detail += f"; {report} references it, and its notice does not carry it"
    elif stix_type == "note":
        refs = ", ".join(str(r) for r in obj.get("object_refs", ()))
        detail += f"; the note is about {refs}"
    return detail


class StixSource:
    """Publishes every report of the STIX 2.1 bundles dropped into a directory as a notice.

    Each file is read whole; once each of its objects has been published or
    rejected, it moves to ``processed/``. A file stix2 cannot parse is rejected as
    a whole (``invalid_stix``) and moves to ``failed/``.
    """

    def __init__(self, config: StixSourceConfig, context: AdapterContext) -> None:
        self.config = config
        self.log = context.log
        self.inbox = Inbox(config.directory, "*.json", config.poll_interval_s)

    async def start(self) -> None:
        await asyncio.to_thread(self.inbox.prepare)

    async def run(self, outlet: Outlet, stop: asyncio.Event) -> None:
        async for path in self.inbox.files(stop):
            if not await self._take(path, outlet, stop):
                return

    async def _take(self, path: Path, outlet: Outlet, stop: asyncio.Event) -> bool:
        """Handle one file; False if stopped before its end (it stays, and is read again)."""
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except OSError as exc:
            self.log.warning("cannot read %s (%s); trying again at the next poll", path, exc)
            return True
        try:
            objects = await asyncio.to_thread(parse_bundle, data)
        except InvalidStix as exc:
            await outlet.reject(origin=path.name, reason="invalid_stix", detail=str(exc))
            await asyncio.to_thread(self.inbox.fail, path)
            return True
        records = bundle_records(
            objects,
            file_name=path.name,
            agency=outlet.agency,
            default_marking=self.config.default_marking,
        )
        for record in records:
            if stop.is_set():
                return False
            if isinstance(record, Publish):
                await outlet.publish(record.bulletin, origin=record.origin)
            else:
                await outlet.reject(
                    origin=record.origin, reason=record.reason, detail=record.detail
                )
        await asyncio.to_thread(self.inbox.done, path)
        return True

    async def stop(self) -> None:
        return None


def build_source(config: StixSourceConfig, context: AdapterContext) -> StixSource:
    """The :class:`bus.adapters.SourceFactory` build function."""
    return StixSource(config, context)
