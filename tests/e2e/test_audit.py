"""The tamper-evident audit log on the real broker: record, verify, tamper, prove, report.

* **A recorded log.** Once per module a real bus routes a few hundred bulletins from four
  agencies (junk and a spoofed bulletin among them, canary strings in some) under a policy
  with redactions, while the admin API provisions an agency, puts and activates policies
  and replays a dead letter. The router stops cleanly (a final checkpoint of chain
  ``edge.0``), then the API (a final checkpoint of chain ``admin``).
* **Verification.** The untouched log verifies clean. Then 1,000 seeded random mutations
  of it (byte flips, drops, swaps, copies, forged events, truncations, replayed
  checkpoints) must each be detected by an auditor holding the trusted key, the input
  ranges and the final checkpoints (anchors).
* **Completeness** on the broker: an input the router never decided, and an event a super
  user appends, are reported by ``liaison audit verify``.
* **Evidence bundles** verify offline; ``liaison audit prove`` output is checked by an
  independent verifier written here from RFC 9162 and RFC 8785.
* **No payload value** reaches the audit topic or any report; the report routes and the
  other audit routes are in tests/e2e/test_api_authorization.py's matrix.

What the design does not protect, and the mutations therefore leave out (see
bus/audit/_chain.py): the interleaving of *different* chains (each writer orders only its
own records); a checkpoint moved later, past events it does not cover; a checkpoint dropped
between two others of its chain (checkpoints are not chained, and the next one still covers
every event); and events appended after a chain's last checkpoint, which nothing signs yet
(verify counts them as unsealed, as a test below shows).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import json
import random
import shutil
import socket
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from typer.testing import CliRunner, Result

from bus.audit import (
    CHECKPOINT,
    GENESIS,
    AuditRecord,
    PublicKey,
    Signer,
    Verification,
    leaf_hash,
    new_key_hex,
    verify,
)
from bus.audit._io import Evidence, read_evidence
from bus.bulletin import Bulletin, BulletinGenerator, Marking, Status
from bus.cli import app
from bus.credentials import save_credentials
from bus.kafka import (
    Consumer,
    KafkaConnection,
    Producer,
    RecordMetadata,
    TopicPartition,
    read_to_end,
    wait_until_authenticates,
)
from bus.sandbox import Bus, running_edge
from tests.e2e.test_edge_security import Canaries, blobs_of, canary_bulletin
from tests.support.api import ApiHarness, provision_admin_service, running_api, until
from tests.support.audit_forgery import forge_bundle

pytestmark = pytest.mark.integration

runner = CliRunner()

CHECKPOINT_EVERY = 25
"""Decisions between the router's checkpoints: a dozen or so in the recorded log."""
ADMIN_CHECKPOINT_EVERY = 3
"""Admin events between the API's checkpoints."""
PER_AGENCY = 50
"""Bulletins per agency and round (two rounds)."""
MUTATIONS = 1_000
SEED = 20_261_201
KINDS = ("situation_report", "alert", "notice")

# -- the recorded log ----------------------------------------------------------------------


def recording_policy(bus: Bus, version: int) -> dict[str, Any]:
    """Several rules, most with redactions; version 2 adds agency d as a source."""
    a, b, c = (bus.agency(x) for x in "abc")
    rules: list[dict[str, Any]] = [
        {
            "id": "a-to-b",
            "source": {"agencies": [a]},
            "recipients": {"agencies": [b]},
            "kinds": ["*"],
            "max_marking": "RED",
            "redact": [{"tag": "pii", "action": "drop"}],
        },
        {
            "id": "a-to-c",
            "source": {"agencies": [a]},
            "recipients": {"agencies": [c]},
            "kinds": ["alert", "notice"],
            "max_marking": "AMBER",
            "redact": [
                {"tag": "contact", "action": "pseudonymize"},
                {"tag": "free_text", "action": "mask"},
            ],
        },
        {
            "id": "b-to-a-and-c",
            "source": {"agencies": [b]},
            "recipients": {"agencies": [a, c]},
            "kinds": ["*"],
            "max_marking": "GREEN",
            "redact": [{"tag": "location", "action": "drop"}],
        },
        {
            "id": "c-to-a",
            "source": {"agencies": [c]},
            "recipients": {"agencies": [a]},
            "kinds": ["situation_report"],
            "max_marking": "AMBER",
        },
    ]
    if version >= 2:
        rules.append(
            {
                "id": "d-to-a-and-b",
                "source": {"agencies": [bus.agency("d")]},
                "recipients": {"agencies": [a, b]},
                "kinds": ["*"],
                "max_marking": "AMBER",
                "redact": [{"tag": "pii", "action": "drop"}],
            }
        )
    return bus.policy(rules, version=version, extra={c: {"accepts": ["ACTUAL"]}})


def encoded(bus: Bus, bulletin: Bulletin) -> bytes:
    return bus.codec.encode(bus.bulletin_schema_id, bus.schema.to_avro(bulletin))


async def produce(bus: Bus, short: str, values: Sequence[bytes]) -> list[RecordMetadata]:
    """Write ``values`` to the agency's from-topic as the agency, through one producer."""
    agency = bus.agency(short)
    async with Producer(bus.agencies[agency]) as producer:
        deliveries = [await producer.enqueue(bus.names.inbound(agency), v) for v in values]
        return [await delivery for delivery in deliveries]


def bulletins(bus: Bus, short: str, seed: int, count: int) -> list[bytes]:
    return [encoded(bus, b) for b in bus.generator(short, seed=seed).stream(count)]


def decisions_in(values: Sequence[bytes | None]) -> int:
    return sum(b'"type":"bulletin.decided"' in (v or b"") for v in values)


async def decided(bus: Bus, count: int) -> None:
    """Wait until the audit log holds ``count`` decisions."""
    await bus.read_as_admin(
        bus.names.audit, lambda rs: decisions_in([r.value for r in rs]) >= count, timeout_s=120
    )


async def api_call(
    api: ApiHarness, method: str, path: str, role: str = "admin", **kwargs: Any
) -> httpx.Response:
    """One request from a worker thread: the router running in this loop keeps routing."""

    def request() -> httpx.Response:
        with api.client(role) as client:
            return client.request(method, path, **kwargs)

    answer = await asyncio.to_thread(request)
    assert answer.is_success, f"{method} {path}: {answer.status_code} {answer.text}"
    return answer


async def put_in_force(api: ApiHarness, version: int) -> None:
    await api_call(api, "PUT", f"/policies/{version}", json=recording_policy(api.bus, version))
    await api_call(api, "POST", f"/policies/{version}/activate")


async def provision_d(api: ApiHarness) -> None:
    """Agency d, through the API; its credentials join the bus's."""
    bus = api.bus
    agency = f"d-{bus.names.prefix.removeprefix('bus')}"
    bus.principals.append(agency)
    answer = await api_call(api, "POST", "/agencies", json={"id": agency, "name": "Fictional D"})
    connection = bus.admin.with_credentials(agency, answer.json()["credentials"]["password"])
    await asyncio.to_thread(wait_until_authenticates, connection)
    bus.agencies[agency] = connection


def canary_bulletins(bus: Bus, canaries: Canaries) -> tuple[list[Bulletin], Bulletin]:
    """From a, one bulletin of each kind with a canary in every text field it chooses
    (the ids are plain: an id is metadata, and the audit log records it); and one claiming
    to come from b, which is dead-lettered with its raw bytes."""
    a, b = bus.agency("a"), bus.agency("b")
    green = {"marking": Marking.GREEN, "releasable_to": [], "status": Status.ACTUAL}
    gen_a = BulletinGenerator(
        bus.schema, seed=31, agencies=[a], null_probability=0.0, follow_up_probability=0.0
    )
    gen_b = BulletinGenerator(
        bus.schema, seed=32, agencies=[b], null_probability=0.0, follow_up_probability=0.0
    )
    planted = [
        canary_bulletin(
            bus,
            gen_a,
            kind,
            canaries,
            f"{kind} from a",
            everything=True,
            bulletin_id=f"{a}:canary.{i}",
            **green,
        )
        for i, kind in enumerate(KINDS)
    ]
    spoof = canary_bulletin(
        bus,
        gen_b,
        "alert",
        canaries,
        "spoofed by a",
        everything=True,
        bulletin_id=f"{b}:spoofed.0",
        **green,
    )
    return planted, spoof


async def record_traffic(api: ApiHarness, canaries: Canaries) -> tuple[int, str]:
    """Route the module's traffic; returns how many input records were written, and the
    id of one bulletin of a's that was delivered (for ``prove``)."""
    bus = api.bus
    written = 0
    await put_in_force(api, 1)
    async with running_edge(bus, checkpoint_every=CHECKPOINT_EVERY) as router:
        await router.wait_for_policy(1)
        first = bus.generator("a", seed=1).bulletin("notice")
        for seed, short in enumerate("abc", start=1):
            values = bulletins(bus, short, seed, PER_AGENCY)
            if short == "a":
                values[0] = encoded(
                    bus,
                    first.model_copy(update={"marking": Marking.GREEN, "status": Status.ACTUAL}),
                )
            written += len(await produce(bus, short, values))
        written += len(await produce(bus, "a", [b"junk-0", b"junk-1", b"\x07junk-2"]))
        written += len(await produce(bus, "b", [b"junk-3"]))
        await provision_d(api)
        await put_in_force(api, 2)
        await router.wait_for_policy(2)
        for seed, short in enumerate("abcd", start=11):
            written += len(await produce(bus, short, bulletins(bus, short, seed, PER_AGENCY)))
        planted, spoof = canary_bulletins(bus, canaries)
        written += len(await produce(bus, "a", [encoded(bus, x) for x in [*planted, spoof]]))
        written += len(await produce(bus, "c", [b"junk-4", b"junk-5"]))

        def junk_of_a() -> list[dict[str, Any]]:
            with api.client() as admin:
                listed = admin.get("/deadletters", params={"reason": "bad_magic"})
            letters: list[dict[str, Any]] = listed.json()["dead_letters"]
            ours = [d for d in letters if d["source_agency"] == bus.agency("a")]
            return ours if len(ours) >= 3 else []  # more: test 2 reports duplicates

        await decided(bus, written)  # the dead letters are committed with the decisions
        letters = await asyncio.to_thread(until, junk_of_a, "the API lists a's junk")
        await api_call(api, "POST", "/deadletters/replay", json={"ids": [letters[0]["id"]]})
        written += 1
        await decided(bus, written)
    return written, first.bulletin_id


@dataclass(frozen=True)
class Recording:
    bus: Bus
    service: KafkaConnection
    """The admin service's principal: what ``liaison audit`` connects as."""
    credentials: Path
    """A credentials file of the admin service."""
    evidence: Evidence
    inputs_written: int
    delivered_id: str
    canaries: Canaries

    @property
    def keys(self) -> dict[str, PublicKey]:
        public = self.bus.signer.public
        return {public.key_id: public}

    @property
    def public_key(self) -> str:
        return base64.b64encode(self.bus.signer.public.raw).decode()


@pytest.fixture(scope="module")
def recording(module_bus: Bus, tmp_path_factory: pytest.TempPathFactory) -> Recording:
    bus = module_bus
    service = asyncio.run(provision_admin_service(bus))
    canaries = Canaries()
    api_home = tmp_path_factory.mktemp("recording-api")
    with running_api(bus, service, api_home, checkpoint_every=ADMIN_CHECKPOINT_EVERY) as api:
        written, delivered_id = asyncio.run(record_traffic(api, canaries))
    evidence = asyncio.run(read_evidence(service, bus.names))
    credentials = save_credentials(
        tmp_path_factory.mktemp("credentials"),
        service.username,
        service.bootstrap_servers,
        service.password.get_secret_value(),
    )
    return Recording(bus, service, credentials, evidence, written, delivered_id, canaries)


# -- the recorded log, parsed ------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One record of the recorded log, as the mutations see it."""

    index: int
    value: bytes
    body: dict[str, Any]

    @property
    def chain(self) -> str:
        return str(self.body["chain"])

    @property
    def is_checkpoint(self) -> bool:
        return self.body.get("type") == CHECKPOINT

    @property
    def seq(self) -> int:
        return int(self.body["seq"])

    @property
    def size(self) -> int:
        return int(self.body["tree_size"])


@dataclass(frozen=True)
class Log:
    """The recorded log's records, and what an auditor who kept its final checkpoints
    verifies it with."""

    entries: list[Entry]
    keys: dict[str, PublicKey]
    inputs: dict[tuple[str, int], tuple[int, int]]
    anchors: list[dict[str, Any]]

    @property
    def values(self) -> list[bytes]:
        return [e.value for e in self.entries]

    def events(self, chain: str | None = None) -> list[Entry]:
        return [
            e for e in self.entries if not e.is_checkpoint and (chain is None or e.chain == chain)
        ]

    def checkpoints(self, chain: str | None = None) -> list[Entry]:
        return [e for e in self.entries if e.is_checkpoint and (chain is None or e.chain == chain)]

    def chains(self) -> list[str]:
        return sorted({e.chain for e in self.entries})

    def check(self, values: Sequence[bytes]) -> Verification:
        """Verify ``values`` as a log whose offsets are 0, 1, 2...: the attacker renumbers
        so that no gap shows where a record was taken out or put in."""
        return verify(
            [AuditRecord(i, v) for i, v in enumerate(values)],
            self.keys,
            inputs=self.inputs,
            anchors=self.anchors,
        )


@pytest.fixture(scope="module")
def log(recording: Recording) -> Log:
    entries = [
        Entry(i, r.value, json.loads(r.value)) for i, r in enumerate(recording.evidence.records)
    ]
    finals: dict[str, dict[str, Any]] = {}
    for entry in entries:
        if entry.is_checkpoint:
            finals[entry.chain] = entry.body
    return Log(entries, recording.keys, recording.evidence.inputs, list(finals.values()))


def attach(request: pytest.FixtureRequest, name: str, value: object) -> None:
    """A figure for the test report (what ``record_property`` does, without its warning
    under JUnit XML's xunit2 family)."""
    request.node.user_properties.append((name, value))


# -- 2. the untouched log ------------------------------------------------------------------


def test_the_untouched_log_verifies_clean_with_every_input_decided_once_and_all_sealed(
    recording: Recording, log: Log, request: pytest.FixtureRequest
) -> None:
    evidence = recording.evidence

    began = time.perf_counter()
    result = verify(evidence.records, recording.keys, inputs=evidence.inputs, anchors=log.anchors)
    took = time.perf_counter() - began

    assert result.problems == []
    assert set(result.events) == {"edge.0", "admin"}
    assert result.unsealed == {"edge.0": 0, "admin": 0}
    assert result.checkpoints == len(log.checkpoints())
    assert result.inputs_checked == recording.inputs_written
    assert result.decisions == recording.inputs_written
    # Independently of verify: each offset of each input range has exactly one decision.
    expected = {
        (topic, partition, offset)
        for (topic, partition), (start, end) in evidence.inputs.items()
        for offset in range(start, end)
    }
    decided = Counter(
        (e["input"]["topic"], e["input"]["partition"], e["input"]["offset"])
        for e in evidence.events()
        if e.get("type") == "bulletin.decided"
    )
    assert set(decided) == expected
    assert set(decided.values()) == {1}
    assert len({t for t, _, _ in expected}) == 4  # agencies a, b, c and d
    assert evidence.keys == recording.keys  # the API published the signing key
    attach(request, "verify_seconds", round(took, 4))


@pytest.mark.parametrize(
    ("chain", "every"), [("edge.0", CHECKPOINT_EVERY), ("admin", ADMIN_CHECKPOINT_EVERY)]
)
def test_each_writer_checkpoints_at_most_every_n_events_and_last_over_all_of_them(
    log: Log, chain: str, every: int
) -> None:
    sizes = [c.size for c in log.checkpoints(chain)]

    gaps = [later - earlier for earlier, later in zip([0, *sizes], sizes, strict=False)]

    assert len(sizes) >= 3
    assert all(0 < gap <= every for gap in gaps), gaps
    assert sizes[-1] == len(log.events(chain))


# -- 3. mutations --------------------------------------------------------------------------

Mutant = list[bytes]


def flip_byte(log: Log, rng: random.Random) -> Mutant:
    """One random byte of one random record's value, XORed with a random non-zero byte."""
    values = log.values
    i = rng.randrange(len(values))
    j = rng.randrange(len(values[i]))
    value = bytearray(values[i])
    value[j] ^= rng.randrange(1, 256)
    values[i] = bytes(value)
    return values


def drop_record(log: Log, rng: random.Random) -> Mutant:
    """An event, or a checkpoint the auditor holds (not one between two others)."""
    held = {json.dumps(a, sort_keys=True) for a in log.anchors}
    candidates = [
        e for e in log.entries if not e.is_checkpoint or json.dumps(e.body, sort_keys=True) in held
    ]
    values = log.values
    del values[rng.choice(candidates).index]
    return values


def chain_order(values: Sequence[bytes]) -> dict[str, tuple[Any, ...]]:
    """What the design orders: per chain, its events in order, its checkpoints in order,
    and for each checkpoint whether every event it covers precedes it."""
    events: dict[str, list[bytes]] = defaultdict(list)
    seen: dict[str, set[int]] = defaultdict(set)
    checkpoints: dict[str, list[bytes]] = defaultdict(list)
    covered: dict[str, list[bool]] = defaultdict(list)
    for value in values:
        body = json.loads(value)
        chain = body["chain"]
        if body["type"] == CHECKPOINT:
            checkpoints[chain].append(value)
            covered[chain].append(all(s in seen[chain] for s in range(body["tree_size"])))
        else:
            events[chain].append(value)
            seen[chain].add(body["seq"])
    return {
        c: (tuple(events[c]), tuple(checkpoints[c]), tuple(covered[c]))
        for c in events.keys() | checkpoints.keys()
    }


def swap_records(log: Log, rng: random.Random) -> Mutant:
    """Two records of one chain whose swap changes what the chain orders (two events, two
    checkpoints, or a checkpoint and an event it covers or that jumps another event)."""
    original = chain_order(log.values)
    while True:
        chain = rng.choice(log.chains())
        own = [e for e in log.entries if e.chain == chain]
        first, second = sorted(rng.sample(own, 2), key=lambda e: e.index)
        values = log.values
        values[first.index], values[second.index] = second.value, first.value
        if chain_order(values) != original:
            return values


def copy_record(log: Log, rng: random.Random) -> Mutant:
    """A copy of any record, inserted anywhere."""
    values = log.values
    values.insert(rng.randrange(len(values) + 1), rng.choice(log.entries).value)
    return values


def forge_event(log: Log, rng: random.Random) -> Mutant:
    """A well-formed event of an existing chain, linked to the true hash of the event
    before its seq: a replacement of an existing link, or the chain's next link placed
    before its last event (after it, it would be an unsealed extension)."""
    chain = rng.choice(log.chains())
    events = log.events(chain)
    seq = rng.randrange(len(events) + 1)
    body = dict(rng.choice(events).body)
    body["time"] = "2031-01-01T00:00:00+00:00"
    if body.get("type") == "bulletin.decided":
        body["outcome"] = "rejected" if body.get("outcome") == "accepted" else "accepted"
    body["seq"] = seq
    body["prev"] = GENESIS if seq == 0 else leaf_hash(events[seq - 1].value).hex()
    values = log.values
    latest = len(values) if seq < len(events) else events[-1].index
    values.insert(rng.randrange(latest + 1), rfc8785.dumps(body))
    return values


def truncate_tail(log: Log, rng: random.Random) -> Mutant:
    values = log.values
    return values[: len(values) - rng.randrange(1, len(values))]


def replay_checkpoint(log: Log, rng: random.Random) -> Mutant:
    """An old checkpoint (not its chain's last) again, anywhere after the original."""
    chain = rng.choice(log.chains())
    old = rng.choice(log.checkpoints(chain)[:-1])
    values = log.values
    values.insert(rng.randrange(old.index + 1, len(values) + 1), old.value)
    return values


MUTATORS: dict[str, Callable[[Log, random.Random], Mutant]] = {
    "flip a byte": flip_byte,
    "drop a record": drop_record,
    "swap two records": swap_records,
    "insert a copy": copy_record,
    "insert a forged event": forge_event,
    "truncate the tail": truncate_tail,
    "replay an old checkpoint": replay_checkpoint,
}


def test_every_one_of_a_thousand_random_mutations_of_the_log_is_detected(
    log: Log, request: pytest.FixtureRequest
) -> None:
    assert log.check(log.values).problems == []  # renumbering alone is not a problem
    rng = random.Random(SEED)
    mutants = Counter[str]()
    detected = Counter[str]()
    kinds: dict[str, Counter[str]] = defaultdict(Counter)
    missed: list[str] = []

    began = time.perf_counter()
    for n in range(MUTATIONS):
        name = list(MUTATORS)[n % len(MUTATORS)]
        mutant = MUTATORS[name](log, rng)
        found = {p.kind.value for p in log.check(mutant).problems}
        mutants[name] += 1
        detected[name] += bool(found)
        kinds[name].update(found)
        if not found:
            missed.append(f"#{n} {name}")
    took = time.perf_counter() - began

    counts = {
        "records": len(log.entries),
        "mutations": sum(mutants.values()),
        "detected": sum(detected.values()),
        "detection_rate": sum(detected.values()) / sum(mutants.values()),
        "seconds": round(took, 2),
        "by_mutation": {
            name: {"mutants": mutants[name], "detected": detected[name], "kinds": kinds[name]}
            for name in MUTATORS
        },
        "by_problem_kind": sum(kinds.values(), Counter[str]()),
    }
    attach(request, "mutations", counts)
    print("\n" + json.dumps(counts, indent=1, default=dict), flush=True)  # noqa: T201 - for -s
    assert missed == []
    assert counts["detection_rate"] == 1.0


def with_replaced(values: Sequence[bytes], index: int, value: bytes) -> Mutant:
    return [*values[:index], value, *values[index + 1 :]]


def signature_span(value: bytes) -> tuple[int, int]:
    """Where a checkpoint's base64 signature lies in its canonical JSON."""
    start = value.index(b'"signature":"') + len(b'"signature":"')
    return start, value.index(b'"', start)


def drop_a_decision(log: Log) -> tuple[Mutant, int | None]:
    events = log.events("edge.0")
    victim = events[len(events) // 2]
    assert victim.body["type"] == "bulletin.decided"
    return [v for i, v in enumerate(log.values) if i != victim.index], None


def replay_the_first_checkpoint_at_the_end(log: Log) -> tuple[Mutant, int | None]:
    return [*log.values, log.checkpoints("edge.0")[0].value], len(log.entries)


def swap_two_consecutive_links(log: Log) -> tuple[Mutant, int | None]:
    events = log.events("edge.0")
    first, second = events[10], events[11]
    values = log.values
    values[first.index], values[second.index] = second.value, first.value
    return values, second.index  # where seq 10 now stands, after seq 11


def flip_a_signature_byte(log: Log) -> tuple[Mutant, int | None]:
    checkpoint = log.checkpoints("edge.0")[1]
    start, _ = signature_span(checkpoint.value)
    value = bytearray(checkpoint.value)
    value[start + 10] = ord("B") if value[start + 10] != ord("B") else ord("C")
    return with_replaced(log.values, checkpoint.index, bytes(value)), checkpoint.index


BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def reencode_a_signature(log: Log) -> tuple[Mutant, int | None]:
    """Another base64 spelling of the same signature: the padding bits of its last
    character set (decoders ignore them)."""
    checkpoint = log.checkpoints("admin")[0]
    _, end = signature_span(checkpoint.value)
    last = end - 3  # 64 bytes: 86 characters, then "=="
    value = bytearray(checkpoint.value)
    value[last] = ord(BASE64[BASE64.index(chr(value[last])) ^ 1])
    start, _ = signature_span(checkpoint.value)
    spelled = [bytes(v[start:end]) for v in (checkpoint.value, value)]
    assert base64.b64decode(spelled[0]) == base64.b64decode(spelled[1])
    return with_replaced(log.values, checkpoint.index, bytes(value)), checkpoint.index


def truncate_the_last_checkpoint(log: Log) -> tuple[Mutant, int | None]:
    assert log.entries[-1].is_checkpoint
    return log.values[:-1], None


def truncate_half(log: Log) -> tuple[Mutant, int | None]:
    return log.values[: len(log.entries) // 2], None


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        pytest.param(drop_a_decision, {"removed", "missing_decision"}, id="dropped decision"),
        pytest.param(
            replay_the_first_checkpoint_at_the_end,
            {"replayed_checkpoint"},
            id="replayed checkpoint",
        ),
        pytest.param(swap_two_consecutive_links, {"reordered"}, id="swapped links"),
        pytest.param(flip_a_signature_byte, {"bad_signature"}, id="signature byte flipped"),
        pytest.param(reencode_a_signature, {"bad_signature"}, id="signature re-encoded"),
        pytest.param(truncate_the_last_checkpoint, {"truncated"}, id="last checkpoint cut"),
        pytest.param(truncate_half, {"truncated"}, id="half the log cut"),
    ],
)
def test_each_kind_of_tampering_is_named_by_its_problem_kind(
    log: Log,
    mutate: Callable[[Log], tuple[Mutant, int | None]],
    expected: set[str],
) -> None:
    mutant, at = mutate(log)

    problems = log.check(mutant).problems

    found = {p.kind.value for p in problems}
    assert expected <= found, [p.line() for p in problems]
    if at is not None:
        assert at in {p.offset for p in problems if p.kind.value in expected}


def test_an_event_forged_after_the_last_checkpoint_is_counted_unsealed(log: Log) -> None:
    events = log.events("edge.0")
    body = {**events[-1].body, "seq": len(events), "prev": leaf_hash(events[-1].value).hex()}

    result = log.check([*log.values, rfc8785.dumps(body)])

    assert result.unsealed == {"edge.0": 1, "admin": 0}
    assert result.events["edge.0"] == len(events) + 1


# -- 4. completeness and forgery on the broker ---------------------------------------------


def cli_env(bus: Bus, connection: KafkaConnection) -> dict[str, str | None]:
    return {
        "LIAISON_KAFKA_CREDENTIALS": None,
        "LIAISON_KAFKA_BOOTSTRAP": connection.bootstrap_servers,
        "LIAISON_KAFKA_USERNAME": connection.username,
        "LIAISON_KAFKA_PASSWORD": connection.password.get_secret_value(),
        "LIAISON_TOPIC_PREFIX": bus.names.prefix,
        "COLUMNS": "250",
    }


def liaison(env: dict[str, str | None], *args: str) -> Result:
    """``liaison <args>`` in-process; a crash (not an exit) fails the test."""
    result = runner.invoke(app, list(args), env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


async def liaison_async(env: dict[str, str | None], *args: str) -> Result:
    """:func:`liaison` from a worker thread (the CLI runs an event loop of its own)."""
    return await asyncio.to_thread(liaison, env, *args)


def public_key_of(bus: Bus) -> str:
    return base64.b64encode(bus.signer.public.raw).decode()


async def route_a_few(bus: Bus) -> int:
    """Bulletins and junk from a and b, routed and decided; the router stopped cleanly."""
    await bus.publish_policy(recording_policy(bus, 1))
    async with running_edge(bus, checkpoint_every=5) as router:
        await router.wait_for_policy(1)
        written = len(await produce(bus, "a", [*bulletins(bus, "a", 1, 8), b"junk"]))
        written += len(await produce(bus, "b", bulletins(bus, "b", 2, 4)))
        await decided(bus, written)
    return written


async def test_an_input_the_router_skipped_is_reported_as_a_missing_decision(
    bus: Bus, admin_service: KafkaConnection
) -> None:
    await route_a_few(bus)
    env = cli_env(bus, admin_service)
    key = public_key_of(bus)
    clean = await liaison_async(env, "audit", "verify", "--public-key", key)
    assert clean.exit_code == 0, clean.output
    inbound = bus.names.inbound(bus.agency("a"))

    # A router that consumed a record and decided nothing: the record is written, and the
    # edge group's offset committed past it (as the super user: the router is stopped).
    (skipped,) = await produce(bus, "a", [encoded(bus, bus.generator("a", seed=9).bulletin())])
    async with Consumer(bus.admin, group_id=bus.names.edge_group) as consumer:
        tp = TopicPartition(inbound, 0)
        consumer.assign([tp])
        await consumer.commit({tp: skipped.offset + 1})
    result = await liaison_async(env, "audit", "verify", "--public-key", key)

    assert result.exit_code == 1, result.output
    (line,) = [x for x in result.stdout.splitlines() if x.startswith("missing_decision")]
    assert f"{inbound}[0] offset {skipped.offset}: no decision" in line
    assert "1 problem(s)" in result.stdout


def forged_without_a_chain(bus: Bus, records: list[dict[str, Any]]) -> bytes:
    """A decision such as the router writes, but outside any chain."""
    decision = next(r for r in records if r.get("type") == "bulletin.decided")
    return rfc8785.dumps({k: v for k, v in decision.items() if k not in ("chain", "seq", "prev")})


def forged_link(bus: Bus, records: list[dict[str, Any]]) -> bytes:
    """Seq 1 of edge.0 again, rejected instead of accepted, linked to the true seq 0."""
    events = [r for r in records if r.get("chain") == "edge.0" and "seq" in r]
    first, second = events[0], events[1]
    prev = leaf_hash(rfc8785.dumps(first)).hex()
    assert second["prev"] == prev
    return rfc8785.dumps({**second, "outcome": "rejected", "reason": "bad_magic"})


@pytest.mark.parametrize(
    ("forge", "kind"),
    [
        pytest.param(forged_without_a_chain, "unchained", id="outside any chain"),
        pytest.param(forged_link, "inserted", id="a link of edge.0 again"),
    ],
)
async def test_an_event_a_super_user_appends_to_the_audit_topic_is_reported(
    bus: Bus,
    admin_service: KafkaConnection,
    forge: Callable[[Bus, list[dict[str, Any]]], bytes],
    kind: str,
) -> None:
    await route_a_few(bus)
    env = cli_env(bus, admin_service)
    key = public_key_of(bus)
    clean = await liaison_async(env, "audit", "verify", "--public-key", key, "--json")
    assert clean.exit_code == 0, clean.output
    records = [json.loads(r.value or b"") for r in await read_to_end(bus.admin, bus.names.audit)]

    async with Producer(bus.admin, linger_ms=0) as producer:
        forged = await producer.send(bus.names.audit, forge(bus, records), key=b"edge.0")
    result = await liaison_async(env, "audit", "verify", "--public-key", key, "--json")

    assert result.exit_code == 1, result.output
    problems = json.loads(result.stdout)["problems"]
    assert {"kind": kind, "offset": forged.offset} in [
        {"kind": p["kind"], "offset": p["offset"]} for p in problems
    ]


# -- 5. export, offline verification, inclusion proofs -------------------------------------


def closed_port() -> str:
    """host:port of a local port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"127.0.0.1:{port}"


def module_env(recording: Recording) -> dict[str, str | None]:
    """The CLI as the admin service, through its credentials file."""
    return {
        "LIAISON_KAFKA_CREDENTIALS": str(recording.credentials),
        "LIAISON_KAFKA_BOOTSTRAP": None,
        "LIAISON_TOPIC_PREFIX": recording.bus.names.prefix,
        "COLUMNS": "250",
    }


def offline_env() -> dict[str, str | None]:
    """No credentials, and a broker address that cannot answer: any broker use fails."""
    return {
        "LIAISON_KAFKA_CREDENTIALS": None,
        "LIAISON_KAFKA_BOOTSTRAP": closed_port(),
        "LIAISON_KAFKA_USERNAME": "nobody",
        "LIAISON_KAFKA_PASSWORD": "nothing",
        "LIAISON_TOPIC_PREFIX": "nowhere",
        "COLUMNS": "250",
    }


@pytest.fixture(scope="module")
def bundle(recording: Recording, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The recorded log, exported from the broker."""
    directory = tmp_path_factory.mktemp("bundle") / "evidence"
    result = liaison(module_env(recording), "audit", "export", "--out", str(directory))
    assert result.exit_code == 0, result.output
    return directory


@pytest.fixture
def bundle_copy(bundle: Path, tmp_path: Path) -> Path:
    """A copy of the bundle this test may change."""
    return Path(shutil.copytree(bundle, tmp_path / "evidence"))


def verify_bundle(recording: Recording, directory: Path) -> Result:
    return liaison(
        offline_env(),
        "audit",
        "verify",
        "--bundle",
        str(directory),
        "--public-key",
        recording.public_key,
        "--json",
    )


def test_an_exported_bundle_verifies_offline_with_no_problem(
    recording: Recording, bundle: Path
) -> None:
    result = verify_bundle(recording, bundle)

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["problems"] == []
    assert report["bundle_problems"] == []
    assert report["inputs_checked"] == recording.inputs_written
    assert report["unsealed"] == {"edge.0": 0, "admin": 0}


def change_one_byte(path: Path) -> None:
    """One base64 character of a record value in the middle of records.jsonl."""
    lines = path.read_bytes().splitlines(keepends=True)
    middle = len(lines) // 2
    row = json.loads(lines[middle])
    at = lines[middle].index(row["value"].encode()) + 40
    line = bytearray(lines[middle])
    line[at] = ord("A") if line[at] != ord("A") else ord("B")
    lines[middle] = bytes(line)
    path.write_bytes(b"".join(lines))


def test_one_byte_changed_in_a_bundle_is_caught_by_the_manifest_and_by_the_chain(
    recording: Recording, bundle_copy: Path
) -> None:
    change_one_byte(bundle_copy / "records.jsonl")

    result = verify_bundle(recording, bundle_copy)

    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["bundle_problems"] == [
        "records.jsonl does not match the SHA-256 in manifest.json"
    ]
    assert report["problems"], "the chain alone does not notice"


def test_one_byte_changed_with_the_manifest_rewritten_to_match_is_still_caught_by_the_chain(
    recording: Recording, bundle_copy: Path
) -> None:
    records = bundle_copy / "records.jsonl"
    change_one_byte(records)
    manifest_path = bundle_copy / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["sha256"]["records.jsonl"] = hashlib.sha256(records.read_bytes()).hexdigest()
    manifest_path.write_text(json.dumps(manifest))

    result = verify_bundle(recording, bundle_copy)

    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["bundle_problems"] == []
    assert {p["kind"] for p in report["problems"]} & {"altered", "unreadable", "unchained"}


def test_a_bundle_forged_with_a_new_key_is_refused_without_an_anchor_and_fails_with_one(
    recording: Recording, bundle_copy: Path
) -> None:
    """Issue 15.1's attack: edit an event, re-sign every checkpoint with a new key, replace
    keys.json (and the manifest's hashes). Verify must not take the bundle's word for its key."""
    forger = Signer(bytes.fromhex(new_key_hex()))
    edited = forge_bundle(bundle_copy, forger)
    rows = [json.loads(x) for x in (bundle_copy / "records.jsonl").read_text().splitlines()]
    checkpoints = sum(b'"audit.checkpoint"' in base64.b64decode(r["value"]) for r in rows)
    forged = next(r for r in rows if r["offset"] == edited)
    assert b'"outcome":"rejected"' in base64.b64decode(forged["value"])
    forger_key = base64.b64encode(forger.public.raw).decode()
    as_forger = liaison(
        offline_env(), "audit", "verify", "--bundle", str(bundle_copy), "--public-key", forger_key
    )
    assert as_forger.exit_code == 0, "the forgery is not whole: " + as_forger.output

    unanchored = liaison(offline_env(), "audit", "verify", "--bundle", str(bundle_copy))
    anchored = verify_bundle(recording, bundle_copy)

    assert unanchored.exit_code == 2, unanchored.output
    assert "no trust anchor" in unanchored.stderr
    assert anchored.exit_code == 1, anchored.output
    problems = json.loads(anchored.stdout)["problems"]
    assert [p["kind"] for p in problems] == ["unknown_key"] * checkpoints


def test_online_verify_needs_an_anchor_too_and_a_fingerprint_authenticates_the_logs_key(
    recording: Recording,
) -> None:
    """The broker's log is evidence too: a super user can append to it, keys included."""
    unanchored = liaison(module_env(recording), "audit", "verify")
    fingerprint = recording.bus.signer.public.fingerprint
    pinned = liaison(module_env(recording), "audit", "verify", "--fingerprint", fingerprint)

    assert unanchored.exit_code == 2, unanchored.output
    assert "no trust anchor" in unanchored.stderr
    assert pinned.exit_code == 0, pinned.output


def independently_verified(proof: dict[str, Any], trusted_key: bytes) -> bool:
    """A third party's check of an inclusion proof: hashlib, RFC 9162 2.1.3.2, Ed25519."""
    checkpoint = proof["checkpoint"]
    unsigned = {k: v for k, v in checkpoint.items() if k != "signature"}
    try:
        Ed25519PublicKey.from_public_bytes(trusted_key).verify(
            base64.b64decode(checkpoint["signature"]), rfc8785.dumps(unsigned)
        )
    except InvalidSignature:
        return False
    r = hashlib.sha256(b"\x00" + proof["event"].encode()).digest()
    fn, sn = proof["leaf_index"], checkpoint["tree_size"] - 1
    if fn > sn:
        return False
    for p in (bytes.fromhex(h) for h in proof["proof"]):
        if sn == 0:
            return False
        if fn % 2 == 1 or fn == sn:
            r = hashlib.sha256(b"\x01" + p + r).digest()
            while fn % 2 == 0 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = hashlib.sha256(b"\x01" + r + p).digest()
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r.hex() == str(checkpoint["root"])


def test_an_inclusion_proof_convinces_an_independent_verifier_only_of_the_true_event(
    recording: Recording, bundle: Path
) -> None:
    source = recording.bus.agency("a")
    trusted = recording.bus.signer.public.raw

    result = liaison(
        offline_env(),
        "audit",
        "prove",
        recording.delivered_id,
        "--source",
        source,
        "--bundle",
        str(bundle),
    )

    assert result.exit_code == 0, result.output
    proof = json.loads(result.stdout)
    event = json.loads(proof["event"])
    assert (event["bulletin_id"], event["source"]) == (recording.delivered_id, source)
    assert event["outcome"] == "accepted"
    assert independently_verified(proof, trusted)
    altered = copy.deepcopy(proof)
    altered["event"] = proof["event"].replace('"outcome":"accepted"', '"outcome":"rejected"')
    assert altered["event"] != proof["event"]
    assert not independently_verified(altered, trusted)
    assert not independently_verified(
        proof, Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    )


# -- 6. no payload value in the audit topic or the reports ---------------------------------


def test_no_canary_planted_in_a_payload_reaches_the_audit_topic(recording: Recording) -> None:
    bus, canaries = recording.bus, recording.canaries
    inbound = asyncio.run(read_to_end(bus.admin, bus.names.inbound(bus.agency("a"))))
    # The scan can fail: every canary in a payload is found in the agency's own input.
    # (canary_bulletin also makes one for bulletin_id, which the ids given here replace.)
    in_payloads = {c for c, where in canaries.where.items() if not where.endswith(" bulletin_id")}
    assert len(in_payloads) > 20
    assert canaries.found_in(blobs_of(inbound)) == in_payloads

    audit = asyncio.run(read_to_end(bus.admin, bus.names.audit))
    state = asyncio.run(read_to_end(bus.admin, bus.names.audit_state))

    assert len(audit) == len(recording.evidence.records)
    assert canaries.found_in(blobs_of([*audit, *state])) == set()


@pytest.mark.parametrize("report_format", ["json", "csv", "html"])
def test_no_canary_reaches_any_agencys_report_from_the_cli(
    recording: Recording, report_format: str
) -> None:
    bus = recording.bus
    texts: dict[str, str] = {}
    for short in "abc":
        result = liaison(
            module_env(recording),
            "audit",
            "report",
            "--agency",
            bus.agency(short),
            "--format",
            report_format,
        )
        assert result.exit_code == 0, result.output
        texts[short] = result.stdout

    assert recording.canaries.found_in([t.encode() for t in texts.values()]) == set()
    assert all(bus.agency(short) in text for short, text in texts.items())
    if report_format == "json":
        sent = json.loads(texts["a"])["sent"]
        assert sent["total"] >= 2 * PER_AGENCY


@pytest.fixture(scope="module")
def report_api(
    recording: Recording, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiHarness]:
    """The admin API over the recorded bus, started after the recording."""
    with running_api(
        recording.bus, recording.service, tmp_path_factory.mktemp("report-api")
    ) as harness:
        yield harness


def test_the_html_report_from_the_api_is_served_to_an_auditor_without_any_canary(
    recording: Recording, report_api: ApiHarness
) -> None:
    with report_api.client("auditor") as auditor:
        answer = auditor.get(
            "/audit/report", params={"agency": recording.bus.agency("a"), "format": "html"}
        )

    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].split(";")[0] == "text/html"
    assert recording.bus.agency("a") in answer.text
    assert recording.canaries.found_in([answer.content]) == set()


def test_an_agency_token_is_refused_the_report(
    recording: Recording, report_api: ApiHarness
) -> None:
    with report_api.client("a") as agency:
        answer = agency.get(
            "/audit/report", params={"agency": recording.bus.agency("a"), "format": "html"}
        )

    assert answer.status_code == 403, answer.text
    assert answer.json()["error"]["code"] == "forbidden"


# -- 7. the admin chain is signed on time, idle or stopping --------------------------------

ADMIN_INTERVAL_S = 3.0
"""The API's checkpoint_interval_s in the tests below."""


def admin_records(records: Sequence[Any]) -> list[dict[str, Any]]:
    bodies = (json.loads(r.value or b"") for r in records)
    return [b for b in bodies if b.get("chain") == "admin"]


def signed_size(bus: Bus, bodies: Sequence[dict[str, Any]]) -> int:
    """The largest tree size of the admin chain under a checkpoint the bus's key signed."""
    public = bus.signer.public
    sizes = [0]
    for body in bodies:
        if body.get("type") != CHECKPOINT or body.get("key_id") != public.key_id:
            continue
        unsigned = {k: v for k, v in body.items() if k != "signature"}
        if public.verify(base64.b64decode(body["signature"]), rfc8785.dumps(unsigned)):
            sizes.append(int(body["tree_size"]))
    return max(sizes)


def create_token(api: ApiHarness, label: str) -> str:
    with api.client() as admin:
        answer = admin.post("/tokens", json={"role": "auditor", "label": label})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["info"]["id"])


async def test_an_admin_event_on_an_idle_api_is_under_a_signed_checkpoint_within_the_interval(
    bus: Bus, admin_service: KafkaConnection, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Two tokens in a row: the second comes within the interval of any checkpoint the
    first may have caused, so only the time bound can seal it; then the API stays idle."""
    with running_api(bus, admin_service, tmp_path, checkpoint_interval_s=ADMIN_INTERVAL_S) as api:
        await asyncio.to_thread(create_token, api, "first")
        second = await asyncio.to_thread(create_token, api, "second")
        created = time.monotonic()

        def sealed(records: list[Any]) -> bool:
            bodies = admin_records(records)
            event = [b for b in bodies if b.get("token_id") == second]
            return bool(event) and signed_size(bus, bodies) > int(event[0]["seq"])

        await bus.read_as_admin(bus.names.audit, sealed, timeout_s=ADMIN_INTERVAL_S * 4)
        took = time.monotonic() - created
    attach(request, "sealed_after_s", round(took, 2))

    assert took <= ADMIN_INTERVAL_S + 1.0, f"sealed after {took:.1f}s"


async def test_a_stopping_api_signs_its_last_admin_events(
    bus: Bus, admin_service: KafkaConnection, tmp_path: Path
) -> None:
    """An hour-long interval: only the stop can seal the token's event before the end."""
    with running_api(bus, admin_service, tmp_path, checkpoint_interval_s=3600) as api:
        token = await asyncio.to_thread(create_token, api, "last")
        before = admin_records(await read_to_end(bus.admin, bus.names.audit))

    after = admin_records(await read_to_end(bus.admin, bus.names.audit))
    (event,) = [b for b in after if b.get("token_id") == token]
    events = [b for b in after if b.get("type") != CHECKPOINT]
    assert signed_size(bus, before) <= int(event["seq"]), "sealed before the stop"
    assert signed_size(bus, after) == len(events)
