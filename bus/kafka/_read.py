"""Read a whole (usually compacted) topic: the way services rebuild state from Kafka."""

from __future__ import annotations

from bus.kafka._clients import Consumer, Record, TopicPartition
from bus.kafka._connection import KafkaConnection

__all__ = ["read_to_end"]


async def read_to_end(
    connection: KafkaConnection, topic: str, *, partitions: int = 1
) -> list[Record]:
    """Every committed record of ``topic`` up to its current end, in offset order per partition."""
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    records: list[Record] = []
    async with Consumer(connection) as consumer:
        ends = await consumer.assign_from_beginning(tps)
        pending = {tp for tp in tps if ends[tp] > 0}
        while pending:
            for record in await consumer.getmany(timeout_ms=500):
                records.append(record)
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
    return records
