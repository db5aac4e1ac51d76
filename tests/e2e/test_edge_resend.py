"""Re-sent bulletins on the real broker: routed once, through restarts and SIGKILLs.

The rule (docs/edge.md, "Re-sent bulletins"): the same (source, id) with the same content
within the window is a ``duplicate`` decision and no view; with different content it is
dead-lettered as ``id_reused``. The ids accepted travel in the same transaction as the views.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from bus.bulletin import Bulletin, Marking, Status
from bus.edge import EdgeConfig, EdgeRouter, owner_of
from bus.errors import ConfigError, KafkaAuthorizationError
from bus.kafka import (
    AclFilter,
    AclOperation,
    Consumer,
    KafkaAdmin,
    KafkaConnection,
    Producer,
    Record,
    TopicPartition,
    read_to_end,
)
from tests.e2e.conftest import Bus, build_bus, running_edge, teardown_bus

pytestmark = pytest.mark.integration

LIAISON = str(Path(sys.executable).parent / "liaison")


def share_a_with_b(bus: Bus) -> dict[str, Any]:
    return bus.policy(
        [
            {
                "id": "a-to-b",
                "source": {"agencies": [bus.agency("a")]},
                "recipients": {"agencies": [bus.agency("b")]},
                "kinds": ["*"],
                "max_marking": "RED",
            }
        ]
    )


def notices(bus: Bus, seed: int, count: int) -> list[Bulletin]:
    gen = bus.generator("a", seed=seed)
    return [
        gen.bulletin("notice").model_copy(
            update={"marking": Marking.GREEN, "status": Status.ACTUAL}
        )
        for _ in range(count)
    ]


def encoded(bus: Bus, bulletin: Bulletin) -> bytes:
    return bus.codec.encode(bus.bulletin_schema_id, bus.schema.to_avro(bulletin))


def reissued(bulletin: Bulletin) -> Bulletin:
    """The same id with different content (a changed text)."""
    return bulletin.model_copy(update={"body": {**bulletin.body, "text": "REISSUED-CANARY-7f3a"}})


def decisions(records: list[Record]) -> list[dict[str, Any]]:
    events = [json.loads(r.value or b"{}") for r in records]
    return [e for e in events if e.get("type") == "bulletin.decided"]


async def view_ids(bus: Bus, short: str, partitions: int = 1) -> list[str]:
    agency = bus.agency(short)
    records = await read_to_end(bus.admin, bus.names.outbound(agency), partitions=partitions)
    return [bus.codec.decode(r.value or b"").record["bulletin"]["bulletin_id"] for r in records]


async def test_a_resent_bulletin_is_delivered_once_and_decided_as_a_duplicate(bus: Bus) -> None:
    await bus.publish_policy(share_a_with_b(bus))
    first, marker = notices(bus, seed=11, count=2)

    async with running_edge(bus):
        await bus.send("a", first)
        await bus.send("a", first)  # the adapter retried: same id, same bytes
        await bus.send("a", marker)
        await bus.views("b", 2)
        audit = await bus.read_as_admin(bus.names.audit, lambda rs: len(decisions(rs)) >= 3)

    assert await view_ids(bus, "b") == [first.bulletin_id, marker.bulletin_id]
    by_offset = {e["input"]["offset"]: e for e in decisions(audit)}
    assert [by_offset[o]["outcome"] for o in (0, 1, 2)] == ["accepted", "duplicate", "accepted"]
    duplicate = by_offset[1]
    assert duplicate["reason"] == "duplicate"
    assert duplicate["bulletin_id"] == first.bulletin_id
    assert duplicate["earlier"]["offset"] == 0
    assert "recipients" not in duplicate
    assert await read_to_end(bus.admin, bus.names.deadletter) == []


async def test_different_content_under_a_used_id_is_dead_lettered_not_delivered(bus: Bus) -> None:
    await bus.publish_policy(share_a_with_b(bus))
    first, marker = notices(bus, seed=12, count=2)
    second = reissued(first)
    second_bytes = encoded(bus, second)

    async with running_edge(bus):
        await bus.send("a", first)
        await bus.send_raw("a", second_bytes, key=second.bulletin_id.encode())
        await bus.send("a", marker)
        views = await bus.views("b", 2)
        dead = await bus.read_as_admin(bus.names.deadletter, lambda rs: len(rs) >= 1)
        audit = await bus.read_as_admin(bus.names.audit, lambda rs: len(decisions(rs)) >= 3)

    assert await view_ids(bus, "b") == [first.bulletin_id, marker.bulletin_id]
    assert views[0]["bulletin"]["issued_at"] == first.issued_at  # the first one stays
    (letter,) = dead
    headers = dict(letter.headers)
    assert letter.value == second_bytes
    assert headers["liaison.reason"] == b"id_reused"
    assert headers["liaison.source.offset"] == b"1"
    assert b"CANARY" not in headers["liaison.detail"]
    rejected = next(e for e in decisions(audit) if e["input"]["offset"] == 1)
    assert (rejected["outcome"], rejected["reason"]) == ("rejected", "id_reused")
    assert rejected["earlier"]["offset"] == 0
    assert "CANARY" not in json.dumps(decisions(audit))


async def test_a_resend_after_a_restart_is_still_a_duplicate(bus: Bus) -> None:
    await bus.publish_policy(share_a_with_b(bus))
    first, marker = notices(bus, seed=13, count=2)

    async with running_edge(bus):
        await bus.send("a", first)
        await bus.views("b", 1)
    async with running_edge(bus):  # a new process would know only what was committed
        await bus.send("a", first)
        await bus.send("a", marker)
        await bus.views("b", 2)

    assert await view_ids(bus, "b") == [first.bulletin_id, marker.bulletin_id]


async def test_an_agency_cannot_read_the_ids_the_router_accepted(bus: Bus) -> None:
    await bus.publish_policy(share_a_with_b(bus))
    (first,) = notices(bus, seed=14, count=1)
    async with running_edge(bus):
        await bus.send("a", first)
        await bus.views("b", 1)
    assert len(await read_to_end(bus.admin, bus.names.edge_seen)) == 1  # there is a record

    for short in ("a", "b"):
        agency = bus.agency(short)
        with pytest.raises(KafkaAuthorizationError):
            async with Consumer(bus.agencies[agency], bus.names.edge_seen) as consumer:
                await consumer.getmany(timeout_ms=5000)


async def test_a_router_that_cannot_read_the_accepted_ids_refuses_to_route(bus: Bus) -> None:
    """Fail closed: without the ids it accepted, a router would route re-sends again."""
    await bus.publish_policy(share_a_with_b(bus))
    (first,) = notices(bus, seed=17, count=1)
    async with running_edge(bus):
        await bus.send("a", first)
        await bus.views("b", 1)
    with KafkaAdmin(bus.admin) as admin:
        removed = admin.delete_acls(
            [
                AclFilter(
                    principal=bus.edge.principal,
                    resource_name=bus.names.edge_seen,
                    operation=AclOperation.READ,
                )
            ]
        )
    assert len(removed) == 1

    router = EdgeRouter(
        bus.edge, bus.schema, bus.keys, EdgeConfig(names=bus.names), signer=bus.signer
    )
    with pytest.raises(ConfigError, match=r"run `liaison agency service edge`"):
        await asyncio.wait_for(router.run(asyncio.Event()), 60)


# -- through SIGKILLs ----------------------------------------------------------------------


class Router:
    """``liaison edge run --announce-commits`` as a subprocess."""

    def __init__(self, bus: Bus, *extra: str) -> None:
        self.bus, self.extra = bus, extra
        self.proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Router:
        self.proc = await asyncio.create_subprocess_exec(
            LIAISON,
            "edge",
            "run",
            "--announce-commits",
            *self.extra,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env=self.bus.edge_env(),
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()

    async def line(self, prefix: str, timeout_s: float = 60) -> str:
        assert self.proc is not None
        assert self.proc.stdout is not None
        stdout = self.proc.stdout

        async def scan() -> str:
            while True:
                line = (await stdout.readline()).decode()
                if not line:
                    raise AssertionError(f"the router exited before {prefix!r}")
                if line.startswith(prefix):
                    return line

        return await asyncio.wait_for(scan(), timeout_s)

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), 60)


@pytest.fixture
async def crash_bus(admin_connection: KafkaConnection) -> Any:
    built = await build_bus(admin_connection, ("a", "b"))
    yield built
    await asyncio.to_thread(teardown_bus, built)


async def test_sigkilled_routers_still_route_a_resent_bulletin_once(crash_bus: Bus) -> None:
    bus = crash_bus
    await bus.publish_policy(share_a_with_b(bus))
    first, marker = notices(bus, seed=15, count=2)

    await bus.send("a", first)
    # 1. Killed with the first bulletin's transaction open: nothing of it is committed, its
    #    id included, so the next router must route it (not call it a duplicate of itself).
    async with Router(bus, "--pause-at", "pre-commit:0", "--pause-ms", "60000") as router:
        await router.line("pre-commit 0")
        await router.kill()
    # 2. Killed right after committing it: what it remembers lives only in that transaction.
    async with Router(bus) as router:
        await router.line("committed 0")
        await router.kill()
    await bus.send("a", first)  # the re-send
    await bus.send_raw("a", encoded(bus, reissued(first)), key=first.bulletin_id.encode())
    await bus.send("a", marker)
    # 3. A fresh process: the re-send is a duplicate, the re-issue is id_reused.
    async with Router(bus) as router:
        await bus.views("b", 2)
        audit = await bus.read_as_admin(bus.names.audit, lambda rs: len(decisions(rs)) >= 4)
        assert await router.terminate() == 0

    assert await view_ids(bus, "b") == [first.bulletin_id, marker.bulletin_id]
    events = decisions(await read_to_end(bus.admin, bus.names.audit))
    offsets = Counter(e["input"]["offset"] for e in events)
    assert offsets == Counter({0: 1, 1: 1, 2: 1, 3: 1}), "one decision per input offset"
    outcome = {e["input"]["offset"]: (e["outcome"], e.get("reason")) for e in events}
    assert outcome == {
        0: ("accepted", None),
        1: ("duplicate", "duplicate"),
        2: ("rejected", "id_reused"),
        3: ("accepted", None),
    }
    assert len(audit) >= 4


@pytest.fixture
async def wide_bus(admin_connection: KafkaConnection) -> Any:
    built = await build_bus(admin_connection, ("a", "b"), partitions=8)
    yield built
    await asyncio.to_thread(teardown_bus, built)


async def test_a_resend_on_a_partition_another_instance_owns_is_a_duplicate(
    wide_bus: Bus,
) -> None:
    """Ids are keyed to one partition until the partitions grow; every instance remembers
    every instance's ids, so a re-send that moved is still caught."""
    bus = wide_bus
    await bus.publish_policy(share_a_with_b(bus))
    first, marker = notices(bus, seed=16, count=2)
    inbound = bus.names.inbound(bus.agency("a"))
    by_owner = {owner_of(inbound, p, 2): p for p in range(8)}
    assert set(by_owner) == {0, 1}, "8 partitions, both instances own some"

    async def send(bulletin: Bulletin, partition: int) -> None:
        async with Producer(bus.agencies[bus.agency("a")]) as producer:
            await producer.send(
                inbound,
                encoded(bus, bulletin),
                key=bulletin.bulletin_id.encode(),
                partition=partition,
            )

    async with running_edge(bus, instance=0, instances=2):
        async with running_edge(bus, instance=1, instances=2):
            await send(first, by_owner[0])
            await bus.views("b", 1)
        async with running_edge(bus, instance=1, instances=2):  # restarted: it reloads
            await send(first, by_owner[1])  # the re-send, on instance 1's partition
            await send(marker, by_owner[1])
            await bus.views("b", 2)
            audit = await bus.read_as_admin(bus.names.audit, lambda rs: len(decisions(rs)) >= 3)

    # Views keyed by id spread over the to-topic's partitions: compare without order.
    assert Counter(await view_ids(bus, "b", 8)) == Counter([first.bulletin_id, marker.bulletin_id])
    resent = next(
        e
        for e in decisions(audit)
        if e["input"]["partition"] == by_owner[1] and e["bulletin_id"] == first.bulletin_id
    )
    assert resent["outcome"] == "duplicate"
    assert resent["earlier"]["partition"] == by_owner[0]


async def wait_until(condition: Any, what: str, timeout_s: float = 30.0) -> None:
    """Poll ``condition()`` (a router attribute, no event to wait on) until it is true."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(0.05)  # sleep-ok: poll interval


async def test_a_reload_reads_past_another_instances_open_transaction_and_forgets_nothing(
    bus: Bus,
) -> None:
    """Issue 15.11 review: the reload (on a partition gain, after an unknown commit outcome)
    read only up to the last stable offset, which stops at another instance's open
    transaction, and replaced the set with that: ids committed after it, this instance's own
    included, were forgotten and their re-sends routed again. Now the reload waits until it
    has read up to the high watermark (failing closed past a deadline) and merges."""
    await bus.publish_policy(share_a_with_b(bus))
    first, second, third, marker = notices(bus, seed=91, count=4)
    inbound = bus.names.inbound(bus.agency("a"))
    async with running_edge(bus) as router:
        await bus.send("a", first)
        await bus.views("b", 1)
        other = Producer(bus.edge, transactional_id=bus.names.edge_transactional_id(1))
        await other.start()
        try:
            await other.begin_transaction()
            # Instance 1 accepted `third` (as if its partition had held it), not yet committed.
            digest = hashlib.sha256(encoded(bus, third)).hexdigest()
            entry = [inbound, 0, 99, third.bulletin_id, digest, int(time.time() * 1000)]
            value = {"format": 1, "entries": [entry]}
            await other.send(bus.names.edge_seen, json.dumps(value).encode(), key=b"edge.1")
            await bus.send("a", second)  # routed and committed behind the open transaction
            await bus.views("b", 2)
            known = len(router._seen)

            with pytest.raises(ConfigError, match="could not be read up to offset"):
                await router._recover_seen(timeout_s=1.0)  # fail closed, not partial
            reload = asyncio.create_task(router._recover_seen())
            done, _ = await asyncio.wait({reload}, timeout=1.0)
            assert not done, "the reload waits for the other instance's transaction"
            await other.commit_transaction()
            await asyncio.wait_for(reload, 30)
        finally:
            await other.stop()
        assert len(router._seen) == known + 1  # its own two, and instance 1's
        await bus.send("a", second)  # re-sends: this instance's own id and instance 1's
        await bus.send("a", third)
        await bus.send("a", marker)
        await bus.views("b", 3)

    assert await view_ids(bus, "b") == [
        first.bulletin_id,
        second.bulletin_id,
        marker.bulletin_id,
    ]


async def test_an_instance_that_owned_nothing_reloads_the_ids_when_it_gains_partitions(
    bus: Bus,
) -> None:
    """Issue 15.11 review: the reload on a gain was skipped while the instance owned no
    partition at all, so an idle instance that gained a grown topic's partition routed a
    re-send of an id another instance had accepted."""
    instances = 4
    await bus.publish_policy(share_a_with_b(bus))
    first, marker = notices(bus, seed=92, count=2)
    inbound = bus.names.inbound(bus.agency("a"))
    owner_a = owner_of(inbound, 0, instances)
    busy = {owner_of(bus.names.inbound(agency), 0, instances) for agency in bus.agencies}
    idle = next(k for k in range(instances) if k not in busy)  # 3 agencies, 4 instances
    target = next(p for p in range(4) if owner_of(inbound, p, instances) == idle)

    async def send(bulletin: Bulletin, partition: int) -> None:
        async with Producer(bus.agencies[bus.agency("a")]) as producer:
            await producer.send(
                inbound,
                encoded(bus, bulletin),
                key=bulletin.bulletin_id.encode(),
                partition=partition,
            )

    async with running_edge(bus, instance=idle, instances=instances) as idler:
        await wait_until(lambda: idler.owned == frozenset(), "the idle instance has looked")
        async with running_edge(bus, instance=owner_a, instances=instances):
            await send(first, 0)
            await bus.views("b", 1)
        with KafkaAdmin(bus.admin) as admin:
            admin.create_partitions({inbound: 4})
        gained = TopicPartition(inbound, target)
        await wait_until(lambda: gained in (idler.owned or ()), "the idle instance gained")
        await send(first, target)  # the re-send, on the idle instance's new partition
        await send(marker, target)
        await bus.views("b", 2)

    assert Counter(await view_ids(bus, "b")) == Counter([first.bulletin_id, marker.bulletin_id])
