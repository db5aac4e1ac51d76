"""The admin API's agency partitions: chosen at provisioning, grown later (audited), never
shrunk; checked on the broker, not only in the answers. The API runs as the admin-service
principal with its least-privilege ACLs, so these also prove it holds what growth needs."""

from __future__ import annotations

import secrets
import time
from typing import Any

import httpx
import pytest

from bus.kafka import KafkaAdmin
from tests.support.api import ApiHarness

pytestmark = pytest.mark.integration


@pytest.fixture
def fresh_agency(module_api: ApiHarness) -> str:
    agency = f"n{secrets.token_hex(3)}-{module_api.bus.names.prefix}"
    module_api.bus.principals.append(agency)
    return agency


def counts(api: ApiHarness, agency: str) -> dict[str, int]:
    names = api.bus.names
    with KafkaAdmin(api.bus.admin) as admin:
        return admin.partition_counts([names.inbound(agency), names.outbound(agency)])


def events(client: httpx.Client, agency: str) -> list[dict[str, Any]]:
    answer = client.get("/audit", params={"type": "agency.partitions_grown", "limit": 1000})
    assert answer.status_code == 200, answer.text
    return [e for e in answer.json()["events"] if e["agency"] == agency]


def test_an_agency_provisioned_with_partitions_gets_them(
    module_api: ApiHarness, fresh_agency: str
) -> None:
    with module_api.client() as admin:
        answer = admin.post("/agencies", json={"id": fresh_agency, "partitions": 3})
    assert answer.status_code == 201, answer.text
    assert set(counts(module_api, fresh_agency).values()) == {3}


def test_growing_an_agency_adds_partitions_and_is_audited_and_shrinking_is_refused(
    module_api: ApiHarness, fresh_agency: str
) -> None:
    names = module_api.bus.names
    with module_api.client() as admin:
        assert admin.post("/agencies", json={"id": fresh_agency}).status_code == 201
        grown = admin.post(f"/agencies/{fresh_agency}/partitions", json={"partitions": 4})
        again = admin.post(f"/agencies/{fresh_agency}/partitions", json={"partitions": 4})
        shrink = admin.post(f"/agencies/{fresh_agency}/partitions", json={"partitions": 2})
        audited = events(admin, fresh_agency)

    assert grown.status_code == 200, grown.text
    assert grown.json()["changes"] == [
        f"grew topic {names.inbound(fresh_agency)} from 1 to 4 partitions",
        f"grew topic {names.outbound(fresh_agency)} from 1 to 4 partitions",
    ]
    assert again.status_code == 200, again.text
    assert again.json()["changes"] == []
    assert shrink.status_code == 409, shrink.text
    assert shrink.json()["error"]["code"] == "partitions_shrink"
    assert "from 4 to 2 partitions" in shrink.json()["error"]["message"]
    assert set(counts(module_api, fresh_agency).values()) == {4}
    (event,) = audited  # the repeat and the refusal changed nothing: not audited
    assert event["partitions"] == 4
    assert event["changes"] == grown.json()["changes"]


def test_growing_an_unknown_agency_is_404(module_api: ApiHarness, fresh_agency: str) -> None:
    with module_api.client() as admin:
        answer = admin.post(f"/agencies/{fresh_agency}/partitions", json={"partitions": 2})
    assert answer.status_code == 404, answer.text
    assert fresh_agency not in answer.text


def test_an_agency_whose_topics_are_gone_is_409_unavailable_not_a_shrink(
    module_api: ApiHarness, fresh_agency: str
) -> None:
    names = module_api.bus.names
    with module_api.client() as admin:
        assert admin.post("/agencies", json={"id": fresh_agency}).status_code == 201
        with KafkaAdmin(module_api.bus.admin) as kafka:
            kafka.delete_topics([names.inbound(fresh_agency)])
            deadline = time.monotonic() + 30
            while names.inbound(fresh_agency) in kafka.partition_counts(
                [names.inbound(fresh_agency)]
            ):
                assert time.monotonic() < deadline, "the topic is still listed after 30 s"
                time.sleep(0.05)  # sleep-ok: metadata has no change notification
        answer = admin.post(f"/agencies/{fresh_agency}/partitions", json={"partitions": 2})
    assert answer.status_code == 409, answer.text
    assert answer.json()["error"]["code"] == "agency_unavailable"
