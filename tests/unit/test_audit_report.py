"""The compliance auditor's report: hand-built audit events in, counts out. No broker.

Each section is checked against events small enough to count by hand; then the period
bounds, the attribution of rejected decisions through their input topic, the isolation of
one agency's report from flows that do not involve it, the CSV form against the JSON form,
the HTML form's escaping and headline numbers, and a canary test: every string of a report
is either one of the report's own labels or a metadata value of the input events, and
nothing else an event carries (digests, coordinates, unknown fields) ever reaches it.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import re
import secrets
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from bus.audit._report import (
    CSV_COLUMNS,
    AgencyReport,
    build_report,
    report_csv,
    report_html,
)
from bus.topics import TopicNames

NAMES = TopicNames()
T0 = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
NOW = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
SHA = "ab" * 32


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def delivered(agency: str, *redactions: tuple[str, str], rule: str = "r1") -> dict[str, Any]:
    return {
        "agency": agency,
        "delivered": True,
        "rules": [rule],
        "redactions": [{"path": path, "action": action} for path, action in redactions],
    }


def withheld(agency: str, reason: str) -> dict[str, Any]:
    return {"agency": agency, "delivered": False, "reason": reason}


def accepted(
    source: str,
    recipients: list[dict[str, Any]],
    *,
    minutes: float = 0,
    kind: str = "alert",
    marking: str = "AMBER",
    version: int = 3,
    number: int = 1,
) -> dict[str, Any]:
    return {
        "type": "bulletin.decided",
        "outcome": "accepted",
        "bulletin_id": f"{source}:{number:06d}",
        "source": source,
        "kind": kind,
        "marking": marking,
        "input": {"topic": NAMES.inbound(source), "partition": 0, "offset": number},
        "sha256": SHA,
        "policy_version": version,
        "time": at(minutes),
        "recipients": recipients,
        "chain": "edge.0",
        "seq": number,
        "prev": "0" * 64,
    }


def rejected(
    topic: str, reason: str, *, minutes: float = 0, version: int = 3, offset: int = 7
) -> dict[str, Any]:
    return {
        "type": "bulletin.decided",
        "outcome": "rejected",
        "reason": reason,
        "input": {"topic": topic, "partition": 0, "offset": offset},
        "sha256": SHA,
        "policy_version": version,
        "time": at(minutes),
        "chain": "edge.0",
        "seq": offset,
        "prev": "0" * 64,
    }


def admin(event_type: str, minutes: float, **fields: Any) -> dict[str, Any]:
    return {
        "type": event_type,
        "actor": "token:ops (admin)",
        "time": at(minutes),
        **fields,
        "chain": "admin",
        "seq": 0,
        "prev": "0" * 64,
    }


def checkpoint(minutes: float) -> dict[str, Any]:
    return {
        "type": "audit.checkpoint",
        "chain": "edge.0",
        "tree_size": 9,
        "root": "cd" * 32,
        "time": at(minutes),
        "key_id": "k1",
        "frontier": [],
        "last": "ef" * 32,
        "signature": "c2ln",
    }


def report(
    events: list[dict[str, Any]],
    agency: str = "north-river",
    *,
    start: datetime | None = T0,
    end: datetime | None = T0 + timedelta(hours=6),
    names: TopicNames = NAMES,
) -> AgencyReport:
    return build_report(events, agency=agency, start=start, end=end, names=names, now=NOW)


def scenario() -> list[dict[str, Any]]:
    """A morning between five fictional agencies, seen mostly from north-river."""
    return [
        admin("policy.activated", -600, version=3, previous=2),
        accepted(
            "north-river",
            [
                delivered("vale-fire", ("body.contact.phone", "drop")),
                delivered("harbour-watch"),
                withheld("upland-transit", "no_rule"),
            ],
            minutes=5,
            number=1,
        ),
        accepted(
            "north-river",
            [
                delivered("vale-fire", ("body.contact.phone", "drop"), ("body.summary", "mask")),
                withheld("harbour-watch", "not_releasable"),
                withheld("upland-transit", "not_releasable"),
            ],
            minutes=70,
            kind="situation_report",
            marking="RED",
            number=2,
        ),
        accepted(
            "vale-fire",
            [
                delivered("north-river", ("body.persons_involved", "drop")),
                withheld("saltmarsh-health", "no_rule"),
            ],
            minutes=80,
            kind="situation_report",
            number=10,
        ),
        accepted(
            "harbour-watch",
            [
                delivered("north-river", ("body.persons_involved", "drop")),
                delivered("vale-fire"),
            ],
            minutes=90,
            marking="GREEN",
            number=20,
        ),
        accepted(
            "harbour-watch",
            [withheld("north-river", "not_named"), delivered("vale-fire")],
            minutes=100,
            marking="AMBER_STRICT",
            number=21,
        ),
        admin("policy.activated", 120, version=4, previous=3),
        accepted(
            "vale-fire",
            [withheld("north-river", "no_rule"), delivered("harbour-watch")],
            minutes=130,
            kind="notice",
            version=4,
            number=11,
        ),
        rejected(NAMES.inbound("north-river"), "invalid_bulletin", minutes=140, version=4),
        rejected(NAMES.inbound("north-river"), "spoofed_source", minutes=150, version=4, offset=8),
        rejected(NAMES.inbound("vale-fire"), "invalid_bulletin", minutes=155, version=4),
        admin(
            "deadletter.replayed",
            160,
            deadletter="x",
            agency="north-river",
            reason="invalid_bulletin",
            sha256=SHA,
        ),
        admin("policy.rolled_back", 170, version=3, previous=4),
        admin("agency.provisioned", 175, agency="upland-transit", changes=[]),
        checkpoint(180),
        accepted("north-river", [delivered("vale-fire")], minutes=200, number=3, kind="notice"),
        accepted(
            "saltmarsh-health", [delivered("vale-fire")], minutes=210, kind="notice", number=30
        ),
    ]


# -- sections --------------------------------------------------------------------------


def test_sent_counts_kinds_markings_and_each_recipient() -> None:
    sent = report(scenario()).as_dict()["sent"]
    assert sent["total"] == 3
    assert sent["by_kind"] == {"alert": 1, "notice": 1, "situation_report": 1}
    assert sent["by_marking"] == {"AMBER": 2, "RED": 1}
    assert list(sent["by_marking"]) == ["AMBER", "RED"], "TLP order"
    assert sent["recipients"] == {
        "vale-fire": {"delivered": 3, "withheld": 0},
        "upland-transit": {"delivered": 0, "withheld": 2},
        "harbour-watch": {"delivered": 1, "withheld": 1},
    }


def test_received_counts_kinds_markings_and_sources() -> None:
    received = report(scenario()).as_dict()["received"]
    assert received == {
        "total": 2,
        "by_kind": {"alert": 1, "situation_report": 1},
        "by_marking": {"GREEN": 1, "AMBER": 1},
        "by_source": {"harbour-watch": 1, "vale-fire": 1},
    }


def test_withheld_counts_both_ways_with_reasons() -> None:
    data = report(scenario()).as_dict()
    assert data["withheld"] == {
        "total": 5,
        "from_agency": {
            "total": 2,
            "by_reason": {"no_rule": 1, "not_named": 1},
            "by_source": {"harbour-watch": {"not_named": 1}, "vale-fire": {"no_rule": 1}},
        },
        "to_others": {
            "total": 3,
            "by_recipient": {
                "upland-transit": {"no_rule": 1, "not_releasable": 1},
                "harbour-watch": {"not_releasable": 1},
            },
        },
    }
    assert data["summary"]["withheld"] == 5


def test_redactions_on_views_received_and_on_its_bulletins_for_others() -> None:
    redactions = report(scenario()).as_dict()["redactions"]
    assert redactions["received"] == [
        {"path": "body.persons_involved", "action": "drop", "count": 2}
    ]
    assert redactions["for_others"] == [
        {"path": "body.contact.phone", "action": "drop", "count": 2},
        {"path": "body.summary", "action": "mask", "count": 1},
    ]
    assert redactions["total"] == 5


def test_policy_versions_in_force_and_the_changes_of_the_period() -> None:
    policy = report(scenario()).as_dict()["policy"]
    assert policy["in_force_at_start"] == 3, "the activation 10 hours before the period"
    assert policy["versions"] == [
        {"version": 3, "decisions": 6, "first_seen": at(5), "last_seen": at(200)},
        {"version": 4, "decisions": 3, "first_seen": at(130), "last_seen": at(150)},
    ]
    assert policy["changes"] == [
        {
            "type": "policy.activated",
            "version": 4,
            "previous": 3,
            "actor": "token:ops (admin)",
            "time": at(120),
        },
        {
            "type": "policy.rolled_back",
            "version": 3,
            "previous": 4,
            "actor": "token:ops (admin)",
            "time": at(170),
        },
    ]


def test_dead_letters_are_attributed_through_the_input_topic() -> None:
    data = report(scenario()).as_dict()
    assert data["dead_letters"] == {
        "total": 2,
        "by_reason": {"invalid_bulletin": 1, "spoofed_source": 1},
        "replayed": {"invalid_bulletin": 1},
    }
    assert report(scenario(), "vale-fire").as_dict()["dead_letters"]["by_reason"] == {
        "invalid_bulletin": 1
    }
    # another prefix: the same topics belong to nobody, its own topics to their agency
    other = TopicNames(prefix="county")
    assert report(scenario(), names=other).dead_letters.total == 0
    moved = [rejected(other.inbound("north-river"), "not_avro", minutes=1)]
    assert report(moved, names=other).dead_letters.by_reason == {"not_avro": 1}
    # a topic that is no agency's inbound topic is nobody's dead letter
    stray = [rejected("liaison.to.north-river", "not_avro"), rejected("north-river", "x")]
    assert report(stray).dead_letters.total == 0


def test_the_timeline_buckets_per_hour_for_short_periods() -> None:
    data = report(scenario()).as_dict()
    assert data["period"]["bucket"] == "hour"
    timeline = data["timeline"]
    assert [b["start"] for b in timeline] == [at(60 * h) for h in range(6)]
    assert timeline[0] == {
        "start": at(0),
        "sent": 1,
        "received": 0,
        "withheld": 1,
        "dead_letters": 0,
    }
    assert timeline[1] == {
        "start": at(60),
        "sent": 1,
        "received": 2,
        "withheld": 3,
        "dead_letters": 0,
    }
    assert timeline[2]["dead_letters"] == 2
    assert timeline[2]["withheld"] == 1
    for series in ("sent", "received", "withheld", "dead_letters"):
        assert sum(b[series] for b in timeline) == data["summary"][series], series


def test_the_timeline_buckets_per_day_beyond_three_days() -> None:
    events = [
        accepted("north-river", [delivered("vale-fire")], minutes=60 * 24 * d, number=d)
        for d in range(5)
    ]
    three_days = report(events, start=T0, end=T0 + timedelta(days=3))
    assert three_days.bucket == "hour"
    assert len(three_days.timeline) == 72
    longer = report(events, start=T0, end=T0 + timedelta(days=3, hours=1))
    assert longer.bucket == "day"
    # day buckets start at midnight UTC: the period starts at 10:00 on day one
    assert [b.start for b in longer.timeline] == [
        datetime(2026, 12, d, tzinfo=UTC) for d in (2, 3, 4, 5)
    ]
    assert [b.sent for b in longer.timeline] == [1, 1, 1, 1]
    # open bounds: the timeline spans the agency's own events
    open_ended = report(events, start=None, end=None)
    assert open_ended.bucket == "day"
    assert [b.sent for b in open_ended.timeline] == [1, 1, 1, 1, 1]
    assert report([], start=None, end=None).timeline == ()


def test_the_period_includes_its_start_and_excludes_its_end() -> None:
    start, end = T0, T0 + timedelta(hours=1)
    events = [
        accepted("north-river", [delivered("vale-fire")], minutes=-0.001, number=1),
        accepted("north-river", [delivered("vale-fire")], minutes=0, number=2),
        accepted("north-river", [delivered("vale-fire")], minutes=59.999, number=3),
        accepted("north-river", [delivered("vale-fire")], minutes=60, number=4),
        rejected(NAMES.inbound("north-river"), "not_avro", minutes=60),
        admin("policy.activated", 60, version=9, previous=3),
        admin("policy.activated", 0, version=5, previous=3),
    ]
    result = report(events, start=start, end=end)
    assert result.sent.total == 2
    assert result.dead_letters.total == 0
    assert [c.version for c in result.policy.changes] == [5]
    assert [b.start for b in result.timeline] == [T0]
    # other time zones and naive datetimes (taken as UTC) bound the same instants
    plus_two = timezone_shifted(start, hours=2)
    assert report(events, start=plus_two, end=plus_two + timedelta(hours=1)).sent.total == 2
    naive = report(events, start=start.replace(tzinfo=None), end=end.replace(tzinfo=None))
    assert naive.sent.total == 2
    assert naive.as_dict()["period"] == {"start": at(0), "end": at(60), "bucket": "hour"}
    with pytest.raises(ValueError, match="empty"):
        report(events, start=end, end=start)
    with pytest.raises(ValueError, match="shorter period"):
        report(events, start=T0, end=T0 + timedelta(days=20_000))


def timezone_shifted(when: datetime, *, hours: int) -> datetime:
    return when.astimezone(timezone(timedelta(hours=hours)))


def test_an_agency_sees_nothing_of_flows_that_do_not_involve_it() -> None:
    mine = [e for e in scenario() if _involves(e, "saltmarsh-health")]
    assert mine, "the scenario has decisions about saltmarsh-health"
    alone = report(mine, "saltmarsh-health").as_dict()
    everything = report(scenario(), "saltmarsh-health").as_dict()
    assert everything == alone
    assert everything["received"]["total"] == 0
    assert everything["withheld"]["from_agency"]["by_source"] == {"vale-fire": {"no_rule": 1}}
    assert everything["sent"]["recipients"] == {"vale-fire": {"delivered": 1, "withheld": 0}}
    # an agency no event names gets an empty report (policy changes are for everyone)
    nobody = report(scenario(), "quiet-valley").as_dict()
    assert nobody["summary"] == dict.fromkeys(nobody["summary"], 0)
    assert nobody["policy"]["versions"] == []
    assert [c["version"] for c in nobody["policy"]["changes"]] == [4, 3]
    dumped = repr(nobody)
    for other in ("north-river", "vale-fire", "harbour-watch", "upland-transit", "alert"):
        assert other not in dumped


def _involves(event: dict[str, Any], agency: str) -> bool:
    if event["type"] != "bulletin.decided":
        return str(event["type"]).startswith("policy.")
    if event["outcome"] == "rejected":
        return bool(NAMES.agency_of(event["input"]["topic"]) == agency)
    recipients: list[dict[str, Any]] = event["recipients"]
    return event["source"] == agency or any(r["agency"] == agency for r in recipients)


def test_checkpoints_other_admin_events_and_malformed_events_are_left_out() -> None:
    good = scenario()
    noisy: list[Any] = [
        *good,
        checkpoint(1),
        admin("policy.stored", 2, version=7, sha256=SHA),
        admin("token.created", 3, token="t1"),
        "not an object",
        ["nor", "this"],
        None,
        {"type": "bulletin.decided", "outcome": "accepted", "source": "north-river"},  # no time
        {**accepted("north-river", [], number=99), "time": "yesterday-ish"},
        {**accepted("north-river", [], number=98), "time": 1764669600},
        {**accepted("vale-fire", [], number=97), "recipients": "north-river"},
        {**accepted("vale-fire", [], number=96), "outcome": "pending"},
        {**rejected(NAMES.inbound("north-river"), "x"), "input": "liaison.from.north-river"},
    ]
    assert report(noisy).as_dict() == report(good).as_dict()
    # present but incomplete metadata is counted under "unknown", never guessed
    partial = accepted("north-river", [{"agency": "vale-fire", "delivered": False}], number=5)
    del partial["kind"]
    partial["marking"] = None
    partial["policy_version"] = "3"
    result = report([partial])
    assert result.sent.by_kind == {"unknown": 1}
    assert result.sent.by_marking == {"unknown": 1}
    assert result.withheld.to_others == {"vale-fire": {"unknown": 1}}
    assert result.policy.versions == ()


def test_the_report_is_json_ready() -> None:
    data = report(scenario()).as_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["agency"] == "north-river"
    assert data["generated_at"] == NOW.isoformat()
    assert data["summary"] == {
        "sent": 3,
        "received": 2,
        "withheld": 5,
        "redactions": 5,
        "dead_letters": 2,
    }


# -- CSV -------------------------------------------------------------------------------


def _from_csv(text: str) -> dict[str, Any]:
    """Rebuild the JSON form's counts from the CSV rows."""
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert tuple(rows[0]) == CSV_COLUMNS
    out: dict[str, Any] = {
        "summary": {},
        "sent": {"by_kind": {}, "by_marking": {}, "recipients": defaultdict(dict)},
        "received": {"by_kind": {}, "by_marking": {}, "by_source": {}},
        "from_by_source": defaultdict(dict),
        "to_others": defaultdict(dict),
        "redactions": {"received": [], "for_others": []},
        "versions": [],
        "changes": [],
        "in_force": None,
        "dead_letters": {},
        "replayed": {},
        "timeline": defaultdict(dict),
    }
    for section, key, subkey, count, first, last in rows[1:]:
        n = int(count) if count else None
        if section == "report":
            out["report"] = {"agency": key, "bucket": subkey, "start": first, "end": last}
        elif section == "generated":
            out["generated_at"] = first
        elif section == "summary":
            out["summary"][key] = n
        elif section in ("sent.kind", "sent.marking"):
            out["sent"]["by_" + section.split(".")[1]][key] = n
        elif section == "sent.recipient":
            out["sent"]["recipients"][key][subkey] = n
        elif section in ("received.kind", "received.marking", "received.source"):
            out["received"]["by_" + section.split(".")[1]][key] = n
        elif section == "withheld.from_agency":
            out["from_by_source"][key][subkey] = n
        elif section == "withheld.to_others":
            out["to_others"][key][subkey] = n
        elif section.startswith("redactions."):
            out["redactions"][section.split(".")[1]].append(
                {"path": key, "action": subkey, "count": n}
            )
        elif section == "policy.in_force":
            out["in_force"] = int(key)
        elif section == "policy.version":
            out["versions"].append(
                {"version": int(key), "decisions": n, "first_seen": first, "last_seen": last}
            )
        elif section in ("policy.activated", "policy.rolled_back"):
            assert n == 1
            assert first == last
            out["changes"].append(
                {"type": section, "version": int(key), "actor": subkey, "time": first}
            )
        elif section == "dead_letters":
            out["dead_letters"][key] = n
        elif section == "dead_letters.replayed":
            out["replayed"][key] = n
        elif section == "timeline":
            out["timeline"][key][subkey] = n
        else:  # pragma: no cover - a failure message
            raise AssertionError(f"unknown CSV section {section!r}")
    return out


def test_the_csv_parses_back_to_the_json_counts() -> None:
    result = report(scenario())
    data = result.as_dict()
    text = report_csv(result)
    assert "\r\n" in text
    back = _from_csv(text)
    period = data["period"]
    assert back["report"] == {
        "agency": "north-river",
        "bucket": period["bucket"],
        "start": period["start"],
        "end": period["end"],
    }
    assert back["generated_at"] == data["generated_at"]
    assert back["summary"] == data["summary"]
    for part in ("by_kind", "by_marking"):
        assert back["sent"][part] == data["sent"][part]
    assert back["sent"]["recipients"] == data["sent"]["recipients"]
    for part in ("by_kind", "by_marking", "by_source"):
        assert back["received"][part] == data["received"][part]
    assert back["from_by_source"] == data["withheld"]["from_agency"]["by_source"]
    by_reason: dict[str, int] = defaultdict(int)
    for reasons in back["from_by_source"].values():
        for reason, n in reasons.items():
            by_reason[reason] += n
    assert by_reason == data["withheld"]["from_agency"]["by_reason"]
    assert back["to_others"] == data["withheld"]["to_others"]["by_recipient"]
    assert back["redactions"]["received"] == data["redactions"]["received"]
    assert back["redactions"]["for_others"] == data["redactions"]["for_others"]
    assert back["in_force"] == data["policy"]["in_force_at_start"]
    assert back["versions"] == data["policy"]["versions"]
    assert back["changes"] == [
        {k: c[k] for k in ("type", "version", "actor", "time")} for c in data["policy"]["changes"]
    ]
    assert back["dead_letters"] == data["dead_letters"]["by_reason"]
    assert back["replayed"] == data["dead_letters"]["replayed"]
    assert [{"start": s, **counts} for s, counts in back["timeline"].items()] == data["timeline"]


def test_the_csv_quotes_awkward_values_and_defuses_formulas() -> None:
    events = [
        accepted(
            "north-river",
            [
                delivered("vale-fire", ('body."odd", path\nwith newline', "drop")),
                withheld("harbour-watch", "=HYPERLINK(1)"),
            ],
        )
    ]
    text = report_csv(report(events))
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert ["redactions.for_others", 'body."odd", path\nwith newline', "drop", "1", "", ""] in rows
    assert ["withheld.to_others", "harbour-watch", "'=HYPERLINK(1)", "1", "", ""] in rows


# -- HTML ------------------------------------------------------------------------------

TESTIDS = {
    "sent-total": "sent",
    "received-total": "received",
    "withheld-total": "withheld",
    "redactions-total": "redactions",
    "deadletters-total": "dead_letters",
}


def _testids(page: str) -> dict[str, int]:
    found = re.findall(r'data-testid="([^"]+)">([^<]*)<', page)
    return {testid: int(text.replace(",", "")) for testid, text in found}


HOSTILE_TAGS = ("<script", "<img", "<svg onload", "<b>", "<i>", "<u>", "<h1 id=evil", "<marquee")


def test_the_html_escapes_everything_from_the_log() -> None:
    hostile = "<script>x</script>"
    events = [
        accepted(
            hostile,
            [
                delivered("north-river", ('body.<img src=x onerror="y">', "drop&")),
                delivered("<b>vale</b>", ("body.a", "x'y")),
            ],
            kind='"><svg onload=1>',
            marking="<i>RED</i>",
        ),
        accepted(
            "north-river",
            [withheld(hostile, "<u>reason</u>"), delivered(hostile, ("p", "a"))],
            number=2,
        ),
        rejected(NAMES.inbound("north-river"), "</table><h1 id=evil>", minutes=1),
        admin("policy.activated", 2, version=4, previous=3, actor="<marquee>me</marquee>"),
    ]
    for agency in (hostile, "north-river"):
        result = report(events, agency)
        page = report_html(result)
        for raw in HOSTILE_TAGS:
            assert raw not in page, (agency, raw)
        assert "&lt;script&gt;x&lt;/script&gt;" in page
        assert "&lt;marquee&gt;me&lt;/marquee&gt;" in page
        summary = result.as_dict()["summary"]
        assert _testids(page) == {testid: summary[key] for testid, key in TESTIDS.items()}
    assert report(events, hostile).sent.total == 1
    assert "&lt;/table&gt;&lt;h1 id=evil&gt;" in report_html(report(events))


def test_the_html_is_one_self_contained_page() -> None:
    result = report(scenario())
    page = report_html(result)
    assert page.startswith("<!doctype html>")
    assert page.count("<html") == 1
    assert page.count("<svg") == 2, "a flow chart and a redaction chart"
    lowered = page.lower()
    for external in ("http:", "https:", "//", "<script", "<link", "src=", "url(", "@import"):
        assert external not in lowered, external
    assert "All agencies are fictional" in page
    assert "north-river" in page
    assert "2026-12-02 10:00 UTC" in page, "the period"
    assert "2026-12-05 09:00 UTC" in page, "the generation time"
    summary = result.as_dict()["summary"]
    assert _testids(page) == {testid: summary[key] for testid, key in TESTIDS.items()}


def test_an_empty_report_renders() -> None:
    empty = report([], start=None, end=None)
    page = report_html(empty)
    assert _testids(page) == dict.fromkeys(TESTIDS, 0)
    assert "None in this period." in page
    csv_rows = list(csv.reader(io.StringIO(report_csv(empty), newline="")))
    assert csv_rows[1] == ["report", "north-river", "hour", "", "", ""]


# -- canaries --------------------------------------------------------------------------

# The report's own vocabulary: every JSON key of the report, and the words it makes up.
LABELS = {
    "agency", "period", "start", "end", "bucket", "hour", "day", "generated_at", "summary",
    "sent", "received", "withheld", "redactions", "dead_letters", "total", "by_kind",
    "by_marking", "recipients", "delivered", "by_source", "from_agency", "by_reason",
    "to_others", "by_recipient", "for_others", "path", "action", "count", "policy",
    "in_force_at_start", "versions", "version", "decisions", "first_seen", "last_seen",
    "changes", "type", "previous", "actor", "time", "replayed", "timeline", "unknown",
}  # fmt: skip


def _strings(value: Any) -> Iterator[str]:
    """Every string in a JSON value, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def _canary_events(token: str, planted: str) -> list[dict[str, Any]]:
    """Events whose every free string is this run's own, with ``planted`` in unknown fields."""

    def name(what: str) -> str:
        return f"{what}-{token}"

    me, peer, third = name("agency-a"), name("agency-b"), name("agency-c")
    send = accepted(
        me,
        [
            delivered(peer, (name("body.path1"), name("action1")), rule=name("rule")),
            withheld(third, name("reason1")),
        ],
        kind=name("kind1"),
        marking=name("marking1"),
        number=1,
    )
    send["body"] = {"summary": planted}  # a payload that must never be there
    send["recipients"][0]["note"] = planted
    receive = accepted(
        peer,
        [delivered(me, (name("body.path2"), name("action2"))), withheld(third, name("r2"))],
        kind=name("kind2"),
        marking=name("marking2"),
        minutes=61,
        version=4,
        number=2,
    )
    receive["detail"] = planted
    deny = accepted(
        third, [withheld(me, name("reason3"))], kind=name("kind3"), minutes=62, number=3
    )
    dead = rejected(NAMES.inbound(me), name("reason4"), minutes=63, offset=4)
    dead["detail"] = planted
    return [
        send,
        receive,
        deny,
        dead,
        admin("policy.activated", 64, version=5, previous=4, actor=name("actor"), note=planted),
        admin(
            "deadletter.replayed",
            65,
            agency=me,
            reason=name("reason4"),
            deadletter=planted,
            sha256=SHA,
        ),
    ]


def test_the_report_holds_only_labels_and_the_events_metadata() -> None:
    token = secrets.token_hex(6)
    planted = f"PLANTED-{secrets.token_hex(6)}"
    absent = f"CANARY-{secrets.token_hex(6)}"
    events = _canary_events(token, planted)
    known = set(_strings(events))
    assert absent not in repr(events)
    agency = f"agency-a-{token}"
    result = build_report(
        copy.deepcopy(events),
        agency=agency,
        start=T0,
        end=T0 + timedelta(hours=3),
        names=NAMES,
        now=NOW,
    )
    data = result.as_dict()
    assert data["summary"] == {
        "sent": 1,
        "received": 1,
        "withheld": 2,
        "redactions": 2,
        "dead_letters": 1,
    }
    event_times = {datetime.fromisoformat(e["time"]) for e in events}
    derived_times = {T0, T0 + timedelta(hours=3), NOW} | {b.start for b in result.timeline}
    for text in _strings(data):
        if text in LABELS or text in known:
            continue
        when = datetime.fromisoformat(text)  # anything else must be a time
        assert when in event_times | derived_times, text
    outputs = {"json": repr(data), "csv": report_csv(result), "html": report_html(result)}
    for form, output in outputs.items():
        assert absent not in output, form
        assert planted not in output, form
        assert SHA not in output, f"{form}: digests stay out"
        assert NAMES.inbound(agency) not in output, f"{form}: input coordinates stay out"
        assert f"rule-{token}" not in output, f"{form}: rule ids are not reported"
    # and the events' metadata is there, in every form
    for form, output in outputs.items():
        for what in ("kind1", "kind2", "body.path1", "action2", "reason3", "reason4", "actor"):
            assert f"{what}-{token}" in output, (form, what)
