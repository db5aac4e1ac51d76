"""The demo as a newcomer runs it, and the dashboard as a browser shows it.

`liaison demo` runs in a subprocess exactly as `make demo` starts it; the test reads the
URL it prints, watches the agencies' bulletins flow through the admin API, loads the
dashboard in headless Chromium and checks its numbers against the API, then stops the
demo with SIGINT (what Ctrl-C sends) and checks that everything shut down.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from tests.support import jvm_pids_using, wait_for_exit
from tests.support.chromium import dump_dom, screenshot

REPO = Path(__file__).resolve().parents[2]
URL = re.compile(r"dashboard:\s+(http://\S+/dashboard)#token=(\S+)")
SCREENSHOT = REPO / "docs" / "dashboard.png"


class _Lines:
    """A pipe's lines, read by a thread, handed out with deadlines."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: IO[str]) -> None:
        with stream:  # closed at end of file: the process has exited
            for line in stream:
                self.lines.put(line)
        self.lines.put(None)

    def join(self, timeout_s: float) -> None:
        self._thread.join(timeout_s)

    def until(self, pattern: re.Pattern[str], timeout_s: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout_s
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
            if match := pattern.search(line):
                return match
        raise AssertionError(f"no line matching {pattern.pattern!r}; saw: {self.seen[-30:]}")

    def rest(self, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
        return "".join(self.seen)


@dataclass
class Demo:
    process: subprocess.Popen[str]
    state: Path
    base: str
    token: str
    stdout: _Lines
    stderr: _Lines
    started_in_s: float

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.base, headers={"Authorization": f"Bearer {self.token}"}, timeout=30
        )

    def summary(self) -> dict[str, Any]:
        with self.api() as client:
            answer = client.get("/dashboard/summary")
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result

    def wait_for(self, condition: Any, timeout_s: float = 120.0) -> dict[str, Any]:
        """The first summary for which ``condition`` holds (the demo is live: it changes)."""
        deadline = time.monotonic() + timeout_s
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            last = self.summary()
            if condition(last):
                return last
            # Wait on the one event that must not happen (the demo exiting) between looks.
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = self.process.wait(timeout=0.5)
                raise AssertionError(f"the demo exited with {code}: {self.stderr.rest(5)[-2000:]}")
        raise AssertionError(f"condition not met within {timeout_s}s; last summary: {last}")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    state = tmp_path_factory.mktemp("demo") / "state"
    env = {**os.environ, "COLUMNS": "200"}
    began = time.monotonic()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bus.cli",
            "demo",
            "--state-dir",
            str(state),
            "--api-port",
            "0",
            "--rate",
            "10",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    stdout, stderr = _Lines(process.stdout), _Lines(process.stderr)
    try:
        match = stdout.until(URL, timeout_s=180)
    except AssertionError:
        process.kill()
        raise AssertionError(f"the demo printed no URL; stderr: {stderr.rest(5)[-3000:]}") from None
    running = Demo(
        process=process,
        state=state,
        base=match.group(1).removesuffix("/dashboard"),
        token=match.group(2),
        stdout=stdout,
        stderr=stderr,
        started_in_s=time.monotonic() - began,
    )
    yield running
    if process.poll() is None:
        process.kill()
        process.wait(30)
    stdout.join(30)
    stderr.join(30)


class _TestIds(HTMLParser):
    """Every element's data-testid and text, and the body's data attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, str] = {}
        self.body: dict[str, str | None] = {}
        self._open: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "body":
            self.body = attributes
        testid = attributes.get("data-testid")
        if testid is not None:
            self.values.setdefault(testid, "")
        self._open.append(testid)

    def handle_endtag(self, tag: str) -> None:
        if self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        for testid in self._open:
            if testid is not None:
                self.values[testid] += data


def _number(values: dict[str, str], testid: str) -> int:
    assert testid in values, f"the dashboard shows no {testid}"
    return int(values[testid].strip().replace(",", ""))


def test_the_demo_serves_the_dashboard_with_bulletins_flowing(demo: Demo) -> None:
    assert demo.started_in_s < 180, f"the dashboard took {demo.started_in_s:.0f}s to appear"
    summary = demo.wait_for(
        lambda s: s["decisions"]["accepted"] >= 20 and s["dead_letters"]["total"] >= 1
    )
    agencies = {a["id"] for a in summary["agencies"]}
    assert {"north-river", "harbour-watch", "vale-fire"} <= agencies
    delivered = {(f["source"], f["recipient"]) for f in summary["flows"] if f["delivered"]}
    assert len(delivered) >= 3, summary["flows"]
    actions = {
        action
        for decision in summary["recent"]
        for recipient in decision["recipients"]
        if recipient["delivered"]
        for action in recipient["redactions"]
    }
    assert actions, "no redaction in the recent decisions"
    assert summary["dead_letters"]["by_reason"].get("bad_magic", 0) >= 1


def test_the_demo_starts_without_logging_an_error(demo: Demo) -> None:
    """A transient, retried condition is not an ERROR: the first consumer group of the fresh
    broker meets COORDINATOR_NOT_AVAILABLE, which aiokafka logged as one (issue 15.11)."""
    at_work = re.compile(r"the demo agencies are at work")
    if not any(at_work.search(line) for line in demo.stderr.seen):
        demo.stderr.until(at_work, timeout_s=120)
    errors = [line for line in demo.stderr.seen if " ERROR " in line]
    assert errors == []


def test_each_demo_agency_receives_its_views_through_its_own_sink(demo: Demo) -> None:
    agencies = demo.state / "agencies"

    def written() -> dict[str, int]:
        return {
            "jsonl": sum(1 for _ in (agencies / "north-river/views").glob("*.jsonl")),
            "stix": sum(1 for _ in (agencies / "harbour-watch/stix-out").rglob("*.json")),
            "cap": sum(1 for _ in (agencies / "vale-fire/cap-out").rglob("*.xml")),
        }

    demo.wait_for(lambda _: all(written().values()), timeout_s=120)
    views = (agencies / "north-river/views/views.jsonl").read_text().splitlines()
    assert all(json.loads(v)["recipient"] == "north-river" for v in views)


def test_the_dashboard_in_chromium_shows_what_the_api_reports(demo: Demo) -> None:
    before = demo.wait_for(lambda s: s["decisions"]["accepted"] >= 20)
    dom = dump_dom(f"{demo.base}/dashboard#token={demo.token}", budget_ms=1500)
    after = demo.summary()
    page = _TestIds()
    page.feed(dom)
    assert page.body.get("data-loaded") == "true", page.body
    shown = page.values
    # The demo is live: what the page shows lies between the summaries taken before and
    # after it loaded (every count only grows).
    for testid, key in (
        ("decisions-accepted", ("decisions", "accepted")),
        ("decisions-rejected", ("decisions", "rejected")),
        ("deadletters-total", ("dead_letters", "total")),
    ):
        low, high = before[key[0]][key[1]], after[key[0]][key[1]]
        assert low <= _number(shown, testid) <= high, (testid, low, shown[testid], high)
    assert _number(shown, "agency-count") == len(after["agencies"])
    for agency in after["agencies"]:
        assert f"agency-{agency['id']}" in shown
    for flow in before["flows"]:
        stem = f"flow-{flow['source']}-{flow['recipient']}"
        ceiling = next(
            f
            for f in after["flows"]
            if (f["source"], f["recipient"]) == (flow["source"], flow["recipient"])
        )
        assert flow["delivered"] <= _number(shown, f"{stem}-delivered") <= ceiling["delivered"]
        assert flow["withheld"] <= _number(shown, f"{stem}-withheld") <= ceiling["withheld"]
    assert _number(shown, "recent-count") > 0
    assert demo.token not in dom, "the token stays out of the page"

    target = SCREENSHOT if os.environ.get("LIAISON_WRITE_SCREENSHOTS") else None
    path = target or Path(demo.state) / "dashboard.png"
    screenshot(f"{demo.base}/dashboard#token={demo.token}", path, height=1400, budget_ms=1500)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 20_000, "the screenshot looks empty"


def test_ctrl_c_stops_the_demo_cleanly_and_no_secret_reached_the_terminal(demo: Demo) -> None:
    broker_dir = demo.state / "broker"
    assert jvm_pids_using(broker_dir), "the demo's broker is not running"
    demo.process.send_signal(signal.SIGINT)
    assert demo.process.wait(90) == 0
    assert "demo stopped" in demo.stderr.rest(10)
    for pid in jvm_pids_using(broker_dir):
        assert wait_for_exit(pid, timeout_s=30), f"broker JVM {pid} outlived the demo"
    printed = demo.stdout.rest(5) + demo.stderr.rest(5)
    passwords = [
        json.loads(path.read_text())["password"]
        for path in (demo.state / "credentials").glob("*.json")
    ]
    assert passwords
    for password in passwords:
        assert password not in printed, "a Kafka password reached the terminal"
