"""aiokafka transactions on the pinned broker, under a principal with only the ACLs it needs.

The edge router's exactly-once design depends on each of these behaving as Kafka's
transaction protocol promises, with aiokafka as the client.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bus.errors import KafkaAuthorizationError, ProducerFencedError
from bus.kafka import (
    Acl,
    AclOperation,
    Consumer,
    KafkaConnection,
    Producer,
    Record,
    ResourceType,
    TopicPartition,
)
from tests.conftest import PrincipalFactory, TopicFactory
from tests.support import allow, committed_offset_eventually, read_count, read_until

pytestmark = pytest.mark.integration


def transactional_acls(
    *, transactional_id: str, write_topic: str, group: str, read_topic: str
) -> Callable[[str], list[Acl]]:
    """Exactly what a consume-transform-produce loop needs; no IdempotentWrite, no cluster ACL."""

    return allow(
        (ResourceType.TRANSACTIONAL_ID, transactional_id, AclOperation.WRITE),
        (ResourceType.TOPIC, write_topic, AclOperation.WRITE),
        (ResourceType.GROUP, group, AclOperation.READ),
        (ResourceType.TOPIC, read_topic, AclOperation.READ),
    )


class TestRestrictedTransactionalProducer:
    @pytest.fixture
    def names(self, new_topic: TopicFactory, unique_name: Callable[[str], str]) -> dict[str, str]:
        return {
            "in": new_topic(prefix="in"),
            "out": new_topic(prefix="out"),
            "txn": unique_name("txn"),
            "group": unique_name("group"),
        }

    @pytest.fixture
    def principal(self, names: dict[str, str], new_principal: PrincipalFactory) -> KafkaConnection:
        return new_principal(
            transactional_acls(
                transactional_id=names["txn"],
                write_topic=names["out"],
                group=names["group"],
                read_topic=names["in"],
            )
        )

    async def test_commits_records_that_read_committed_consumers_see(
        self, names: dict[str, str], principal: KafkaConnection, admin_connection: KafkaConnection
    ) -> None:
        producer = Producer(principal, transactional_id=names["txn"])
        async with producer, producer.transaction():
            for i in range(3):
                await producer.send(names["out"], f"committed-{i}".encode())

        async with Consumer(admin_connection, names["out"]) as consumer:
            records = await read_count(consumer, 3)
        assert [r.value for r in records] == [b"committed-0", b"committed-1", b"committed-2"]

    async def test_read_committed_consumer_never_sees_aborted_records(
        self, names: dict[str, str], principal: KafkaConnection, admin_connection: KafkaConnection
    ) -> None:
        async with Producer(principal, transactional_id=names["txn"]) as producer:
            await producer.begin_transaction()
            for i in range(3):
                await producer.send(names["out"], f"aborted-{i}".encode())
            await producer.abort_transaction()
            async with producer.transaction():
                await producer.send(names["out"], b"marker")

        def saw_marker(records: list[Record]) -> bool:
            return any(r.value == b"marker" for r in records)

        async with Consumer(admin_connection, names["out"]) as committed_reader:
            committed = await read_until(committed_reader, saw_marker)
        async with Consumer(
            admin_connection, names["out"], isolation_level="read_uncommitted"
        ) as raw_reader:
            raw = await read_until(raw_reader, saw_marker)

        assert [r.value for r in committed] == [b"marker"]
        # The aborted records really are in the log: only isolation hides them.
        assert {b"aborted-0", b"aborted-1", b"aborted-2"} <= {r.value for r in raw}

    async def test_send_offsets_to_transaction_commits_the_group_offsets(
        self, names: dict[str, str], principal: KafkaConnection, admin_connection: KafkaConnection
    ) -> None:
        async with Producer(admin_connection) as seed:
            for i in range(5):
                await seed.send(names["in"], f"input-{i}".encode())
        tp = TopicPartition(names["in"], 0)

        async with Consumer(principal, names["in"], group_id=names["group"]) as consumer:
            inputs = await read_count(consumer, 5)
            producer = Producer(principal, transactional_id=names["txn"])
            async with producer, producer.transaction():
                for record in inputs:
                    await producer.send(names["out"], (record.value or b"").upper())
                next_offset = inputs[-1].offset + 1
                await producer.send_offsets_to_transaction({tp: next_offset}, names["group"])
            # EndTxn answers once PREPARE_COMMIT is logged; the markers that make the
            # offsets visible to OffsetFetch follow asynchronously, so wait for them.
            committed = await committed_offset_eventually(consumer, tp, expected=5)

        assert committed == 5
        async with Consumer(admin_connection, names["out"]) as reader:
            outputs = await read_count(reader, 5)
        assert [r.value for r in outputs] == [f"INPUT-{i}".encode() for i in range(5)]

    async def test_a_second_producer_with_the_same_transactional_id_fences_the_first(
        self, names: dict[str, str], principal: KafkaConnection, admin_connection: KafkaConnection
    ) -> None:
        async with Producer(principal, transactional_id=names["txn"]) as zombie:
            await zombie.begin_transaction()
            await zombie.send(names["out"], b"from-zombie")
            async with Producer(principal, transactional_id=names["txn"]) as successor:
                with pytest.raises(ProducerFencedError):
                    await zombie.commit_transaction()
                async with successor.transaction():
                    await successor.send(names["out"], b"from-successor")

        async with Consumer(admin_connection, names["out"]) as reader:
            records = await read_count(reader, 1)
        assert [r.value for r in records] == [b"from-successor"]


async def test_transactional_producer_without_transactional_id_acl_is_denied(
    new_topic: TopicFactory, new_principal: PrincipalFactory, unique_name: Callable[[str], str]
) -> None:
    topic = new_topic()
    txn = unique_name("txn")
    writer = new_principal(allow((ResourceType.TOPIC, topic, AclOperation.WRITE)))

    with pytest.raises(KafkaAuthorizationError) as denied:
        async with Producer(writer, transactional_id=txn):
            pass

    assert writer.principal in str(denied.value)
