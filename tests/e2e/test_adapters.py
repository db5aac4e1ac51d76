"""Adapters end to end on the real broker: agencies' systems in, redacted views out.

Each agency runs ``AdapterRunner`` (in-process, or ``liaison adapter run`` as a
subprocess when the test kills it) under its own credentials; the edge router routes
between them under a policy of the test's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import stix2
import uvicorn
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bus.adapters import AdapterRunner, InstanceSpec, RejectsFile, RunnerConfig
from bus.bulletin import Bulletin, Marking, Status
from bus.kafka import Producer, read_to_end
from tests.e2e.conftest import Bus, running_edge

pytestmark = pytest.mark.integration

LIAISON = str(Path(sys.executable).parent / "liaison")
SECRET_ENV = "LIAISON_TEST_WEBHOOK_SECRET"


async def eventually(condition: Callable[[], bool], what: str, *, timeout_s: float = 60.0) -> None:
    """Wait until ``condition()`` holds, checking every 50 ms; fail at the deadline."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s}s: {what}")
        await asyncio.sleep(0.05)  # sleep-ok: the poll interval of a deadline wait


def runner_config(bus: Bus, short: str, tmp_path: Path, *instances: dict[str, Any]) -> RunnerConfig:
    base = tmp_path / short
    return RunnerConfig(
        agency=bus.agency(short),
        prefix=bus.names.prefix,
        rejects_dir=base / "rejects",
        state_dir=base / "state",
        retry_initial_ms=20,
        retry_max_ms=200,
        status_interval_s=5,
        schema_wait_s=1,
        instances=[InstanceSpec.model_validate(i) for i in instances],
    )


@contextlib.asynccontextmanager
async def running_adapters(bus: Bus, config: RunnerConfig) -> AsyncIterator[AdapterRunner]:
    """The agency's runner in this event loop, as the agency; stopped cleanly on exit."""
    runner = AdapterRunner(bus.agencies[config.agency], config, schema=bus.schema)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    ready = asyncio.create_task(runner.ready.wait())
    await asyncio.wait([task, ready], timeout=60, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        ready.cancel()
        task.result()  # raises the runner's error
        raise AssertionError("the runner stopped before it was ready")
    assert ready.done(), "the runner was not ready within 60 s"
    try:
        yield runner
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


def drop(directory: Path, name: str, data: bytes) -> None:
    """The inbox protocol: write under a hidden name, then rename into place."""
    directory.mkdir(parents=True, exist_ok=True)
    hidden = directory / f".{name}.part"
    hidden.write_bytes(data)
    hidden.rename(directory / name)


def views_file_ids(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [
        json.loads(line)["bulletin"]["bulletin_id"]
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.endswith("}")
    ]


def share(bus: Bus, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return bus.policy(rules)


def a_to_b(bus: Bus, **extra: Any) -> dict[str, Any]:
    return {
        "id": "a-to-b",
        "source": {"agencies": [bus.agency("a")]},
        "recipients": {"agencies": [bus.agency("b")]},
        "kinds": ["*"],
        "max_marking": "AMBER",
        **extra,
    }


def notices(bus: Bus, count: int, seed: int = 0) -> list[Bulletin]:
    generator = bus.generator("a", seed=seed)
    return [
        generator.bulletin("notice").model_copy(
            update={"marking": Marking.GREEN, "status": Status.ACTUAL}
        )
        for _ in range(count)
    ]


# -- jsonl in, jsonl out ------------------------------------------------------------------


async def test_a_jsonl_file_of_a_reaches_b_views_file_and_bad_lines_reach_a_rejects(
    bus: Bus, tmp_path: Path
) -> None:
    await bus.publish_policy(share(bus, [a_to_b(bus)]))
    bulletins = notices(bus, 20)
    lines = [json.dumps(bus.schema.to_json(b)) for b in bulletins]
    inbox, outbox = tmp_path / "a-inbox", tmp_path / "b-outbox"
    source = runner_config(
        bus,
        "a",
        tmp_path,
        {
            "name": "files-in",
            "type": "jsonl",
            "direction": "source",
            "config": {"directory": str(inbox), "poll_interval_s": 0.1},
        },
    )
    sink = runner_config(
        bus,
        "b",
        tmp_path,
        {
            "name": "files-out",
            "type": "jsonl",
            "direction": "sink",
            "config": {"directory": str(outbox)},
        },
    )
    async with running_edge(bus), running_adapters(bus, source), running_adapters(bus, sink):
        drop(inbox, "batch.jsonl", ("\n".join([*lines[:10], "{oops", *lines[10:]]) + "\n").encode())
        await eventually(lambda: len(views_file_ids(outbox / "views.jsonl")) >= 20, "20 views at b")
        await eventually(lambda: (inbox / "processed" / "batch.jsonl").exists(), "file moved aside")
    assert views_file_ids(outbox / "views.jsonl") == [b.bulletin_id for b in bulletins]
    rejects = [
        json.loads(line)
        for line in (tmp_path / "a" / "rejects" / "files-in.jsonl").read_text().splitlines()
    ]
    assert [(r["origin"], r["reason"]) for r in rejects] == [("batch.jsonl:11", "bad_json")]


# -- a sink killed mid-stream ---------------------------------------------------------------


class RunnerProcess:
    """``liaison adapter run`` as a subprocess, as the agency."""

    def __init__(self, bus: Bus, short: str, config_file: Path) -> None:
        self.bus, self.short, self.config_file = bus, short, config_file
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        connection = self.bus.agencies[self.bus.agency(self.short)]
        env = {
            **os.environ,
            "LIAISON_KAFKA_BOOTSTRAP": connection.bootstrap_servers,
            "LIAISON_KAFKA_USERNAME": connection.username,
            "LIAISON_KAFKA_PASSWORD": connection.password.get_secret_value(),
        }
        self.proc = await asyncio.create_subprocess_exec(
            LIAISON,
            "adapter",
            "run",
            str(self.config_file),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            env=env,
        )

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), 60)


async def test_a_sink_killed_mid_stream_loses_and_duplicates_nothing(
    bus: Bus, tmp_path: Path
) -> None:
    await bus.publish_policy(share(bus, [a_to_b(bus)]))
    bulletins = notices(bus, 400, seed=7)
    outbox = tmp_path / "b-outbox"
    views = outbox / "views.jsonl"
    config_file = tmp_path / "b.yaml"
    config_file.write_text(
        yaml.safe_dump(
            {
                "agency": bus.agency("b"),
                "prefix": bus.names.prefix,
                "instances": [
                    {
                        "name": "files-out",
                        "type": "jsonl",
                        "direction": "sink",
                        "config": {"directory": str(outbox)},
                    }
                ],
            }
        )
    )
    runner = RunnerProcess(bus, "b", config_file)
    async with running_edge(bus):
        for bulletin in bulletins:
            await bus.send("a", bulletin)
        await runner.start()
        await eventually(lambda: len(views_file_ids(views)) >= 100, "100 views before the kill")
        await runner.kill()  # SIGKILL mid-stream: no chance to commit what it wrote
        killed_at = len(views_file_ids(views))
        await runner.start()
        await eventually(lambda: len(views_file_ids(views)) >= 400, "all 400 views", timeout_s=120)
        assert await runner.terminate() == 0
    assert killed_at < 400, "the kill came after the stream ended: nothing was tested"
    assert views_file_ids(views) == [b.bulletin_id for b in bulletins]
    assert not list((tmp_path / "rejects").glob("*.jsonl")), "nothing may have been rejected"


# -- webhooks -------------------------------------------------------------------------------


class Receiver:
    """An agency's HTTP endpoint: verifies signatures, fails the first ``failures`` calls."""

    def __init__(self, secret: bytes, failures: int = 0) -> None:
        self.secret = secret
        self.failures = failures
        self.calls: list[int] = []
        self.stored: dict[str, bytes] = {}
        self.received = asyncio.Condition()
        self.server: uvicorn.Server | None = None
        self.port = 0

    async def handle(self, request: Request) -> JSONResponse:
        body = await request.body()
        timestamp = request.headers.get("x-liaison-timestamp", "")
        expected = hmac.new(self.secret, f"{timestamp}.".encode() + body, hashlib.sha256)
        signature = request.headers.get("x-liaison-signature", "")
        if not hmac.compare_digest(signature, f"sha256={expected.hexdigest()}"):
            self.calls.append(401)
            return JSONResponse({"error": "bad signature"}, status_code=401)
        if self.failures > 0:
            self.failures -= 1
            self.calls.append(503)
            return JSONResponse({"error": "down for the test"}, status_code=503)
        delivery = request.headers["x-liaison-delivery"]
        self.stored.setdefault(delivery, body)
        self.calls.append(200)
        async with self.received:
            self.received.notify_all()
        return JSONResponse({"ok": True})

    async def wait_for(self, count: int, timeout_s: float = 60.0) -> None:
        async def reached() -> None:
            async with self.received:
                await self.received.wait_for(lambda: len(self.stored) >= count)

        await asyncio.wait_for(reached(), timeout_s)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[str]:
        app = Starlette(routes=[Route("/hook", self.handle, methods=["POST"])])
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        task = asyncio.create_task(self.server.serve(sockets=[sock]))
        try:
            yield f"http://127.0.0.1:{self.port}/hook"
        finally:
            self.server.should_exit = True
            await asyncio.wait_for(task, 10)
            sock.close()


@pytest.fixture
def webhook_secret(monkeypatch: pytest.MonkeyPatch) -> bytes:
    secret = os.urandom(24).hex()
    monkeypatch.setenv(SECRET_ENV, secret)
    return secret.encode()


async def test_a_receiver_failing_three_times_gets_the_view_exactly_once(
    bus: Bus, tmp_path: Path, webhook_secret: bytes
) -> None:
    await bus.publish_policy(share(bus, [a_to_b(bus)]))
    first, second = notices(bus, 2, seed=3)
    receiver = Receiver(webhook_secret, failures=3)
    sink = runner_config(
        bus,
        "b",
        tmp_path,
        {
            "name": "hook-out",
            "type": "webhook",
            "direction": "sink",
            "config": {"url": "", "secret_env": SECRET_ENV, "timeout_s": 5},
        },
    )
    async with receiver.running() as url, running_edge(bus):
        spec = sink.instances[0].model_copy(
            update={"config": {**sink.instances[0].config, "url": url}}
        )
        sink = sink.model_copy(update={"instances": [spec]})
        async with running_adapters(bus, sink) as runner:
            await bus.send("a", first)
            await receiver.wait_for(1)
        metrics = runner.status().instances["hook-out"]  # after the stop: the commit is done
        # A restarted runner resumes after the committed view: the first is not sent again.
        async with running_adapters(bus, sink):
            await bus.send("a", second)
            await receiver.wait_for(2)
    assert receiver.calls == [503, 503, 503, 200, 200]
    a = bus.agency("a")
    assert list(receiver.stored) == [f"{a}/{first.bulletin_id}", f"{a}/{second.bulletin_id}"]
    view = json.loads(receiver.stored[f"{a}/{first.bulletin_id}"])
    assert view["recipient"] == bus.agency("b")
    assert view["bulletin"]["bulletin_id"] == first.bulletin_id
    assert (metrics["delivered"], metrics["retries"], metrics["rejected"]) == (1, 3, 0)


# -- the runner's own duties ----------------------------------------------------------------


async def test_unreadable_records_and_foreign_bulletins_are_rejected_never_dropped(
    bus: Bus, tmp_path: Path
) -> None:
    """A record on b's to-topic that is no view goes to b's rejects and the stream moves on;
    a bulletin a's system claims came from b goes to a's rejects and never reaches Kafka."""
    await bus.publish_policy(share(bus, [a_to_b(bus)]))
    good, foreign = notices(bus, 2, seed=11)
    foreign = foreign.model_copy(update={"source_agency": bus.agency("b")})
    inbox, outbox = tmp_path / "a-inbox", tmp_path / "b-outbox"
    source = runner_config(
        bus,
        "a",
        tmp_path,
        {
            "name": "files-in",
            "type": "jsonl",
            "direction": "source",
            "config": {"directory": str(inbox), "poll_interval_s": 0.1},
        },
    )
    sink = runner_config(
        bus,
        "b",
        tmp_path,
        {
            "name": "files-out",
            "type": "jsonl",
            "direction": "sink",
            "config": {"directory": str(outbox)},
        },
    ).model_copy(update={"health_port": 0})
    async with running_edge(bus), running_adapters(bus, sink) as runner:
        async with Producer(bus.admin) as producer:  # only an administrator could do this
            await producer.send(bus.names.outbound(bus.agency("b")), b"\x00\x00\x00\x00\x63junk")
        async with running_adapters(bus, source):
            lines = [json.dumps(bus.schema.to_json(b)) for b in (foreign, good)]
            drop(inbox, "two.jsonl", ("\n".join(lines) + "\n").encode())
            await eventually(lambda: len(views_file_ids(outbox / "views.jsonl")) >= 1, "a view")
        assert runner.health_port is not None
        async with httpx.AsyncClient() as client:
            health = await client.get(f"http://127.0.0.1:{runner.health_port}/healthz")
    assert views_file_ids(outbox / "views.jsonl") == [good.bulletin_id]
    b_rejects = RejectsFile(tmp_path / "b" / "rejects" / "files-out.jsonl", "files-out").read()
    assert [(r["reason"], r["origin"].rsplit(":", 1)[0]) for r in b_rejects] == [
        ("unknown_schema_id", f"{bus.names.outbound(bus.agency('b'))}:0")
    ]
    a_rejects = RejectsFile(tmp_path / "a" / "rejects" / "files-in.jsonl", "files-in").read()
    assert [(r["origin"], r["reason"]) for r in a_rejects] == [("two.jsonl:1", "wrong_source")]
    inbound = await read_to_end(bus.admin, bus.names.inbound(bus.agency("a")))
    assert [r.key for r in inbound] == [good.bulletin_id.encode()]
    assert health.status_code == 200
    status = health.json()["instances"]["files-out"]
    assert (status["delivered"], status["rejected"], status["state"]) == (1, 1, "running")


# -- CAP in, STIX and webhook out -----------------------------------------------------------

TLP_AMBER_STIX = "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"


def cap_alert(identifier: str, sender: str, canaries: dict[str, str]) -> bytes:
    """A fictional CAP 1.2 alert as an agency's warning system would write it."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>{identifier}</identifier>
  <sender>{sender}</sender>
  <sent>2026-11-25T06:30:00-00:00</sent>
  <status>Actual</status>
  <msgType>Alert</msgType>
  <scope>Restricted</scope>
  <restriction>TLP:AMBER</restriction>
  <code>TLP:AMBER</code>
  <info>
    <category>Met</category>
    <event>River flooding</event>
    <urgency>Expected</urgency>
    <severity>Severe</severity>
    <certainty>Likely</certainty>
    <headline>Flood warning for the fictional Lower Quay</headline>
    <description>The fictional river Wend is rising at the quay. {canaries["description"]}
    </description>
    <instruction>Move vehicles away from the quay.</instruction>
    <contact>{canaries["contact"]}</contact>
    <area>
      <areaDesc>{canaries["place"]}</areaDesc>
      <circle>51.4523,-0.9731 2.5</circle>
    </area>
  </info>
</alert>
""".encode()


async def test_a_cap_file_of_a_leaves_b_as_stix_and_c_as_a_webhook_each_redacted(
    bus: Bus, tmp_path: Path, webhook_secret: bytes
) -> None:
    a, b, c = (bus.agency(x) for x in "abc")
    canaries = {
        "description": f"CANARY-DESCRIPTION-{os.urandom(6).hex()}",
        "contact": f"Duty Officer CANARY-CONTACT-{os.urandom(6).hex()}",
        "place": f"Lower Quay CANARY-PLACE-{os.urandom(6).hex()}",
    }
    policy = bus.policy(
        [
            {
                "id": "alerts-to-b",
                "source": {"agencies": [a]},
                "recipients": {"agencies": [b]},
                "kinds": ["alert"],
                "max_marking": "AMBER",
                "redact": [
                    {"tag": "pii", "action": "mask", "token": "[name withheld]"},
                    {"field": "body.description", "action": "truncate", "max_chars": 40},
                ],
            },
            {
                "id": "alerts-to-c",
                "source": {"agencies": [a]},
                "recipients": {"agencies": [c]},
                "kinds": ["alert"],
                "max_marking": "AMBER",
                "redact": [
                    {"tag": "pii", "action": "drop"},
                    {"field": "area.place_names", "action": "drop"},
                    {"field": "area.point", "action": "generalize", "grid_km": 10},
                ],
            },
        ]
    )
    await bus.publish_policy(policy)
    inbox, stix_out = tmp_path / "a-cap-inbox", tmp_path / "b-stix-outbox"
    receiver = Receiver(webhook_secret)
    async with receiver.running() as url:
        configs = [
            runner_config(
                bus,
                "a",
                tmp_path,
                {
                    "name": "cap-in",
                    "type": "cap",
                    "direction": "source",
                    "config": {"directory": str(inbox), "poll_interval_s": 0.1},
                },
            ),
            runner_config(
                bus,
                "b",
                tmp_path,
                {
                    "name": "stix-out",
                    "type": "stix",
                    "direction": "sink",
                    "config": {"directory": str(stix_out)},
                },
            ),
            runner_config(
                bus,
                "c",
                tmp_path,
                {
                    "name": "hook-out",
                    "type": "webhook",
                    "direction": "sink",
                    "config": {"url": url, "secret_env": SECRET_ENV},
                },
            ),
        ]
        async with (
            running_edge(bus),
            running_adapters(bus, configs[0]),
            running_adapters(bus, configs[1]),
            running_adapters(bus, configs[2]),
        ):
            drop(inbox, "flood.xml", cap_alert("NR-2026-0042", f"{a}@example.invalid", canaries))
            await receiver.wait_for(1)
            await eventually(lambda: any(stix_out.glob("*/*.json")), "a STIX bundle at b")
    assert (inbox / "processed" / "flood.xml").exists()

    # b: a STIX 2.1 bundle, TLP:AMBER, the description cut to 40 characters, the name masked.
    (bundle_file,) = stix_out.glob("*/*.json")
    raw_stix = bundle_file.read_text(encoding="utf-8")
    bundle = stix2.parse(raw_stix, allow_custom=True)
    (report,) = [o for o in bundle.objects if o.type == "report"]
    assert report.name == "Flood warning for the fictional Lower Quay"
    assert TLP_AMBER_STIX in report.object_marking_refs
    assert len(report.description) <= 41
    notes = " ".join(o.content for o in bundle.objects if o.type == "note")
    assert "body.description" in notes
    assert "truncate" in notes.lower()
    assert "body.sender_contact.phone" in notes  # CAP free-text contact: a contact field

    # c: the JSON view, signed, with the contact and place names dropped, the point coarse.
    raw_view = receiver.stored[f"{a}/NR-2026-0042"].decode()
    view = json.loads(raw_view)
    assert view["recipient"] == c
    assert view["bulletin"]["body"]["sender_contact"] is None
    assert view["bulletin"]["area"]["place_names"] is None
    point = view["bulletin"]["area"]["point"]
    assert (point["lat"], point["lon"]) != (51.4523, -0.9731)
    assert abs(point["lat"] - 51.4523) < 0.2
    assert {r["path"] for r in view["redactions"]} >= {"area.place_names", "area.point"}

    # No withheld value reaches bytes either recipient holds.
    for text, holder in ((raw_stix, "b's STIX bundle"), (raw_view, "c's webhook body")):
        assert canaries["contact"] not in text, holder
    assert canaries["description"] not in raw_stix
    assert canaries["place"] not in raw_view
