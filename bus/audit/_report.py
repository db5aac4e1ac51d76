"""The compliance auditor's report for one agency: who received what, when, under which policy,
and what was withheld. Pure: events in, a report out, rendered as JSON, CSV or one HTML page.

The input is the audit log's events as JSON objects (the topic's values, or an exported
bundle), in any order. :func:`build_report` keeps, for one agency and a period
``[start, end)``:

- ``bulletin.decided`` events with ``outcome: accepted`` whose ``source`` is the agency (what
  it *sent*), or that name it among the ``recipients`` (what it *received*, or what was
  *withheld* from it);
- ``bulletin.decided`` events with ``outcome: rejected`` whose input topic is the agency's
  inbound topic (its *dead letters*; rejected events carry no ``source``);
- ``policy.activated`` and ``policy.rolled_back`` admin events (global: every agency's
  report lists them), and ``deadletter.replayed`` events about the agency's dead letters.

Everything else is left out: checkpoints, other admin events, and every decision that does
not involve the agency, so a report tells nothing of other agencies' flows between themselves.
Events whose ``time`` is missing or unreadable cannot be placed in a period and are skipped;
whether the log is complete and unaltered is what :func:`bus.audit.verify` checks, not this.

A report holds counts and metadata only: agency ids, kinds, markings, reasons, redacted
field paths and actions, policy versions, actors and times, all copied from the events'
metadata fields (which carry no payload value). It never reads a field it does not know, and
never includes digests or input coordinates.
"""

from __future__ import annotations

import csv
import html
import io
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast

from bus.audit._chain import CHECKPOINT
from bus.topics import TopicNames

__all__ = [
    "CSV_COLUMNS",
    "DAILY_AFTER",
    "MAX_BUCKETS",
    "UNKNOWN",
    "AgencyReport",
    "Bucket",
    "DeadLetterSection",
    "PolicyChange",
    "PolicySection",
    "PolicyVersionSeen",
    "ReceivedSection",
    "RecipientFlow",
    "RedactionCount",
    "RedactionSection",
    "SentSection",
    "TimelineBucket",
    "WithheldSection",
    "build_report",
    "report_csv",
    "report_html",
]

_DECIDED = "bulletin.decided"
_POLICY_CHANGES = ("policy.activated", "policy.rolled_back")
_REPLAYED = "deadletter.replayed"
UNKNOWN = "unknown"
"""Stands in for a kind, marking, reason, path or action an event lacks."""

DAILY_AFTER = timedelta(days=3)
"""Periods longer than this get a timeline per day; shorter ones, per hour."""
MAX_BUCKETS = 4000
"""A longer timeline (about eleven years of days) is refused: pick a period."""

_MARKING_ORDER = ("CLEAR", "GREEN", "AMBER", "AMBER_STRICT", "RED")

CSV_COLUMNS = ("section", "key", "subkey", "count", "first_time", "last_time")
"""The header of :func:`report_csv`."""

Bucket = Literal["hour", "day"]


# -- the report ----------------------------------------------------------------------


@dataclass(frozen=True)
class RecipientFlow:
    """How many of the agency's bulletins one recipient got, and how many it did not."""

    delivered: int = 0
    withheld: int = 0


@dataclass(frozen=True)
class SentSection:
    """Bulletins the agency sent that the router accepted (``source`` is the agency)."""

    total: int
    by_kind: dict[str, int]
    by_marking: dict[str, int]
    recipients: dict[str, RecipientFlow]
    """Per other agency named in the decisions: views delivered, views withheld."""


@dataclass(frozen=True)
class ReceivedSection:
    """Views delivered to the agency."""

    total: int
    by_kind: dict[str, int]
    by_marking: dict[str, int]
    by_source: dict[str, int]


@dataclass(frozen=True)
class WithheldSection:
    """Views not delivered: to the agency (why, from whom) and of its bulletins to others."""

    from_agency: dict[str, int]
    """Views the agency did not get, per reason."""
    from_agency_by_source: dict[str, dict[str, int]]
    """The same, per source agency, then per reason."""
    to_others: dict[str, dict[str, int]]
    """Views of the agency's own bulletins other agencies did not get: per recipient, reason."""

    @property
    def from_agency_total(self) -> int:
        """Views the agency did not get."""
        return sum(self.from_agency.values())

    @property
    def to_others_total(self) -> int:
        """Views of its bulletins withheld from others."""
        return sum(sum(reasons.values()) for reasons in self.to_others.values())

    @property
    def total(self) -> int:
        """Every withheld view that involves the agency, either way."""
        return self.from_agency_total + self.to_others_total


@dataclass(frozen=True)
class RedactionCount:
    """How many views had the field at ``path`` treated with ``action``."""

    path: str
    action: str
    count: int


@dataclass(frozen=True)
class RedactionSection:
    """Redactions on views the agency received, and on views of its bulletins for others."""

    received: tuple[RedactionCount, ...]
    for_others: tuple[RedactionCount, ...]

    @property
    def total(self) -> int:
        """Redactions applied, both ways."""
        return sum(r.count for r in self.received) + sum(r.count for r in self.for_others)


@dataclass(frozen=True)
class PolicyVersionSeen:
    """A policy version that decided bulletins involving the agency in the period."""

    version: int
    decisions: int
    first_seen: datetime
    last_seen: datetime


@dataclass(frozen=True)
class PolicyChange:
    """A ``policy.activated`` or ``policy.rolled_back`` admin event."""

    type: str
    version: int | None
    previous: int | None
    actor: str | None
    time: datetime


@dataclass(frozen=True)
class PolicySection:
    """Which policies were in force, and the activations and rollbacks in the period."""

    in_force_at_start: int | None
    """The version the last change before ``start`` put in force (if the events hold it)."""
    versions: tuple[PolicyVersionSeen, ...]
    changes: tuple[PolicyChange, ...]


@dataclass(frozen=True)
class DeadLetterSection:
    """The agency's submissions the router rejected, and replays of its dead letters."""

    by_reason: dict[str, int]
    replayed: dict[str, int]
    """``deadletter.replayed`` events about the agency, per reason of the original rejection."""

    @property
    def total(self) -> int:
        """Rejected submissions."""
        return sum(self.by_reason.values())


@dataclass(frozen=True)
class TimelineBucket:
    """Counts in ``[start, start + one hour or day)``."""

    start: datetime
    sent: int = 0
    received: int = 0
    withheld: int = 0
    dead_letters: int = 0


@dataclass(frozen=True)
class AgencyReport:
    """Everything the audit log says about one agency's exchanges in ``[start, end)``."""

    agency: str
    start: datetime | None
    end: datetime | None
    generated_at: datetime
    bucket: Bucket
    sent: SentSection
    received: ReceivedSection
    withheld: WithheldSection
    redactions: RedactionSection
    policy: PolicySection
    dead_letters: DeadLetterSection
    timeline: tuple[TimelineBucket, ...]

    @property
    def summary(self) -> dict[str, int]:
        """The headline numbers (the HTML page's ``data-testid`` values)."""
        return {
            "sent": self.sent.total,
            "received": self.received.total,
            "withheld": self.withheld.total,
            "redactions": self.redactions.total,
            "dead_letters": self.dead_letters.total,
        }

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data: times as ISO 8601 in UTC, counts as integers."""
        return {
            "agency": self.agency,
            "period": {
                "start": _iso(self.start),
                "end": _iso(self.end),
                "bucket": self.bucket,
            },
            "generated_at": _iso(self.generated_at),
            "summary": self.summary,
            "sent": {
                "total": self.sent.total,
                "by_kind": dict(self.sent.by_kind),
                "by_marking": dict(self.sent.by_marking),
                "recipients": {
                    agency: {"delivered": flow.delivered, "withheld": flow.withheld}
                    for agency, flow in self.sent.recipients.items()
                },
            },
            "received": {
                "total": self.received.total,
                "by_kind": dict(self.received.by_kind),
                "by_marking": dict(self.received.by_marking),
                "by_source": dict(self.received.by_source),
            },
            "withheld": {
                "total": self.withheld.total,
                "from_agency": {
                    "total": self.withheld.from_agency_total,
                    "by_reason": dict(self.withheld.from_agency),
                    "by_source": {
                        source: dict(reasons)
                        for source, reasons in self.withheld.from_agency_by_source.items()
                    },
                },
                "to_others": {
                    "total": self.withheld.to_others_total,
                    "by_recipient": {
                        recipient: dict(reasons)
                        for recipient, reasons in self.withheld.to_others.items()
                    },
                },
            },
            "redactions": {
                "total": self.redactions.total,
                "received": [_redaction_dict(r) for r in self.redactions.received],
                "for_others": [_redaction_dict(r) for r in self.redactions.for_others],
            },
            "policy": {
                "in_force_at_start": self.policy.in_force_at_start,
                "versions": [
                    {
                        "version": v.version,
                        "decisions": v.decisions,
                        "first_seen": _iso(v.first_seen),
                        "last_seen": _iso(v.last_seen),
                    }
                    for v in self.policy.versions
                ],
                "changes": [
                    {
                        "type": c.type,
                        "version": c.version,
                        "previous": c.previous,
                        "actor": c.actor,
                        "time": _iso(c.time),
                    }
                    for c in self.policy.changes
                ],
            },
            "dead_letters": {
                "total": self.dead_letters.total,
                "by_reason": dict(self.dead_letters.by_reason),
                "replayed": dict(self.dead_letters.replayed),
            },
            "timeline": [
                {
                    "start": _iso(b.start),
                    "sent": b.sent,
                    "received": b.received,
                    "withheld": b.withheld,
                    "dead_letters": b.dead_letters,
                }
                for b in self.timeline
            ],
        }


def _redaction_dict(redaction: RedactionCount) -> dict[str, Any]:
    return {"path": redaction.path, "action": redaction.action, "count": redaction.count}


# -- building it ---------------------------------------------------------------------


def build_report(
    events: Iterable[Mapping[str, Any]],
    *,
    agency: str,
    start: datetime | None,
    end: datetime | None,
    names: TopicNames,
    now: datetime | None = None,
) -> AgencyReport:
    """The report for ``agency`` over ``[start, end)`` (either bound may be open).

    ``names`` attributes rejected decisions to agencies by their input topic. Naive
    datetimes (bounds or event times) are taken as UTC. ``now`` is the report's generation
    time (default: the clock). Raises ``ValueError`` for an empty period, or one whose
    timeline would exceed :data:`MAX_BUCKETS` days.
    """
    lower = _utc(start) if start is not None else None
    upper = _utc(end) if end is not None else None
    if lower is not None and upper is not None and upper <= lower:
        raise ValueError(f"the period is empty: end {upper.isoformat()} is not after start")
    tally = _Tally(agency, names)
    last_change: tuple[datetime, int | None] | None = None
    for event in cast(Iterable[object], events):  # a JSON array may hold anything
        if not isinstance(event, Mapping):
            continue
        event_type = event.get("type")
        when = _time(event.get("time"))
        if when is None or event_type == CHECKPOINT:
            continue
        if event_type in _POLICY_CHANGES and lower is not None and when < lower:
            if last_change is None or when >= last_change[0]:
                last_change = (when, _int(event.get("version")))
            continue
        if (lower is not None and when < lower) or (upper is not None and when >= upper):
            continue
        if event_type == _DECIDED:
            tally.decision(event, when)
        elif event_type in _POLICY_CHANGES:
            tally.change(str(event_type), event, when)
        elif event_type == _REPLAYED and event.get("agency") == agency:
            tally.replayed[_label(event.get("reason"))] += 1
    bucket, timeline = _timeline(tally.points, lower, upper)
    return AgencyReport(
        agency=agency,
        start=lower,
        end=upper,
        generated_at=_utc(now) if now is not None else datetime.now(UTC),
        bucket=bucket,
        sent=SentSection(
            total=tally.sent,
            by_kind=_ranked(tally.sent_kinds),
            by_marking=_by_marking(tally.sent_markings),
            recipients={
                recipient: RecipientFlow(
                    delivered=tally.delivered_to[recipient],
                    withheld=sum(tally.withheld_to[recipient].values()),
                )
                for recipient in _ranked(tally.delivered_to + tally.withheld_totals())
            },
        ),
        received=ReceivedSection(
            total=tally.received,
            by_kind=_ranked(tally.received_kinds),
            by_marking=_by_marking(tally.received_markings),
            by_source=_ranked(tally.received_sources),
        ),
        withheld=WithheldSection(
            from_agency=_ranked(tally.withheld_from),
            from_agency_by_source=_nested(tally.withheld_from_by_source),
            to_others=_nested(tally.withheld_to),
        ),
        redactions=RedactionSection(
            received=_redactions(tally.redactions_received),
            for_others=_redactions(tally.redactions_for_others),
        ),
        policy=PolicySection(
            in_force_at_start=last_change[1] if last_change is not None else None,
            versions=tuple(
                PolicyVersionSeen(version, tally.version_counts[version], first, last)
                for version, (first, last) in sorted(
                    tally.version_times.items(), key=lambda item: (item[1][0], item[0])
                )
            ),
            changes=tuple(sorted(tally.changes, key=lambda c: c.time)),
        ),
        dead_letters=DeadLetterSection(
            by_reason=_ranked(tally.dead_letters), replayed=_ranked(tally.replayed)
        ),
        timeline=timeline,
    )


@dataclass
class _Point:
    """One decision's contribution to the timeline."""

    time: datetime
    sent: int = 0
    received: int = 0
    withheld: int = 0
    dead_letters: int = 0


@dataclass
class _Tally:
    """Counters filled event by event."""

    agency: str
    names: TopicNames
    sent: int = 0
    sent_kinds: Counter[str] = field(default_factory=Counter)
    sent_markings: Counter[str] = field(default_factory=Counter)
    delivered_to: Counter[str] = field(default_factory=Counter)
    withheld_to: defaultdict[str, Counter[str]] = field(
        default_factory=lambda: defaultdict(Counter)
    )
    received: int = 0
    received_kinds: Counter[str] = field(default_factory=Counter)
    received_markings: Counter[str] = field(default_factory=Counter)
    received_sources: Counter[str] = field(default_factory=Counter)
    withheld_from: Counter[str] = field(default_factory=Counter)
    withheld_from_by_source: defaultdict[str, Counter[str]] = field(
        default_factory=lambda: defaultdict(Counter)
    )
    redactions_received: Counter[tuple[str, str]] = field(default_factory=Counter)
    redactions_for_others: Counter[tuple[str, str]] = field(default_factory=Counter)
    version_counts: Counter[int] = field(default_factory=Counter)
    version_times: dict[int, tuple[datetime, datetime]] = field(default_factory=dict)
    changes: list[PolicyChange] = field(default_factory=list)
    dead_letters: Counter[str] = field(default_factory=Counter)
    replayed: Counter[str] = field(default_factory=Counter)
    points: list[_Point] = field(default_factory=list)

    def withheld_totals(self) -> Counter[str]:
        return Counter({r: sum(reasons.values()) for r, reasons in self.withheld_to.items()})

    def decision(self, event: Mapping[str, Any], when: datetime) -> None:
        outcome = event.get("outcome")
        if outcome == "rejected":
            origin = event.get("input")
            topic = origin.get("topic") if isinstance(origin, Mapping) else None
            if not isinstance(topic, str) or self.names.agency_of(topic) != self.agency:
                return
            self.dead_letters[_label(event.get("reason"))] += 1
            self._involved(event, _Point(when, dead_letters=1))
            return
        if outcome != "accepted":
            return
        kind = _label(event.get("kind"))
        marking = _label(event.get("marking"))
        source = _label(event.get("source"))
        raw = event.get("recipients")
        entries = [r for r in raw if isinstance(r, Mapping)] if isinstance(raw, list) else []
        point = _Point(when)
        involved = False
        if event.get("source") == self.agency:
            involved = True
            self.sent += 1
            point.sent += 1
            self.sent_kinds[kind] += 1
            self.sent_markings[marking] += 1
            for entry in entries:
                recipient = entry.get("agency")
                if not isinstance(recipient, str) or recipient == self.agency:
                    continue
                if entry.get("delivered") is True:
                    self.delivered_to[recipient] += 1
                    self.redactions_for_others.update(_redaction_keys(entry))
                else:
                    self.withheld_to[recipient][_label(entry.get("reason"))] += 1
                    point.withheld += 1
        for entry in entries:
            if entry.get("agency") != self.agency:
                continue
            involved = True
            if entry.get("delivered") is True:
                self.received += 1
                point.received += 1
                self.received_kinds[kind] += 1
                self.received_markings[marking] += 1
                self.received_sources[source] += 1
                self.redactions_received.update(_redaction_keys(entry))
            else:
                reason = _label(entry.get("reason"))
                self.withheld_from[reason] += 1
                self.withheld_from_by_source[source][reason] += 1
                point.withheld += 1
        if involved:
            self._involved(event, point)

    def _involved(self, event: Mapping[str, Any], point: _Point) -> None:
        self.points.append(point)
        version = _int(event.get("policy_version"))
        if version is None:
            return
        self.version_counts[version] += 1
        first, last = self.version_times.get(version, (point.time, point.time))
        self.version_times[version] = (min(first, point.time), max(last, point.time))

    def change(self, event_type: str, event: Mapping[str, Any], when: datetime) -> None:
        actor = event.get("actor")
        self.changes.append(
            PolicyChange(
                type=event_type,
                version=_int(event.get("version")),
                previous=_int(event.get("previous")),
                actor=actor if isinstance(actor, str) else None,
                time=when,
            )
        )


def _redaction_keys(entry: Mapping[str, Any]) -> list[tuple[str, str]]:
    raw = entry.get("redactions")
    if not isinstance(raw, list):
        return []
    return [(_label(r.get("path")), _label(r.get("action"))) for r in raw if isinstance(r, Mapping)]


def _timeline(
    points: Sequence[_Point], lower: datetime | None, upper: datetime | None
) -> tuple[Bucket, tuple[TimelineBucket, ...]]:
    """Buckets over the period (or, where it is open, over the agency's decisions)."""
    times = [p.time for p in points]
    first = lower if lower is not None else (min(times) if times else None)
    last = (
        upper if upper is not None else (max(times) + timedelta(microseconds=1) if times else None)
    )
    if first is None or last is None:
        return "hour", ()
    bucket: Bucket = "day" if last - first > DAILY_AFTER else "hour"
    step = timedelta(days=1) if bucket == "day" else timedelta(hours=1)
    origin = _floor(first, bucket)
    count = math.ceil((last - origin) / step)
    if count > MAX_BUCKETS:
        raise ValueError(
            f"the period spans {count} days, more than the {MAX_BUCKETS} a timeline shows; "
            "give a shorter period"
        )
    totals = [[0, 0, 0, 0] for _ in range(count)]
    for p in points:
        index = int((p.time - origin) // step)
        if 0 <= index < count:
            row = totals[index]
            row[0] += p.sent
            row[1] += p.received
            row[2] += p.withheld
            row[3] += p.dead_letters
    return bucket, tuple(TimelineBucket(origin + i * step, *row) for i, row in enumerate(totals))


def _floor(when: datetime, bucket: Bucket) -> datetime:
    hour = when.replace(minute=0, second=0, microsecond=0)
    return hour.replace(hour=0) if bucket == "day" else hour


# -- small helpers -------------------------------------------------------------------


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return _utc(datetime.fromisoformat(value))
    except (ValueError, OverflowError):
        return None


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when is not None else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _label(value: Any) -> str:
    return value if isinstance(value, str) and value else UNKNOWN


def _ranked(counts: Mapping[str, int]) -> dict[str, int]:
    """Most frequent first, then alphabetical; zero counts left out."""
    return {k: v for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if v}


def _by_marking(counts: Mapping[str, int]) -> dict[str, int]:
    """TLP order (least restrictive first), then anything else alphabetically."""

    def rank(marking: str) -> tuple[int, str]:
        order = _MARKING_ORDER.index(marking) if marking in _MARKING_ORDER else len(_MARKING_ORDER)
        return order, marking

    return {k: counts[k] for k in sorted(counts, key=rank) if counts[k]}


def _nested(counts: Mapping[str, Mapping[str, int]]) -> dict[str, dict[str, int]]:
    totals = {outer: sum(inner.values()) for outer, inner in counts.items()}
    return {
        outer: _ranked(counts[outer])
        for outer in sorted(totals, key=lambda o: (-totals[o], o))
        if totals[outer]
    }


def _redactions(counts: Counter[tuple[str, str]]) -> tuple[RedactionCount, ...]:
    return tuple(
        RedactionCount(path, action, count)
        for (path, action), count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    )


# -- CSV -----------------------------------------------------------------------------


def report_csv(report: AgencyReport) -> str:
    """The report as one flat RFC 4180 table (CRLF line ends), header :data:`CSV_COLUMNS`.

    Columns: ``section,key,subkey,count,first_time,last_time``. Times are ISO 8601 in UTC;
    an empty cell is "not applicable" (or an open bound). The rows, by ``section``:

    ========================  =================  ===================  ========================
    section                   key                subkey               count / times
    ========================  =================  ===================  ========================
    ``report``                agency id          ``hour`` or ``day``  first/last_time: the
                                                 (timeline bucket)    period's start and end
                                                                      (exclusive)
    ``generated``                                                     first_time: generated at
    ``summary``               ``sent``,
                              ``received``,
                              ``withheld``,
                              ``redactions``,
                              ``dead_letters``                        count
    ``sent.kind``             kind                                    count
    ``sent.marking``          marking                                 count
    ``sent.recipient``        recipient          ``delivered`` or     views of the agency's
                                                 ``withheld``         bulletins
    ``received.kind``         kind                                    count
    ``received.marking``      marking                                 count
    ``received.source``       source agency                           count
    ``withheld.from_agency``  source agency      reason               views the agency did
                                                                      not get
    ``withheld.to_others``    recipient          reason               views of its bulletins
                                                                      others did not get
    ``redactions.received``   field path         action               count
    ``redactions.for_others`` field path         action               count
    ``policy.version``        version                                 decisions; first/last
                                                                      time seen
    ``policy.activated``,     version            actor                1; first_time = last_time
    ``policy.rolled_back``    (or empty)                              = the change's time
    ``policy.in_force``       version                                 the version in force at
                                                                      the start, if known
    ``dead_letters``          reason                                  count
    ``dead_letters.replayed`` reason                                  count
    ``timeline``              bucket start time  ``sent``,            count
                                                 ``received``,
                                                 ``withheld``,
                                                 ``dead_letters``
    ========================  =================  ===================  ========================

    Per-reason withheld totals of the JSON form are the sums of ``withheld.from_agency`` rows.
    A policy change's previous version is in the JSON and HTML forms only. A text
    cell that a spreadsheet would run as a formula (it starts with ``=``, ``+``, ``-``, ``@``,
    a tab or a carriage return) is prefixed with ``'``; no value the bus writes starts so.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)

    def row(
        section: str,
        key: str | int | None = None,
        subkey: str | None = None,
        count: int | None = None,
        first: datetime | None = None,
        last: datetime | None = None,
    ) -> None:
        writer.writerow(
            [
                section,
                _cell(key),
                _cell(subkey),
                "" if count is None else count,
                _iso(first) or "",
                _iso(last) or "",
            ]
        )

    row("report", report.agency, report.bucket, None, report.start, report.end)
    row("generated", first=report.generated_at)
    for name, total in report.summary.items():
        row("summary", name, count=total)
    for kind, count in report.sent.by_kind.items():
        row("sent.kind", kind, count=count)
    for marking, count in report.sent.by_marking.items():
        row("sent.marking", marking, count=count)
    for recipient, flow in report.sent.recipients.items():
        row("sent.recipient", recipient, "delivered", flow.delivered)
        row("sent.recipient", recipient, "withheld", flow.withheld)
    for kind, count in report.received.by_kind.items():
        row("received.kind", kind, count=count)
    for marking, count in report.received.by_marking.items():
        row("received.marking", marking, count=count)
    for source, count in report.received.by_source.items():
        row("received.source", source, count=count)
    for source, reasons in report.withheld.from_agency_by_source.items():
        for reason, count in reasons.items():
            row("withheld.from_agency", source, reason, count)
    for recipient, reasons in report.withheld.to_others.items():
        for reason, count in reasons.items():
            row("withheld.to_others", recipient, reason, count)
    for r in report.redactions.received:
        row("redactions.received", r.path, r.action, r.count)
    for r in report.redactions.for_others:
        row("redactions.for_others", r.path, r.action, r.count)
    if report.policy.in_force_at_start is not None:
        row("policy.in_force", report.policy.in_force_at_start)
    for v in report.policy.versions:
        row("policy.version", v.version, None, v.decisions, v.first_seen, v.last_seen)
    for c in report.policy.changes:
        row(c.type, c.version, c.actor, 1, c.time, c.time)
    for reason, count in report.dead_letters.by_reason.items():
        row("dead_letters", reason, count=count)
    for reason, count in report.dead_letters.replayed.items():
        row("dead_letters.replayed", reason, count=count)
    for b in report.timeline:
        for series in ("sent", "received", "withheld", "dead_letters"):
            row("timeline", _iso(b.start), series, getattr(b, series))
    return out.getvalue()


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: str | int | None) -> str:
    if value is None:
        return ""
    text = str(value)
    return "'" + text if isinstance(value, str) and text.startswith(_FORMULA_STARTS) else text


# -- HTML ----------------------------------------------------------------------------

_SERIES = (
    ("sent", "Sent", "#2f5d8a"),
    ("received", "Received", "#2f7d4f"),
    ("withheld", "Withheld", "#c27c0e"),
    ("dead_letters", "Dead letters", "#b3261e"),
)
_RECEIVED_COLOUR = "#4f8fb8"
_FOR_OTHERS_COLOUR = "#8d79b8"
_CHART_ROWS = 16

_CSS = """
:root {
  --bg: #f5f6f8; --card: #ffffff; --line: #dfe3e8; --soft: #eef1f4; --text: #1f2933;
  --muted: #616e7c; --accent: #2f5d8a; --ok: #2f7d4f; --warn: #c27c0e; --bad: #b3261e;
}
* { box-sizing: border-box; }
html, body { margin: 0; padding: 0; }
body {
  background: var(--bg); color: var(--text);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
}
.page { max-width: 1200px; margin: 0 auto; padding: 0 24px 32px; }
header {
  background: var(--card); border-bottom: 1px solid var(--line); margin-bottom: 18px;
}
header .page { display: flex; justify-content: space-between; align-items: flex-end;
  gap: 24px; padding-top: 16px; padding-bottom: 14px; }
header .eyebrow { margin: 0; color: var(--accent); font-size: 12px; font-weight: 600;
  text-transform: uppercase; letter-spacing: 0.08em; }
header h1 { margin: 2px 0 4px; font-size: 24px; font-weight: 600; }
header .period { margin: 0; color: var(--text); font-size: 14px; }
header .meta { text-align: right; color: var(--muted); font-size: 12.5px; }
header .meta p { margin: 0; }
.fictional { display: inline-block; margin-top: 4px; padding: 1px 8px; border-radius: 10px;
  background: #fff7ec; border: 1px solid #e6c9a8; color: #5c3b00; font-size: 12px; }
.stats { display: grid; grid-template-columns: repeat(5, 1fr); gap: 12px; margin-bottom: 16px; }
.stat { background: var(--card); border: 1px solid var(--line); border-radius: 8px;
  padding: 10px 14px; border-top: 3px solid var(--line); }
.stat .label { color: var(--muted); font-size: 12px; text-transform: uppercase;
  letter-spacing: 0.04em; }
.stat .value { font-size: 28px; font-weight: 600; font-variant-numeric: tabular-nums; }
.stat .hint { color: var(--muted); font-size: 12px; }
.stat.sent { border-top-color: #2f5d8a; } .stat.received { border-top-color: #2f7d4f; }
.stat.withheld { border-top-color: #c27c0e; } .stat.redactions { border-top-color: #8d79b8; }
.stat.dead { border-top-color: #b3261e; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 8px;
  padding: 14px 18px 16px; margin-bottom: 16px; min-width: 0; }
section h2 { margin: 0 0 4px; font-size: 13px; font-weight: 600; color: var(--muted);
  text-transform: uppercase; letter-spacing: 0.05em; }
section h3 { margin: 14px 0 6px; font-size: 13px; font-weight: 600; }
section .lead { margin: 0 0 10px; color: var(--muted); font-size: 13px; }
.columns { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; align-items: start; }
.columns > section { margin-bottom: 0; }
.row { margin-bottom: 16px; }
.stack { display: grid; gap: 16px; }
.stack > section { margin-bottom: 0; }
td.time { white-space: nowrap; }
.legend { display: flex; gap: 18px; margin: 0 0 6px; font-size: 12.5px; color: var(--muted); }
.legend span::before { content: ""; display: inline-block; width: 12px; height: 3px;
  margin-right: 6px; vertical-align: 3px; background: var(--swatch); }
.legend span.box::before { height: 10px; vertical-align: -1px; border-radius: 2px; }
svg { display: block; width: 100%; height: auto; }
svg text { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
  fill: #616e7c; font-size: 11px; }
table { width: 100%; border-collapse: collapse; font-size: 13px; }
th { text-align: left; font-weight: 600; color: var(--muted); font-size: 12px;
  border-bottom: 1px solid var(--line); padding: 4px 8px 4px 0; }
td { padding: 4px 8px 4px 0; border-bottom: 1px solid var(--soft); vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td code { font: 12.5px/1.3 ui-monospace, "DejaVu Sans Mono", monospace; color: #334e68; }
td.bar { width: 30%; }
td.bar div { height: 8px; margin-top: 6px; border-radius: 4px; background: var(--swatch); }
.tag { display: inline-block; padding: 0 6px; border-radius: 4px; font-size: 12px;
  background: var(--soft); color: #334e68; }
.tag.RED { background: #fde8e6; color: #8a1c14; }
.tag.AMBER, .tag.AMBER_STRICT { background: #fff1d6; color: #6b4500; }
.tag.GREEN { background: #e3f3e8; color: #1e5c35; }
.tag.CLEAR { background: #f0f2f4; color: #3e4c59; }
.empty { color: var(--muted); font-style: italic; margin: 4px 0; }
details summary { cursor: pointer; color: var(--accent); font-size: 13px; }
footer { color: var(--muted); font-size: 12px; text-align: center; padding: 8px 0 0; }
"""


def report_html(report: AgencyReport) -> str:
    """ONE self-contained HTML page: inline CSS and SVG, no script, no external resource.

    Every string from the log goes through :func:`html.escape`. The headline numbers carry
    ``data-testid`` attributes ``sent-total``, ``received-total``, ``withheld-total``,
    ``redactions-total`` and ``deadletters-total`` (digits with ``,`` thousands separators);
    ``body`` carries ``data-agency``.
    """
    e = _esc
    agency = e(report.agency)
    summary = report.summary
    w = report.withheld
    stats = [
        ("sent", "Sent", "sent-total", summary["sent"], "bulletins accepted from it"),
        ("received", "Received", "received-total", summary["received"], "views delivered to it"),
        (
            "withheld",
            "Withheld",
            "withheld-total",
            summary["withheld"],
            f"{w.from_agency_total:,} from it · {w.to_others_total:,} of its own",
        ),
        (
            "redactions",
            "Redactions",
            "redactions-total",
            summary["redactions"],
            "field treatments, both ways",
        ),
        (
            "dead",
            "Dead letters",
            "deadletters-total",
            summary["dead_letters"],
            "submissions rejected",
        ),
    ]
    cards = "".join(
        f'<div class="stat {cls}"><div class="label">{label}</div>'
        f'<div class="value" data-testid="{testid}">{value:,}</div>'
        f'<div class="hint">{e(hint)}</div></div>'
        for cls, label, testid, value, hint in stats
    )
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="referrer" content="no-referrer">',
        f"<title>Liaison compliance report — {agency}</title>",
        f"<style>{_CSS}</style></head>",
        f'<body data-agency="{agency}">',
        '<header><div class="page"><div>',
        '<p class="eyebrow">Liaison · compliance report</p>',
        f"<h1>{agency}</h1>",
        f'<p class="period">{e(_period(report))}</p></div>',
        '<div class="meta">',
        f"<p>Generated {e(_when(report.generated_at))}</p>",
        "<p>From the audit log: counts and metadata only, never a payload value</p>",
        '<span class="fictional">All agencies are fictional</span>',
        "</div></div></header>",
        '<main class="page">',
        f'<div class="stats">{cards}</div>',
        _flows_section(report),
        '<div class="columns row">',
        _sent_section(report),
        _received_section(report),
        "</div>",
        '<div class="columns row">',
        _withheld_section(report),
        '<div class="stack">',
        _dead_letter_section(report),
        _policy_section(report),
        "</div></div>",
        _redaction_section(report),
        _timeline_table(report),
        "<footer>Liaison · an inter-agency information-sharing bus. Every agency named here "
        "is fictional. Times are UTC; periods include their start and exclude their end."
        "</footer>",
        "</main></body></html>",
    ]
    return "\n".join(parts) + "\n"


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _when(when: datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M UTC")


def _short(when: datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M")


def _period(report: AgencyReport) -> str:
    start = _when(report.start) if report.start else "the log's first event"
    end = _when(report.end) if report.end else "its last"
    return f"{start} — {end} (end exclusive)"


def _empty(text: str = "None in this period.") -> str:
    return f'<p class="empty">{_esc(text)}</p>'


def _count_table(
    headers: Sequence[str], rows: Sequence[tuple[Sequence[str], int]], colour: str
) -> str:
    """Rows of pre-escaped cells and a count, with a proportional bar after the count."""
    if not rows:
        return _empty()
    top = max(count for _, count in rows) or 1
    head = "".join(f"<th>{h}</th>" for h in headers[:-1])
    body = "".join(
        "<tr>"
        + "".join(f"<td>{cell}</td>" for cell in cells)
        + f'<td class="num">{count:,}</td>'
        + f'<td class="bar"><div style="width:{max(count / top * 100, 1.5):.1f}%"></div></td>'
        + "</tr>"
        for cells, count in rows
    )
    return (
        f'<table style="--swatch:{colour}"><thead><tr>{head}'
        f'<th class="num">{headers[-1]}</th><th></th></tr></thead><tbody>{body}</tbody></table>'
    )


def _tag(marking: str) -> str:
    css = marking if marking in _MARKING_ORDER else ""
    return f'<span class="tag {css}">{_esc(marking)}</span>'


def _code(text: str) -> str:
    return f"<code>{_esc(text)}</code>"


def _flows_section(report: AgencyReport) -> str:
    legend = "".join(
        f'<span style="--swatch:{colour}">{label}</span>' for _, label, colour in _SERIES
    )
    per = "hour" if report.bucket == "hour" else "day"
    chart = _flow_chart(report.timeline, report.bucket) if report.timeline else _empty()
    return (
        f'<section><h2>Flows over time</h2><p class="lead">Per {per}: bulletins it sent, '
        "views it received, views withheld (from it, or of its bulletins from others), and its "
        f'rejected submissions.</p><div class="legend">{legend}</div>{chart}</section>'
    )


def _nice_ceiling(value: int) -> tuple[int, int]:
    """A round axis maximum at or above ``value`` and its tick step (four or five ticks)."""
    if value <= 4:
        return 4, 1
    raw = value / 4
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        step = factor * magnitude
        if step >= raw and step == int(step):
            return int(math.ceil(value / step) * step), int(step)
    return value, max(value // 4, 1)  # pragma: no cover - the loop always returns


def _flow_chart(timeline: Sequence[TimelineBucket], bucket: Bucket) -> str:
    width, height = 1120, 280
    left, right, top, bottom = 48, 16, 12, 42
    plot_w, plot_h = width - left - right, height - top - bottom
    n = len(timeline)
    peak = max(max(b.sent, b.received, b.withheld, b.dead_letters) for b in timeline)
    ymax, ystep = _nice_ceiling(peak)

    def x(i: int) -> float:
        return left + (i + 0.5) * plot_w / n

    def y(v: int) -> float:
        return top + plot_h - v / ymax * plot_h

    out = [f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="Flows per {bucket}">']
    for tick in range(0, ymax + 1, ystep):
        ty = y(tick)
        out.append(
            f'<line x1="{left}" x2="{width - right}" y1="{ty:.1f}" y2="{ty:.1f}" '
            f'stroke="{"#c9d0d8" if tick == 0 else "#eef1f4"}"/>'
            f'<text x="{left - 8}" y="{ty + 4:.1f}" text-anchor="end">{tick:,}</text>'
        )
    every = max(1, math.ceil(n / 12))
    if bucket == "hour" and every > 1:
        every = next(s for s in (2, 3, 4, 6, 12, 24, 48, 72) if s >= every)
    for i, b in enumerate(timeline):
        if i % every:
            continue
        if bucket == "hour":
            label = b.start.strftime("%H:%M")
            sub = b.start.strftime("%d %b") if i == 0 or b.start.hour < every else ""
        else:
            label = b.start.strftime("%d %b")
            sub = (
                b.start.strftime("%Y")
                if i == 0 or (b.start.month == 1 and b.start.day <= every)
                else ""
            )
        tx = x(i)
        out.append(
            f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="{top + plot_h}" y2="{top + plot_h + 4}" '
            f'stroke="#c9d0d8"/><text x="{tx:.1f}" y="{top + plot_h + 17}" '
            f'text-anchor="middle">{label}</text>'
        )
        if sub:
            out.append(
                f'<text x="{tx:.1f}" y="{top + plot_h + 31}" text-anchor="middle" '
                f'font-weight="600">{sub}</text>'
            )
    dots = n <= 96
    for name, label, colour in reversed(_SERIES):  # the headline series drawn last, on top
        values = [int(getattr(b, name)) for b in timeline]
        coords = [(x(i), y(v)) for i, v in enumerate(values)]
        dash = ' stroke-dasharray="5 4"' if name == "dead_letters" else ""
        if n > 1:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py in coords)
            out.append(
                f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2" '
                f'stroke-linejoin="round"{dash}/>'
            )
        if dots or n == 1:
            for (px, py), b, v in zip(coords, timeline, values, strict=True):
                if not v and n > 1:
                    continue
                stamp = _when(b.start)
                out.append(
                    f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{colour}">'
                    f"<title>{stamp}: {label.lower()} {v:,}</title></circle>"
                )
    out.append("</svg>")
    return "".join(out)


def _sent_section(report: AgencyReport) -> str:
    sent = report.sent
    recipients = sent.recipients
    if recipients:
        top = max(f.delivered + f.withheld for f in recipients.values()) or 1
        rows = "".join(
            f'<tr><td>{_esc(name)}</td><td class="num">{f.delivered:,}</td>'
            f'<td class="num">{f.withheld:,}</td><td class="bar"><div style="display:flex;'
            f'gap:0;height:8px;margin-top:6px;background:none">'
            f'<div style="margin:0;border-radius:4px 0 0 4px;background:#2f7d4f;'
            f'width:{f.delivered / top * 100:.1f}%"></div>'
            f'<div style="margin:0;border-radius:0 4px 4px 0;background:#c27c0e;'
            f'width:{f.withheld / top * 100:.1f}%"></div></div></td></tr>'
            for name, f in recipients.items()
        )
        recipient_table = (
            '<table><thead><tr><th>Recipient</th><th class="num">Delivered</th>'
            f'<th class="num">Withheld</th><th></th></tr></thead><tbody>{rows}</tbody></table>'
        )
    else:
        recipient_table = _empty("No recipient was named in its decisions.")
    return (
        f'<section><h2>Sent</h2><p class="lead">{sent.total:,} bulletins from '
        f"{_esc(report.agency)} decided in the period.</p>"
        "<h3>To whom</h3>"
        f"{recipient_table}"
        "<h3>By kind</h3>"
        + _count_table(
            ["Kind", "Bulletins"], [([_code(k)], c) for k, c in sent.by_kind.items()], "#2f5d8a"
        )
        + "<h3>By marking</h3>"
        + _count_table(
            ["Marking", "Bulletins"],
            [([_tag(m)], c) for m, c in sent.by_marking.items()],
            "#2f5d8a",
        )
        + "</section>"
    )


def _received_section(report: AgencyReport) -> str:
    received = report.received
    return (
        f'<section><h2>Received</h2><p class="lead">{received.total:,} views delivered to '
        f"{_esc(report.agency)}.</p><h3>From whom</h3>"
        + _count_table(
            ["Source", "Views"],
            [([_esc(s)], c) for s, c in received.by_source.items()],
            "#2f7d4f",
        )
        + "<h3>By kind</h3>"
        + _count_table(
            ["Kind", "Views"], [([_code(k)], c) for k, c in received.by_kind.items()], "#2f7d4f"
        )
        + "<h3>By marking</h3>"
        + _count_table(
            ["Marking", "Views"],
            [([_tag(m)], c) for m, c in received.by_marking.items()],
            "#2f7d4f",
        )
        + "</section>"
    )


def _withheld_section(report: AgencyReport) -> str:
    w = report.withheld
    from_rows = [
        ([_esc(source), _code(reason)], count)
        for source, reasons in w.from_agency_by_source.items()
        for reason, count in reasons.items()
    ]
    to_rows = [
        ([_esc(recipient), _code(reason)], count)
        for recipient, reasons in w.to_others.items()
        for reason, count in reasons.items()
    ]
    return (
        '<section><h2>Withheld</h2><p class="lead">Views not delivered, with the policy\'s '
        "reason.</p>"
        f"<h3>From {_esc(report.agency)}: {w.from_agency_total:,} views, by reason</h3>"
        + _count_table(
            ["Reason", "Views"], [([_code(r)], c) for r, c in w.from_agency.items()], "#c27c0e"
        )
        + "<h3>From it, by source</h3>"
        + _count_table(["Source", "Reason", "Views"], from_rows, "#c27c0e")
        + f"<h3>Its bulletins, from others: {w.to_others_total:,} views</h3>"
        + _count_table(["Recipient", "Reason", "Views"], to_rows, "#c27c0e")
        + "</section>"
    )


def _dead_letter_section(report: AgencyReport) -> str:
    d = report.dead_letters
    replayed = (
        "<h3>Replayed by an administrator</h3>"
        + _count_table(
            ["Original reason", "Replays"],
            [([_code(r)], c) for r, c in d.replayed.items()],
            "#616e7c",
        )
        if d.replayed
        else ""
    )
    return (
        '<section><h2>Dead letters</h2><p class="lead">'
        f"{d.total:,} submissions on {_esc(report.agency)}'s inbound topic rejected by the "
        "router (kept on the dead-letter topic, nothing delivered).</p><h3>By reason</h3>"
        + _count_table(
            ["Reason", "Rejected"], [([_code(r)], c) for r, c in d.by_reason.items()], "#b3261e"
        )
        + replayed
        + "</section>"
    )


def _redaction_section(report: AgencyReport) -> str:
    r = report.redactions
    totals: dict[tuple[str, str], list[int]] = {}
    for item in r.received:
        totals.setdefault((item.path, item.action), [0, 0])[0] += item.count
    for item in r.for_others:
        totals.setdefault((item.path, item.action), [0, 0])[1] += item.count
    ordered = sorted(totals.items(), key=lambda kv: (-sum(kv[1]), kv[0]))
    legend = (
        f'<div class="legend"><span class="box" style="--swatch:{_RECEIVED_COLOUR}">'
        f"On views {_esc(report.agency)} received</span>"
        f'<span class="box" style="--swatch:{_FOR_OTHERS_COLOUR}">On its bulletins, for '
        "others</span></div>"
    )
    if not ordered:
        body = _empty()
    else:
        rows = "".join(
            f"<tr><td>{_code(path)}</td><td>{_esc(action)}</td>"
            f'<td class="num">{received:,}</td><td class="num">{others:,}</td></tr>'
            for (path, action), (received, others) in ordered
        )
        body = (
            legend
            + _redaction_chart(ordered)
            + '<table><thead><tr><th>Field</th><th>Action</th><th class="num">On views received'
            '</th><th class="num">On its bulletins for others</th></tr></thead>'
            f"<tbody>{rows}</tbody></table>"
        )
    return (
        f'<section><h2>Redactions</h2><p class="lead">{r.total:,} field treatments the '
        "policy applied to views, by field path and action.</p>"
        f"{body}</section>"
    )


def _redaction_chart(ordered: Sequence[tuple[tuple[str, str], list[int]]]) -> str:
    shown = ordered[:_CHART_ROWS]
    width, label_w, right, row_h, top = 1120, 330, 60, 26, 6
    height = top * 2 + row_h * len(shown)
    plot_w = width - label_w - right
    peak = max(sum(counts) for _, counts in shown) or 1
    out = [f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="Redactions by field">']
    for i, ((path, action), (received, others)) in enumerate(shown):
        cy = top + i * row_h
        label = f"{path} · {action}"
        short = label if len(label) <= 52 else label[:51] + "…"
        w1 = received / peak * plot_w
        w2 = others / peak * plot_w
        out.append(
            f'<text x="{label_w - 12}" y="{cy + 17}" text-anchor="end" fill="#1f2933">'
            f"<title>{_esc(label)}</title>{_esc(short)}</text>"
            f'<rect x="{label_w}" y="{cy + 5}" width="{plot_w}" height="16" rx="3" '
            'fill="#f5f6f8"/>'
        )
        if received:
            out.append(
                f'<rect x="{label_w}" y="{cy + 5}" width="{w1:.1f}" height="16" rx="3" '
                f'fill="{_RECEIVED_COLOUR}"><title>{_esc(label)}: {received:,} on views '
                "received</title></rect>"
            )
        if others:
            out.append(
                f'<rect x="{label_w + w1:.1f}" y="{cy + 5}" width="{w2:.1f}" height="16" rx="3" '
                f'fill="{_FOR_OTHERS_COLOUR}"><title>{_esc(label)}: {others:,} on its bulletins '
                "for others</title></rect>"
            )
        out.append(
            f'<text x="{label_w + w1 + w2 + 8:.1f}" y="{cy + 17}">{received + others:,}</text>'
        )
    out.append("</svg>")
    more = len(ordered) - len(shown)
    if more > 0:
        out.append(_empty(f"and {more} more fields in the table below."))
    return "".join(out)


def _policy_section(report: AgencyReport) -> str:
    p = report.policy
    if p.in_force_at_start is not None:
        at_start = f"Version {p.in_force_at_start} was in force at the start of the period."
    elif report.start is None:
        at_start = "The period starts with the log."
    else:
        at_start = "The events hold no activation or rollback before the period."
    if p.versions:
        rows = "".join(
            f'<tr><td class="num">v{v.version}</td><td class="num">{v.decisions:,}</td>'
            f'<td class="time">{_esc(_short(v.first_seen))}</td>'
            f'<td class="time">{_esc(_short(v.last_seen))}</td></tr>'
            for v in p.versions
        )
        versions = (
            '<table><thead><tr><th class="num">Version</th><th class="num">Decisions</th>'
            f"<th>First seen</th><th>Last seen</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    else:
        versions = _empty("No decision involving it in the period.")
    if p.changes:
        rows = "".join(
            f'<tr><td class="time">{_esc(_short(c.time))}</td><td>{_code(c.type)}</td>'
            f'<td class="num">{_version(c.previous)} → {_version(c.version)}</td>'
            f"<td>{_esc(c.actor or '')}</td></tr>"
            for c in p.changes
        )
        changes = (
            '<table><thead><tr><th>Time</th><th>Change</th><th class="num">Versions</th>'
            f"<th>Actor</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    else:
        changes = _empty("No activation or rollback in the period.")
    return (
        "<section><h2>Policy</h2>"
        f'<p class="lead">{_esc(at_start)}</p>'
        "<h3>Versions that decided its bulletins and views</h3>"
        f"{versions}"
        "<h3>Activations and rollbacks (for every agency)</h3>"
        f"{changes}</section>"
    )


def _version(version: int | None) -> str:
    return f"v{version}" if version is not None else "—"


def _timeline_table(report: AgencyReport) -> str:
    if not report.timeline:
        return ""
    rows = "".join(
        f'<tr><td>{_esc(_when(b.start))}</td><td class="num">{b.sent:,}</td>'
        f'<td class="num">{b.received:,}</td><td class="num">{b.withheld:,}</td>'
        f'<td class="num">{b.dead_letters:,}</td></tr>'
        for b in report.timeline
    )
    return (
        f"<section><h2>Timeline</h2><details><summary>Counts per {report.bucket} "
        f"({len(report.timeline):,} rows)</summary><table><thead><tr><th>From</th>"
        '<th class="num">Sent</th><th class="num">Received</th><th class="num">Withheld</th>'
        f'<th class="num">Dead letters</th></tr></thead><tbody>{rows}</tbody></table>'
        "</details></section>"
    )
