"""Provisioning on the real broker: idempotent, least privilege, rotate and revoke."""

from __future__ import annotations

import asyncio
import secrets
import uuid

import pytest

from bus.errors import KafkaAuthenticationError, KafkaAuthorizationError
from bus.kafka import (
    AclFilter,
    Consumer,
    KafkaAdmin,
    KafkaConnection,
    Producer,
    read_to_end,
    wait_until_authenticates,
)
from bus.provision import Provisioner, admin_service_acls, agency_acls
from bus.topics import TopicNames

pytestmark = pytest.mark.integration


@pytest.fixture
def names() -> TopicNames:
    return TopicNames(prefix=f"prov{uuid.uuid4().hex[:8]}")


@pytest.fixture
def agency() -> str:
    return f"agency-{uuid.uuid4().hex[:8]}"


async def test_adding_an_agency_twice_changes_nothing_the_second_time(
    admin_connection: KafkaConnection, names: TopicNames, agency: str
) -> None:
    provisioner = Provisioner(admin_connection, names=names)
    await provisioner.ensure_bus_topics()

    first = await provisioner.add(agency, name="Fictional Agency")
    second = await provisioner.add(agency, name="Fictional Agency")

    assert first.password is not None
    assert any("created topic" in c for c in first.changes)
    assert second.changes == []
    assert second.password is None
    with KafkaAdmin(admin_connection) as admin:
        granted = set(admin.describe_acls(AclFilter(principal=f"User:{agency}")))
    assert granted == set(agency_acls(agency, names))
    assert (await provisioner.agencies())[agency].state == "active"
    await provisioner.revoke(agency)


async def test_rotation_replaces_the_password(
    admin_connection: KafkaConnection, names: TopicNames, agency: str
) -> None:
    provisioner = Provisioner(admin_connection, names=names)
    await provisioner.ensure_bus_topics()
    added = await provisioner.add(agency)
    assert added.password is not None
    old = admin_connection.with_credentials(agency, added.password)
    await asyncio.to_thread(wait_until_authenticates, old)

    rotated = await provisioner.rotate(agency)

    assert rotated.password is not None
    assert rotated.password != added.password
    new = admin_connection.with_credentials(agency, rotated.password)
    await asyncio.to_thread(wait_until_authenticates, new)
    with pytest.raises(KafkaAuthenticationError), KafkaAdmin(old, timeout_s=5) as as_old:
        as_old.list_topics()
    await provisioner.revoke(agency)


async def test_revoking_removes_access_and_keeps_the_data(
    admin_connection: KafkaConnection, names: TopicNames, agency: str
) -> None:
    provisioner = Provisioner(admin_connection, names=names)
    await provisioner.ensure_bus_topics()
    added = await provisioner.add(agency)
    assert added.password is not None
    conn = admin_connection.with_credentials(agency, added.password)
    await asyncio.to_thread(wait_until_authenticates, conn)
    async with Producer(conn) as producer:
        await producer.send(names.inbound(agency), b"kept after revocation")

    revoked = await provisioner.revoke(agency)

    assert any("deleted the SCRAM credentials" in c for c in revoked.changes)
    with KafkaAdmin(admin_connection) as admin:
        assert admin.describe_acls(AclFilter(principal=f"User:{agency}")) == []
        assert agency not in admin.scram_users()
        assert names.inbound(agency) in admin.list_topics()
    kept = await read_to_end(admin_connection, names.inbound(agency))
    assert [r.value for r in kept] == [b"kept after revocation"]
    assert (await provisioner.agencies())[agency].state == "revoked"
    again = await provisioner.revoke(agency)
    assert again.changes == []


async def test_the_admin_service_principal_provisions_without_super_user_rights(
    admin_connection: KafkaConnection, names: TopicNames, agency: str
) -> None:
    service = f"svc.{uuid.uuid4().hex[:8]}"
    password = secrets.token_urlsafe(18)
    bootstrap = Provisioner(admin_connection, names=names)
    await bootstrap.ensure_bus_topics()
    await bootstrap.grant(service, admin_service_acls(f"User:{service}", names), password)
    as_service = admin_connection.with_credentials(service, password)
    await asyncio.to_thread(wait_until_authenticates, as_service)

    result = await Provisioner(as_service, names=names).add(agency)

    assert result.password is not None
    assert (await Provisioner(as_service, names=names).agencies())[agency].state == "active"
    # ...but the service cannot read what flows between agencies.
    with pytest.raises(KafkaAuthorizationError):
        async with Consumer(as_service, names.outbound(agency)) as consumer:
            await consumer.getmany(timeout_ms=2000)
    await bootstrap.revoke(agency)
    with KafkaAdmin(admin_connection) as admin:
        admin.delete_acls([AclFilter(principal=f"User:{service}")])
        admin.delete_scram_user(service)
