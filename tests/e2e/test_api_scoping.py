"""What an agency token sees of shared objects: its own audit entries and dead letters.

Real traffic on a real bus: the policy is put and activated through the API, a router
decides bulletins and dead-letters malformed records, and each agency then asks the
API what it may see.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from bus.bulletin import Bulletin, Marking, Status
from bus.sandbox import Bus, running_edge
from tests.support.api import ApiHarness, until

pytestmark = pytest.mark.integration


def share(bus: Bus, source: str, recipient: str) -> dict[str, Any]:
    return {
        "id": f"{source}-to-{recipient}",
        "source": {"agencies": [bus.agency(source)]},
        "recipients": {"agencies": [bus.agency(recipient)]},
        "kinds": ["*"],
        "max_marking": "AMBER",
        "redact": [{"tag": "pii", "action": "drop"}],
    }


def green(bus: Bus, short: str, seed: int) -> Bulletin:
    return (
        bus.generator(short, seed=seed)
        .bulletin("notice")
        .model_copy(update={"marking": Marking.GREEN, "status": Status.ACTUAL})
    )


def client(api: ApiHarness, role: str) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {api.tokens[role]}"}
    return httpx.AsyncClient(base_url=api.url, headers=headers, timeout=60)


async def activate(api: ApiHarness, rules: list[dict[str, Any]]) -> None:
    async with client(api, "admin") as admin:
        stored = await admin.put("/policies/1", json=api.bus.policy(rules, version=1))
        assert stored.status_code == 201, stored.text
        activated = await admin.post("/policies/1/activate")
        assert activated.status_code == 200, activated.text


async def audit(api: ApiHarness, role: str, **params: str) -> dict[str, Any]:
    async with client(api, role) as caller:
        answer = await caller.get("/audit", params={"limit": "1000", **params})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def test_an_agency_sees_in_the_audit_only_its_own_events_and_its_own_recipient_entry(
    api: ApiHarness,
) -> None:
    bus = api.bus
    a, c = bus.agency("a"), bus.agency("c")
    await activate(api, [share(bus, "a", "b"), share(bus, "b", "c")])
    from_a, from_b = green(bus, "a", seed=11), green(bus, "b", seed=12)
    async with running_edge(bus) as router:
        await router.wait_for_policy(1)
        await bus.send("a", from_a)
        await bus.send("b", from_b)
        await bus.send_raw("a", b"garbage from a")
        await bus.send_raw("b", b"garbage from b")
        await bus.views("b", 1)
        await bus.views("c", 1)
        await bus.read_as_admin(bus.names.deadletter, lambda records: len(records) >= 2)

    everything = (await audit(api, "admin", type="bulletin.decided"))["events"]
    assert len(everything) == 4
    full_from_b = next(e for e in everything if e.get("bulletin_id") == from_b.bulletin_id)
    assert {r["agency"] for r in full_from_b["recipients"]} == {a, c}  # what a must not see
    assert "sha256" in full_from_b

    seen = (await audit(api, "a"))["events"]

    assert {e["type"] for e in seen} == {"bulletin.decided"}  # no admin events
    own_input = bus.names.inbound(a)
    rejected = [e for e in seen if e["outcome"] == "rejected"]
    assert [e["input"]["topic"] for e in rejected] == [own_input]  # b's garbage is not shown
    assert "sha256" in rejected[0]
    decided = {e["bulletin_id"]: e for e in seen if e["outcome"] == "accepted"}
    # b's bulletin was withheld from a: a does not learn that it exists
    assert set(decided) == {from_a.bulletin_id}
    own = decided[from_a.bulletin_id]
    assert own["source"] == a
    assert own["input"]["topic"] == own_input
    assert "sha256" in own
    assert own["recipients"] == []  # whom its bulletin reached is not its to see


async def test_an_agency_gets_nothing_when_it_asks_for_another_agency_s_events(
    api: ApiHarness,
) -> None:
    bus = api.bus
    await activate(api, [share(bus, "a", "b"), share(bus, "b", "c")])
    from_b = green(bus, "b", seed=13)
    async with running_edge(bus) as router:
        await router.wait_for_policy(1)
        await bus.send("b", from_b)
        await bus.send_raw("b", b"garbage from b")
        await bus.views("c", 1)
        await bus.read_as_admin(bus.names.deadletter, lambda records: len(records) >= 1)
    assert (await audit(api, "admin", agency=bus.agency("b")))["matched"] == 2

    asked = await audit(api, "a", agency=bus.agency("b"))

    assert asked["events"] == []
    assert asked["matched"] == 0


async def test_a_recipient_sees_its_delivered_entry_but_not_the_digest_of_the_original(
    api: ApiHarness,
) -> None:
    bus = api.bus
    await activate(api, [share(bus, "a", "b")])
    from_a = green(bus, "a", seed=14)
    async with running_edge(bus) as router:
        await router.wait_for_policy(1)
        await bus.send("a", from_a)
        await bus.views("b", 1)

    seen = (await audit(api, "b", bulletin_id=from_a.bulletin_id))["events"]

    assert len(seen) == 1
    (entry,) = seen[0]["recipients"]
    assert entry["agency"] == bus.agency("b")
    assert entry["delivered"] is True
    assert "sha256" not in seen[0]
    assert "input" not in seen[0]


async def test_an_agency_lists_only_the_dead_letters_of_its_own_submissions(
    api: ApiHarness,
) -> None:
    bus = api.bus
    a, b = bus.agency("a"), bus.agency("b")
    await activate(api, [share(bus, "a", "b")])
    async with running_edge(bus) as router:
        await router.wait_for_policy(1)
        await bus.send_raw("a", b"garbage from a")
        await bus.send_raw("b", b"garbage from b")
        await bus.send_raw("b", b"more garbage from b")
        await bus.read_as_admin(bus.names.deadletter, lambda records: len(records) >= 3)
    with api.client("admin") as admin:  # the API folds dead letters in the background
        await asyncio.to_thread(
            until,
            lambda: admin.get("/deadletters").json()["total"] == 3,
            "the API lists the three dead letters",
        )

    async with client(api, "a") as as_a, client(api, "b") as as_b:
        for_a = (await as_a.get("/deadletters")).json()
        for_b = (await as_b.get("/deadletters")).json()
        a_asks_for_b = (await as_a.get("/deadletters", params={"source": b})).json()

    assert [letter["source_agency"] for letter in for_a["dead_letters"]] == [a]
    assert for_a["total"] == 1
    assert [letter["source_agency"] for letter in for_b["dead_letters"]] == [b, b]
    assert for_b["total"] == 2
    assert a_asks_for_b == {"dead_letters": [], "total": 0}
