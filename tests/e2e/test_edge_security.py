"""Security of the bus on the real broker: ACL confinement and a canary scan.

* **ACL probes.** Once every topic of a bus holds data, each agency (and the edge) tries
  everything it must not do: read other agencies' topics and the bus's own, write where it
  may not, use other principals' groups and transactional ids, administer the cluster.
  Every attempt must be refused by an ACL (:class:`KafkaAuthorizationError`). Positive
  controls (what the same principal *may* do) run alongside, so a broken probe that
  "passes" because nothing works is caught.
* **Canary scan.** Unique canary strings are planted in every field agency C is denied
  (by redaction, by marking, by status); after routing, every byte C's credentials can
  read is scanned for them. The same canaries must reach B, so the scan can fail.
"""

from __future__ import annotations

import asyncio
import copy
import json
import secrets
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from operator import methodcaller
from typing import Any

import pytest

from bus.bulletin import Bulletin, BulletinGenerator, Marking, Status
from bus.errors import ConfigError, KafkaAuthorizationError, LiaisonError
from bus.kafka import (
    Acl,
    AclFilter,
    AclOperation,
    Consumer,
    KafkaAdmin,
    KafkaConnection,
    PatternType,
    Producer,
    Record,
    ResourceType,
    TopicPartition,
    TopicSpec,
    read_to_end,
    wait_until_authenticates,
)
from bus.provision import Provisioner, edge_acls
from bus.schemas import FieldInfo, SchemaCatalog
from tests.e2e.conftest import Bus, running_edge
from tests.support import read_until

pytestmark = pytest.mark.integration

READ_TIMEOUT_S = 10.0
"""How long a read probe waits for a record (every probed topic holds data)."""
PROBE_TIMEOUT_S = 45.0
"""Hard limit of one probe, whatever it does."""
PARALLEL_PROBES = 16

# -- probes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    """One attempt by one principal, and the outcome security requires of it.

    A denial probe passes only on :class:`KafkaAuthorizationError`; a control
    (``allowed=True``) passes only when the attempt succeeds (and ``verify`` agrees).
    """

    name: str
    attempt: Callable[[], Awaitable[object]]
    allowed: bool = False
    verify: Callable[[Any], str | None] | None = None
    empty_is_denial: bool = False
    """For reads the client library reports as an empty answer although the broker
    refused them (librdkafka's DescribeAcls drops CLUSTER_AUTHORIZATION_FAILED and
    returns no bindings): an empty answer discloses nothing, and passes."""

    async def failure(self) -> str | None:
        """``None`` when the outcome is the required one; else what went wrong."""
        try:
            outcome = await asyncio.wait_for(self.attempt(), PROBE_TIMEOUT_S)
        except KafkaAuthorizationError as exc:
            return f"CONTROL DENIED: {self.name}: {exc}" if self.allowed else None
        except Exception as exc:  # noqa: BLE001 - every surprise is collected and reported
            verdict = "CONTROL FAILED" if self.allowed else "NOT DENIED BY AN ACL"
            return f"{verdict}: {self.name}: {type(exc).__name__}: {exc}"
        if not self.allowed:
            if self.empty_is_denial and outcome == []:
                return None
            return f"NOT DENIED: {self.name}: succeeded with {_brief(outcome)}"
        problem = self.verify(outcome) if self.verify is not None else None
        return f"CONTROL WRONG: {self.name}: {problem}" if problem else None


def _brief(outcome: object) -> str:
    if isinstance(outcome, list) and outcome and all(isinstance(r, Record) for r in outcome):
        return f"{len(outcome)} record(s) read, first at {outcome[0].topic}@{outcome[0].offset}"
    text = repr(outcome)
    return text if len(text) <= 200 else text[:197] + "..."


async def run_probes(probes: Sequence[Probe]) -> list[str]:
    """Run ``probes`` concurrently (bounded); the failures, in probe order."""
    gate = asyncio.Semaphore(PARALLEL_PROBES)

    async def one(probe: Probe) -> str | None:
        async with gate:
            return await probe.failure()

    results = await asyncio.gather(*(one(p) for p in probes))
    return [r for r in results if r is not None]


def report(failures: Sequence[str], probes: int) -> str:
    return f"{len(failures)} of {probes} probe(s) failed:\n  " + "\n  ".join(failures)


# -- attempts -----------------------------------------------------------------------------


async def read_one(
    connection: KafkaConnection, topic: str, *, group_id: str | None = None
) -> list[Record]:
    """Read at least one record of ``topic`` (which holds data) as ``connection``."""
    async with Consumer(connection, topic, group_id=group_id) as consumer:
        return await read_until(consumer, lambda rs: len(rs) >= 1, timeout_s=READ_TIMEOUT_S)


async def read_and_commit(connection: KafkaConnection, topic: str, group_id: str) -> int:
    """Read as a member of ``group_id`` and commit; the committed offset."""
    async with Consumer(connection, topic, group_id=group_id) as consumer:
        records = await read_until(consumer, lambda rs: len(rs) >= 1, timeout_s=READ_TIMEOUT_S)
        last = records[-1]
        tp = TopicPartition(last.topic, last.partition)
        await consumer.commit({tp: last.offset + 1})
        committed = await consumer.committed(tp)
    assert committed == last.offset + 1
    return committed


async def read_uncommitted(connection: KafkaConnection, topic: str) -> list[Record]:
    """Every record of ``topic``'s partition 0 up to its high watermark, aborted ones too."""
    tp = TopicPartition(topic, 0)
    async with Consumer(connection, isolation_level="read_uncommitted") as consumer:
        end = (await consumer.assign_from_beginning([tp]))[tp]
        records: list[Record] = []
        while await consumer.position(tp) < end:
            records += await consumer.getmany(timeout_ms=500)
    return records


async def write_one(connection: KafkaConnection, topic: str) -> object:
    """Produce one record to ``topic``; the broker's acknowledgement."""
    async with Producer(connection, linger_ms=0, request_timeout_ms=15_000) as producer:
        return await producer.send(topic, b"probe", key=b"probe")


async def write_transactionally(
    connection: KafkaConnection, transactional_id: str, topic: str
) -> object:
    """Produce one record to ``topic`` in a committed transaction under ``transactional_id``."""
    async with (
        Producer(connection, transactional_id=transactional_id, linger_ms=0) as producer,
        producer.transaction(),
    ):
        return await producer.send(topic, b"probe", key=b"probe")


async def as_admin(connection: KafkaConnection, call: Callable[[KafkaAdmin], Any]) -> Any:
    """One :class:`KafkaAdmin` call as ``connection``, off the event loop."""

    def run() -> Any:
        with KafkaAdmin(connection, timeout_s=15.0) as admin:
            return call(admin)

    return await asyncio.to_thread(run)


def own_group_read_probes(bus: Bus, me: str, short: str, label: str, topic: str) -> list[Probe]:
    """Reading ``topic`` without a group and in a group with the agency's own prefix."""
    connection = bus.agencies[me]
    group = f"{bus.names.agency_group_prefix(me)}probe-{uuid.uuid4().hex[:8]}"
    return [
        Probe(f"{short} READ {label} {topic} (no group)", partial(read_one, connection, topic)),
        Probe(
            f"{short} READ {label} {topic} (own group {group})",
            partial(read_one, connection, topic, group_id=group),
        ),
    ]


# -- a bus with data in every topic -------------------------------------------------------


def share_everything(bus: Bus) -> dict[str, Any]:
    return bus.policy(
        [
            {
                "id": "everyone",
                "source": {"all": True},
                "recipients": {"all": True},
                "kinds": ["*"],
                "max_marking": "RED",
            }
        ]
    )


async def populate(bus: Bus) -> None:
    """Views for every agency, audit events and a dead letter; then the router stops.

    Afterwards every topic of the bus holds data: from-topics (the agencies' bulletins),
    to-topics (views), audit, deadletter, agencies (provisioning), policies, schemas.
    """
    await bus.publish_policy(share_everything(bus))
    shorts = [a.partition("-")[0] for a in bus.agencies]
    async with running_edge(bus):
        for seed, short in enumerate(shorts):
            notice = (
                bus.generator(short, seed=100 + seed)
                .bulletin("notice")
                .model_copy(update={"marking": Marking.GREEN, "status": Status.ACTUAL})
            )
            await bus.send(short, notice)
        await bus.send_raw(shorts[0], b"\x07not a bulletin")
        for short in shorts:
            await bus.views(short, len(shorts) - 1)
        await bus.read_as_admin(bus.names.deadletter, lambda rs: len(rs) >= 1)
        await bus.read_as_admin(bus.names.audit, lambda rs: len(rs) >= len(shorts) + 1)


def bus_topics(bus: Bus) -> dict[str, str]:
    """The shared topics, by role."""
    n = bus.names
    return {
        "deadletter": n.deadletter,
        "audit": n.audit,
        "agencies": n.agencies,
        "policies": n.policies,
        "schemas": n.schemas,
        "edge seen": n.edge_seen,  # the ids the routers accepted (re-sends)
    }


# -- 1. ACL probes --------------------------------------------------------------------------


def agency_controls(bus: Bus, me: str, short: str) -> list[Probe]:
    """What agency ``me`` may do; phase one (the group it creates is probed later)."""
    n, connection = bus.names, bus.agencies[me]
    own = n.agency_group_prefix(me)
    expected = {n.inbound(me), n.outbound(me), n.schemas}

    def sees_only_its_own(topics: set[str]) -> str | None:
        return None if topics == expected else f"sees {sorted(topics)}, expected {sorted(expected)}"

    return [
        Probe(
            f"{short} WRITE its own from-topic {n.inbound(me)}",
            partial(write_one, connection, n.inbound(me)),
            allowed=True,
        ),
        Probe(
            f"{short} READ its own to-topic {n.outbound(me)} (no group)",
            partial(read_one, connection, n.outbound(me)),
            allowed=True,
        ),
        Probe(
            f"{short} READ its own to-topic in its own group {own}g and commit",
            partial(read_and_commit, connection, n.outbound(me), f"{own}g"),
            allowed=True,
        ),
        Probe(
            f"{short} WRITE its own from-topic in a transaction as {own}t",
            partial(write_transactionally, connection, f"{own}t", n.inbound(me)),
            allowed=True,
        ),
        Probe(
            f"{short} READ the schemas topic {n.schemas} (its adapters encode and decode)",
            partial(read_one, connection, n.schemas),
            allowed=True,
        ),
        Probe(
            f"{short} DESCRIBE topics (list): its own from- and to-topic, and the schemas",
            partial(as_admin, connection, methodcaller("list_topics")),
            allowed=True,
            verify=sees_only_its_own,
        ),
    ]


def agency_probes(bus: Bus, me: str, short: str) -> list[Probe]:
    """Everything agency ``me`` must be refused, plus describing its own group (a control)."""
    n, connection = bus.names, bus.agencies[me]
    own = n.agency_group_prefix(me)
    others = [a for a in bus.agencies if a != me]
    probes: list[Probe] = [
        Probe(
            f"{short} DESCRIBE its own group {own}g",
            partial(as_admin, connection, methodcaller("describe_group", f"{own}g")),
            allowed=True,
        )
    ]
    # Reading: other agencies' topics, its own from-topic (write-only), the bus's topics.
    for other in others:
        probes += own_group_read_probes(bus, me, short, f"{other}'s to-topic", n.outbound(other))
        probes += own_group_read_probes(bus, me, short, f"{other}'s from-topic", n.inbound(other))
    probes += own_group_read_probes(bus, me, short, "its own from-topic", n.inbound(me))
    for role, topic in bus_topics(bus).items():
        if role != "schemas":  # public schema texts: the agency's adapters read them
            probes += own_group_read_probes(bus, me, short, f"the {role} topic", topic)
    # Writing: other agencies' from-topics (spoofing), every to-topic, the bus's topics.
    for other in others:
        probes.append(
            Probe(
                f"{short} WRITE {other}'s from-topic {n.inbound(other)}",
                partial(write_one, connection, n.inbound(other)),
            )
        )
    for agency in bus.agencies:
        whose = "its own" if agency == me else f"{agency}'s"
        probes.append(
            Probe(
                f"{short} WRITE {whose} to-topic {n.outbound(agency)}",
                partial(write_one, connection, n.outbound(agency)),
            )
        )
    for role, topic in bus_topics(bus).items():
        probes.append(
            Probe(f"{short} WRITE the {role} topic {topic}", partial(write_one, connection, topic))
        )
    # Other principals' groups and transactional ids.
    for other in others:
        theirs = n.agency_group_prefix(other)
        probes += [
            Probe(
                f"{short} JOIN {other}'s group {theirs}x (reading its own to-topic)",
                partial(read_one, connection, n.outbound(me), group_id=f"{theirs}x"),
            ),
            Probe(
                f"{short} use {other}'s transactional id {theirs}t (writing its own from-topic)",
                partial(write_transactionally, connection, f"{theirs}t", n.inbound(me)),
            ),
            Probe(
                f"{short} DESCRIBE {other}'s group {theirs}g",
                partial(as_admin, connection, methodcaller("describe_group", f"{theirs}g")),
            ),
        ]
    probes += [
        Probe(
            f"{short} JOIN the edge's group {n.edge_group} (reading its own to-topic)",
            partial(read_one, connection, n.outbound(me), group_id=n.edge_group),
        ),
        Probe(
            f"{short} use the edge's transactional id {n.edge_transactional_id(0)}",
            partial(write_transactionally, connection, n.edge_transactional_id(0), n.inbound(me)),
        ),
    ]
    probes += admin_probes(bus, short, connection, victim=others[0])
    return probes


def admin_probes(bus: Bus, who: str, connection: KafkaConnection, *, victim: str) -> list[Probe]:
    """Cluster administration: topics, ACLs, SCRAM users. None may succeed.

    Not probed: listing SCRAM users (``KafkaAdmin.scram_users``). The broker refuses it,
    but confluent-kafka 2.16.1 aborts the whole process (``munmap_chunk(): invalid
    pointer``) on DescribeUserScramCredentials' CLUSTER_AUTHORIZATION_FAILED.
    """
    n = bus.names
    principal = connection.principal
    new_user = f"probe-{connection.username}"
    bus.principals.append(new_user)  # teardown removes it, should the probe succeed
    grab = Acl(
        principal=principal,
        resource_type=ResourceType.TOPIC,
        resource_name=n.outbound_prefix,
        operation=AclOperation.READ,
        pattern=PatternType.PREFIXED,
    )
    nobody = f"User:nobody-{uuid.uuid4().hex[:8]}"
    of_victim = AclFilter(principal=f"User:{victim}")
    new_topic = f"{n.inbound_prefix}{victim}-{connection.username}"
    return [
        Probe(
            f"{who} CREATE topic {new_topic}",
            partial(as_admin, connection, methodcaller("create_topics", [TopicSpec(new_topic)])),
        ),
        Probe(
            f"{who} CREATE ACL {grab}",
            partial(as_admin, connection, methodcaller("create_acls", [grab])),
        ),
        Probe(
            f"{who} DELETE ACLs of {nobody} (alter ACLs)",
            partial(
                as_admin, connection, methodcaller("delete_acls", [AclFilter(principal=nobody)])
            ),
        ),
        Probe(
            f"{who} DESCRIBE ACLs of {victim} (must be denied or reveal none)",
            partial(as_admin, connection, methodcaller("describe_acls", of_victim)),
            empty_is_denial=True,
        ),
        Probe(  # control: the same filter does match ACLs, so an empty answer means something
            f"admin DESCRIBE ACLs of {victim} reveals them",
            partial(as_admin, bus.admin, methodcaller("describe_acls", of_victim)),
            allowed=True,
            verify=lambda acls: None if acls else "the filter matches no ACL",
        ),
        Probe(
            f"{who} CREATE SCRAM user {new_user}",
            partial(
                as_admin,
                connection,
                methodcaller("upsert_scram_user", new_user, secrets.token_urlsafe(18)),
            ),
        ),
        Probe(
            f"{who} DELETE SCRAM user nobody-{connection.username}",
            partial(
                as_admin,
                connection,
                methodcaller("delete_scram_user", f"nobody-{connection.username}"),
            ),
        ),
    ]


def destructive_probes(bus: Bus, me: str, short: str) -> list[Probe]:
    """Deleting topics; run last, so that a success cannot disturb the other probes."""
    n, connection = bus.names, bus.agencies[me]
    victim = next(a for a in bus.agencies if a != me)
    return [
        Probe(
            f"{short} DELETE {victim}'s to-topic {n.outbound(victim)}",
            partial(as_admin, connection, methodcaller("delete_topics", [n.outbound(victim)])),
        ),
        Probe(
            f"{short} DELETE the audit topic {n.audit}",
            partial(as_admin, connection, methodcaller("delete_topics", [n.audit])),
        ),
    ]


async def test_every_agency_is_confined_to_its_own_topics_groups_and_transactional_ids(
    bus: Bus,
) -> None:
    await populate(bus)
    agencies = [(a, a.partition("-")[0]) for a in bus.agencies]

    controls = [p for me, short in agencies for p in agency_controls(bus, me, short)]
    failures = await run_probes(controls)
    probes = [p for me, short in agencies for p in agency_probes(bus, me, short)]
    failures += await run_probes(probes)
    last = [p for me, short in agencies for p in destructive_probes(bus, me, short)]
    failures += await run_probes(last)

    assert not failures, report(failures, len(controls) + len(probes) + len(last))


async def test_the_edge_cannot_read_views_spoof_agencies_or_administer_the_cluster(
    bus: Bus,
) -> None:
    await populate(bus)
    n, edge = bus.names, bus.edge
    a, b = bus.agency("a"), bus.agency("b")
    probes: list[Probe] = [
        Probe(  # control: what the edge is for
            f"edge READ {a}'s from-topic {n.inbound(a)} (no group)",
            partial(read_one, edge, n.inbound(a)),
            allowed=True,
        ),
        Probe(
            f"edge READ {b}'s to-topic {n.outbound(b)} (edge group {n.edge_group})",
            partial(read_one, edge, n.outbound(b), group_id=n.edge_group),
        ),
        Probe(
            f"edge WRITE {a}'s from-topic {n.inbound(a)} (spoofing an agency)",
            partial(write_one, edge, n.inbound(a)),
        ),
        Probe(
            f"edge use {a}'s transactional id {n.agency_group_prefix(a)}t",
            partial(write_transactionally, edge, f"{n.agency_group_prefix(a)}t", n.audit),
        ),
        Probe(
            f"edge DESCRIBE {a}'s group {n.agency_group_prefix(a)}g",
            partial(as_admin, edge, methodcaller("describe_group", f"{n.agency_group_prefix(a)}g")),
        ),
    ]
    for agency in bus.agencies:
        probes.append(
            Probe(
                f"edge READ {agency}'s to-topic {n.outbound(agency)} (no group)",
                partial(read_one, edge, n.outbound(agency)),
            )
        )
    for role in ("deadletter", "audit"):
        topic = bus_topics(bus)[role]
        probes.append(Probe(f"edge READ the {role} topic {topic}", partial(read_one, edge, topic)))
    for role in ("agencies", "policies", "schemas"):
        topic = bus_topics(bus)[role]
        probes.append(
            Probe(f"edge WRITE the {role} topic {topic}", partial(write_one, edge, topic))
        )
    probes += admin_probes(bus, "edge", edge, victim=a)
    # Read a's group as a, so that describing it is a real question.
    await read_and_commit(bus.agencies[a], n.outbound(a), f"{n.agency_group_prefix(a)}g")

    failures = await run_probes(probes)

    assert not failures, report(failures, len(probes))


async def test_no_agency_id_can_claim_the_edge_transactional_ids(bus: Bus) -> None:
    """An agency's groups and transactional ids share one namespace with the edge's.

    ``agency_group_prefix("edge")`` is ``<prefix>.edge.``, the edge's transactional-id
    prefix: an agency provisioned with the id ``edge`` must be refused either at
    provisioning or by the broker when it takes the edge's transactional id (which
    would fence the router and abort its open transaction).
    """
    provisioner = Provisioner(bus.admin, names=bus.names)
    try:
        result = await provisioner.add("edge")
    except ConfigError:
        return  # refused at provisioning: the namespace cannot collide
    bus.principals.append("edge")  # teardown removes its ACLs and credentials
    assert result.password is not None
    impostor = bus.admin.with_credentials("edge", result.password)
    await asyncio.to_thread(wait_until_authenticates, impostor)
    n = bus.names
    probes = [
        Probe(
            f"agency 'edge' use the edge's transactional id {n.edge_transactional_id(0)}",
            partial(write_transactionally, impostor, n.edge_transactional_id(0), n.inbound("edge")),
        ),
        Probe(
            f"agency 'edge' JOIN the edge's group {n.edge_group}",
            partial(read_one, impostor, n.outbound("edge"), group_id=n.edge_group),
        ),
    ]
    # A record in its to-topic, so that a read the broker allows returns at once.
    async with Producer(bus.admin, linger_ms=0) as producer:
        await producer.send(n.outbound("edge"), b"a view", key=b"k")

    failures = await run_probes(probes)

    assert not failures, report(failures, len(probes))


async def test_a_service_grant_never_lands_on_an_agency_credential(bus: Bus) -> None:
    """Agency ids and service principals share one SCRAM namespace.

    The CLI names the edge's principal ``liaison-edge`` by default, a valid agency id. If
    an agency with that id exists when the operator creates the edge service, the grant
    must be refused; it must never add the edge's ACLs to the agency's credentials.
    """
    await populate(bus)
    provisioner = Provisioner(bus.admin, names=bus.names)
    squatter = f"liaison-edge-{bus.names.prefix.removeprefix('bus')}"
    added = await provisioner.add(squatter)
    bus.principals.append(squatter)  # teardown removes its ACLs and credentials
    assert added.password is not None
    agency = bus.admin.with_credentials(squatter, added.password)
    try:
        granted = await provisioner.grant(
            squatter, edge_acls(f"User:{squatter}", bus.names), secrets.token_urlsafe(24)
        )
    except LiaisonError:
        return  # refused: the agency keeps only its own ACLs
    await asyncio.to_thread(wait_until_authenticates, agency)
    b = bus.agency("b")
    probes = [
        Probe(
            f"agency {squatter} READ {b}'s from-topic {bus.names.inbound(b)} after the edge "
            f"service was granted to User:{squatter} (grant returned password="
            f"{'None' if granted.password is None else 'new'})",
            partial(read_one, agency, bus.names.inbound(b)),
        ),
    ]

    failures = await run_probes(probes)

    assert not failures, report(failures, len(probes))


# -- 2. canary scan -----------------------------------------------------------------------

KINDS = ("situation_report", "alert", "notice")
TEXT = frozenset({"string", "array<string>"})
CANARY = "CANARY-"
MASK_TOKEN = "[withheld]"
TAG_REDACTIONS: tuple[dict[str, Any], ...] = (
    {"tag": "pii", "action": "drop"},
    {"tag": "free_text", "action": "mask"},
    {"tag": "location", "action": "drop"},
)
"""No ``tag: contact``: it now covers every optional text (issue 15.3), so C's policy would
need no explicit redaction and pseudonymize and truncate would go untested; the phone and
e-mail fields it covered before are tagged (or under records tagged) pii as well."""
EXPLICIT_ACTIONS: tuple[dict[str, Any], ...] = (
    {"action": "pseudonymize"},
    {"action": "truncate", "max_chars": len(CANARY)},  # keeps "CANARY-", never the unique part
    {"action": "drop"},
)


def optional_text(catalog: SchemaCatalog, kind: str) -> dict[str, FieldInfo]:
    """Every optional string or list-of-strings field of ``kind``: what can carry data."""
    return {p: i for p, i in catalog.fields(kind).items() if i.optional and i.shape in TEXT}


def ancestry(path: str) -> list[str]:
    """``a.b.c`` -> ``["a", "a.b", "a.b.c"]``."""
    parts = path.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def tag_redaction(fields: Mapping[str, FieldInfo], path: str) -> tuple[str, str] | None:
    """The (path, action) of the tag redaction that covers ``path`` (itself or a record
    above it), per docs/policy.md: drop fits any optional field, mask fits text."""
    actions = {r["tag"]: r["action"] for r in TAG_REDACTIONS}
    for node in ancestry(path):
        info = fields[node]
        if not info.optional:
            continue
        for tag in sorted(info.tags):
            action = actions.get(tag)
            if action == "drop" or (action == "mask" and info.shape in TEXT):
                return node, action
    return None


def redactions_for_c(catalog: SchemaCatalog) -> list[dict[str, Any]]:
    """Tag redactions, plus an explicit redaction for every optional text field they miss."""
    explicit: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        fields = catalog.fields(kind)
        for path in optional_text(catalog, kind):
            if path not in explicit and tag_redaction(fields, path) is None:
                action = EXPLICIT_ACTIONS[len(explicit) % len(EXPLICIT_ACTIONS)]
                explicit[path] = {"field": path, **action}
    return [*TAG_REDACTIONS, *explicit.values()]


def denial_of(catalog: SchemaCatalog, kind: str, path: str, rules: list[dict[str, Any]]) -> str:
    """The action C's redactions apply to ``path`` (or a record above it)."""
    by_tag = tag_redaction(catalog.fields(kind), path)
    explicit = {r["field"]: r["action"] for r in rules if "field" in r}
    candidates = [explicit[node] for node in ancestry(path) if node in explicit]
    if by_tag is not None:
        candidates.append(by_tag[1])
    assert candidates, f"{kind} {path}: C's policy leaves this optional text field unredacted"
    order = ["truncate", "generalize", "pseudonymize", "mask", "drop"]
    return str(max(candidates, key=order.index))


class Canaries:
    """Unique strings, each remembered with where it was planted."""

    def __init__(self) -> None:
        self.where: dict[str, str] = {}

    def new(self, where: str) -> str:
        canary = f"{CANARY}{uuid.uuid4().hex}"
        self.where[canary] = where
        return canary

    def found_in(self, blobs: Sequence[bytes], among: Iterable[str] | None = None) -> set[str]:
        """The canaries whose unique part occurs in any of ``blobs``."""
        pool = self.where if among is None else among
        return {c for c in pool if any(c.removeprefix(CANARY).encode() in b for b in blobs)}


def _fill(node: Any, parts: Sequence[str], make: Callable[[], str], shape: str) -> int:
    """Put canaries at ``parts`` under ``node`` (lists are transparent); how many places."""
    if isinstance(node, tuple):  # a body in Avro union form
        node = node[1]
    if isinstance(node, list):
        return sum(_fill(item, parts, make, shape) for item in node)
    if not isinstance(node, dict):
        return 0
    head, rest = parts[0], parts[1:]
    if rest:
        return _fill(node.get(head), rest, make, shape)
    node[head] = [make(), make()] if shape == "array<string>" else make()
    return 1


def values_at(node: Any, path: str) -> list[Any]:
    """Every value at ``path`` under ``node`` (lists are transparent)."""
    parts = path.split(".")
    found: list[Any] = []

    def walk(value: Any, rest: Sequence[str]) -> None:
        if isinstance(value, tuple):
            value = value[1]
        if isinstance(value, list):
            for item in value:
                walk(item, rest)
        elif isinstance(value, dict) and rest:
            if len(rest) == 1:
                found.append(value.get(rest[0]))
            else:
                walk(value.get(rest[0]), rest[1:])

    walk(node, parts)
    return found


def canary_bulletin(
    bus: Bus,
    generator: BulletinGenerator,
    kind: str,
    canaries: Canaries,
    label: str,
    *,
    everything: bool,
    **envelope: Any,
) -> Bulletin:
    """A valid bulletin of ``kind`` with a canary in every optional text field (with
    ``everything``, in every text field a source chooses: required body text and the
    bulletin id as well)."""
    catalog = bus.schema.catalog
    targets = {p: i.shape for p, i in optional_text(catalog, kind).items()}
    if everything:
        targets |= {
            p: i.shape
            for p, i in catalog.fields(kind).items()
            if p.startswith("body.") and i.shape in TEXT
        }
    for _ in range(50):  # arrays of records may come out empty: take the next bulletin
        data = generator.bulletin(kind).model_dump(mode="python")
        data["area"] = {"place_names": [], "point": {"lat": -47.5, "lon": -30.0}, "polygon": None}
        trial = copy.deepcopy(data)
        if all(_fill(trial, p.split("."), lambda: "x", s) for p, s in targets.items()):
            break
    else:
        raise AssertionError(f"no generated {kind} has every field of {sorted(targets)}")
    for path, shape in targets.items():
        _fill(data, path.split("."), partial(canaries.new, f"{label} {path}"), shape)
    if everything:
        data["bulletin_id"] = canaries.new(f"{label} bulletin_id")
    data.update(envelope)
    return bus.schema.parse(data)


def blobs_of(records: Iterable[Record]) -> list[bytes]:
    """Every byte a reader gets: values, keys, header names and header values."""
    out: list[bytes] = []
    for r in records:
        out += [r.value or b"", r.key or b""]
        for name, value in r.headers:
            out += [name.encode(), value]
    return out


async def test_canaries_denied_to_c_never_reach_any_byte_c_can_read(bus: Bus) -> None:
    a, b, c = bus.agency("a"), bus.agency("b"), bus.agency("c")
    n, catalog = bus.names, bus.schema.catalog
    redactions = redactions_for_c(catalog)
    await bus.publish_policy(
        bus.policy(
            [
                {
                    "id": "a-to-b",
                    "source": {"agencies": [a]},
                    "recipients": {"agencies": [b]},
                    "kinds": list(KINDS),
                    "max_marking": "RED",
                },
                {
                    "id": "a-to-c",
                    "source": {"agencies": [a]},
                    "recipients": {"agencies": [c]},
                    "kinds": list(KINDS),
                    "max_marking": "RED",
                    "redact": redactions,
                },
            ],
            extra={c: {"accepts": ["ACTUAL"]}},
        )
    )
    canaries = Canaries()
    gen_a = BulletinGenerator(
        bus.schema, seed=11, agencies=[a], null_probability=0.0, follow_up_probability=0.0
    )
    gen_b = BulletinGenerator(
        bus.schema, seed=12, agencies=[b], null_probability=0.0, follow_up_probability=0.0
    )
    green = {"marking": Marking.GREEN, "releasable_to": []}
    # C gets these, redacted: canaries only where its redactions apply.
    for_c: list[Bulletin] = []
    # C gets nothing of these: canaries everywhere a source chooses the text.
    withheld: dict[str, tuple[Bulletin, str]] = {}
    for i, kind in enumerate(KINDS):
        for_c.append(
            canary_bulletin(
                bus,
                gen_a,
                kind,
                canaries,
                f"{kind} ACTUAL",
                everything=False,
                bulletin_id=f"{a}:actual.{i}",
                status=Status.ACTUAL,
                **green,
            )
        )
        red = canary_bulletin(
            bus,
            gen_a,
            kind,
            canaries,
            f"{kind} RED for B only",
            everything=True,
            status=Status.ACTUAL,
            marking=Marking.RED,
            releasable_to=[b],
        )
        withheld[red.bulletin_id] = (red, "not_releasable")
        for status in (Status.EXERCISE, Status.TEST):
            drill = canary_bulletin(
                bus,
                gen_a,
                kind,
                canaries,
                f"{kind} {status}",
                everything=True,
                status=status,
                **green,
            )
            withheld[drill.bulletin_id] = (drill, "status_not_accepted")
    delivered_to_b = set(canaries.where)  # planted so far: all of A's bulletins
    spoof = canary_bulletin(
        bus,
        gen_b,
        "alert",
        canaries,
        "spoofed by A",
        everything=True,
        status=Status.ACTUAL,
        **green,
    )
    unshared = canary_bulletin(
        bus, gen_b, "notice", canaries, "B's own", everything=True, status=Status.ACTUAL, **green
    )
    sent = [*for_c, *(w for w, _ in withheld.values())]

    async with running_edge(bus):
        for bulletin in sent:
            await bus.send("a", bulletin)
        await bus.send("a", spoof)  # dead-lettered with its raw bytes
        await bus.send("b", unshared)  # no rule: nobody receives it
        to_b = await bus.read_as_admin(n.outbound(b), lambda rs: len(rs) >= len(sent))
        audit = await bus.read_as_admin(n.audit, lambda rs: len(rs) >= len(sent) + 2)

    # Every view of C is committed by now: B's last view closed the last transaction of
    # A's topic, and the audit holds a decision for every input.
    events = [json.loads(r.value or b"{}") for r in audit]
    decisions = [e for e in events if e.get("type") == "bulletin.decided"]
    c_outcome = {
        e["bulletin_id"]: next(x for x in e["recipients"] if x["agency"] == c)
        for e in decisions
        if e["outcome"] == "accepted" and e["source"] == a
    }
    assert {i: o["delivered"] for i, o in c_outcome.items()} == {
        **{x.bulletin_id: True for x in for_c},
        **dict.fromkeys(withheld, False),
    }
    assert {i: c_outcome[i]["reason"] for i in withheld} == {
        i: reason for i, (_, reason) in withheld.items()
    }

    # The scan can fail: B, unredacted, sees every canary of A's bulletins.
    missing_at_b = delivered_to_b - canaries.found_in(blobs_of(to_b), delivered_to_b)
    assert not missing_at_b, f"B lacks {sorted(canaries.where[x] for x in missing_at_b)}"

    # Everything C's credentials can read: its to-topic, and whatever else is not denied.
    c_conn = bus.agencies[c]
    own = await read_to_end(c_conn, n.outbound(c))
    # Records of aborted transactions too: a consumer chooses its isolation level.
    readable = [*own, *await read_uncommitted(c_conn, n.outbound(c))]
    all_topics: set[str] = await as_admin(bus.admin, methodcaller("list_topics"))
    topics = sorted(t for t in all_topics if t.startswith(f"{n.prefix}."))
    assert n.outbound(c) in topics
    assert n.audit in topics
    not_denied: list[str] = []
    # C may read the public schema texts (its adapters need them): scan them too.
    readable += await read_to_end(c_conn, n.schemas)
    for topic in topics:
        if topic in (n.outbound(c), n.schemas):
            continue
        try:
            await read_one(c_conn, topic)
        except KafkaAuthorizationError:
            continue
        except TimeoutError:
            not_denied.append(f"{topic} (no error, no record within {READ_TIMEOUT_S}s)")
            continue
        not_denied.append(topic)
        readable += await read_to_end(c_conn, topic)

    leaked = canaries.found_in(blobs_of(readable))
    assert not leaked, "C can read canaries planted where it is denied: " + ", ".join(
        sorted(canaries.where[x] for x in leaked)
    )
    assert not not_denied, f"C could read bus topics other than its own: {not_denied}"

    # C's views: exactly the ACTUAL bulletins, each listing what was redacted.
    views = [bus.codec.decode(r.value or b"").record for r in own]
    assert [v["bulletin"]["bulletin_id"] for v in views] == [x.bulletin_id for x in for_c]
    for view, kind in zip(views, KINDS, strict=True):
        assert view["recipient"] == c
        assert view["rules"] == ["a-to-c"]
        manifest = {r["path"]: r["action"] for r in view["redactions"]}
        for path in optional_text(catalog, kind):
            applied = [node for node in ancestry(path) if node in manifest]
            assert applied, f"{kind} {path}: redacted, but the manifest does not say so"
            action = manifest[applied[0]]
            assert action == denial_of(catalog, kind, path, redactions).upper(), (kind, path)
            shown = values_at(view["bulletin"], applied[0])
            if action == "DROP":
                assert shown == [None], (kind, applied[0], shown)
            elif action == "MASK":
                assert all(v in (MASK_TOKEN, [MASK_TOKEN, MASK_TOKEN]) for v in shown), shown
            elif action == "PSEUDONYMIZE":
                flat = [x for v in shown for x in (v if isinstance(v, list) else [v])]
                assert flat, shown
                assert all(x.startswith("pseudonym:") for x in flat), shown
            else:
                flat = [x for v in shown for x in (v if isinstance(v, list) else [v])]
                assert flat, shown
                assert all(x == CANARY for x in flat), shown
