"""Agency and service provisioning: topics, SCRAM credentials and least-privilege ACLs.

An agency gets exactly:

* WRITE on ``liaison.from.<id>`` (its bulletins in);
* READ on ``liaison.to.<id>`` (its views out);
* READ on ``liaison.schemas`` (the registry: public schema texts);
* READ on consumer groups, and WRITE on transactional ids, prefixed ``liaison.agency.<id>.``.

Its two topics get ``partitions`` partitions each (the CLI and the admin API default to
:func:`default_partitions`: ``LIAISON_AGENCY_PARTITIONS``, else 1);
:meth:`Provisioner.grow_partitions` adds more later. Kafka cannot remove partitions, so
shrinking is refused.

Agencies are recorded in the compacted ``liaison.agencies`` topic (key: agency id).
Every operation is idempotent and returns what it changed. Revoking removes the
credentials and every ACL of the principal and keeps the topics and their data.

The edge router and the admin service get their own principals with only what they
use (:func:`edge_acls`, :func:`admin_service_acls`); neither is a super user.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from bus.bulletin import AGENCY_ID_PATTERN
from bus.errors import ConfigError
from bus.kafka import (
    Acl,
    AclFilter,
    AclOperation,
    KafkaAdmin,
    KafkaConnection,
    PatternType,
    Producer,
    ResourceType,
    TopicSpec,
    read_to_end,
)
from bus.topics import TopicNames

__all__ = [
    "EDGE_SEEN_RETENTION_MS",
    "MAX_PARTITIONS",
    "PARTITIONS_ENV",
    "AgencyRecord",
    "PartitionShrinkError",
    "ProvisionResult",
    "Provisioner",
    "admin_service_acls",
    "agency_acls",
    "default_partitions",
    "edge_acls",
]

PARTITIONS_ENV = "LIAISON_AGENCY_PARTITIONS"
"""The bus default for a new agency's partitions (``liaison agency add``, the admin API)."""
MAX_PARTITIONS = 128
"""Partitions per agency topic at most: a guard against a typo (each partition costs the
broker files and memory, and none can be removed), not a Kafka limit; far more than the
routers an agency's traffic could keep busy."""


def default_partitions() -> int:
    """The bus default for a new agency's partitions: ``LIAISON_AGENCY_PARTITIONS``, else 1."""
    raw = os.environ.get(PARTITIONS_ENV, "").strip()
    if not raw:
        return 1
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PARTITIONS:
        raise ConfigError(
            f"{PARTITIONS_ENV}={raw!r} must be a whole number from 1 to {MAX_PARTITIONS}"
        )
    return int(raw)


_COMPACT = {"cleanup.policy": "compact", "min.compaction.lag.ms": "0"}
EDGE_SEEN_RETENTION_MS = 8 * 24 * 3600 * 1000
"""Retention of ``liaison.edge.seen``: the routers' default re-send window (7 days) and a day."""


class PartitionShrinkError(ConfigError):
    """Fewer partitions asked for than a topic has: Kafka cannot remove partitions."""


class AgencyRecord(BaseModel):
    """An agency as recorded in the agencies topic."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=AGENCY_ID_PATTERN)
    name: str = ""
    state: Literal["active", "revoked"]
    changed_at: datetime


@dataclass
class ProvisionResult:
    """What an operation changed; ``password`` is set only when one was created."""

    agency: str
    changes: list[str] = field(default_factory=list)
    password: str | None = None

    def __repr__(self) -> str:  # never show the password
        return f"ProvisionResult(agency={self.agency!r}, changes={self.changes!r})"


def _acl(
    principal: str, rt: ResourceType, name: str, op: AclOperation, prefixed: bool = False
) -> Acl:
    return Acl(
        principal=principal,
        resource_type=rt,
        resource_name=name,
        operation=op,
        pattern=PatternType.PREFIXED if prefixed else PatternType.LITERAL,
    )


def agency_acls(agency: str, names: TopicNames) -> list[Acl]:
    p = f"User:{agency}"
    own = names.agency_group_prefix(agency)
    return [
        _acl(p, ResourceType.TOPIC, names.inbound(agency), AclOperation.WRITE),
        _acl(p, ResourceType.TOPIC, names.outbound(agency), AclOperation.READ),
        # The registry topic holds only schema texts (public, in the repository); an
        # agency's adapter runner reads it to encode bulletins and decode its views.
        _acl(p, ResourceType.TOPIC, names.schemas, AclOperation.READ),
        _acl(p, ResourceType.GROUP, own, AclOperation.READ, prefixed=True),
        _acl(p, ResourceType.TRANSACTIONAL_ID, own, AclOperation.WRITE, prefixed=True),
    ]


def edge_acls(principal: str, names: TopicNames) -> list[Acl]:
    """The edge reads every inbound topic and the config topics; writes every outbound
    topic, audit and dead letters, all in its own transactions."""
    return [
        _acl(principal, ResourceType.TOPIC, names.inbound_prefix, AclOperation.READ, True),
        _acl(principal, ResourceType.TOPIC, names.outbound_prefix, AclOperation.WRITE, True),
        _acl(principal, ResourceType.TOPIC, names.audit, AclOperation.WRITE),
        # A restarted router resumes its audit chain from its own position record, so it
        # never needs to read the audit log itself.
        _acl(principal, ResourceType.TOPIC, names.audit_state, AclOperation.READ),
        _acl(principal, ResourceType.TOPIC, names.audit_state, AclOperation.WRITE),
        _acl(principal, ResourceType.TOPIC, names.deadletter, AclOperation.WRITE),
        # The ids it routed, for re-sends (docs/edge.md); no one else may read them.
        _acl(principal, ResourceType.TOPIC, names.edge_seen, AclOperation.READ),
        _acl(principal, ResourceType.TOPIC, names.edge_seen, AclOperation.WRITE),
        _acl(principal, ResourceType.TOPIC, names.policies, AclOperation.READ),
        _acl(principal, ResourceType.TOPIC, names.agencies, AclOperation.READ),
        _acl(principal, ResourceType.TOPIC, names.schemas, AclOperation.READ),
        _acl(principal, ResourceType.GROUP, names.edge_group, AclOperation.READ),
        _acl(
            principal,
            ResourceType.TRANSACTIONAL_ID,
            names.edge_transactional_prefix,
            AclOperation.WRITE,
            True,
        ),
    ]


def admin_service_acls(principal: str, names: TopicNames) -> list[Acl]:
    """The admin service manages bus topics, credentials and ACLs, and reads the
    operational topics. ALTER on the cluster (needed to manage ACLs and SCRAM users)
    is inherently powerful in Kafka: this principal's password is the bus's crown jewel."""
    prefix = f"{names.prefix}."
    return [
        _acl(principal, ResourceType.CLUSTER, "kafka-cluster", AclOperation.ALTER),
        _acl(principal, ResourceType.CLUSTER, "kafka-cluster", AclOperation.DESCRIBE),
        _acl(principal, ResourceType.TOPIC, prefix, AclOperation.CREATE, True),
        _acl(principal, ResourceType.TOPIC, prefix, AclOperation.DESCRIBE, True),
        _acl(principal, ResourceType.TOPIC, names.deadletter, AclOperation.READ),
        _acl(principal, ResourceType.TOPIC, names.audit, AclOperation.READ),
        _acl(principal, ResourceType.TOPIC, names.audit, AclOperation.WRITE),
        _acl(principal, ResourceType.TOPIC, names.agencies, AclOperation.READ),
        _acl(principal, ResourceType.TOPIC, names.agencies, AclOperation.WRITE),
        _acl(principal, ResourceType.TOPIC, names.policies, AclOperation.READ),
        _acl(principal, ResourceType.TOPIC, names.policies, AclOperation.WRITE),
        _acl(principal, ResourceType.TOPIC, names.schemas, AclOperation.READ),
        _acl(principal, ResourceType.TOPIC, names.schemas, AclOperation.WRITE),
        # Replaying a dead letter sends its original bytes back to its source topic. The
        # router still checks them like any other record (anti-spoofing included), and
        # cluster ALTER already lets this principal grant itself anything.
        _acl(principal, ResourceType.TOPIC, names.inbound_prefix, AclOperation.WRITE, True),
        # Growing an agency's partitions (CreatePartitions needs ALTER on the topic).
        _acl(principal, ResourceType.TOPIC, names.inbound_prefix, AclOperation.ALTER, True),
        _acl(principal, ResourceType.TOPIC, names.outbound_prefix, AclOperation.ALTER, True),
        # Router lag: the edge group's committed offsets (OffsetFetch needs DESCRIBE).
        _acl(principal, ResourceType.GROUP, names.edge_group, AclOperation.DESCRIBE),
        # Groups of its own, for clients that always have one (librdkafka: confluent-kafka,
        # kcat) reading the audit log or dead letters as this principal; without it they
        # log GROUP_AUTHORIZATION_FAILED from their coordinator lookup.
        _acl(principal, ResourceType.GROUP, names.admin_group_prefix, AclOperation.READ, True),
    ]


class Provisioner:
    """Provision agencies and service principals; needs a principal allowed to manage
    topics, SCRAM users and ACLs (the bootstrap ``admin``, or the admin service)."""

    def __init__(
        self,
        connection: KafkaConnection,
        *,
        names: TopicNames | None = None,
        partitions: int = 1,
    ) -> None:
        self._connection = connection
        self.names = names or TopicNames()
        self.partitions = self._check_partitions(partitions)

    # -- bus-wide --------------------------------------------------------------------

    async def ensure_bus_topics(self) -> list[str]:
        """Create the shared topics if missing (audit is never deleted by retention)."""
        n = self.names
        specs = [
            TopicSpec(n.agencies, config=_COMPACT),
            TopicSpec(n.policies, config=_COMPACT),
            TopicSpec(n.schemas, config=_COMPACT),
            TopicSpec(n.deadletter, config={"retention.ms": str(90 * 24 * 3600 * 1000)}),
            TopicSpec(n.audit, config={"retention.ms": "-1", "retention.bytes": "-1"}),
            TopicSpec(n.audit_state, config=_COMPACT),
            TopicSpec(n.edge_seen, config={"retention.ms": str(EDGE_SEEN_RETENTION_MS)}),
        ]
        return await asyncio.to_thread(self._create_missing, specs)

    @staticmethod
    def check_service_name(principal_name: str) -> None:
        """Service principals carry a dot, which agency ids cannot: the two never collide."""
        if "." not in principal_name or re.fullmatch(AGENCY_ID_PATTERN, principal_name):
            raise ConfigError(
                f"service principal {principal_name!r} must contain a '.' (for example "
                "liaison.edge) so that no agency id can ever name it"
            )

    async def grant(
        self, principal_name: str, acls: list[Acl], password: str | None = None
    ) -> ProvisionResult:
        """Create a service principal (if a password is given and it is new) with ``acls``.

        Refuses names an agency could have (see :meth:`check_service_name`), so a service
        grant can never land on an agency's credentials.
        """
        self.check_service_name(principal_name)
        return await asyncio.to_thread(self._grant_sync, principal_name, acls, password)

    # -- agencies --------------------------------------------------------------------

    async def add(
        self, agency: str, *, name: str = "", partitions: int | None = None
    ) -> ProvisionResult:
        """Topics, credentials (generated, returned once) and ACLs for ``agency``.

        Missing topics are created with ``partitions`` partitions (default: this
        provisioner's); topics that exist keep theirs (:meth:`grow_partitions` adds more).
        """
        self._check_id(agency)
        count = self.partitions if partitions is None else self._check_partitions(partitions)
        result = ProvisionResult(agency)
        result.changes += await asyncio.to_thread(
            self._create_missing,
            [
                TopicSpec(self.names.inbound(agency), partitions=count),
                TopicSpec(self.names.outbound(agency), partitions=count),
            ],
        )
        granted = await asyncio.to_thread(
            self._grant_sync, agency, agency_acls(agency, self.names), secrets.token_urlsafe(24)
        )
        result.changes += granted.changes
        result.password = granted.password
        current = await self._record(agency)
        if current is None or current.state != "active" or (name and current.name != name):
            await self._write(
                AgencyRecord(
                    id=agency,
                    name=name or (current.name if current else ""),
                    state="active",
                    changed_at=datetime.now(UTC),
                )
            )
            result.changes.append(f"recorded {agency} as active in {self.names.agencies}")
        return result

    async def rotate(self, agency: str) -> ProvisionResult:
        """Replace the agency's password; the old one stops working."""
        self._check_id(agency)
        if await self._record(agency) is None:
            raise ConfigError(f"agency {agency!r} is not provisioned; add it first")
        password = secrets.token_urlsafe(24)
        await asyncio.to_thread(self._admin_call, lambda a: a.upsert_scram_user(agency, password))
        return ProvisionResult(
            agency, [f"replaced the SCRAM credentials of User:{agency}"], password
        )

    async def revoke(self, agency: str) -> ProvisionResult:
        """Remove the agency's credentials and ACLs; its topics and data stay."""
        self._check_id(agency)
        result = ProvisionResult(agency)
        result.changes += await asyncio.to_thread(self._revoke_sync, agency)
        current = await self._record(agency)
        if current is not None and current.state != "revoked":
            await self._write(
                current.model_copy(update={"state": "revoked", "changed_at": datetime.now(UTC)})
            )
            result.changes.append(f"recorded {agency} as revoked in {self.names.agencies}")
        return result

    async def grow_partitions(self, agency: str, partitions: int) -> ProvisionResult:
        """Grow the agency's inbound and outbound topics to ``partitions`` partitions each.

        Kafka can only add partitions: a count below a topic's current one is refused
        (nothing is changed); the same count changes nothing. Routers and sink adapters
        pick the new partitions up while running. New records of a key (a bulletin id)
        may land on another partition than that key's earlier records: see "Partitions and
        scale-out" in docs/edge.md for what this means for ordering.
        """
        self._check_id(agency)
        self._check_partitions(partitions)
        if await self._record(agency) is None:
            raise ConfigError(f"agency {agency!r} is not provisioned; add it first")
        topics = [self.names.inbound(agency), self.names.outbound(agency)]
        changes = await asyncio.to_thread(self._grow_sync, topics, partitions)
        return ProvisionResult(agency, changes)

    async def agencies(self) -> dict[str, AgencyRecord]:
        """The latest record of every agency, from the agencies topic."""
        records = await read_to_end(self._connection, self.names.agencies)
        latest: dict[str, AgencyRecord] = {}
        for r in records:
            if r.key is None:
                continue
            if r.value is None:
                latest.pop(r.key.decode(), None)
            else:
                latest[r.key.decode()] = AgencyRecord.model_validate_json(r.value)
        return latest

    # -- helpers ---------------------------------------------------------------------

    def _check_id(self, agency: str) -> None:
        if not re.fullmatch(AGENCY_ID_PATTERN, agency):
            raise ConfigError(
                f"agency id {agency!r} must match {AGENCY_ID_PATTERN} (it becomes part of "
                "topic names)"
            )

    @staticmethod
    def _check_partitions(partitions: int) -> int:
        if not 1 <= partitions <= MAX_PARTITIONS:
            raise ConfigError(
                f"partitions must be between 1 and {MAX_PARTITIONS}, not {partitions}"
            )
        return partitions

    def _grow_sync(self, topics: list[str], partitions: int) -> list[str]:
        with KafkaAdmin(self._connection) as admin:
            counts = admin.partition_counts(topics)
            for topic in topics:
                if topic not in counts:
                    raise ConfigError(
                        f"topic {topic} does not exist; run `liaison agency add` to create it"
                    )
                if partitions < counts[topic]:
                    raise PartitionShrinkError(
                        f"cannot shrink {topic} from {counts[topic]} to {partitions} "
                        f"partitions: Kafka cannot remove partitions; ask for {counts[topic]} "
                        "or more"
                    )
            grow = {t: partitions for t in topics if counts[t] < partitions}
            admin.create_partitions(grow)
        return [f"grew topic {t} from {counts[t]} to {partitions} partitions" for t in grow]

    def _admin_call(self, fn: Callable[[KafkaAdmin], object]) -> object:
        with KafkaAdmin(self._connection) as admin:
            return fn(admin)

    def _create_missing(self, specs: list[TopicSpec]) -> list[str]:
        with KafkaAdmin(self._connection) as admin:
            existing = admin.list_topics()
            missing = [s for s in specs if s.name not in existing]
            admin.create_topics(missing)
        return [f"created topic {s.name}" for s in missing]

    def _grant_sync(
        self, principal_name: str, acls: list[Acl], password: str | None
    ) -> ProvisionResult:
        result = ProvisionResult(principal_name)
        with KafkaAdmin(self._connection) as admin:
            if password is not None and principal_name not in admin.scram_users():
                admin.upsert_scram_user(principal_name, password)
                result.password = password
                result.changes.append(f"created SCRAM credentials for User:{principal_name}")
            existing = set(admin.describe_acls(AclFilter(principal=f"User:{principal_name}")))
            missing = [a for a in acls if a not in existing]
            admin.create_acls(missing)
            result.changes += [f"granted {a}" for a in missing]
        return result

    def _revoke_sync(self, agency: str) -> list[str]:
        changes = []
        with KafkaAdmin(self._connection) as admin:
            deleted = admin.delete_acls([AclFilter(principal=f"User:{agency}")])
            changes += [f"removed {a}" for a in deleted]
            # A repeat right after a revoke can still list the user (the broker's view
            # lags the controller's): credentials already gone are not an error.
            if agency in admin.scram_users() and admin.delete_scram_user(agency, missing_ok=True):
                changes.append(f"deleted the SCRAM credentials of User:{agency}")
        return changes

    async def _record(self, agency: str) -> AgencyRecord | None:
        return (await self.agencies()).get(agency)

    async def _write(self, record: AgencyRecord) -> None:
        async with Producer(self._connection, linger_ms=0) as producer:
            await producer.send(
                self.names.agencies,
                json.dumps(record.model_dump(mode="json")).encode(),
                key=record.id.encode(),
            )
