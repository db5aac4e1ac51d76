"""Exactly once through crashes, modelled on Kafka's own transactions system test.

A seeded stream of bulletins is routed by ``liaison edge run`` in a subprocess that is
killed with SIGKILL five times: twice while a transaction is paused between producing its
views and committing, three times right after a randomly chosen commit (so the next batch
dies mid-flight). After a final clean run, read with ``read_committed``: every (bulletin,
entitled agency) pair appears exactly once, nothing reaches an unentitled agency, and every
input offset has exactly one audit decision.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from bus.bulletin import Marking, Status
from bus.kafka import Producer, read_to_end
from bus.policy import compile_policy, parse_policy
from tests.e2e.conftest import Bus

pytestmark = pytest.mark.integration

BULLETINS = int(os.environ.get("LIAISON_CRASH_BULLETINS", "10000"))
KILLS = 5
LIAISON = str(Path(sys.executable).parent / "liaison")


def crash_policy(bus: Bus) -> dict[str, Any]:
    a, b, c, d = (bus.agency(x) for x in "abcd")
    return bus.policy(
        [
            {
                "id": "a-to-b",
                "source": {"agencies": [a]},
                "recipients": {"agencies": [b]},
                "kinds": ["*"],
                "max_marking": "RED",
                "redact": [{"tag": "pii", "action": "drop"}],
            },
            {
                "id": "a-to-c",
                "source": {"agencies": [a]},
                "recipients": {"agencies": [c]},
                "kinds": ["alert", "notice"],
                "max_marking": "AMBER",
                "redact": [{"tag": "contact", "action": "pseudonymize"}],
            },
            {
                "id": "a-to-d",
                "source": {"agencies": [a]},
                "recipients": {"agencies": [d]},
                "kinds": ["*"],
                "max_marking": "GREEN",
            },
        ],
        extra={d: {"accepts": ["ACTUAL"]}},
    )


class Router:
    """``liaison edge run`` as a subprocess, read line by line."""

    def __init__(self, bus: Bus, *, pause_ms: int) -> None:
        self.bus = bus
        self.pause_ms = pause_ms
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        env = self.bus.edge_env()
        self.proc = await asyncio.create_subprocess_exec(
            LIAISON,
            "edge",
            "run",
            "--announce-commits",
            "--batch-max",
            "100",
            "--pause-at",
            "pre-commit",
            "--pause-ms",
            str(self.pause_ms),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env=env,
        )

    async def wait_for_line(self, prefix: str, *, nth: int = 1, timeout_s: float = 120) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        stdout = self.proc.stdout

        async def scan() -> None:
            seen = 0
            while seen < nth:
                line = (await stdout.readline()).decode()
                if not line:
                    raise AssertionError(f"router exited before {nth} x {prefix!r}")
                seen += line.startswith(prefix)

        await asyncio.wait_for(scan(), timeout_s)

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), 60)


async def _audit_offsets(bus: Bus) -> Counter[int]:
    inbound = bus.names.inbound(bus.agency("a"))
    events = [json.loads(r.value or b"{}") for r in await read_to_end(bus.admin, bus.names.audit)]
    decisions = [e for e in events if e.get("type") == "bulletin.decided"]
    return Counter(e["input"]["offset"] for e in decisions if e["input"]["topic"] == inbound)


@pytest.fixture
async def crash_bus(admin_connection: Any) -> Any:
    from tests.e2e.conftest import build_bus, teardown_bus

    built = await build_bus(admin_connection, ("a", "b", "c", "d"))
    yield built
    await asyncio.to_thread(teardown_bus, built)


async def test_sigkilled_routers_deliver_each_entitled_view_exactly_once(crash_bus: Bus) -> None:
    bus = crash_bus
    policy = crash_policy(bus)
    await bus.publish_policy(policy)
    rng = random.Random(20261125)
    gen = bus.generator("a", seed=99)
    bulletins = []
    statuses = [Status.ACTUAL, Status.ACTUAL, Status.ACTUAL, Status.EXERCISE]
    for b in gen.stream(BULLETINS):
        marking = rng.choice(list(Marking))
        update: dict[str, Any] = {"marking": marking, "status": rng.choice(statuses)}
        if marking is Marking.RED:
            update["releasable_to"] = [bus.agency(rng.choice("bcd"))]
        bulletins.append(b.model_copy(update=update))
    a = bus.agency("a")
    async with Producer(bus.agencies[a]) as producer:
        deliveries = [
            await producer.enqueue(
                bus.names.inbound(a),
                bus.codec.encode(bus.bulletin_schema_id, bus.schema.to_avro(b)),
                key=b.bulletin_id.encode(),
            )
            for b in bulletins
        ]
        for delivery in deliveries:
            await delivery

    # Kills 1 and 3 land inside the pause between producing views and committing.
    for kill in range(KILLS):
        in_pause = kill in (0, 2)
        router = Router(bus, pause_ms=2000 if in_pause else 0)
        await router.start()
        if in_pause:
            await router.wait_for_line("pre-commit", nth=rng.randint(1, 3))
        else:
            await router.wait_for_line("committed", nth=rng.randint(1, 15))
        await router.kill()

    final = Router(bus, pause_ms=0)
    await final.start()
    try:
        # Let it commit until it goes quiet (no commit for 5 s), then check completeness.
        while True:
            with contextlib.suppress(TimeoutError):
                await final.wait_for_line("committed", nth=1_000_000, timeout_s=5)
            if sum((await _audit_offsets(bus)).values()) >= BULLETINS:
                break
    finally:
        code = await final.terminate()
    assert code == 0

    compiled = compile_policy(parse_policy(policy), bus.schema, bus.keys)
    expected = {
        (b.bulletin_id, view.recipient) for b in bulletins for view in compiled.evaluate(b).views
    }
    delivered: Counter[tuple[str, str]] = Counter()
    for agency in ("b", "c", "d"):
        recipient = bus.agency(agency)
        for record in await read_to_end(bus.admin, bus.names.outbound(recipient)):
            view = bus.codec.decode(record.value or b"").record
            delivered[(view["bulletin"]["bulletin_id"], recipient)] += 1
    duplicates = {k: n for k, n in delivered.items() if n > 1}
    audit = await _audit_offsets(bus)

    assert not duplicates, f"{len(duplicates)} view(s) delivered more than once"
    assert set(delivered) - expected == set(), "a view reached an unentitled agency"
    assert expected - set(delivered) == set(), f"{len(expected - set(delivered))} views lost"
    assert sorted(audit) == list(range(BULLETINS)), "an input offset lacks an audit decision"
    assert max(audit.values()) == 1, "an input offset has more than one audit decision"
    print(  # noqa: T201 - the counts go into the issue note
        f"crash test: {BULLETINS} bulletins, {KILLS} SIGKILLs, {len(expected)} entitled views "
        f"delivered exactly once, {len(audit)} audit decisions"
    )
