"""The auditor's HTML report as a browser shows it: headline numbers, and a screenshot.

A realistic day of hand-built audit events between four fictional agencies (seeded, so every
run draws the same day) is rendered for north-river, written to a file and loaded in headless
Chromium (``tests/support/chromium.py``): the ``data-testid`` numbers of the DOM must equal the
report's JSON. The screenshot goes to ``docs/audit-report.png`` when ``LIAISON_WRITE_SCREENSHOTS``
is set, else to the test's temporary directory. No broker: the report is pure.
"""

from __future__ import annotations

import os
import random
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from bus.audit._report import build_report, report_html
from bus.topics import TopicNames
from tests.support.chromium import dump_dom, screenshot

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "docs" / "audit-report.png"
NAMES = TopicNames()
DAY = datetime(2026, 12, 2, tzinfo=UTC)
AGENCIES = ("north-river", "harbour-watch", "vale-fire", "saltmarsh-health")
TESTIDS = {
    "sent-total": "sent",
    "received-total": "received",
    "withheld-total": "withheld",
    "redactions-total": "redactions",
    "deadletters-total": "dead_letters",
}

# What each (kind, recipient) pair gets, after the example policy's spirit: emergency services
# share alerts and situation reports, the health board sees situation reports without names.
EMERGENCY = {"north-river", "harbour-watch", "vale-fire"}
REDACTIONS = {
    "emergency": [("body.contact.name", "pseudonymize"), ("body.persons_involved", "drop")],
    "health": [
        ("body.persons_involved", "drop"),
        ("body.incident_location", "generalize"),
        ("body.casualties.displaced", "generalize"),
        ("body.summary", "truncate"),
    ],
    "public": [("body.contact.phone", "drop"), ("body.contact.email", "drop")],
}


def _recipient(
    source: str, recipient: str, kind: str, marking: str, rng: random.Random
) -> dict[str, Any]:
    if marking == "RED" and rng.random() < 0.7:
        return {"agency": recipient, "delivered": False, "reason": "not_releasable"}
    if kind == "notice" and marking in ("CLEAR", "GREEN"):
        rule, redactions = "public-notices", REDACTIONS["public"]
    elif recipient == "saltmarsh-health":
        if kind != "situation_report" or source not in EMERGENCY:
            return {"agency": recipient, "delivered": False, "reason": "no_rule"}
        if marking in ("AMBER_STRICT", "RED"):
            return {"agency": recipient, "delivered": False, "reason": "not_named"}
        rule, redactions = "health-casualties", REDACTIONS["health"]
    elif kind in ("alert", "situation_report") and source in EMERGENCY:
        rule, redactions = "emergency-alerts", REDACTIONS["emergency"]
    else:
        return {"agency": recipient, "delivered": False, "reason": "no_rule"}
    if rng.random() < 0.05:
        return {"agency": recipient, "delivered": False, "reason": "status_not_accepted"}
    chosen = [r for r in redactions if rng.random() < 0.8]
    return {
        "agency": recipient,
        "delivered": True,
        "rules": [rule],
        "redactions": [{"path": path, "action": action} for path, action in chosen],
    }


def realistic_day(seed: int = 7) -> list[dict[str, Any]]:
    """A day of decisions with a morning flood incident, two policy changes, a few rejects."""
    rng = random.Random(seed)
    events: list[dict[str, Any]] = [
        {
            "type": "policy.activated",
            "version": 3,
            "previous": 2,
            "actor": "token:ops-admin (admin)",
            "time": (DAY - timedelta(days=2)).isoformat(),
        },
        {
            "type": "policy.activated",
            "version": 4,
            "previous": 3,
            "actor": "token:ops-admin (admin)",
            "time": (DAY + timedelta(hours=9, minutes=12)).isoformat(),
        },
        {
            "type": "policy.rolled_back",
            "version": 3,
            "previous": 4,
            "actor": "token:duty-officer (admin)",
            "time": (DAY + timedelta(hours=15, minutes=40)).isoformat(),
        },
    ]
    version = 3
    sequence = dict.fromkeys(AGENCIES, 100)
    for hour in range(24):
        # quiet at night, a flood incident from 06:00 that peaks mid-morning
        busy = 2 + (10 if 6 <= hour < 14 else 0) + (6 if 8 <= hour < 11 else 0)
        for _ in range(rng.randint(busy // 2, busy)):
            when = DAY + timedelta(hours=hour, seconds=rng.randrange(3600))
            version = (
                4
                if timedelta(hours=9, minutes=12) <= when - DAY < timedelta(hours=15, minutes=40)
                else 3
            )
            source = rng.choices(AGENCIES, weights=(5, 3, 3, 1))[0]
            offset = sequence[source]
            sequence[source] += 1
            origin = {"topic": NAMES.inbound(source), "partition": 0, "offset": offset}
            if rng.random() < 0.04:
                events.append(
                    {
                        "type": "bulletin.decided",
                        "outcome": "rejected",
                        "reason": rng.choice(["invalid_bulletin", "unknown_schema", "not_avro"]),
                        "input": origin,
                        "sha256": f"{offset:064x}",
                        "policy_version": version,
                        "time": when.isoformat(),
                    }
                )
                continue
            kind = rng.choices(
                ["alert", "situation_report", "notice", "request_for_information"],
                weights=(4, 4, 2, 1),
            )[0]
            marking = rng.choices(
                ["CLEAR", "GREEN", "AMBER", "AMBER_STRICT", "RED"], weights=(2, 4, 5, 2, 1)
            )[0]
            events.append(
                {
                    "type": "bulletin.decided",
                    "outcome": "accepted",
                    "bulletin_id": f"{source}:{offset:06d}",
                    "source": source,
                    "kind": kind,
                    "marking": marking,
                    "input": origin,
                    "sha256": f"{offset:064x}",
                    "policy_version": version,
                    "time": when.isoformat(),
                    "recipients": [
                        _recipient(source, other, kind, marking, rng)
                        for other in AGENCIES
                        if other != source
                    ],
                }
            )
    events.append(
        {
            "type": "audit.checkpoint",
            "chain": "edge.0",
            "tree_size": len(events),
            "time": (DAY + timedelta(hours=23, minutes=59)).isoformat(),
        }
    )
    return events


class _TestIds(HTMLParser):
    """The text of every element that has a data-testid."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, str] = {}
        self._open: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        testid = dict(attrs).get("data-testid")
        self._open.append(testid)
        if testid is not None:
            self.values[testid] = ""

    def handle_endtag(self, tag: str) -> None:
        if self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        for testid in self._open:
            if testid is not None:
                self.values[testid] += data


def test_the_browser_shows_the_json_numbers_and_the_report_screenshots(tmp_path: Path) -> None:
    report = build_report(
        realistic_day(),
        agency="north-river",
        start=DAY,
        end=DAY + timedelta(days=1),
        names=NAMES,
        now=DAY + timedelta(days=1, hours=8, minutes=30),
    )
    summary = report.as_dict()["summary"]
    assert all(summary[key] > 0 for key in TESTIDS.values()), summary
    page = tmp_path / "report.html"
    page.write_text(report_html(report), encoding="utf-8")

    parser = _TestIds()
    parser.feed(dump_dom(page.as_uri()))
    shown = {testid: int(text.strip().replace(",", "")) for testid, text in parser.values.items()}
    assert shown == {testid: summary[key] for testid, key in TESTIDS.items()}

    target = SCREENSHOT if os.environ.get("LIAISON_WRITE_SCREENSHOTS") else tmp_path / "r.png"
    screenshot(page.as_uri(), target, width=1280, height=2800)
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert target.stat().st_size > 20_000, "the screenshot looks empty"
