"""Scale-out: an agency's topics grown from one partition to four while two routers run."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from bus.bulletin import Bulletin, Marking, Status
from bus.errors import ConfigError
from bus.kafka import KafkaAdmin, Producer, Record, read_to_end
from bus.provision import Provisioner
from tests.e2e.conftest import Bus, running_edge

pytestmark = pytest.mark.integration

BEFORE = 10
AFTER = 200


def decisions(records: list[Record]) -> list[dict[str, Any]]:
    events = [json.loads(r.value or b"{}") for r in records]
    return [e for e in events if e.get("type") == "bulletin.decided"]


def green(bus: Bus, count: int) -> list[Bulletin]:
    generator = bus.generator("a", seed=1)
    return [
        generator.bulletin("notice").model_copy(
            update={"marking": Marking.GREEN, "status": Status.ACTUAL}
        )
        for _ in range(count)
    ]


async def publish(bus: Bus, bulletins: list[Bulletin]) -> None:
    """As agency a, keyed by bulletin id; a new producer, so fresh topic metadata."""
    agency = bus.agency("a")
    async with Producer(bus.agencies[agency]) as producer:
        for b in bulletins:
            value = bus.codec.encode(bus.bulletin_schema_id, bus.schema.to_avro(b))
            await producer.send(bus.names.inbound(agency), value, key=b.bulletin_id.encode())


async def test_two_routers_split_an_agency_grown_to_four_partitions_while_they_run(
    bus: Bus,
) -> None:
    a, b, c = (bus.agency(s) for s in "abc")
    await bus.publish_policy(
        bus.policy(
            [
                {
                    "id": "a-to-all",
                    "source": {"agencies": [a]},
                    "recipients": {"agencies": [b, c]},
                    "kinds": ["*"],
                    "max_marking": "RED",
                }
            ]
        )
    )
    provisioner = Provisioner(bus.admin, names=bus.names)
    bulletins = green(bus, BEFORE + AFTER)
    before, after = bulletins[:BEFORE], bulletins[BEFORE:]
    sent = {x.bulletin_id for x in before + after}
    assert len(sent) == BEFORE + AFTER

    async with (
        running_edge(bus, instance=0, instances=2) as first,
        running_edge(bus, instance=1, instances=2) as second,
    ):
        await publish(bus, before)
        await bus.read_as_admin(bus.names.audit, lambda rs: len(decisions(rs)) >= BEFORE)
        # One partition: one router did everything so far.
        assert sorted([first.stats["bulletins"], second.stats["bulletins"]]) == [0, BEFORE]

        grown = await provisioner.grow_partitions(a, 4)
        assert grown.changes == [
            f"grew topic {bus.names.inbound(a)} from 1 to 4 partitions",
            f"grew topic {bus.names.outbound(a)} from 1 to 4 partitions",
        ]
        await publish(bus, after)
        # The routers were started before the growth: they must notice it themselves.
        await bus.read_as_admin(
            bus.names.audit, lambda rs: len(decisions(rs)) >= BEFORE + AFTER, timeout_s=120
        )

    inbound = await read_to_end(bus.admin, bus.names.inbound(a), partitions=4)
    assert {r.partition for r in inbound} == {0, 1, 2, 3}
    # Both routers routed some of the agency's traffic, and together all of it once.
    assert first.stats["bulletins"] > 0
    assert second.stats["bulletins"] > 0
    assert first.stats["bulletins"] + second.stats["bulletins"] == BEFORE + AFTER

    audit = decisions(await read_to_end(bus.admin, bus.names.audit))
    inputs = Counter((e["input"]["partition"], e["input"]["offset"]) for e in audit)
    assert set(inputs.values()) == {1}
    assert sorted(inputs) == sorted((r.partition, r.offset) for r in inbound)
    for event in audit:
        assert event["outcome"] == "accepted"
        assert {r["agency"] for r in event["recipients"] if r["delivered"]} == {b, c}

    for recipient in (b, c):
        topic = bus.names.outbound(recipient)
        with KafkaAdmin(bus.admin) as admin:
            count = admin.partition_counts([topic])[topic]
        records = await read_to_end(bus.admin, topic, partitions=count)
        ids = Counter(
            bus.codec.decode(r.value or b"").record["bulletin"]["bulletin_id"] for r in records
        )
        assert set(ids) == sent, recipient
        assert set(ids.values()) == {1}, f"{recipient} got a bulletin twice"


async def test_partitions_only_grow(bus: Bus) -> None:
    a = bus.agency("a")
    provisioner = Provisioner(bus.admin, names=bus.names)
    assert (await provisioner.grow_partitions(a, 3)).changes != []
    assert (await provisioner.grow_partitions(a, 3)).changes == []
    with pytest.raises(ConfigError, match=rf"cannot shrink {bus.names.inbound(a)} from 3 to 2"):
        await provisioner.grow_partitions(a, 2)
    with KafkaAdmin(bus.admin) as admin:
        counts = admin.partition_counts([bus.names.inbound(a), bus.names.outbound(a)])
    assert counts == {bus.names.inbound(a): 3, bus.names.outbound(a): 3}
    with pytest.raises(ConfigError, match="'nobody' is not provisioned"):
        await provisioner.grow_partitions("nobody", 4)


async def test_a_new_agency_gets_the_partitions_asked_for(bus: Bus) -> None:
    provisioner = Provisioner(bus.admin, names=bus.names, partitions=2)
    agency = f"d-{bus.names.prefix}"
    bus.principals.append(agency)  # removed with the bus
    await provisioner.add(agency)
    other = f"e-{bus.names.prefix}"
    bus.principals.append(other)
    await provisioner.add(other, partitions=5)
    with KafkaAdmin(bus.admin) as admin:
        counts = admin.partition_counts(
            [bus.names.inbound(agency), bus.names.outbound(other), bus.names.inbound("absent")]
        )
    assert counts == {bus.names.inbound(agency): 2, bus.names.outbound(other): 5}
