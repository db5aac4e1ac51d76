"""What the admin API knows, folded from Kafka topics: agencies, policies, audit, dead letters.

Each class is a pure fold (``apply(record)``) plus queries, so it is tested without a
broker; :class:`bus.api._follow.TopicFollower` feeds it from the real topic.
"""

from __future__ import annotations

import base64
import json
import logging
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from bus.audit._keys import fingerprint_of
from bus.kafka import Record
from bus.provision import AgencyRecord
from bus.topics import TopicNames

__all__ = [
    "ACTIVE_KEY",
    "Activation",
    "AgencyDirectory",
    "AuditLedger",
    "DeadLetterIndex",
    "DeadLetterInfo",
    "PolicyHistory",
    "PolicyVersion",
    "activation_key",
    "event_concerns",
    "event_for_agency",
    "event_visible_to",
    "version_key",
]

log = logging.getLogger("liaison.api")

ACTIVE_KEY = b"active"
"""The record the edge routers follow: the policy in force, as JSON."""


def version_key(version: int) -> bytes:
    return f"version:{version:010d}".encode()


def activation_key(sequence: int) -> bytes:
    return f"activation:{sequence:010d}".encode()


class AgencyDirectory:
    """The latest record of every agency (the compacted ``agencies`` topic)."""

    def __init__(self) -> None:
        self.agencies: dict[str, AgencyRecord] = {}

    def apply(self, record: Record) -> None:
        if record.key is None:
            return
        agency = record.key.decode(errors="replace")
        if record.value is None:
            self.agencies.pop(agency, None)
            return
        try:
            self.agencies[agency] = AgencyRecord.model_validate_json(record.value)
        except ValidationError:
            log.error("ignoring an unreadable agency record at offset %d", record.offset)


class PolicyVersion(BaseModel):
    """A stored policy version: immutable once put."""

    version: int
    policy: dict[str, Any]
    actor: str
    time: datetime


class Activation(BaseModel):
    """One activation (or roll-back) of a policy version, in order."""

    sequence: int
    version: int
    previous: int | None
    action: str
    actor: str
    time: datetime


class PolicyHistory:
    """Policy versions, their activations, and which is in force."""

    def __init__(self) -> None:
        self.versions: dict[int, PolicyVersion] = {}
        self.activations: list[Activation] = []
        self.active_document: dict[str, Any] | None = None

    def apply(self, record: Record) -> None:
        if record.key is None or record.value is None:
            return
        key = record.key
        try:
            if key == ACTIVE_KEY:
                self.active_document = json.loads(record.value)
            elif key.startswith(b"version:"):
                stored = PolicyVersion.model_validate_json(record.value)
                self.versions[stored.version] = stored
            elif key.startswith(b"activation:"):
                self.activations.append(Activation.model_validate_json(record.value))
                self.activations.sort(key=lambda a: a.sequence)
        except (ValueError, ValidationError):
            log.error("ignoring an unreadable policy record at offset %d", record.offset)

    @property
    def active_version(self) -> int | None:
        """The version in force (what the routers follow), if any."""
        if self.active_document is None:
            return None
        version = self.active_document.get("version")
        return version if isinstance(version, int) else None

    @property
    def next_sequence(self) -> int:
        return self.activations[-1].sequence + 1 if self.activations else 1


@dataclass
class DeadLetterInfo:
    """A dead letter without its bytes: what the list shows."""

    id: str
    partition: int
    offset: int
    reason: str
    detail: str
    source_topic: str
    source_partition: int | None
    source_offset: int | None
    source_agency: str | None
    key: str | None
    size: int
    time_ms: int
    replayed: bool = False


def _header(record: Record, name: str) -> str:
    for key, value in record.headers:
        if key == name:
            return value.decode(errors="replace")
    return ""


def _int_or_none(text: str) -> int | None:
    return int(text) if text.isdigit() else None


class DeadLetterIndex:
    """Every dead letter's coordinates and reason, in offset order."""

    def __init__(self, names: TopicNames) -> None:
        self.names = names
        self.letters: dict[str, DeadLetterInfo] = {}
        self.by_reason: Counter[str] = Counter()

    def apply(self, record: Record) -> None:
        source_topic = _header(record, "liaison.source.topic")
        info = DeadLetterInfo(
            id=f"{record.partition}-{record.offset}",
            partition=record.partition,
            offset=record.offset,
            reason=_header(record, "liaison.reason") or "unknown",
            detail=_header(record, "liaison.detail"),
            source_topic=source_topic,
            source_partition=_int_or_none(_header(record, "liaison.source.partition")),
            source_offset=_int_or_none(_header(record, "liaison.source.offset")),
            source_agency=self.names.agency_of(source_topic),
            key=record.key.decode(errors="replace") if record.key is not None else None,
            size=len(record.value or b""),
            time_ms=record.timestamp_ms,
        )
        self.letters[info.id] = info
        self.by_reason[info.reason] += 1


@dataclass
class _Flow:
    delivered: int = 0
    withheld: int = 0


@dataclass
class AuditLedger:
    """Counters and the most recent decisions, folded from the audit topic."""

    names: TopicNames
    recent_size: int = 200
    decisions: Counter[str] = field(default_factory=Counter)
    bulletins_in: Counter[str] = field(default_factory=Counter)
    views_out: Counter[str] = field(default_factory=Counter)
    redactions: Counter[str] = field(default_factory=Counter)
    withheld: Counter[str] = field(default_factory=Counter)
    flows: dict[tuple[str, str], _Flow] = field(default_factory=dict)
    replayed: set[str] = field(default_factory=set)
    checkpoints: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The latest checkpoint of each chain."""
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Signing keys published in the log (``audit.key`` events), by key id."""
    events: int = 0
    recent: deque[dict[str, Any]] = field(init=False)

    def __post_init__(self) -> None:
        self.recent = deque(maxlen=self.recent_size)

    def apply(self, record: Record) -> None:
        try:
            event = json.loads(record.value or b"")
        except ValueError:
            log.error("ignoring an unreadable audit record at offset %d", record.offset)
            return
        if not isinstance(event, dict):
            return
        self.events += 1
        kind = event.get("type")
        if kind == "bulletin.decided":
            self._decided(event)
        elif kind == "deadletter.replayed" and isinstance(event.get("deadletter"), str):
            self.replayed.add(event["deadletter"])
        elif kind == "audit.checkpoint" and isinstance(event.get("chain"), str):
            self.checkpoints[event["chain"]] = event
        elif kind == "audit.key" and isinstance(event.get("key_id"), str):
            self.keys.setdefault(
                event["key_id"],
                {
                    "key_id": event["key_id"],
                    "public_key": event.get("public_key"),
                    "fingerprint": _fingerprint(event.get("public_key")),
                    "published_at": event.get("time"),
                    "previous": event.get("previous", []),
                },
            )

    def _decided(self, event: dict[str, Any]) -> None:
        outcome = str(event.get("outcome", "unknown"))
        self.decisions[outcome] += 1
        source = event.get("source") or self.names.agency_of(
            str((event.get("input") or {}).get("topic", ""))
        )
        if source:
            self.bulletins_in[source] += 1
        recipients = event.get("recipients") or []
        for entry in recipients:
            agency = str(entry.get("agency", ""))
            flow = self.flows.setdefault((str(source), agency), _Flow())
            if entry.get("delivered"):
                flow.delivered += 1
                self.views_out[agency] += 1
                for redaction in entry.get("redactions") or []:
                    self.redactions[str(redaction.get("action"))] += 1
            else:
                flow.withheld += 1
                self.withheld[str(entry.get("reason"))] += 1
        self.recent.append(
            {
                "time": event.get("time"),
                "bulletin_id": event.get("bulletin_id"),
                "source": source,
                "kind": event.get("kind"),
                "marking": event.get("marking"),
                "outcome": outcome,
                "reason": event.get("reason"),
                "recipients": [_recipient_summary(entry) for entry in recipients],
            }
        )

    def flow_rows(self) -> list[dict[str, Any]]:
        return [
            {"source": s, "recipient": r, "delivered": f.delivered, "withheld": f.withheld}
            for (s, r), f in sorted(self.flows.items())
        ]


def _recipient_summary(entry: dict[str, Any]) -> dict[str, Any]:
    """Who, and what was done: redaction actions counted, never a path's value."""
    if entry.get("delivered"):
        actions: Counter[str] = Counter(str(r.get("action")) for r in entry.get("redactions") or [])
        return {"agency": entry.get("agency"), "delivered": True, "redactions": dict(actions)}
    return {"agency": entry.get("agency"), "delivered": False, "reason": entry.get("reason")}


def event_concerns(event: dict[str, Any], agency: str, names: TopicNames) -> bool:
    """Whether an audit event is about ``agency`` (as source, recipient or subject)."""
    if event.get("source") == agency or event.get("agency") == agency:
        return True
    topic = str((event.get("input") or {}).get("topic", ""))
    if names.agency_of(topic) == agency:
        return True
    return any(r.get("agency") == agency for r in event.get("recipients") or [])


def event_visible_to(event: dict[str, Any], agency: str, names: TopicNames) -> bool:
    """Whether an agency token may see an audit event at all: its own submissions, and
    bulletins it was given. A bulletin withheld from it stays unknown to it (its id,
    kind and marking would reveal what it was not given)."""
    if event.get("source") == agency:
        return True
    topic = str((event.get("input") or {}).get("topic", ""))
    if names.agency_of(topic) == agency:
        return True
    return any(
        r.get("agency") == agency and r.get("delivered") is True
        for r in event.get("recipients") or []
    )


def event_for_agency(event: dict[str, Any], agency: str, names: TopicNames) -> dict[str, Any]:
    """What an agency may see of an event: its own recipient entry, nobody else's.

    A recipient that is not the source also loses the digest of the original bytes and
    their coordinates: with its view in hand, a digest of the unredacted original would
    let it confirm guesses of what was withheld (a small count, a short name).
    """
    shown = dict(event)
    if "recipients" in shown:
        shown["recipients"] = [r for r in shown["recipients"] if r.get("agency") == agency]
    topic = str((event.get("input") or {}).get("topic", ""))
    if event.get("source") != agency and names.agency_of(topic) != agency:
        shown.pop("sha256", None)
        shown.pop("input", None)
    return shown


def _fingerprint(public_key: object) -> str | None:
    """The key's fingerprint (SHA-256 of the raw key, bus.audit._keys), or ``None`` when the
    event's key is not base64 of 32 bytes (verify reports such an event)."""
    if not isinstance(public_key, str):
        return None
    try:
        raw = base64.b64decode(public_key, validate=True)
    except ValueError:
        return None
    return fingerprint_of(raw) if len(raw) == 32 else None
