"""The edge router: policy enforced between ``liaison.from.*`` and ``liaison.to.*``, exactly once.

Each instance i of N owns the inbound partitions whose ``(crc32(topic) + partition) % N``
is i (static ownership, no group membership, no rebalance) and uses the transactional
id ``liaison.edge.<i>``: a restarted instance fences its zombie through the id's epoch.
Per batch (at most ``batch_max`` records or ``commit_interval_ms``), one transaction
holds the consumed offsets, every view, every audit event, every dead letter and the ids
the batch accepted (``liaison.edge.seen``: a re-sent bulletin is routed once, see
:mod:`bus.edge._seen`).

Offsets go into the transaction *before* the records (aiokafka #1004: on Kafka 3.7+ a
batch sent before AddOffsetsToTxn can fail delivery). On any commit error other than
fencing, the outcome is unknown: the router never retries the commit; it re-creates the
producer (which aborts whatever was open) and seeks back to the committed offsets.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import signal
import time
import zlib
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from pydantic import BaseModel, ConfigDict, Field

from bus.audit import ChainWriter, Signer, recover_position
from bus.bulletin import Bulletin, BulletinSchema
from bus.codec import WireCodec
from bus.edge._seen import DEFAULT_MAX_ENTRIES, DEFAULT_WINDOW_S, Seen, SeenSet, Verdict
from bus.errors import (
    BulletinInvalid,
    CodecError,
    ConfigError,
    KafkaAuthorizationError,
    KafkaOperationError,
    LiaisonError,
    PolicyError,
    ProducerFencedError,
)
from bus.kafka import Consumer, KafkaConnection, Producer, Record, RecordMetadata, TopicPartition
from bus.policy import CompiledPolicy, Decision, RedactionKeys, compile_policy, parse_policy
from bus.provision import EDGE_SEEN_RETENTION_MS
from bus.registry import KafkaRegistryStore
from bus.schemas import VIEW
from bus.topics import TopicNames

__all__ = [
    "POLICY_KEY",
    "EdgeConfig",
    "EdgeMetrics",
    "EdgeRouter",
    "install_stop_signals",
    "owner_of",
    "publish_policy",
]

log = logging.getLogger("liaison.edge")

POLICY_KEY = b"active"
SEEN_READ_TIMEOUT_S = 120.0
"""How long a router waits for other instances' open transactions on ``liaison.edge.seen``
to end (each is aborted 60 s after it began at the latest, plus the broker's 10 s sweep)."""


def owner_of(topic: str, partition: int, instances: int) -> int:
    """The instance that owns an inbound partition (stable across processes and runs).

    A topic's partitions go round the instances from a start its name picks: a topic of
    P partitions gives each instance P // N or P // N + 1 of them (a hash per partition
    could give one instance all of them), and one-partition topics spread by name.
    Growing a topic only adds owners for the new partitions; no partition changes hands.
    """
    return (zlib.crc32(topic.encode()) + partition) % instances


class EdgeConfig(BaseModel):
    """Router settings; validated at start."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    instance: int = Field(default=0, ge=0)
    instances: int = Field(default=1, ge=1)
    batch_max: int = Field(default=200, ge=1, description="Bulletins per transaction at most.")
    commit_interval_ms: int = Field(default=100, ge=1, description="Longest a batch stays open.")
    fetch_max_wait_ms: int = Field(
        default=20,
        ge=1,
        description="How long the broker holds a fetch that finds nothing. The router reads "
        "every agency's topic, most of them idle: with Kafka's default (500 ms) it stalled "
        "up to half a second whenever its buffer drained, behind a fetch for idle partitions.",
    )
    topic_refresh_ms: int = Field(
        default=2000, ge=100, description="How often to look for new agencies."
    )
    announce_commits: bool = Field(
        default=False,
        description="Fault-injection seam: print each step of each transaction on stdout "
        "(`consumed N <topic>:<partition>:<first>-<last> ...`, `begun N`, `pre-commit N`, "
        "`committing N`, `committed N`; N is the number of transactions this process has "
        "committed before), so a test can kill at known moments.",
    )
    pause_at: str | None = Field(
        default=None,
        pattern=r"^(consumed|begun|pre-commit)(:[0-9]+)?$",
        description="Fault-injection seam: `STEP` or `STEP:N` pauses `pause_ms` at that step "
        "(`consumed`, `begun` or `pre-commit`) of every transaction, or of transaction N only.",
    )
    pause_ms: int = Field(default=0, ge=0, description="How long `pause_at` pauses.")
    checkpoint_every: int = Field(
        default=1000, ge=1, description="Audit events between signed checkpoints, at most."
    )
    checkpoint_interval_ms: int = Field(
        default=10_000, ge=1, description="Longest time between signed checkpoints."
    )
    audit_chain: bool = Field(
        default=True,
        description="Benchmark seam: False writes unchained audit events (as before issue 9) "
        "to measure what chaining costs. Never in production: verify rejects them.",
    )
    dedup_window_s: float = Field(
        default=DEFAULT_WINDOW_S,
        gt=0,
        description="How long an accepted bulletin's (source, id) is remembered: a re-send "
        "within it is not routed again (docs/edge.md). Keep it below the retention of "
        "liaison.edge.seen (8 days as provisioned).",
    )
    dedup_max_entries: int = Field(
        default=DEFAULT_MAX_ENTRIES,
        ge=1,
        description="How many (source, id) pairs this instance remembers at most; the oldest "
        "are forgotten first, even within the window.",
    )
    names: TopicNames = Field(default_factory=TopicNames)

    def model_post_init(self, _context: Any) -> None:
        if self.instance >= self.instances:
            raise ValueError(f"instance={self.instance} must be below instances={self.instances}")


class EdgeMetrics:
    """The router's own Prometheus metrics, in a registry of its own.

    ``liaison edge run --metrics-port`` serves it; the demo adds it to the admin API's
    ``/metrics``. Decision counts per agency come from the audit log (the admin API).
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.commit_latency = Histogram(
            "liaison_edge_commit_latency_seconds",
            "Time from a batch's first record to its committed transaction.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=self.registry,
        )
        self.transactions = Counter(
            "liaison_edge_transactions", "Transactions committed.", registry=self.registry
        )
        self.bulletins = Counter(
            "liaison_edge_bulletins", "Input records routed.", registry=self.registry
        )
        self.views = Counter("liaison_edge_views", "Views produced.", registry=self.registry)
        self.dead_letters = Counter(
            "liaison_edge_dead_letters", "Input records dead-lettered.", registry=self.registry
        )
        self.duplicates = Counter(
            "liaison_edge_duplicates",
            "Re-sent bulletins (same source, id and content) decided but not routed again.",
            registry=self.registry,
        )


@dataclass
class _Outputs:
    """What one input record produces inside the transaction: its views (or its dead
    letter), and its audit event, sealed into the chain only once the transaction is open."""

    sends: list[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]]
    event: dict[str, Any]
    delivered: int = 0
    rejected: bool = False
    duplicate: bool = False


class EdgeRouter:
    """Run with :meth:`run`; stop by setting the event it is given."""

    def __init__(
        self,
        connection: KafkaConnection,
        schema: BulletinSchema,
        keys: RedactionKeys,
        config: EdgeConfig | None = None,
        *,
        signer: Signer | None = None,
    ) -> None:
        """``signer`` signs the audit chain's checkpoints; without one the chain is kept
        (every event linked to the previous one) but no checkpoint is written."""
        self.connection = connection
        self.schema = schema
        self.keys = keys
        self.config = config or EdgeConfig()
        self.names = self.config.names
        self._policy: CompiledPolicy | None = None
        self._policy_changed = asyncio.Event()
        self.stats = {
            "bulletins": 0,
            "views": 0,
            "dead_letters": 0,
            "duplicates": 0,
            "transactions": 0,
        }
        self.metrics = EdgeMetrics()
        self.signer = signer
        self.chain_id = f"edge.{self.config.instance}"
        self._chain: ChainWriter | None = None
        self._seen = SeenSet(
            window_s=self.config.dedup_window_s,
            max_entries=self.config.dedup_max_entries,
            origin=self.chain_id,
        )
        self.owned: frozenset[TopicPartition] | None = None
        """The inbound partitions this instance owns (``None`` before it first looks)."""
        if self.config.dedup_window_s * 1000 > EDGE_SEEN_RETENTION_MS:
            log.warning(
                "the re-send window (%s s) is longer than %s's provisioned retention (%d ms): "
                "raise the topic's retention.ms above it, or a restarted router forgets ids "
                "the window still covers",
                self.config.dedup_window_s,
                self.names.edge_seen,
                EDGE_SEEN_RETENTION_MS,
            )

    @property
    def policy_version(self) -> int | None:
        """Version of the policy in force, or ``None`` before the first one arrives."""
        return self._policy.version if self._policy else None

    async def wait_for_policy(self, version: int, *, timeout_s: float = 30.0) -> None:
        """Return once policy ``version`` (or a later one) is in force."""

        async def reached() -> None:
            while (self.policy_version or 0) < version:
                self._policy_changed.clear()
                if (self.policy_version or 0) >= version:
                    return
                await self._policy_changed.wait()

        await asyncio.wait_for(reached(), timeout_s)

    # -- lifecycle -------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Route until ``stop`` is set; the open batch is committed (or aborted) first."""
        registry = KafkaRegistryStore(self.connection, topic=self.names.schemas, writable=False)
        await registry.start()
        policy_task = asyncio.create_task(self._follow_policies(stop), name="policies")
        try:
            await self._wait_for_policy(stop)
            if stop.is_set():
                return
            codec = WireCodec(registry.state.schema_text)
            await self._route(stop, codec, registry)
        finally:
            policy_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, LiaisonError):
                await policy_task
            await registry.stop()

    async def _wait_for_policy(self, stop: asyncio.Event) -> None:
        # Without a policy nothing may be shared; consuming would only turn deliveries
        # into "withheld" decisions. Wait instead (fail closed, lose nothing).
        while self._policy is None and not stop.is_set():
            log.info("waiting for a policy in %s", self.names.policies)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._policy_changed.wait(), 1.0)

    async def _follow_policies(self, stop: asyncio.Event) -> None:
        tp = TopicPartition(self.names.policies, 0)
        async with Consumer(self.connection) as consumer:
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            while not stop.is_set():
                for record in await consumer.getmany(timeout_ms=500):
                    if record.key == POLICY_KEY and record.value is not None:
                        self._load_policy(record.value)

    def _load_policy(self, raw: bytes) -> None:
        try:
            compiled = compile_policy(
                parse_policy(json.loads(raw), origin="policy record"), self.schema, self.keys
            )
        except (PolicyError, ValueError) as exc:
            # Keep the policy in force: a bad candidate never widens (or narrows) access.
            log.error("ignoring an invalid policy record: %s", exc)
            return
        previous = self._policy.version if self._policy else None
        self._policy = compiled
        self._policy_changed.set()
        log.info("policy version %s in force (was %s)", compiled.version, previous)

    # -- the loop --------------------------------------------------------------------

    async def _route(
        self, stop: asyncio.Event, codec: WireCodec, registry: KafkaRegistryStore
    ) -> None:
        consumer = Consumer(
            self.connection,
            group_id=self.names.edge_group,
            isolation_level="read_committed",
            fetch_max_wait_ms=self.config.fetch_max_wait_ms,
        )
        await consumer.start()
        producer = await self._new_producer()
        try:
            await self._recover_chain()
            await self._recover_seen()
            owned: set[TopicPartition] = set()
            next_refresh: float | None = None  # None: the first look, right after loading
            loop = asyncio.get_running_loop()
            while not stop.is_set():
                if next_refresh is None or loop.time() >= next_refresh:
                    before, owned = owned, await self._refresh_assignment(consumer, owned)
                    if next_refresh is not None and owned - before:
                        # Grown partitions move ids to other partitions, perhaps to this
                        # instance (even one that owned none): add what every instance has
                        # accepted until now.
                        await self._recover_seen()
                    self.owned = frozenset(owned)
                    next_refresh = loop.time() + self.config.topic_refresh_ms / 1000
                if not owned:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.config.topic_refresh_ms / 1000)
                    continue
                batch = await consumer.getmany(
                    timeout_ms=self.config.commit_interval_ms, max_records=self.config.batch_max
                )
                if not batch:
                    continue
                try:
                    await self._step("consumed", batch)
                    await self._transact(producer, batch, codec, registry)
                except ProducerFencedError:
                    raise  # another instance with our id runs: stop, never fight it
                except LiaisonError as exc:
                    log.warning("transaction outcome unknown (%s): re-creating the producer", exc)
                    with contextlib.suppress(LiaisonError):
                        await producer.stop()
                    producer = await self._new_producer()
                    await self._recover_chain()  # what was committed, now that it is settled
                    await self._recover_seen()
                    await self._rewind(consumer, owned)
            await self._final_checkpoint(producer)
        finally:
            with contextlib.suppress(LiaisonError):
                await producer.stop()
            await consumer.stop()

    async def _recover_chain(self) -> None:
        """The audit chain's committed position (after InitProducerId settled any open
        transaction): the position record is written in the same transaction as the events."""
        if not self.config.audit_chain:
            return
        state = await recover_position(self.connection, self.names.audit_state, self.chain_id)
        self._chain = ChainWriter(
            state,
            self.signer,
            every=self.config.checkpoint_every,
            interval_s=self.config.checkpoint_interval_ms / 1000,
        )

    async def _recover_seen(self, *, timeout_s: float = SEEN_READ_TIMEOUT_S) -> None:
        """Add the ids every instance committed within the window, from ``liaison.edge.seen``.

        Called once this instance's producer is initialised (InitProducerId has settled its
        own open transaction: committed or aborted, markers written). The read is complete:
        the topic's high watermark is sampled first (read_uncommitted), then the records are
        read read_committed until the position reaches it. Its last stable offset can stop
        short of it behind another instance's open transaction, which ends within a batch
        (or is aborted at its transaction timeout, 60 s): wait for it, up to ``timeout_s``,
        and fail closed past that rather than route knowing less than was committed.
        The records are merged into what this instance knows, never replace it.
        """
        tp = TopicPartition(self.names.edge_seen, 0)
        records: list[tuple[bytes | None, bytes | None]] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        try:
            async with Consumer(self.connection, isolation_level="read_uncommitted") as probe:
                high = (await probe.end_offsets([tp]))[tp]  # the high watermark
            async with Consumer(self.connection) as consumer:
                await consumer.assign_from_beginning([tp])
                while (position := await consumer.position(tp)) < high:
                    if loop.time() >= deadline:
                        raise ConfigError(
                            f"{self.names.edge_seen} could not be read up to offset {high} "
                            f"within {timeout_s:g} s (stuck at {position}): a transaction of "
                            "another router instance stays open; the router does not route "
                            "without the ids every instance committed. Check the other edge "
                            "instances (a stopped process's transaction is aborted after its "
                            "60 s timeout), then restart"
                        )
                    records.extend((r.key, r.value) for r in await consumer.getmany(timeout_ms=500))
        except (KafkaAuthorizationError, KafkaOperationError) as exc:
            # Fail closed: without the ids it accepted, the router would route re-sends.
            raise ConfigError(
                f"cannot read {self.names.edge_seen}, where the routers keep the bulletin ids "
                f"they accepted ({exc}); run `liaison agency service edge`, which creates the "
                "topic and grants the edge principal its ACLs (idempotent), then restart"
            ) from exc
        unreadable = self._seen.load(records, now_ms=_now_ms())
        if unreadable:
            log.error("%d unreadable records in %s skipped", unreadable, self.names.edge_seen)
        log.info("%d bulletin ids remembered for re-sends", len(self._seen))

    async def _final_checkpoint(self, producer: Producer) -> None:
        """On a clean stop, sign everything written since the last checkpoint."""
        chain = self._chain
        if chain is None:
            return
        chain.begin()
        if not chain.checkpoint_due(force=True):
            chain.discard()
            return
        value = chain.checkpoint()
        try:
            await producer.begin_transaction()
            await producer.send(self.names.audit, value, key=self._checkpoint_key)
            await producer.send(self.names.audit_state, chain.position(), key=self._chain_key)
            await producer.commit_transaction()
        except LiaisonError as exc:
            chain.discard()
            log.warning("no final audit checkpoint (%s); the next start writes one", exc)
            return
        chain.committed()

    async def _new_producer(self) -> Producer:
        producer = Producer(
            self.connection,
            transactional_id=self.names.edge_transactional_id(self.config.instance),
            linger_ms=5,
        )
        await producer.start()  # InitProducerId: fences any zombie, aborts its open txn
        return producer

    async def _refresh_assignment(
        self, consumer: Consumer, owned: set[TopicPartition]
    ) -> set[TopicPartition]:
        topics = await consumer.topic_partitions()
        wanted = {
            TopicPartition(t, p)
            for t, partitions in topics.items()
            if self.names.agency_of(t)
            for p in partitions
            if owner_of(t, p, self.config.instances) == self.config.instance
        }
        if wanted != owned:
            # Partitions kept resume where this consumer stands (every record it returned
            # is committed by now). Not at the group's committed offset: right after a
            # commit that can still be the one before it (the transaction's offsets are
            # pending until its markers are written), and rewinding there routes a batch
            # twice.
            kept = {tp: await consumer.position(tp) for tp in owned & wanted}
            consumer.assign(sorted(wanted))
            await self._rewind(consumer, wanted - kept.keys())
            for tp, position in kept.items():
                consumer.seek(tp, position)
            log.info("instance %s owns %d partitions", self.config.instance, len(wanted))
        return wanted

    async def _rewind(self, consumer: Consumer, owned: set[TopicPartition]) -> None:
        """Position every owned partition at its committed offset (or the beginning)."""
        for tp in sorted(owned):
            committed = await consumer.committed(tp)
            if committed is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, committed)

    async def _transact(
        self,
        producer: Producer,
        batch: list[Record],
        codec: WireCodec,
        registry: KafkaRegistryStore,
    ) -> None:
        """One batch, one transaction; the ids it accepts are remembered only if it commits."""
        self._seen.begin()
        try:
            await self._transact_batch(producer, batch, codec, registry)
        finally:
            self._seen.discard()  # after a commit, nothing is left to discard

    async def _transact_batch(
        self,
        producer: Producer,
        batch: list[Record],
        codec: WireCodec,
        registry: KafkaRegistryStore,
    ) -> None:
        policy = self._policy
        assert policy is not None
        started = time.monotonic()
        view_id = registry.state.version(VIEW, "latest").schema_id
        offsets: dict[TopicPartition, int] = {}
        for record in batch:
            offsets[TopicPartition(record.topic, record.partition)] = record.offset + 1
        # Decide and encode the whole batch before the transaction begins. Besides keeping
        # the transaction short, this gives the broker time to write the last transaction's
        # markers: a transaction begun at once meets CONCURRENT_TRANSACTIONS and waits out a
        # retry backoff (docs/kafka.md).
        prepared = [self._process(record, codec, policy, view_id) for record in batch]
        chain = self._chain
        if chain is not None:
            chain.begin()
        await producer.begin_transaction()
        await producer.send_offsets_to_transaction(offsets, self.names.edge_group)
        await self._step("begun")
        deliveries: list[Awaitable[RecordMetadata]] = []
        tallies: list[tuple[int, int, int]] = []
        try:
            for outputs in prepared:
                tallies.append((outputs.delivered, int(outputs.rejected), int(outputs.duplicate)))
                for topic, key, value, headers in outputs.sends:
                    deliveries.append(
                        await producer.enqueue(topic, value, key=key, headers=headers)
                    )
                audit = self._seal(outputs.event)
                deliveries.append(
                    await producer.enqueue(self.names.audit, audit, key=self._chain_key)
                )
                self.stats["bulletins"] += 1
                self.stats["views"] += outputs.delivered
                self.stats["dead_letters"] += int(outputs.rejected)
                self.stats["duplicates"] += int(outputs.duplicate)
                if chain is not None and chain.checkpoint_due(count_only=True):
                    # Every N events even inside a larger batch: N is a maximum.
                    deliveries.append(
                        await producer.enqueue(
                            self.names.audit,
                            chain.checkpoint(),
                            key=self._checkpoint_key,
                        )
                    )
            if chain is not None:
                if chain.checkpoint_due():
                    deliveries.append(
                        await producer.enqueue(
                            self.names.audit, chain.checkpoint(), key=self._checkpoint_key
                        )
                    )
                deliveries.append(
                    await producer.enqueue(
                        self.names.audit_state, chain.position(), key=self._chain_key
                    )
                )
            for seen_record in self._seen.pending_records():
                deliveries.append(
                    await producer.enqueue(self.names.edge_seen, seen_record, key=self._chain_key)
                )
            for delivery in deliveries:
                await delivery
        except BaseException:
            _abandon(deliveries)
            if chain is not None:
                chain.discard()
            raise
        number = self.stats["transactions"]
        await self._step("pre-commit")
        await self._step("committing")
        try:
            await producer.commit_transaction()
        except BaseException:
            if chain is not None:
                chain.discard()
            raise
        if chain is not None:
            chain.committed()
        self._seen.commit(_now_ms())
        self.stats["transactions"] += 1
        self.metrics.commit_latency.observe(time.monotonic() - started)
        self.metrics.transactions.inc()
        self.metrics.bulletins.inc(len(batch))
        self.metrics.views.inc(sum(counts[0] for counts in tallies))
        self.metrics.dead_letters.inc(sum(counts[1] for counts in tallies))
        self.metrics.duplicates.inc(sum(counts[2] for counts in tallies))
        if self.config.announce_commits:
            print(f"committed {number}", flush=True)  # noqa: T201 - fault-injection seam

    async def _step(self, step: str, batch: list[Record] | None = None) -> None:
        """Fault-injection seam (off by default): announce a step of the transaction on
        stdout and pause there, so that a test can SIGKILL (or SIGSTOP) the router at it."""
        number = self.stats["transactions"]
        if self.config.announce_commits:
            ranges = ""
            if batch:
                spans: dict[tuple[str, int], tuple[int, int]] = {}
                for record in batch:
                    first, _ = spans.get((record.topic, record.partition), (record.offset, 0))
                    spans[(record.topic, record.partition)] = (first, record.offset)
                ranges = "".join(f" {t}:{p}:{a}-{b}" for (t, p), (a, b) in spans.items())
            print(f"{step} {number}{ranges}", flush=True)  # noqa: T201 - fault-injection seam
        if self.config.pause_at is not None and self.config.pause_ms:
            name, _, only = self.config.pause_at.partition(":")
            if name == step and (not only or int(only) == number):
                await asyncio.sleep(self.config.pause_ms / 1000)

    # -- one record ------------------------------------------------------------------

    def _process(
        self, record: Record, codec: WireCodec, policy: CompiledPolicy, view_id: int
    ) -> _Outputs:
        raw = record.value or b""
        digest = hashlib.sha256(raw).hexdigest()
        origin = {"topic": record.topic, "partition": record.partition, "offset": record.offset}
        agency = self.names.agency_of(record.topic) or ""
        try:
            decoded = codec.decode(raw)
            bulletin = self.schema.from_avro(decoded.record)
        except CodecError as exc:
            return self._reject(record, origin, digest, exc.reason, str(exc), policy)
        except BulletinInvalid as exc:
            rules = sorted({str(getattr(v, "rule", "")) for v in exc.violations})
            return self._reject(
                record, origin, digest, "invalid_bulletin", f"rules: {', '.join(rules)}", policy
            )
        if bulletin.source_agency != agency:
            return self._reject(
                record,
                origin,
                digest,
                "spoofed_source",
                f"envelope source_agency differs from the topic's agency {agency}",
                policy,
            )
        verdict, earlier = self._seen.observe(
            record.topic,
            record.partition,
            record.offset,
            bulletin.bulletin_id,
            bytes.fromhex(digest),
            now_ms=_now_ms(),
        )
        if earlier is not None:
            return self._repeat(record, bulletin, verdict, earlier, origin, digest, policy)
        decision = policy.evaluate(bulletin)
        return self._deliver(bulletin, decision, origin, digest, codec, view_id)

    def _repeat(
        self,
        record: Record,
        bulletin: Bulletin,
        verdict: Verdict,
        earlier: Seen,
        origin: dict[str, Any],
        digest: str,
        policy: CompiledPolicy,
    ) -> _Outputs:
        """A (source, id) accepted within the window, again: decided, never routed again."""
        about = {
            "bulletin_id": bulletin.bulletin_id,
            "source": bulletin.source_agency,
            "earlier": earlier.origin,
        }
        if verdict is Verdict.ID_REUSED:
            where = f"{earlier.topic}:{earlier.partition}:{earlier.offset}"
            outputs = self._reject(
                record,
                origin,
                digest,
                "id_reused",
                f"bulletin id already accepted at {where} with different content; an update "
                "or a correction needs an id of its own (msg_type UPDATE, referencing it)",
                policy,
            )
            outputs.event.update(about)
            return outputs
        event = {
            "type": "bulletin.decided",
            "outcome": "duplicate",
            "reason": "duplicate",
            **about,
            "kind": bulletin.kind,
            "marking": bulletin.marking.value,
            "input": origin,
            "sha256": digest,
            "policy_version": policy.version,
            "time": datetime.now(UTC).isoformat(),
        }
        return _Outputs(sends=[], event=event, duplicate=True)

    def _deliver(
        self,
        bulletin: Bulletin,
        decision: Decision,
        origin: dict[str, Any],
        digest: str,
        codec: WireCodec,
        view_id: int,
    ) -> _Outputs:
        body_type = self.schema.kinds[bulletin.kind]
        key = bulletin.bulletin_id.encode()
        sends: list[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]] = []
        # Recipients with the same redactions share one encoding of the bulletin.
        encoded = codec.encode_sharing_last(view_id, [v.avro(body_type) for v in decision.views])
        for view, value in zip(decision.views, encoded, strict=True):
            sends.append((self.names.outbound(view.recipient), key, value, []))
        event = {
            "type": "bulletin.decided",
            "outcome": "accepted",
            "bulletin_id": bulletin.bulletin_id,
            "source": bulletin.source_agency,
            "kind": bulletin.kind,
            "marking": bulletin.marking.value,
            "input": origin,
            "sha256": digest,
            "policy_version": decision.policy_version,
            "time": datetime.now(UTC).isoformat(),
            "recipients": [
                {
                    "agency": v.recipient,
                    "delivered": True,
                    "rules": list(v.rules),
                    "redactions": [
                        {"path": r.path, "action": r.action.value} for r in v.redactions
                    ],
                }
                for v in decision.views
            ]
            + [
                {"agency": w.recipient, "delivered": False, "reason": w.reason.value}
                for w in decision.withheld
            ],
        }
        return _Outputs(sends=sends, event=event, delivered=len(decision.views))

    @property
    def _chain_key(self) -> bytes:
        return self.chain_id.encode()

    @property
    def _checkpoint_key(self) -> bytes:
        return f"checkpoint:{self.chain_id}".encode()

    def _seal(self, event: dict[str, Any]) -> bytes:
        if self._chain is None:  # the benchmark seam: unchained
            return json.dumps(event).encode()
        return self._chain.seal(event)

    def _reject(
        self,
        record: Record,
        origin: dict[str, Any],
        digest: str,
        reason: str,
        detail: str,
        policy: CompiledPolicy,
    ) -> _Outputs:
        headers = [
            ("liaison.reason", reason.encode()),
            ("liaison.detail", detail[:1000].encode()),
            ("liaison.source.topic", record.topic.encode()),
            ("liaison.source.partition", str(record.partition).encode()),
            ("liaison.source.offset", str(record.offset).encode()),
        ]
        event = {
            "type": "bulletin.decided",
            "outcome": "rejected",
            "reason": reason,
            "input": origin,
            "sha256": digest,
            "policy_version": policy.version,
            "time": datetime.now(UTC).isoformat(),
        }
        key = f"{record.topic}:{record.partition}:{record.offset}".encode()
        return _Outputs(
            sends=[(self.names.deadletter, record.key or key, record.value, headers)],
            event=event,
            rejected=True,
        )


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _abandon(deliveries: list[Awaitable[RecordMetadata]]) -> None:
    """A failed transaction's deliveries will not be awaited: close them, so that none is
    reported again as a coroutine never awaited (their errors are the transaction's)."""
    for delivery in deliveries:
        close = getattr(delivery, "close", None)
        if close is not None:
            close()


def install_stop_signals(stop: asyncio.Event) -> None:
    """SIGTERM and SIGINT set ``stop``: the open batch commits, then the router exits."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


async def publish_policy(
    connection: KafkaConnection, policy_json: bytes, names: TopicNames
) -> None:
    """Make a policy document the one in force (the admin API's activate will call this)."""
    async with Producer(connection, linger_ms=0) as producer:
        await producer.send(names.policies, policy_json, key=POLICY_KEY)
