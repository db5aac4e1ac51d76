"""Revoking twice in a row, and deleting SCRAM credentials that are already gone."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from bus.errors import KafkaOperationError
from bus.kafka import KafkaAdmin, KafkaConnection
from bus.provision import Provisioner
from bus.topics import TopicNames

pytestmark = pytest.mark.integration


@pytest.fixture
def names(admin_connection: KafkaConnection) -> Iterator[TopicNames]:
    names = TopicNames(prefix=f"rev{uuid.uuid4().hex[:8]}")
    yield names
    with KafkaAdmin(admin_connection) as admin:
        admin.delete_topics(t for t in admin.list_topics() if t.startswith(f"{names.prefix}."))


def test_deleting_credentials_that_do_not_exist_is_an_error_unless_missing_is_ok(
    admin: KafkaAdmin,
) -> None:
    user = f"nobody-{uuid.uuid4().hex[:8]}"
    with pytest.raises(KafkaOperationError, match="RESOURCE_NOT_FOUND"):
        admin.delete_scram_user(user)
    assert admin.delete_scram_user(user, missing_ok=True) is False


async def test_revoking_again_at_once_succeeds_and_reports_nothing(
    admin_connection: KafkaConnection, names: TopicNames
) -> None:
    """The broker can still list a user just deleted (its view lags the controller's):
    the admin API answered a second DELETE /agencies/<id> with a broker error."""
    agency = f"agency-{uuid.uuid4().hex[:8]}"
    provisioner = Provisioner(admin_connection, names=names)
    await provisioner.ensure_bus_topics()
    await provisioner.add(agency)

    first = await provisioner.revoke(agency)
    second = await provisioner.revoke(agency)

    assert f"deleted the SCRAM credentials of User:{agency}" in first.changes
    assert second.changes == []
