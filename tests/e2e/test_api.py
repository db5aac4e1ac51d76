"""The admin API over a real bus: agencies, policies, dead letters, audit, replay."""

from __future__ import annotations

import asyncio
from typing import Any

from bus.sandbox import running_edge
from tests.support.api import ApiHarness


def _rules(api: ApiHarness) -> list[dict[str, Any]]:
    bus = api.bus
    return [
        {
            "id": "a-to-b",
            "source": {"agencies": [bus.agency("a")]},
            "recipients": {"agencies": [bus.agency("b")]},
            "kinds": ["alert", "situation_report", "notice"],
            "max_marking": "AMBER",
            "redact": [{"tag": "pii", "action": "drop"}],
        }
    ]


async def test_a_policy_put_and_activated_through_the_api_routes_bulletins(
    api: ApiHarness,
) -> None:
    bus = api.bus
    policy = bus.policy(_rules(api), version=1)
    with api.client() as admin:
        assert admin.put("/policies/1", json=policy).status_code == 201
        assert admin.put("/policies/1", json=policy).status_code == 200
        activated = admin.post("/policies/1/activate")
        assert activated.status_code == 200, activated.text
    async with running_edge(bus) as router:
        await router.wait_for_policy(1)
        bulletin = bus.generator("a", seed=3).bulletin("alert")
        bulletin = bulletin.model_copy(update={"marking": bulletin.marking.__class__("GREEN")})
        await bus.send("a", bulletin)
        views = await bus.views("b", 1)
    assert views[0]["bulletin"]["bulletin_id"] == bulletin.bulletin_id

    def decided() -> dict[str, Any]:
        with api.client("auditor") as auditor:
            answer: dict[str, Any] = auditor.get(
                "/audit", params={"bulletin_id": bulletin.bulletin_id}
            ).json()
            return answer

    answer = await asyncio.to_thread(decided)
    assert answer["matched"] == 1
