"""Follow a Kafka topic: read it from the start, keep tailing it, fold every record.

The admin API rebuilds all of its state this way (agencies, policies, audit, dead
letters), in the way the schema registry rebuilds from ``liaison.schemas``: Kafka is
the source of truth, and a restarted API reads its way back to where it was.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from bus.errors import KafkaAccessError, LiaisonError
from bus.kafka import Consumer, KafkaConnection, Record, TopicPartition

__all__ = ["TopicFollower", "read_one"]


class TopicFollower:
    """Reads partition 0 of ``topic`` (committed records only) into ``apply``.

    ``start()`` returns once everything present at start has been applied; a task then
    tails the topic. :meth:`sync` waits until everything present *now* is applied:
    a writer calls it after producing, so that its next read sees its own write.
    """

    def __init__(
        self,
        connection: KafkaConnection,
        topic: str,
        apply: Callable[[Record], None],
        *,
        timeout_s: float = 30.0,
    ) -> None:
        self.topic = topic
        self._connection = connection
        self._apply = apply
        self._tp = TopicPartition(topic, 0)
        self._timeout_s = timeout_s
        self._position = 0
        self._progress = asyncio.Condition()
        self._consumer: Consumer | None = None
        self._ends: Consumer | None = None
        """Asks end offsets for :meth:`sync` and fetches nothing, so no long-polling fetch
        (500 ms) of the tailing consumer holds its answer back."""
        self._tail: asyncio.Task[None] | None = None
        self.failure: BaseException | None = None

    @property
    def position(self) -> int:
        """The next offset to apply."""
        return self._position

    async def start(self) -> None:
        consumer = self._consumer = Consumer(self._connection)
        ends = self._ends = Consumer(self._connection)
        await consumer.start()
        try:
            await ends.start()
            end = (await consumer.assign_from_beginning([self._tp]))[self._tp]
            while self._position < end:
                await self._read_batch()
        except BaseException:
            await consumer.stop()
            await ends.stop()
            self._consumer = self._ends = None
            raise
        self._tail = asyncio.create_task(self._tail_forever(), name=f"follow {self.topic}")

    async def stop(self) -> None:
        if self._tail is not None:
            self._tail.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tail
            self._tail = None
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
        if self._ends is not None:
            await self._ends.stop()
            self._ends = None

    async def sync(self) -> None:
        """Wait until every record committed before this call has been applied."""
        if self._ends is None:
            raise KafkaAccessError(f"not following {self.topic}: the API is not started")
        end = (await self._ends.end_offsets([self._tp]))[self._tp]
        await self.wait_past(end - 1)

    async def wait_past(self, offset: int) -> None:
        """Wait until the record at ``offset`` has been applied."""

        def done() -> bool:
            return self.failure is not None or self._position > offset

        async with self._progress:
            try:
                await asyncio.wait_for(self._progress.wait_for(done), self._timeout_s)
            except TimeoutError as exc:
                raise KafkaAccessError(
                    f"{self.topic} did not reach offset {offset} within {self._timeout_s}s; retry"
                ) from exc
        if self.failure is not None:
            raise KafkaAccessError(f"stopped reading {self.topic}; restart the API") from (
                self.failure
            )

    async def _read_batch(self) -> None:
        assert self._consumer is not None
        for record in await self._consumer.getmany(timeout_ms=500):
            self._apply(record)
            self._position = record.offset + 1
        # Transaction markers advance the position without a record.
        self._position = max(self._position, await self._consumer.position(self._tp))
        async with self._progress:
            self._progress.notify_all()

    async def _tail_forever(self) -> None:
        try:
            while True:
                await self._read_batch()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - kept: readiness reports it, writers raise it
            self.failure = exc
            async with self._progress:
                self._progress.notify_all()


async def read_one(connection: KafkaConnection, topic: str, partition: int, offset: int) -> Record:
    """The committed record at ``offset``; :class:`LiaisonError` if there is none."""
    tp = TopicPartition(topic, partition)
    async with Consumer(connection) as consumer:
        end = (await consumer.end_offsets([tp]))[tp]  # before assign: no fetch ahead of it
        if offset >= end:
            raise LiaisonError(f"{topic}[{partition}] has no record at offset {offset}")
        consumer.assign([tp])
        consumer.seek(tp, offset)
        while await consumer.position(tp) <= offset:
            for record in await consumer.getmany(timeout_ms=500):
                if record.offset == offset:
                    return record
                if record.offset > offset:
                    break
    raise LiaisonError(f"{topic}[{partition}] has no record at offset {offset} (compacted?)")
