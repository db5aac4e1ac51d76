"""Typed asyncio producer and consumer over aiokafka.

aiokafka ships no type information; these two classes are the only place the rest
of Liaison touches it. Every aiokafka error is translated into :mod:`bus.errors`
(``raise ... from exc``), naming the principal and what it tried to do.

Consumers default to ``isolation_level="read_committed"``: every consumer of bus
topics must never see records of aborted transactions.
"""

from __future__ import annotations

import abc
import asyncio
import enum
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, NamedTuple, Self, TypeVar

import aiokafka
import aiokafka.errors as ak_errors
from aiokafka.conn import create_conn
from aiokafka.structs import TopicPartition as _AkTopicPartition

from bus.errors import (
    KafkaAccessError,
    KafkaAuthenticationError,
    KafkaAuthorizationError,
    KafkaOperationError,
    KafkaUnavailableError,
    LiaisonError,
    ProducerFencedError,
)
from bus.kafka import _logging
from bus.kafka._connection import KafkaConnection

__all__ = ["ClientState", "Consumer", "Producer", "Record", "RecordMetadata", "TopicPartition"]

_T = TypeVar("_T")

_logging.install()  # aiokafka's retried coordinator lookups are not errors (see _logging)


class TopicPartition(NamedTuple):
    """A partition of a topic."""

    topic: str
    partition: int


@dataclass(frozen=True)
class RecordMetadata:
    """Where the broker stored a produced record."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class Record:
    """One consumed record."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int


class ClientState(enum.Enum):
    """Lifecycle of a producer or consumer."""

    NEW = "new"
    """Constructed; no connection yet. Call ``start()`` or use ``async with``."""
    STARTED = "started"
    """Connected and usable."""
    STOPPED = "stopped"
    """Stopped after a successful start; cannot be restarted."""
    FAILED = "failed"
    """``start()`` raised; nothing to stop."""


_AUTHZ = (
    ak_errors.TopicAuthorizationFailedError,
    ak_errors.GroupAuthorizationFailedError,
    ak_errors.ClusterAuthorizationFailedError,
    ak_errors.TransactionalIdAuthorizationFailed,
)
_AUTHN = (
    ak_errors.AuthenticationFailedError,
    ak_errors.SaslAuthenticationFailed,
    ak_errors.IllegalSaslStateError,
)
_FENCED = (ak_errors.ProducerFenced, ak_errors.InvalidProducerEpoch)
_UNAVAILABLE = (
    ak_errors.KafkaConnectionError,
    ak_errors.KafkaTimeoutError,
    ak_errors.RequestTimedOutError,
    ak_errors.NodeNotReadyError,
)


def translate_aiokafka_error(exc: BaseException, *, action: str, principal: str) -> LiaisonError:
    """Map an aiokafka exception onto Liaison's error tree."""
    name = type(exc).__name__
    if isinstance(exc, ak_errors.GroupAuthorizationFailedError):
        return KafkaAuthorizationError(
            f"{principal} is not authorized to use its consumer group while trying to {action} "
            f"({name}: {exc}); an administrator must grant READ on the group"
        )
    if isinstance(exc, _AUTHZ):
        return KafkaAuthorizationError(
            f"{principal} is not authorized to {action} ({name}: {exc}); "
            f"an administrator must grant an ACL for it"
        )
    if isinstance(exc, _AUTHN):
        return KafkaAuthenticationError(
            f"the broker rejected the credentials of {principal} while trying to {action}; "
            f"check the username and password (the password is not shown)"
        )
    if isinstance(exc, _FENCED):
        return ProducerFencedError(
            f"{principal}'s producer was fenced while trying to {action}: a newer producer "
            f"with the same transactional id took over; close this one"
        )
    if isinstance(exc, ak_errors.UnknownTopicOrPartitionError):
        # aiokafka calls this retriable (metadata may lag), but with auto-creation off
        # a missing topic stays missing: retrying would only hide the mistake.
        return KafkaOperationError(
            f"{principal} could not {action}: {name}: the topic does not exist; create it first"
        )
    if isinstance(exc, _UNAVAILABLE):
        return KafkaUnavailableError(
            f"broker did not answer {principal} while trying to {action} ({name}); "
            f"check that it is running and reachable, then retry"
        )
    if getattr(exc, "retriable", False):
        return KafkaUnavailableError(
            f"broker could not {action} for {principal} yet ({name}); this is transient "
            f"(leadership or metadata still settling): retry"
        )
    return KafkaOperationError(f"{principal} could not {action}: {name}: {exc}")


class _Client(abc.ABC):
    """Shared lifecycle and error translation."""

    _state: ClientState
    _impl: Any  # the aiokafka client, untyped

    def __init__(self, connection: KafkaConnection) -> None:
        self._connection = connection
        self._state = ClientState.NEW

    @property
    def state(self) -> ClientState:
        return self._state

    @property
    def principal(self) -> str:
        return self._connection.principal

    @abc.abstractmethod
    def _start_action(self) -> str:
        """What starting means, for error messages ("read topics a, b")."""

    async def start(self) -> None:
        """Connect. On failure the client is FAILED and holds no connections."""
        action = self._start_action()
        try:
            await self._start(action, self._impl.start())
        except BaseException:
            self._state = ClientState.FAILED
            await self._impl.stop()  # aiokafka leaves its connections open on a failed start
            raise
        self._state = ClientState.STARTED

    async def stop(self) -> None:
        """Disconnect; a no-op unless ``start()`` succeeded. Idempotent."""
        if self._state is ClientState.STARTED:
            self._state = ClientState.STOPPED
            await self._impl.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _call(self, action: str, awaitable: Awaitable[_T]) -> _T:
        try:
            return await awaitable
        except ak_errors.KafkaError as exc:
            raise translate_aiokafka_error(exc, action=action, principal=self.principal) from exc

    async def _start(self, action: str, start: Awaitable[None]) -> None:
        try:
            await self._call(action, start)
        except KafkaUnavailableError as exc:
            # aiokafka logs a SASL failure during bootstrap and raises a bare
            # connection error; connect once more ourselves to name the real cause.
            cause = await self._authentication_failure()
            if cause is not None:
                raise translate_aiokafka_error(
                    cause, action=action, principal=self.principal
                ) from exc
            raise

    async def _authentication_failure(self) -> BaseException | None:
        kwargs = self._connection.aiokafka_kwargs()
        for entry in self._connection.bootstrap_servers.split(","):
            host, _, port = entry.strip().rpartition(":")
            try:
                conn = await create_conn(
                    host,
                    int(port),
                    client_id=kwargs["client_id"],
                    request_timeout_ms=10_000,
                    security_protocol=kwargs["security_protocol"],
                    sasl_mechanism=kwargs["sasl_mechanism"],
                    sasl_plain_username=kwargs["sasl_plain_username"],
                    sasl_plain_password=kwargs["sasl_plain_password"],
                )
            except _AUTHN as exc:
                failure: BaseException = exc
                return failure
            except (OSError, ak_errors.KafkaError, TimeoutError):
                continue
            conn.close()
        return None

    def _require_started(self) -> None:
        if self._state is not ClientState.STARTED:
            raise KafkaAccessError(
                f"{type(self).__name__} for {self.principal} is {self._state.value}; "
                f"start it first (or use `async with`)"
            )


class Producer(_Client):
    """An idempotent, optionally transactional producer.

    Guarantees: ``stop()`` is a no-op unless ``start()`` succeeded; ``acks=all`` and
    idempotence are always on, so a retried send never duplicates a record.
    """

    def __init__(
        self,
        connection: KafkaConnection,
        *,
        transactional_id: str | None = None,
        linger_ms: int = 5,
        request_timeout_ms: int = 30_000,
        transaction_timeout_ms: int = 60_000,
        retry_backoff_ms: int | None = None,
    ) -> None:
        """``retry_backoff_ms`` defaults to 20 ms for a transactional producer, 100 ms
        otherwise. A transaction that begins right after a commit meets
        CONCURRENT_TRANSACTIONS on AddOffsetsToTxn while the broker still writes the last
        one's markers, and aiokafka retries it after ``retry_backoff_ms``: at 100 ms that
        wait was most of every transaction (aiokafka already retries AddPartitionsToTxn
        after 20 ms in that case, KAFKA-5477). See docs/kafka.md."""
        super().__init__(connection)
        self.transactional_id = transactional_id
        if retry_backoff_ms is None:
            retry_backoff_ms = 100 if transactional_id is None else 20
        kwargs: dict[str, Any] = connection.aiokafka_kwargs()
        kwargs.update(
            acks="all",
            enable_idempotence=True,
            linger_ms=linger_ms,
            request_timeout_ms=request_timeout_ms,
            retry_backoff_ms=retry_backoff_ms,
        )
        if transactional_id is not None:
            kwargs.update(
                transactional_id=transactional_id, transaction_timeout_ms=transaction_timeout_ms
            )
        self._impl = aiokafka.AIOKafkaProducer(**kwargs)

    def _start_action(self) -> str:
        return "start a producer"

    async def send(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
        partition: int | None = None,
    ) -> RecordMetadata:
        """Send one record and wait for the broker's acknowledgement."""
        self._require_started()
        md = await self._call(
            f"write to topic {topic}",
            self._impl.send_and_wait(
                topic, value=value, key=key, headers=list(headers) or None, partition=partition
            ),
        )
        return RecordMetadata(topic=md.topic, partition=md.partition, offset=md.offset)

    async def enqueue(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> Awaitable[RecordMetadata]:
        """Queue one record for sending and return its delivery, without waiting for it.

        Inside a transaction, ``commit_transaction`` flushes every queued record first.
        """
        self._require_started()
        future = await self._call(
            f"write to topic {topic}",
            self._impl.send(topic, value=value, key=key, headers=list(headers) or None),
        )
        # The caller learns of a failure by awaiting the delivery returned here. One it
        # abandons (its transaction failed anyway) is not logged again by asyncio as
        # "Future exception was never retrieved".
        future.add_done_callback(_retrieve)
        return self._delivered(topic, future)

    async def _delivered(self, topic: str, future: Awaitable[Any]) -> RecordMetadata:
        md = await self._call(f"write to topic {topic}", future)
        return RecordMetadata(topic=md.topic, partition=md.partition, offset=md.offset)

    async def begin_transaction(self) -> None:
        self._require_started()
        await self._call(
            f"begin a transaction as {self.transactional_id}", self._impl.begin_transaction()
        )

    async def commit_transaction(self) -> None:
        self._require_started()
        await self._call(
            f"commit a transaction as {self.transactional_id}", self._impl.commit_transaction()
        )

    async def abort_transaction(self) -> None:
        self._require_started()
        await self._call(
            f"abort a transaction as {self.transactional_id}", self._impl.abort_transaction()
        )

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """Begin; commit if the block succeeds, abort if it raises (except when fenced)."""
        await self.begin_transaction()
        try:
            yield
        except ProducerFencedError:
            raise  # a fenced producer may not abort; only the new owner may act
        except BaseException:
            await self.abort_transaction()
            raise
        await self.commit_transaction()

    async def send_offsets_to_transaction(
        self, offsets: Mapping[TopicPartition, int], group_id: str
    ) -> None:
        """Commit consumed ``offsets`` (the next offset to read) as part of the transaction."""
        self._require_started()
        ak_offsets = {_AkTopicPartition(tp.topic, tp.partition): off for tp, off in offsets.items()}
        await self._call(
            f"commit offsets for group {group_id} in a transaction",
            self._impl.send_offsets_to_transaction(ak_offsets, group_id),
        )


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


class Consumer(_Client):
    """A consumer that reads only committed records unless told otherwise.

    With ``group_id`` the consumer subscribes to ``topics`` as a group member;
    auto-commit is always off, offsets are committed explicitly (or by a
    transactional producer). Without ``group_id`` it reads without committing.
    """

    def __init__(
        self,
        connection: KafkaConnection,
        *topics: str,
        group_id: str | None = None,
        isolation_level: Literal["read_committed", "read_uncommitted"] = "read_committed",
        auto_offset_reset: Literal["earliest", "latest"] = "earliest",
        request_timeout_ms: int = 30_000,
        fetch_max_wait_ms: int = 500,
    ) -> None:
        """``fetch_max_wait_ms``: how long the broker holds a fetch that finds no data. aiokafka
        keeps one fetch in flight per broker and leaves out partitions with records still
        buffered, so a consumer of busy and idle partitions waits up to this long, once its
        buffer drains, behind a fetch for the idle ones alone."""
        super().__init__(connection)
        self.topics = topics
        self.group_id = group_id
        self._impl = aiokafka.AIOKafkaConsumer(
            *topics,
            group_id=group_id,
            isolation_level=isolation_level,
            auto_offset_reset=auto_offset_reset,
            enable_auto_commit=False,
            request_timeout_ms=request_timeout_ms,
            fetch_max_wait_ms=fetch_max_wait_ms,
            **connection.aiokafka_kwargs(),
        )

    def _start_action(self) -> str:
        return f"read topics {', '.join(self.topics)}" if self.topics else "start a consumer"

    async def getmany(
        self, *, timeout_ms: int = 1000, max_records: int | None = None
    ) -> list[Record]:
        """Fetch what is available within ``timeout_ms``, in partition order."""
        self._require_started()
        batches = await self._call(
            f"read topics {', '.join(self.topics) or '(assigned)'}",
            self._impl.getmany(timeout_ms=timeout_ms, max_records=max_records),
        )
        return [
            Record(
                topic=msg.topic,
                partition=msg.partition,
                offset=msg.offset,
                key=msg.key,
                value=msg.value,
                headers=tuple(msg.headers or ()),
                timestamp_ms=msg.timestamp,
            )
            for _tp, msgs in sorted(batches.items())
            for msg in msgs
        ]

    def assign(self, partitions: Sequence[TopicPartition]) -> None:
        """Read exactly these partitions, without a group (build the consumer without topics)."""
        self._require_started()
        self._impl.assign([_AkTopicPartition(tp.topic, tp.partition) for tp in partitions])

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        self._require_started()
        await self._call(
            "seek to the beginning",
            self._impl.seek_to_beginning(*(_AkTopicPartition(t, p) for t, p in partitions)),
        )

    async def assign_from_beginning(
        self, partitions: Sequence[TopicPartition]
    ) -> dict[TopicPartition, int]:
        """Read exactly ``partitions`` from their first record; returns their end offsets.

        The end offsets are asked before the assignment, on purpose: aiokafka sends
        ListOffsets on the same connection as its fetches, and the broker answers a
        connection's requests in order, so behind a long-polling fetch (``fetch_max_wait_ms``,
        500 ms) every end-offset query of an assigned consumer waits half a second.
        """
        self._require_started()
        for topic in sorted({tp.topic for tp in partitions}):
            # Known metadata first: otherwise ListOffsets fails once and backs off 100 ms.
            await self._call(
                f"read the metadata of {topic}", self._impl._client._wait_on_metadata(topic)
            )
        ends = await self.end_offsets(partitions)
        self.assign(partitions)
        await self.seek_to_beginning(*partitions)
        return ends

    async def end_offsets(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        """The offset after the last readable record (the last stable one under read_committed).

        On an assigned consumer this waits behind any fetch in flight (up to 500 ms); see
        :meth:`assign_from_beginning`.
        """
        self._require_started()
        result = await self._call(
            f"read end offsets of {', '.join(sorted({tp.topic for tp in partitions}))}",
            self._impl.end_offsets([_AkTopicPartition(t, p) for t, p in partitions]),
        )
        return {TopicPartition(tp.topic, tp.partition): int(off) for tp, off in result.items()}

    async def beginning_offsets(
        self, partitions: Sequence[TopicPartition]
    ) -> dict[TopicPartition, int]:
        """The offset of the first record still kept (after retention)."""
        self._require_started()
        result = await self._call(
            f"read beginning offsets of {', '.join(sorted({tp.topic for tp in partitions}))}",
            self._impl.beginning_offsets([_AkTopicPartition(t, p) for t, p in partitions]),
        )
        return {TopicPartition(tp.topic, tp.partition): int(off) for tp, off in result.items()}

    async def position(self, tp: TopicPartition) -> int:
        """The offset of the next record this consumer will read from ``tp``."""
        self._require_started()
        result = await self._call(
            f"read the position on {tp.topic}", self._impl.position(_AkTopicPartition(*tp))
        )
        return int(result)

    async def topic_partitions(self) -> dict[str, set[int]]:
        """Every topic this principal can see, with its partitions (fresh metadata).

        aiokafka's ``topics()`` fetches this but keeps only the names, and
        ``partitions_for_topic`` knows only subscribed topics, hence its client here.
        """
        self._require_started()
        cluster = await self._call("list topics", self._impl._client.fetch_all_metadata())
        return {t: set(cluster.partitions_for_topic(t) or ()) for t in cluster.topics()}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        """Read ``tp`` from ``offset`` on the next fetch."""
        self._require_started()
        self._impl.seek(_AkTopicPartition(*tp), offset)

    def assignment(self) -> set[TopicPartition]:
        self._require_started()
        return {TopicPartition(tp.topic, tp.partition) for tp in self._impl.assignment()}

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit ``offsets`` (the next offset to read) for this consumer's group."""
        self._require_started()
        ak_offsets = {_AkTopicPartition(tp.topic, tp.partition): off for tp, off in offsets.items()}
        await self._call(f"commit offsets for group {self.group_id}", self._impl.commit(ak_offsets))

    async def committed(self, tp: TopicPartition) -> int | None:
        """The group's committed offset for ``tp``, or ``None`` if there is none."""
        self._require_started()
        result = await self._call(
            f"read committed offsets of group {self.group_id}",
            self._impl.committed(_AkTopicPartition(tp.topic, tp.partition)),
        )
        return None if result is None else int(result)
