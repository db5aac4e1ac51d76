"""docs/edge.md's ACL table against the ACLs a provisioned bus holds on the real broker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bus.kafka import Acl, AclFilter, Consumer, KafkaAdmin, KafkaConnection, TopicPartition
from bus.sandbox import Bus, build_bus, teardown_bus
from tests.support.api import provision_admin_service
from tests.unit.test_acl_docs import EDGE_MD, differences, parse_acl_table

pytestmark = pytest.mark.integration


@pytest.fixture
async def bus(admin_connection: KafkaConnection) -> AsyncIterator[Bus]:
    built = await build_bus(admin_connection, ("a", "b"))
    yield built
    await asyncio.to_thread(teardown_bus, built)


def live_acls(admin: KafkaConnection, principal: str) -> list[Acl]:
    with KafkaAdmin(admin) as client:
        return client.describe_acls(AclFilter(principal=principal))


async def test_the_broker_holds_exactly_the_documented_acls(bus: Bus) -> None:
    service = await provision_admin_service(bus)
    agency = bus.agency("a")
    renamed = {
        "User:liaison.edge": f"User:{bus.edge.username}",
        "User:liaison.admin": f"User:{service.username}",
    }
    documented = [
        acl.model_copy(update={"principal": renamed.get(acl.principal, acl.principal)})
        for acl in parse_acl_table(EDGE_MD.read_text(), agency=agency, prefix=bus.names.prefix)
    ]
    principals = [f"User:{agency}", f"User:{bus.edge.username}", f"User:{service.username}"]
    live = [acl for p in principals for acl in live_acls(bus.admin, p)]
    assert len(live) == len(documented)
    assert differences(documented, live) == []


async def test_the_admin_service_lists_every_group_and_an_agency_only_its_own(bus: Bus) -> None:
    """What the table says of cluster DESCRIBE: ListGroups shows the admin service every
    group (an agency's included), and an agency none but its own."""
    service = await provision_admin_service(bus)
    a, b = bus.agency("a"), bus.agency("b")
    groups = {x: f"{bus.names.agency_group_prefix(x)}sink" for x in (a, b)}
    for agency, group in groups.items():
        tp = TopicPartition(bus.names.outbound(agency), 0)
        async with Consumer(bus.agencies[agency], group_id=group) as consumer:
            consumer.assign([tp])
            await consumer.commit({tp: 0})

    with KafkaAdmin(service) as admin:
        assert set(groups.values()) <= admin.list_groups()
    with KafkaAdmin(bus.agencies[a]) as admin:
        seen = admin.list_groups()
    assert groups[a] in seen
    assert groups[b] not in seen
