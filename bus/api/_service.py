"""The admin service: every operation the API offers, on Kafka, with an audit event each.

The service runs as the admin-service principal (``liaison agency service admin``), not
as a super user. It is the single writer of policies and schemas; its state is folded
from the bus's topics on start (:mod:`bus.api._state`), so a restart loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretBytes

from bus.api._access import current_principal
from bus.api._auth import Principal, TokenStore
from bus.api._follow import TopicFollower, read_one
from bus.api._state import (
    ACTIVE_KEY,
    Activation,
    AgencyDirectory,
    AuditLedger,
    DeadLetterIndex,
    PolicyHistory,
    PolicyVersion,
    activation_key,
    version_key,
)
from bus.audit import ChainWriter, Signer, recover_chain
from bus.bulletin import BulletinSchema
from bus.errors import ConfigError, KafkaAccessError, LiaisonError, PolicyError
from bus.kafka import Consumer, KafkaAdmin, KafkaConnection, Producer, Record, TopicPartition
from bus.policy import CompiledPolicy, RedactionKeys, compile_policy, parse_policy
from bus.provision import (
    MAX_PARTITIONS,
    PartitionShrinkError,
    Provisioner,
    ProvisionResult,
    default_partitions,
)
from bus.registry import KafkaRegistryStore, SchemaRegistry, SchemaVersion
from bus.schemas import CompatibilityMode
from bus.topics import TopicNames

__all__ = ["AdminService", "ApiSettings", "ConflictError", "Lag", "NotFoundError"]

log = logging.getLogger("liaison.api")

ADMIN_CHAIN = "admin"
"""The admin API's audit chain (one writer: run one admin API per bus)."""
_SERVICE = Principal(token_id="service", role="admin")  # noqa: S106 - a name, not a secret


class ApiSettings(BaseModel):
    """The admin API's settings; validated at start."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    prefix: str = Field(default="liaison", description="Topic prefix of the bus.")
    tokens_path: Path = Field(description="The hashed token file (0600).")
    public_bootstrap: str | None = Field(
        default=None,
        description="Bootstrap address handed to agencies with their credentials "
        "(default: the one the API connects to).",
    )
    agency_partitions: int = Field(
        default_factory=default_partitions,
        ge=1,
        le=MAX_PARTITIONS,
        description="Partitions of a new agency's topics when POST /agencies names none "
        "(default: LIAISON_AGENCY_PARTITIONS, else 1).",
    )
    lag_interval_s: float = Field(default=2.0, gt=0, le=300)
    audit_scan_limit: int = Field(
        default=1_000_000, ge=1, description="Audit events a query reads at most."
    )
    checkpoint_every: int = Field(
        default=50, ge=1, description="Admin events between signed checkpoints, at most."
    )
    checkpoint_interval_s: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="Longest time an admin event waits for a signed checkpoint over it, "
        "even when no other event follows.",
    )

    @property
    def names(self) -> TopicNames:
        return TopicNames(prefix=self.prefix)


class NotFoundError(LiaisonError):
    """The object does not exist (or the caller may not know that it does)."""


class ConflictError(LiaisonError):
    """The request contradicts what is stored; ``code`` says how."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Lag:
    """How far the edge routers are behind, per inbound partition."""

    partitions: tuple[tuple[str, int, int], ...] = ()
    measured_at: datetime | None = None

    @property
    def total(self) -> int:
        return sum(lag for _, _, lag in self.partitions)


def _now() -> datetime:
    return datetime.now(UTC)


class AuditedRegistry(SchemaRegistry):
    """The registry, writing an audit event (with the caller) for every change."""

    def __init__(self, store: KafkaRegistryStore, service: AdminService) -> None:
        super().__init__(store)
        self._service = service

    async def _audit(self, event_type: str, **fields: Any) -> None:
        actor = current_principal.get()
        if actor is not None:
            await self._service.record(event_type, actor, **fields)

    async def register(self, subject: str, schema: str) -> SchemaVersion:
        _, new = self.state.plan_registration(subject, schema)
        registered = await super().register(subject, schema)
        if new:
            await self._audit(
                "schema.registered",
                subject=subject,
                version=registered.version,
                schema_id=registered.schema_id,
            )
        return registered

    async def set_mode(self, subject: str | None, mode: CompatibilityMode) -> None:
        await super().set_mode(subject, mode)
        await self._audit("schema.mode_set", subject=subject, mode=mode.value)

    async def clear_mode(self, subject: str) -> None:
        await super().clear_mode(subject)
        await self._audit("schema.mode_cleared", subject=subject)


class AdminService:
    """Start with :meth:`start`, stop with :meth:`stop` (the app's lifespan does both)."""

    def __init__(
        self,
        connection: KafkaConnection,
        settings: ApiSettings,
        schema: BulletinSchema,
        *,
        signer: Signer | None = None,
    ) -> None:
        """``signer`` signs the admin chain's checkpoints (and is published in the log)."""
        self.connection = connection
        self.signer = signer
        self._chain: ChainWriter | None = None
        self._audit_lock = asyncio.Lock()
        self._seal_task: asyncio.Task[None] | None = None
        self._sealing = True
        self._wake_sealer = asyncio.Event()
        self.settings = settings
        self.names = settings.names
        self.schema = schema
        self.tokens = TokenStore(settings.tokens_path)
        self.provisioner = Provisioner(
            connection, names=self.names, partitions=settings.agency_partitions
        )
        self.agencies = AgencyDirectory()
        self.policies = PolicyHistory()
        self.audit = AuditLedger(self.names)
        self.deadletters = DeadLetterIndex(self.names)
        self.registry_store = KafkaRegistryStore(connection, topic=self.names.schemas)
        self.registry: SchemaRegistry = AuditedRegistry(self.registry_store, self)
        self.lag = Lag()
        # Dry runs never use the routers' pseudonym key: a caller could otherwise learn
        # the real token of any value it chooses, and reverse pseudonyms by dictionary.
        self._dry_run_keys = RedactionKeys(master=SecretBytes(secrets.token_bytes(32)))
        self._followers = {
            "agencies": TopicFollower(connection, self.names.agencies, self.agencies.apply),
            "policies": TopicFollower(connection, self.names.policies, self.policies.apply),
            "audit": TopicFollower(connection, self.names.audit, self.audit.apply),
            "deadletters": TopicFollower(connection, self.names.deadletter, self.deadletters.apply),
        }
        self._producer: Producer | None = None
        self._lag_task: asyncio.Task[None] | None = None
        self._policy_lock = asyncio.Lock()
        self._replay_lock = asyncio.Lock()
        self.started = False

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        await self.provisioner.ensure_bus_topics()
        started: list[Any] = []
        try:
            await self.registry_store.start()
            started.append(self.registry_store)
            for follower in self._followers.values():
                await follower.start()
                started.append(follower)
            self._producer = Producer(self.connection, linger_ms=0)
            await self._producer.start()
            self._chain = await self._recovered_chain()
            await self._announce_key()
        except BaseException:
            for part in reversed(started):
                await part.stop()
            raise
        self._lag_task = asyncio.create_task(self._measure_lag(), name="router lag")
        self._sealing = True
        self._seal_task = asyncio.create_task(self._seal_on_time(), name="audit checkpoints")
        self.started = True

    async def stop(self) -> None:
        self.started = False
        if self._lag_task is not None:
            self._lag_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._lag_task
        if self._seal_task is not None:
            # Not cancelled: a checkpoint half sent would leave its outcome unknown.
            self._sealing = False
            self._wake_sealer.set()
            await self._seal_task
        if self._producer is not None:
            await self._seal_on_stop()
            with contextlib.suppress(LiaisonError):
                await self._producer.stop()
        for follower in self._followers.values():
            await follower.stop()
        await self.registry_store.stop()

    def followers_ok(self) -> bool:
        return self.started and all(f.failure is None for f in self._followers.values())

    async def broker_reachable(self, timeout_s: float = 5.0) -> bool:
        def probe() -> int:
            with KafkaAdmin(self.connection) as admin:
                return admin.broker_count()

        try:
            return await asyncio.wait_for(asyncio.to_thread(probe), timeout_s) > 0
        except (TimeoutError, LiaisonError):
            return False

    # -- audit -----------------------------------------------------------------------

    async def record(self, event_type: str, actor: Principal, **fields: Any) -> None:
        """Write an admin event to the audit log (never a secret, never a payload value),
        as the next link of the ``admin`` chain; a signed checkpoint follows when due."""
        event = {"type": event_type, "actor": actor.actor, "time": _now().isoformat(), **fields}
        async with self._audit_lock:
            await self._append(event)

    async def _append(self, event: dict[str, Any]) -> None:
        producer = self._require_producer()
        chain = self._chain
        if chain is None:
            raise KafkaAccessError("the admin service is not started")
        chain.begin()
        value = chain.seal(event)
        checkpoint = chain.checkpoint() if chain.checkpoint_due() else None
        try:
            written = await producer.send(self.names.audit, value, key=ADMIN_CHAIN.encode())
            if checkpoint is not None:
                written = await producer.send(
                    self.names.audit, checkpoint, key=f"checkpoint:{ADMIN_CHAIN}".encode()
                )
        except LiaisonError:
            # Unknown whether it was written: read back what the log holds.
            chain.discard()
            self._chain = await self._recovered_chain()
            raise
        chain.committed()
        self._wake_sealer.set()
        await self._followers["audit"].wait_past(written.offset)

    async def _recovered_chain(self) -> ChainWriter:
        state = await recover_chain(self.connection, self.names.audit, ADMIN_CHAIN)
        return ChainWriter(
            state,
            self.signer,
            every=self.settings.checkpoint_every,
            interval_s=self.settings.checkpoint_interval_s,
        )

    async def _seal_on_time(self) -> None:
        """Sign a checkpoint over the admin chain's unsealed events once
        ``checkpoint_interval_s`` has passed since the last one, whether or not another
        event arrives (an idle API must not leave its last actions unsigned)."""
        while self._sealing:
            self._wake_sealer.clear()
            chain = self._chain
            due = chain.due_in() if chain is not None else None
            try:
                if due is None:
                    await self._wake_sealer.wait()
                elif due > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake_sealer.wait(), due)
                else:
                    await self._seal_due()
            except LiaisonError as exc:
                log.warning("no timely audit checkpoint for the admin chain: %s", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._wake_sealer.wait(), self.settings.checkpoint_interval_s
                    )

    async def _seal_due(self) -> None:
        async with self._audit_lock:
            chain, producer = self._chain, self._producer
            if chain is None or producer is None:
                return
            if chain.due_in() != 0:  # an event's own checkpoint came first
                return
            chain.begin()
            try:
                written = await producer.send(
                    self.names.audit, chain.checkpoint(), key=f"checkpoint:{ADMIN_CHAIN}".encode()
                )
            except LiaisonError:
                # Unknown whether it was written: read back what the log holds.
                chain.discard()
                self._chain = await self._recovered_chain()
                raise
            chain.committed()
        with contextlib.suppress(LiaisonError):  # written; the ledger shows it when it can
            await self._followers["audit"].wait_past(written.offset)

    async def _seal_on_stop(self) -> None:
        chain, producer = self._chain, self._producer
        if chain is None or producer is None:
            return
        async with self._audit_lock:
            chain.begin()
            if not chain.checkpoint_due(force=True):
                chain.discard()
                return
            try:
                await producer.send(
                    self.names.audit, chain.checkpoint(), key=f"checkpoint:{ADMIN_CHAIN}".encode()
                )
            except LiaisonError as exc:
                chain.discard()
                log.warning("no final audit checkpoint for the admin chain: %s", exc)
                return
            chain.committed()

    async def _announce_key(self) -> None:
        """Publish the signing key in the log when it is new: a rotation is an audit event."""
        if self.signer is None or self.signer.public.key_id in self.audit.keys:
            return
        previous = sorted(self.audit.keys)
        await self.record(
            "audit.key",
            _SERVICE,
            **self.signer.public.to_json(),
            previous=previous,
        )

    def _require_producer(self) -> Producer:
        if self._producer is None:
            raise KafkaAccessError("the admin service is not started")
        return self._producer

    async def scan_audit(self) -> tuple[list[dict[str, Any]], bool]:
        """Every audit event up to now, oldest first (bounded by ``audit_scan_limit``)."""
        tp = TopicPartition(self.names.audit, 0)
        events: list[dict[str, Any]] = []
        async with Consumer(self.connection) as consumer:
            end = (await consumer.end_offsets([tp]))[tp]  # before assign: no fetch ahead of it
            start = max(0, end - self.settings.audit_scan_limit)
            consumer.assign([tp])
            consumer.seek(tp, start)
            while await consumer.position(tp) < end:
                for record in await consumer.getmany(timeout_ms=500):
                    with contextlib.suppress(ValueError):
                        event = json.loads(record.value or b"")
                        if isinstance(event, dict):
                            events.append(event)
        return events, start > 0

    # -- agencies --------------------------------------------------------------------

    async def provision(
        self, agency: str, name: str, actor: Principal, *, partitions: int | None = None
    ) -> ProvisionResult:
        result = await self.provisioner.add(agency, name=name, partitions=partitions)
        await self._followers["agencies"].sync()
        if result.changes:
            await self.record("agency.provisioned", actor, agency=agency, changes=result.changes)
        return result

    async def rotate(self, agency: str, actor: Principal) -> ProvisionResult:
        self._require_active(agency)
        result = await self.provisioner.rotate(agency)
        await self.record("agency.rotated", actor, agency=agency)
        return result

    async def revoke(self, agency: str, actor: Principal) -> tuple[ProvisionResult, list[str]]:
        if agency not in self.agencies.agencies:
            raise NotFoundError("the agency is not provisioned; list agencies to see which are")
        result = await self.provisioner.revoke(agency)
        await self._followers["agencies"].sync()
        tokens = await asyncio.to_thread(self.tokens.revoke_role, f"agency:{agency}")
        if result.changes or tokens:
            await self.record(
                "agency.revoked", actor, agency=agency, changes=result.changes, tokens=tokens
            )
        return result, tokens

    async def grow_partitions(
        self, agency: str, partitions: int, actor: Principal
    ) -> ProvisionResult:
        """Grow the agency's two topics to ``partitions`` (an audited admin action)."""
        if agency not in self.agencies.agencies:
            raise NotFoundError("the agency is not provisioned; list agencies to see which are")
        try:
            result = await self.provisioner.grow_partitions(agency, partitions)
        except PartitionShrinkError as exc:
            raise ConflictError("partitions_shrink", str(exc)) from exc
        except ConfigError as exc:  # its topics are gone, or it was revoked meanwhile
            raise ConflictError("agency_unavailable", str(exc)) from exc
        if result.changes:
            await self.record(
                "agency.partitions_grown",
                actor,
                agency=agency,
                partitions=partitions,
                changes=result.changes,
            )
        return result

    def _require_active(self, agency: str) -> None:
        record = self.agencies.agencies.get(agency)
        if record is None:
            raise NotFoundError("the agency is not provisioned; list agencies to see which are")
        if record.state != "active":
            raise ConflictError(
                "agency_revoked",
                "the agency is revoked; provision it again to give it credentials",
            )

    # -- policies --------------------------------------------------------------------

    def compile(self, document: dict[str, Any]) -> CompiledPolicy:
        """Validate and compile a candidate; :class:`PolicyError` lists every problem."""
        return compile_policy(
            parse_policy(document, origin="the policy"), self.schema, self._dry_run_keys
        )

    def stored(self, version: int) -> PolicyVersion:
        stored = self.policies.versions.get(version)
        if stored is None:
            known = ", ".join(str(v) for v in sorted(self.policies.versions)) or "none"
            raise NotFoundError(f"the policy version is not stored (stored: {known})")
        return stored

    async def put_policy(
        self, version: int, document: dict[str, Any], actor: Principal
    ) -> tuple[PolicyVersion, bool]:
        """Store a new version; the same document again is a no-op, another one a conflict."""
        if document.get("version") != version:
            # The document's value is not repeated: errors never echo a request value.
            raise PolicyError(
                "the document's `version` differs from the version in the path; make them equal"
            )
        compiled = self.compile(document)
        canonical = compiled.policy.model_dump(mode="json")
        async with self._policy_lock:
            existing = self.policies.versions.get(version)
            if existing is not None:
                if existing.policy == canonical:
                    return existing, False
                raise ConflictError(
                    "version_exists",
                    "the policy version is already stored with other content; "
                    "versions are immutable: put it as a new version",
                )
            stored = PolicyVersion(
                version=version, policy=canonical, actor=actor.actor, time=_now()
            )
            await self._write_policy_record(version_key(version), stored.model_dump_json())
        await self.record(
            "policy.stored",
            actor,
            version=version,
            sha256=hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest(),
        )
        return stored, True

    async def activate(
        self, version: int, actor: Principal, *, action: str = "activate"
    ) -> Activation:
        async with self._policy_lock:
            stored = self.stored(version)
            self.compile(stored.policy)  # the schemas may have moved on since it was put
            previous = self.policies.active_version
            activation = Activation(
                sequence=self.policies.next_sequence,
                version=version,
                previous=previous,
                action=action,
                actor=actor.actor,
                time=_now(),
            )
            await self._write_policy_record(
                activation_key(activation.sequence), activation.model_dump_json()
            )
            await self._write_policy_record(ACTIVE_KEY, json.dumps(stored.policy))
        event = "policy.activated" if action == "activate" else "policy.rolled_back"
        await self.record(event, actor, version=version, previous=previous)
        return activation

    async def rollback(self, actor: Principal) -> Activation:
        """Put back the version that was in force before the current one."""
        current = self.policies.active_version
        history = [a.version for a in self.policies.activations]
        earlier = [v for v in history if v != current]
        if current is None or not earlier:
            raise ConflictError(
                "nothing_to_roll_back",
                "no earlier policy version was ever in force; activate a version instead",
            )
        # the version in force just before the latest activation of the current one
        last_current = max(i for i, v in enumerate(history) if v == current)
        before = [v for v in history[:last_current] if v != current]
        target = before[-1] if before else earlier[-1]
        return await self.activate(target, actor, action="rollback")

    async def _write_policy_record(self, key: bytes, value: str) -> None:
        written = await self._require_producer().send(self.names.policies, value.encode(), key=key)
        await self._followers["policies"].wait_past(written.offset)

    # -- dead letters ----------------------------------------------------------------

    async def dead_letter(self, letter_id: str) -> Record:
        info = self.deadletters.letters.get(letter_id)
        if info is None:
            raise NotFoundError("the dead letter does not exist; list dead letters to see which do")
        return await read_one(self.connection, self.names.deadletter, info.partition, info.offset)

    async def replay(
        self, ids: Iterable[str], actor: Principal, *, force: bool = False
    ) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
        """Send dead letters' original bytes back to their source topics, once each."""
        replayed: list[dict[str, Any]] = []
        skipped: list[dict[str, str]] = []
        async with self._replay_lock:
            for letter_id in ids:
                info = self.deadletters.letters.get(letter_id)
                if info is None:
                    skipped.append({"id": letter_id, "why": "no such dead letter"})
                    continue
                if info.source_agency is None:
                    skipped.append({"id": letter_id, "why": "its source topic is unknown"})
                    continue
                if letter_id in self.audit.replayed and not force:
                    skipped.append({"id": letter_id, "why": "already replayed (force to repeat)"})
                    continue
                record = await self.dead_letter(letter_id)
                written = await self._require_producer().send(
                    self.names.inbound(info.source_agency),
                    record.value or b"",
                    key=record.key,
                    headers=[("liaison.replay-of", f"deadletter {letter_id}".encode())],
                )
                to: dict[str, Any] = {
                    "topic": written.topic,
                    "partition": written.partition,
                    "offset": written.offset,
                }
                await self.record(
                    "deadletter.replayed",
                    actor,
                    deadletter=letter_id,
                    agency=info.source_agency,
                    reason=info.reason,
                    sha256=hashlib.sha256(record.value or b"").hexdigest(),
                    to=to,
                )
                replayed.append({"id": letter_id, **to})
        return replayed, skipped

    # -- router lag ------------------------------------------------------------------

    async def _measure_lag(self) -> None:
        while True:
            try:
                self.lag = await self._lag_once()
            except LiaisonError as exc:
                log.warning("cannot measure router lag: %s", exc)
            await asyncio.sleep(self.settings.lag_interval_s)

    async def _lag_once(self) -> Lag:
        async with Consumer(self.connection, group_id=self.names.edge_group) as consumer:
            topics = await consumer.topic_partitions()
            tps = sorted(
                TopicPartition(t, p)
                for t, partitions in topics.items()
                if self.names.agency_of(t)
                for p in partitions
            )
            ends = await consumer.end_offsets(tps) if tps else {}
            rows = []
            for tp in tps:
                committed = await consumer.committed(tp) or 0
                rows.append((tp.topic, tp.partition, max(0, ends[tp] - committed)))
        return Lag(partitions=tuple(rows), measured_at=_now())
