"""Reading the bus's topics as the admin service with a client Liaison did not write.

Auditors and operators read the audit log and dead letters with their own tools
(confluent-kafka, kcat: librdkafka). librdkafka's consumer always has a group id, and
looks its coordinator up even when it only assigns partitions and never commits; a
principal with no right on that group then logs GROUP_AUTHORIZATION_FAILED. The admin
service may use the groups under ``<prefix>.admin.`` (docs/edge.md), so such a reader
works quietly under a group id of that prefix.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError
from confluent_kafka import TopicPartition as CkTopicPartition

from bus.kafka import KafkaConnection
from bus.sandbox import Bus, build_bus, teardown_bus
from tests.support.api import provision_admin_service

pytestmark = pytest.mark.integration


@pytest.fixture
async def bus(admin_connection: KafkaConnection) -> AsyncIterator[Bus]:
    built = await build_bus(admin_connection, ("a",))
    yield built
    await asyncio.to_thread(teardown_bus, built)


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _read_agencies_topic(service: KafkaConnection, topic: str, group: str) -> tuple[int, list[str]]:
    """Assign the topic's partition 0 from the start, read until a record (or 30 s), then
    read on for 2 s more to give a group lookup its time; (records, problems logged)."""
    handler = _Collect()
    logger = logging.getLogger(f"librdkafka.{group}")
    logger.addHandler(handler)
    logger.propagate = False
    problems: list[str] = []
    consumer = Consumer(
        {
            **service.confluent_config(),
            "group.id": group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "error_cb": lambda error: problems.append(str(error)),
            "logger": logger,
        }
    )
    records = 0
    try:
        consumer.assign([CkTopicPartition(topic, 0, OFFSET_BEGINNING)])
        deadline = time.monotonic() + 30
        settle: float | None = None
        while time.monotonic() < (settle or deadline):
            message = consumer.poll(0.2)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    problems.append(str(error))
                continue
            records += 1
            if settle is None:
                settle = time.monotonic() + 2
    finally:
        consumer.close()
    return records, problems + handler.lines


async def test_the_admin_service_reads_with_librdkafka_under_its_group_prefix_quietly(
    bus: Bus,
) -> None:
    service = await provision_admin_service(bus)
    group = f"{bus.names.admin_group_prefix}audit-reader"
    records, problems = await asyncio.to_thread(
        _read_agencies_topic, service, bus.names.agencies, group
    )
    assert records >= 1
    assert [p for p in problems if "AUTHORIZATION" in p.upper()] == []


async def test_a_group_outside_the_prefix_stays_denied(bus: Bus) -> None:
    """The grant is a prefix, not every group: the admin service still cannot use (or
    read the offsets of) an agency's group."""
    service = await provision_admin_service(bus)
    group = f"{bus.names.agency_group_prefix(bus.agency('a'))}sink"
    _, problems = await asyncio.to_thread(_read_agencies_topic, service, bus.names.agencies, group)
    assert any("GROUP_AUTHORIZATION_FAILED" in p.upper() for p in problems)
