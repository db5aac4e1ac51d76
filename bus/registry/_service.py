"""The registry service and where it keeps its records.

:class:`KafkaRegistryStore` keeps them in a compacted topic (default
``liaison.schemas``) and rebuilds its state by reading the topic from the start;
:class:`MemoryRegistryStore` keeps them in a list, for tests of the pure logic and the
HTTP layer. :class:`SchemaRegistry` plans each change on the current state, appends it,
and returns only once the store has read its own write back.

One registry process writes at a time (the admin API): ids are allocated from the
state it has read. Should two writers race, the fold keeps the first record for an id
or a subject version and ignores the later one, and the loser's ``register`` fails
loudly rather than returning an id it does not own.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

from bus.errors import KafkaAccessError, LiaisonError, TopicExistsError
from bus.kafka import Consumer, KafkaAdmin, KafkaConnection, Producer, TopicPartition, TopicSpec
from bus.registry._state import RegistryRecord, RegistryState, SchemaVersion, schema_identity
from bus.schemas._catalog import ROOTS, SchemaCatalog
from bus.schemas._compat import CompatibilityMode
from bus.schemas._history import Release, check_history, releases

__all__ = [
    "DEFAULT_TOPIC",
    "KafkaRegistryStore",
    "MemoryRegistryStore",
    "RegistryStore",
    "SchemaRegistry",
]

DEFAULT_TOPIC = "liaison.schemas"


class RegistryStore(Protocol):
    """Where registry records live.

    Guarantee: when ``append`` returns, ``state`` includes the appended record and every
    record written before it.
    """

    @property
    def state(self) -> RegistryState: ...

    async def append(self, record: RegistryRecord) -> None: ...


class MemoryRegistryStore:
    """Records in memory: the same fold, no broker."""

    def __init__(self) -> None:
        self._state = RegistryState()
        self.records: list[RegistryRecord] = []

    @property
    def state(self) -> RegistryState:
        return self._state

    async def append(self, record: RegistryRecord) -> None:
        self.records.append(record)
        self._state.apply(record)


class KafkaRegistryStore:
    """Records in a compacted Kafka topic, read from the start on ``start()`` and tailed."""

    def __init__(
        self,
        connection: KafkaConnection,
        *,
        topic: str = DEFAULT_TOPIC,
        read_timeout_s: float = 30.0,
        writable: bool = True,
    ) -> None:
        """``writable=False`` only reads (the edge router's READ-only principal)."""
        self._connection = connection
        self._writable = writable
        self.topic = topic
        self._tp = TopicPartition(topic, 0)
        self._read_timeout_s = read_timeout_s
        self._state = RegistryState()
        self._position = 0
        self._caught_up = asyncio.Condition()
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._tail: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None

    @property
    def state(self) -> RegistryState:
        return self._state

    async def start(self) -> None:
        """Create the topic if missing, read it to the end, then keep tailing it."""
        if self._writable:
            await asyncio.to_thread(self._ensure_topic)
        # aiokafka clients bind to the running loop, so they are made here, not in __init__.
        consumer = self._consumer = Consumer(self._connection)
        await consumer.start()
        try:
            end = (await consumer.assign_from_beginning([self._tp]))[self._tp]
            while self._position < end:
                await self._read_batch()
            if self._writable:
                self._producer = Producer(self._connection, linger_ms=0)
                await self._producer.start()
        except BaseException:
            await consumer.stop()
            raise
        self._tail = asyncio.create_task(self._tail_forever(), name=f"tail {self.topic}")

    def _ensure_topic(self) -> None:
        with KafkaAdmin(self._connection) as admin:
            if self.topic in admin.list_topics():
                return
            spec = TopicSpec(
                self.topic,
                partitions=1,
                config={"cleanup.policy": "compact", "min.compaction.lag.ms": "0"},
            )
            with contextlib.suppress(TopicExistsError):  # another instance created it first
                admin.create_topics([spec])

    async def stop(self) -> None:
        if self._tail is not None:
            self._tail.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tail
            self._tail = None
        if self._producer is not None:
            await self._producer.stop()
        if self._consumer is not None:
            await self._consumer.stop()

    async def __aenter__(self) -> KafkaRegistryStore:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _read_batch(self) -> None:
        assert self._consumer is not None
        for record in await self._consumer.getmany(timeout_ms=500):
            self._state.apply(RegistryRecord.from_bytes(record.key, record.value))
            self._position = record.offset + 1
        # Transaction markers and compacted gaps advance the position without records.
        self._position = max(self._position, await self._consumer.position(self._tp))
        async with self._caught_up:
            self._caught_up.notify_all()

    async def _tail_forever(self) -> None:
        try:
            while True:
                await self._read_batch()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - kept and re-raised to writers
            self._failure = exc
            async with self._caught_up:
                self._caught_up.notify_all()

    async def append(self, record: RegistryRecord) -> None:
        if self._failure is not None:
            raise KafkaAccessError(
                f"the registry stopped reading {self.topic}: {self._failure}"
            ) from self._failure
        if self._producer is None:
            raise KafkaAccessError(
                f"the registry store for {self.topic} is read-only or not started"
            )
        written = await self._producer.send(
            self.topic, record.value_bytes(), key=record.key_bytes()
        )

        def applied() -> bool:
            return self._failure is not None or self._position > written.offset

        async with self._caught_up:
            try:
                await asyncio.wait_for(self._caught_up.wait_for(applied), self._read_timeout_s)
            except TimeoutError as exc:
                raise KafkaAccessError(
                    f"wrote offset {written.offset} to {self.topic} but did not read it back "
                    f"within {self._read_timeout_s}s; retry"
                ) from exc
        if self._failure is not None:
            raise KafkaAccessError(f"the registry stopped reading {self.topic}") from self._failure


class SchemaRegistry:
    """Registers schemas and compatibility settings through a :class:`RegistryStore`."""

    def __init__(self, store: RegistryStore) -> None:
        self._store = store
        self._lock = asyncio.Lock()

    @property
    def state(self) -> RegistryState:
        return self._store.state

    async def register(self, subject: str, schema: str) -> SchemaVersion:
        """Register ``schema`` under ``subject``; identical schemas keep their id."""
        async with self._lock:
            planned, new = self.state.plan_registration(subject, schema)
            if not new:
                return planned
            await self._store.append(RegistryRecord.schema(planned))
            stored = self.state.lookup(subject, schema)
            if stored.schema_id != planned.schema_id or stored.version != planned.version:
                raise LiaisonError(
                    f"another registry writer took id {planned.schema_id} or version "
                    f"{planned.version} of '{subject}' first; only one writer may run"
                )
            return stored

    async def register_releases(
        self, catalog: SchemaCatalog
    ) -> list[tuple[str, Release, SchemaVersion]]:
        """Register every released version of each root schema, oldest first, under the
        root's full name (idempotent), so the subject's latest version is the current
        release. A release older than one the subject already holds is left out:
        registering it would make it the latest. Raises if the schema files are not
        released (``liaison schemas release``)."""
        for root in ROOTS:
            check_history(catalog, root)
        done = []
        for root in ROOTS:
            history = releases(catalog, root)
            held = {schema_identity(v.schema) for v in self.state.subjects.get(root, ())}
            known = [schema_identity(rel.text) in held for rel in history]
            newest_held = max((i for i, k in enumerate(known) if k), default=0)
            for i, rel in enumerate(history):
                if known[i] or i >= newest_held:
                    done.append((root, rel, await self.register(root, rel.text)))
        return done

    async def set_mode(self, subject: str | None, mode: CompatibilityMode) -> None:
        """Set the compatibility mode of ``subject``, or the global one for ``None``."""
        async with self._lock:
            await self._store.append(RegistryRecord.config(subject, mode))

    async def clear_mode(self, subject: str) -> None:
        """Remove the subject's own mode; it falls back to the global one."""
        async with self._lock:
            await self._store.append(RegistryRecord.config(subject, None))
