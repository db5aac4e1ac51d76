"""The broker's security model, proved on the pinned Kafka: SCRAM, default deny, narrow ACLs."""

from __future__ import annotations

import pytest

from bus.errors import KafkaAuthenticationError, KafkaAuthorizationError
from bus.kafka import (
    AclOperation,
    Consumer,
    KafkaAdmin,
    KafkaConnection,
    Producer,
    ResourceType,
)
from tests.conftest import PrincipalFactory, TopicFactory
from tests.support import allow, read_count

pytestmark = pytest.mark.integration


async def test_correct_scram_credentials_connect_and_produce(
    new_topic: TopicFactory, new_principal: PrincipalFactory, admin_connection: KafkaConnection
) -> None:
    topic = new_topic()
    writer = new_principal(allow((ResourceType.TOPIC, topic, AclOperation.WRITE)))

    async with Producer(writer) as producer:
        sent = await producer.send(topic, b"hello", key=b"k")

    assert sent.topic == topic
    async with Consumer(admin_connection, topic) as consumer:
        records = await read_count(consumer, 1)
    assert [r.value for r in records] == [b"hello"]


def test_wrong_password_fails_admin_with_clear_authentication_error(
    new_principal: PrincipalFactory,
) -> None:
    good = new_principal()
    bad_password = "not-" + good.password.get_secret_value()
    bad = good.with_credentials(good.username, bad_password)

    with pytest.raises(KafkaAuthenticationError) as caught, KafkaAdmin(bad, timeout_s=10) as admin:
        admin.list_topics()

    message = str(caught.value)
    assert good.principal in message
    assert "password" in message
    assert bad_password not in message


async def test_wrong_password_fails_aiokafka_producer_with_authentication_error(
    new_principal: PrincipalFactory,
) -> None:
    good = new_principal()
    bad_password = good.password.get_secret_value()[::-1] + "x"
    bad = good.with_credentials(good.username, bad_password)

    with pytest.raises(KafkaAuthenticationError) as caught:
        async with Producer(bad):
            pass

    assert good.principal in str(caught.value)
    assert bad_password not in str(caught.value)


async def test_principal_without_acls_can_neither_write_nor_read(
    new_topic: TopicFactory, new_principal: PrincipalFactory, admin_connection: KafkaConnection
) -> None:
    topic = new_topic()
    async with Producer(admin_connection) as producer:
        await producer.send(topic, b"secret")
    nobody = new_principal()

    # An idempotent producer with WRITE on no topic is refused already at
    # InitProducerId (CLUSTER_AUTHORIZATION_FAILED), before any send.
    with pytest.raises(KafkaAuthorizationError) as write_denied:
        async with Producer(nobody) as producer:
            await producer.send(topic, b"intrusion")
    with pytest.raises(KafkaAuthorizationError) as read_denied:
        async with Consumer(nobody, topic, group_id=f"g-{topic}") as consumer:
            await read_count(consumer, 1, timeout_s=15)

    assert nobody.principal in str(write_denied.value)
    assert nobody.principal in str(read_denied.value)


def test_principal_without_acls_sees_no_topics(
    new_topic: TopicFactory, new_principal: PrincipalFactory
) -> None:
    topic = new_topic()
    nobody = new_principal()

    with KafkaAdmin(nobody) as as_nobody:
        visible = as_nobody.list_topics()

    assert topic not in visible
    assert visible == set()


class TestWriteOnlyPrincipal:
    """A principal granted WRITE on topic A only."""

    @pytest.fixture
    def topics(self, new_topic: TopicFactory) -> tuple[str, str]:
        return new_topic(prefix="a"), new_topic(prefix="b")

    @pytest.fixture
    def writer(self, topics: tuple[str, str], new_principal: PrincipalFactory) -> KafkaConnection:
        topic_a, _ = topics
        return new_principal(allow((ResourceType.TOPIC, topic_a, AclOperation.WRITE)))

    async def test_can_write_topic_a(
        self, topics: tuple[str, str], writer: KafkaConnection
    ) -> None:
        topic_a, _ = topics
        async with Producer(writer) as producer:
            sent = await producer.send(topic_a, b"allowed")
        assert sent.offset == 0

    async def test_cannot_read_topic_a(
        self, topics: tuple[str, str], writer: KafkaConnection, admin_connection: KafkaConnection
    ) -> None:
        topic_a, _ = topics
        async with Producer(admin_connection) as producer:
            await producer.send(topic_a, b"not for the writer")

        # No group: the only thing that can refuse the read is the topic's ACL.
        with pytest.raises(KafkaAuthorizationError) as denied:
            async with Consumer(writer, topic_a) as consumer:
                await read_count(consumer, 1, timeout_s=15)

        assert topic_a in str(denied.value)

    async def test_cannot_write_topic_b(
        self, topics: tuple[str, str], writer: KafkaConnection
    ) -> None:
        _, topic_b = topics
        async with Producer(writer) as producer:
            with pytest.raises(KafkaAuthorizationError) as denied:
                await producer.send(topic_b, b"spoof")
        assert writer.principal in str(denied.value)

    async def test_cannot_describe_a_group_it_was_not_granted(
        self,
        topics: tuple[str, str],
        writer: KafkaConnection,
        admin_connection: KafkaConnection,
    ) -> None:
        topic_a, _ = topics
        group = f"g-{topic_a}"
        async with Consumer(admin_connection, topic_a, group_id=group) as consumer:
            await consumer.getmany(timeout_ms=200)

            with KafkaAdmin(writer) as as_writer, pytest.raises(KafkaAuthorizationError) as denied:
                as_writer.describe_group(group)

        assert group in str(denied.value)
