"""The edge router on the real broker: delivery, markings, dead letters, policy reload."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from bus.bulletin import Marking, Status
from bus.kafka import Consumer, Record, wait_until_authenticates
from bus.provision import Provisioner
from tests.e2e.conftest import Bus, running_edge

pytestmark = pytest.mark.integration


def share(
    bus: Bus, rule_id: str, source: str, recipients: list[str], **extra: Any
) -> dict[str, Any]:
    return {
        "id": rule_id,
        "source": {"agencies": [bus.agency(source)]},
        "recipients": {"agencies": [bus.agency(r) for r in recipients]},
        "kinds": ["*"],
        "max_marking": "RED",
        **extra,
    }


def audit_events(records: list[Record]) -> list[dict[str, Any]]:
    """The decisions among the audit records (checkpoints left out)."""
    events = [json.loads(r.value or b"{}") for r in records]
    return [e for e in events if e.get("type") == "bulletin.decided"]


async def test_a_bulletin_reaches_the_entitled_agency_redacted_and_nobody_else(bus: Bus) -> None:
    await bus.publish_policy(
        bus.policy(
            [
                share(bus, "a-to-b", "a", ["b"], redact=[{"tag": "pii", "action": "drop"}]),
            ]
        )
    )
    bulletin = (
        bus.generator("a", seed=1)
        .bulletin("situation_report")
        .model_copy(update={"marking": Marking.AMBER, "status": Status.ACTUAL})
    )

    async with running_edge(bus):
        await bus.send("a", bulletin)
        views = await bus.views("b", 1)
        audit = await bus.read_as_admin(bus.names.audit, lambda rs: len(rs) >= 1)

    view = views[0]
    assert view["recipient"] == bus.agency("b")
    assert view["bulletin"]["bulletin_id"] == bulletin.bulletin_id
    _, body = view["bulletin"]["body"]
    assert body["reporting_officer"] is None
    assert {r["path"] for r in view["redactions"]} >= {"body.reporting_officer"} or (
        bulletin.body.get("reporting_officer") is None
    )
    event = audit_events(audit)[0]
    assert event["outcome"] == "accepted"
    delivered = {r["agency"] for r in event["recipients"] if r["delivered"]}
    assert delivered == {bus.agency("b")}
    withheld = {r["agency"]: r["reason"] for r in event["recipients"] if not r["delivered"]}
    assert withheld == {bus.agency("c"): "no_rule"}
    async with Consumer(bus.agencies[bus.agency("c")], bus.names.outbound(bus.agency("c"))) as c:
        assert await c.getmany(timeout_ms=1000) == []


async def test_red_reaches_only_agencies_in_releasable_to(bus: Bus) -> None:
    await bus.publish_policy(bus.policy([share(bus, "a-to-all", "a", ["b", "c"])]))
    red = (
        bus.generator("a", seed=2)
        .bulletin("alert")
        .model_copy(
            update={
                "marking": Marking.RED,
                "releasable_to": [bus.agency("c")],
                "status": Status.ACTUAL,
            }
        )
    )
    marker = (
        bus.generator("a", seed=3)
        .bulletin("notice")
        .model_copy(update={"marking": Marking.GREEN, "status": Status.ACTUAL})
    )

    async with running_edge(bus):
        await bus.send("a", red)
        await bus.send("a", marker)  # B's stream ends with the marker; RED must not precede it
        for_c = await bus.views("c", 2)
        for_b = await bus.views("b", 1)

    assert [v["bulletin"]["bulletin_id"] for v in for_c] == [red.bulletin_id, marker.bulletin_id]
    assert for_c[0]["not_for_forwarding"] is True
    assert [v["bulletin"]["bulletin_id"] for v in for_b] == [marker.bulletin_id]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\x07garbage that is not a bulletin", "bad_magic"),
        (b"\x00\x00\x00\x03\xe7\x02\x04", "unknown_schema_id"),
    ],
)
async def test_undecodable_input_is_dead_lettered_and_the_stream_flows_on(
    bus: Bus, payload: bytes, reason: str
) -> None:
    await bus.publish_policy(bus.policy([share(bus, "a-to-b", "a", ["b"])]))
    after = (
        bus.generator("a", seed=4)
        .bulletin("notice")
        .model_copy(update={"marking": Marking.GREEN, "status": Status.ACTUAL})
    )

    async with running_edge(bus):
        await bus.send_raw("a", payload)
        await bus.send("a", after)
        views = await bus.views("b", 1)
        dead = await bus.read_as_admin(bus.names.deadletter, lambda rs: len(rs) >= 1)

    assert views[0]["bulletin"]["bulletin_id"] == after.bulletin_id
    letter = dead[0]
    headers = dict(letter.headers)
    assert letter.value == payload
    assert headers["liaison.reason"].decode() == reason
    assert headers["liaison.source.topic"].decode() == bus.names.inbound(bus.agency("a"))
    assert headers["liaison.source.offset"] == b"0"


async def test_a_spoofed_source_agency_is_dead_lettered(bus: Bus) -> None:
    await bus.publish_policy(bus.policy([share(bus, "b-to-c", "b", ["c"])]))
    spoof = (
        bus.generator("b", seed=5)
        .bulletin("notice")
        .model_copy(update={"marking": Marking.GREEN, "status": Status.ACTUAL})
    )

    async with running_edge(bus):
        await bus.send("a", spoof)  # A writes a bulletin claiming to come from B
        dead = await bus.read_as_admin(bus.names.deadletter, lambda rs: len(rs) >= 1)
        audit = await bus.read_as_admin(bus.names.audit, lambda rs: len(rs) >= 1)

    assert dict(dead[0].headers)["liaison.reason"] == b"spoofed_source"
    event = audit_events(audit)[0]
    assert (event["outcome"], event["reason"]) == ("rejected", "spoofed_source")
    async with Consumer(bus.agencies[bus.agency("c")], bus.names.outbound(bus.agency("c"))) as c:
        assert await c.getmany(timeout_ms=1000) == []


async def test_a_policy_change_takes_effect_without_restart(bus: Bus) -> None:
    await bus.publish_policy(bus.policy([share(bus, "a-to-b", "a", ["b"])], version=1))
    gen = bus.generator("a", seed=6)

    def notice() -> Any:
        return gen.bulletin("notice").model_copy(
            update={"marking": Marking.GREEN, "status": Status.ACTUAL}
        )

    first, second = notice(), notice()
    async with running_edge(bus) as router:
        await bus.send("a", first)
        await bus.views("b", 1)
        await bus.publish_policy(bus.policy([share(bus, "a-to-c", "a", ["c"])], version=2))
        await router.wait_for_policy(2)
        await bus.send("a", second)
        for_c = await bus.views("c", 1)
        records = await bus.read_as_admin(bus.names.audit, lambda rs: len(rs) >= 2)
    audit = audit_events(records)

    assert {e["policy_version"] for e in audit} == {1, 2}
    assert for_c[-1]["bulletin"]["bulletin_id"] == second.bulletin_id
    assert for_c[-1]["policy_version"] == 2


async def test_an_agency_provisioned_while_the_router_runs_is_picked_up(bus: Bus) -> None:
    newcomer = f"n-{bus.names.prefix.removeprefix('bus')}"
    async with running_edge(bus) as router:
        await bus.publish_policy(bus.policy([]))
        await router.wait_for_policy(1)
        added = await Provisioner(bus.admin, names=bus.names).add(newcomer)
        assert added.password is not None
        bus.agencies[newcomer] = bus.admin.with_credentials(newcomer, added.password)
        bus.principals.append(newcomer)
        await asyncio.to_thread(wait_until_authenticates, bus.agencies[newcomer])
        await bus.publish_policy(bus.policy([share(bus, "n-to-b", "n", ["b"])], version=2))
        await router.wait_for_policy(2)
        bulletin = (
            bus.generator("n", seed=7)
            .bulletin("notice")
            .model_copy(update={"marking": Marking.GREEN, "status": Status.ACTUAL})
        )
        await bus.send("n", bulletin)
        views = await bus.views("b", 1)

    assert views[0]["bulletin"]["source_agency"] == newcomer
