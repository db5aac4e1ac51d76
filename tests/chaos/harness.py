"""Fault injection against the edge router on a real broker, and what must hold through it.

Scenarios (each on a bus of its own, :func:`bus.sandbox.build_bus`):

* **R1** :func:`run_r1`: ``liaison edge run`` SIGKILLed again and again, each time at a
  chosen step of a transaction (paused there through the router's fault-injection seams:
  after ``consumed``, after ``begun`` (offsets added to the open transaction), at
  ``pre-commit`` (every view produced and acknowledged), right as it starts ``committing``)
  or at a random moment; then a last router routes the rest.
* **R2** :func:`run_r2`: the *broker* SIGKILLed mid-stream and restarted on the same data
  directory and port, while a router runs (or holds an open transaction).
* **R3** :func:`run_r3`: a zombie: a router frozen with SIGSTOP in the middle of a
  transaction, its successor started with the same instance number, the zombie resumed
  with SIGCONT: it must be fenced and exit, and nothing may be duplicated.
* **F1** :func:`run_f1`: hypothesis-generated malformed records (:mod:`tests.chaos.malformed`)
  interleaved with valid bulletins: the router never crashes, every bad record is in the
  dead-letter topic with its reason, every good one is routed.

Every scenario ends with the same verification (:func:`observe` and :func:`judge`), read
back from the broker with ``read_committed``: for every (bulletin, agency) pair the policy
entitles, exactly one view, none lost; no view an agency is not entitled to; exactly one
audit decision per input offset, agreeing with the policy (outcome, reason, recipients);
the audit log's chains, signatures and completeness verified by :func:`bus.audit.verify`;
exactly one dead letter per rejected input, with its reason and original bytes, and no
other. Each check is a row of the verdict table (:func:`print_verdicts`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import inspect
import json
import random
import signal
import sys
import time
import traceback
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bus.audit import verify
from bus.audit._io import read_evidence
from bus.broker import Broker, BrokerConfig
from bus.bulletin import Bulletin, Marking, Priority, Status
from bus.errors import BulletinInvalid, CodecError
from bus.kafka import Consumer, KafkaConnection, Producer, Record, TopicPartition, read_to_end
from bus.policy import CompiledPolicy, compile_policy, parse_policy
from bus.sandbox import Bus, build_bus, teardown_bus
from tests.chaos.malformed import FuzzContext, draw_samples

__all__ = [
    "KILL_KINDS",
    "Announcement",
    "ChaosConfig",
    "Check",
    "DeadLetter",
    "Decision",
    "Expectation",
    "Observed",
    "Outcome",
    "RouterProcess",
    "Workload",
    "judge",
    "parse_announcement",
    "print_verdicts",
    "run_f1",
    "run_r1",
    "run_r2",
    "run_r3",
    "run_scenarios",
]

LIAISON = str(Path(sys.executable).parent / "liaison")
SHORTS = ("a", "b", "c", "d")
SOURCES = ("a", "b")
STEPS = ("consumed", "begun", "pre-commit", "committing")
"""The steps of a transaction the router announces (then ``committed``)."""
PAUSE_STEPS = ("consumed", "begun", "pre-commit")
"""The steps the router can pause at (``--pause-at``)."""
KILL_KINDS = (*STEPS, "random")
_PR_SET_PDEATHSIG = 1
LONG_PAUSE_MS = 600_000
"""A router paused at a step waits there for its SIGKILL."""

InputRef = tuple[str, int, int]
"""An input record: topic, partition, offset."""
ViewKey = tuple[str, str]
"""A delivered view: bulletin id, recipient agency."""
Span = tuple[str, int, int, int]
"""Records of one partition in a batch: topic, partition, first offset, last offset."""


class ChaosError(Exception):
    """A scenario could not go on (a router exited on its own, a wait timed out)."""


@dataclass(frozen=True)
class ChaosConfig:
    """Sizes of the scenarios. The defaults are ``make chaos``'s full size."""

    bulletins: int = 100_000
    """R1: bulletins routed through the kills."""
    kills: int = 20
    """R1: SIGKILLs of the router (spread over the kinds in :data:`KILL_KINDS`)."""
    seed: int = 20261210
    batch_max: int = 100
    r2_bulletins: int = 20_000
    broker_kills: int = 2
    r3_bulletins: int = 6_000
    zombie_rounds: int = 3
    fuzz_examples: int = 1_000
    """F1: malformed records hypothesis generates (repeats are skipped)."""
    fuzz_good: int = 1_000
    """F1: valid bulletins interleaved with them."""
    timeout_s: float = 900.0
    """The longest any one wait may take (a router reaching a step, routing the rest)."""


# -- what is expected --------------------------------------------------------------------


@dataclass(frozen=True)
class Expectation:
    """What must become of one input record."""

    outcome: str
    """``accepted``, ``duplicate`` (a re-send, docs/edge.md) or ``rejected``."""
    reason: str | None = None
    """A rejected record's dead-letter reason (``None``: any reason)."""
    bulletin_id: str | None = None
    recipients: frozenset[str] = frozenset()
    """The agencies an accepted record's views go to."""
    value: bytes | None = None
    """A rejected record's original bytes (its dead letter must carry them)."""
    label: str = "valid bulletin"


@dataclass(frozen=True)
class Outgoing:
    """An input record to write, with what must become of it."""

    agency: str
    """Whose ``from`` topic it is written to (an agency id)."""
    key: bytes | None
    value: bytes | None
    expectation: Expectation


@dataclass
class Workload:
    """Every input record written, by where it landed, with what must become of it."""

    inputs: dict[InputRef, Expectation] = field(default_factory=dict)
    accepted: dict[tuple[str, str], bytes | None] = field(default_factory=dict)
    """(agency, bulletin id) -> the record value first accepted under it."""

    def settle(self, agency: str, value: bytes | None, expectation: Expectation) -> Expectation:
        """What must become of a record written now, after the re-send rule (docs/edge.md):
        an id its agency already had accepted is a ``duplicate`` with the same bytes and
        ``id_reused`` (dead-lettered) with others. Records must be settled in write order."""
        if expectation.outcome != "accepted" or expectation.bulletin_id is None:
            return expectation
        key = (agency, expectation.bulletin_id)
        if key not in self.accepted:
            self.accepted[key] = value
            return expectation
        if self.accepted[key] == value:
            return Expectation(
                "duplicate", "duplicate", expectation.bulletin_id, label="re-sent bulletin"
            )
        return Expectation(
            "rejected",
            "id_reused",
            expectation.bulletin_id,
            value=value,
            label="other content under a used id",
        )

    def expected_views(self) -> Counter[ViewKey]:
        views: Counter[ViewKey] = Counter()
        for expectation in self.inputs.values():
            if expectation.outcome == "accepted" and expectation.bulletin_id is not None:
                for recipient in expectation.recipients:
                    views[(expectation.bulletin_id, recipient)] += 1
        return views

    def ends(self) -> dict[TopicPartition, int]:
        """Per input partition, the offset after the last record written."""
        ends: dict[TopicPartition, int] = {}
        for topic, partition, offset in self.inputs:
            tp = TopicPartition(topic, partition)
            ends[tp] = max(ends.get(tp, 0), offset + 1)
        return ends


def chaos_policy(bus: Bus) -> dict[str, Any]:
    """Two sources, overlapping recipients, marking ceilings, redactions, an ACTUAL-only agency."""
    a, b, c, d = (bus.agency(x) for x in SHORTS)
    return bus.policy(
        [
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
                "redact": [{"tag": "contact", "action": "pseudonymize"}],
            },
            {
                "id": "a-to-d",
                "source": {"agencies": [a]},
                "recipients": {"agencies": [d]},
                "kinds": ["*"],
                "max_marking": "GREEN",
            },
            {
                "id": "b-to-a",
                "source": {"agencies": [b]},
                "recipients": {"agencies": [a]},
                "kinds": ["*"],
                "max_marking": "AMBER",
            },
            {
                "id": "b-to-cd",
                "source": {"agencies": [b]},
                "recipients": {"agencies": [c, d]},
                "kinds": ["situation_report", "notice"],
                "max_marking": "RED",
                "redact": [{"tag": "contact", "action": "drop"}],
            },
        ],
        extra={d: {"accepts": ["ACTUAL"]}},
    )


class BulletinSource:
    """Seeded valid bulletins from ``a`` and ``b`` with random markings, statuses and
    RED recipients, each with the views the compiled policy entitles; among them re-sends
    (``resend_rate``: an earlier record again, byte for byte) and re-issues (``reissue_rate``:
    an earlier id with other content), which :meth:`Workload.settle` expects to be decided
    as ``duplicate`` and dead-lettered as ``id_reused``."""

    def __init__(
        self,
        bus: Bus,
        compiled: CompiledPolicy,
        seed: int,
        *,
        resend_rate: float = 0.03,
        reissue_rate: float = 0.01,
    ) -> None:
        self.bus = bus
        self.compiled = compiled
        self.rng = random.Random(seed)
        self.generators = {s: bus.generator(s, seed=seed + i) for i, s in enumerate(SOURCES)}
        self.resend_rate, self.reissue_rate = resend_rate, reissue_rate
        self.sent: list[tuple[Bulletin, Outgoing]] = []

    def take(self, count: int) -> Iterator[Outgoing]:
        statuses = [Status.ACTUAL, Status.ACTUAL, Status.ACTUAL, Status.EXERCISE]
        for _ in range(count):
            draw = self.rng.random()
            if self.sent and draw < self.resend_rate + self.reissue_rate:
                earlier, outgoing = self.rng.choice(self.sent[-500:])
                if draw < self.resend_rate:
                    yield outgoing
                    continue
                priorities = [p for p in Priority if p is not earlier.priority]
                bulletin = earlier.model_copy(update={"priority": self.rng.choice(priorities)})
                yield self._outgoing(bulletin)
                continue
            short = self.rng.choice(SOURCES)
            bulletin = self.generators[short].bulletin()
            marking = self.rng.choice(list(Marking))
            update: dict[str, Any] = {"marking": marking, "status": self.rng.choice(statuses)}
            if marking is Marking.RED:
                others = [s for s in SHORTS if s != short]
                update["releasable_to"] = [self.bus.agency(self.rng.choice(others))]
            bulletin = bulletin.model_copy(update=update)
            outgoing = self._outgoing(bulletin)
            self.sent.append((bulletin, outgoing))
            yield outgoing

    def _outgoing(self, bulletin: Bulletin) -> Outgoing:
        decision = self.compiled.evaluate(bulletin)
        value = self.bus.codec.encode(
            self.bus.bulletin_schema_id, self.bus.schema.to_avro(bulletin)
        )
        return Outgoing(
            agency=bulletin.source_agency,
            key=bulletin.bulletin_id.encode(),
            value=value,
            expectation=Expectation(
                "accepted",
                bulletin_id=bulletin.bulletin_id,
                recipients=frozenset(v.recipient for v in decision.views),
            ),
        )


def oracle(bus: Bus, compiled: CompiledPolicy, agency: str, value: bytes | None) -> Expectation:
    """What the router must do with ``value`` on ``agency``'s topic (its documented steps:
    decode, validate, anti-spoof, policy). Any other exception escapes: the router could
    not handle that record either."""
    try:
        bulletin = bus.schema.from_avro(bus.codec.decode(value or b"").record)
    except CodecError as exc:
        return Expectation("rejected", reason=exc.reason, value=value)
    except BulletinInvalid:
        return Expectation("rejected", reason="invalid_bulletin", value=value)
    if bulletin.source_agency != agency:
        return Expectation("rejected", reason="spoofed_source", value=value)
    decision = compiled.evaluate(bulletin)
    return Expectation(
        "accepted",
        bulletin_id=bulletin.bulletin_id,
        recipients=frozenset(v.recipient for v in decision.views),
    )


async def send_records(
    bus: Bus, workload: Workload, records: Iterable[Outgoing], *, chunk: int = 5_000
) -> int:
    """Write ``records`` to their agencies' ``from`` topics, as those agencies, in order;
    note where each landed. Returns how many were written."""
    producers: dict[str, Producer] = {}
    pending: list[tuple[Expectation, Any]] = []
    written = 0

    async def flush() -> None:
        for expectation, delivery in pending:
            metadata = await delivery
            workload.inputs[(metadata.topic, metadata.partition, metadata.offset)] = expectation
        pending.clear()

    try:
        for record in records:
            producer = producers.get(record.agency)
            if producer is None:
                producer = producers[record.agency] = Producer(bus.agencies[record.agency])
                await producer.start()
            delivery = await producer.enqueue(
                bus.names.inbound(record.agency), record.value, key=record.key
            )
            expectation = workload.settle(record.agency, record.value, record.expectation)
            pending.append((expectation, delivery))
            written += 1
            if len(pending) >= chunk:
                await flush()
        await flush()
    finally:
        for _expectation, delivery in pending:  # left by an error: never to be awaited
            if inspect.iscoroutine(delivery):
                delivery.close()
        for producer in producers.values():
            await producer.stop()
    return written


# -- the router as a process -------------------------------------------------------------


@dataclass(frozen=True)
class Announcement:
    """One line of the router's fault-injection seam (``--announce-commits``)."""

    step: str
    number: int
    """Transactions this router process had committed before."""
    spans: tuple[Span, ...] = ()
    """For ``consumed``: the batch's records per partition."""


def parse_announcement(line: str) -> Announcement | None:
    """``consumed 3 t:0:100-199 u:0:7-9`` -> Announcement; anything else -> None."""
    parts = line.split()
    if len(parts) < 2 or parts[0] not in (*STEPS, "committed") or not parts[1].isdigit():
        return None
    spans = []
    for item in parts[2:]:
        where, _, offsets = item.rpartition(":")
        topic, _, partition = where.rpartition(":")
        first, _, last = offsets.partition("-")
        spans.append((topic, int(partition), int(first), int(last)))
    return Announcement(parts[0], int(parts[1]), tuple(spans))


class Progress:
    """What the routers said they committed (their ``committed N`` lines), per partition."""

    def __init__(self) -> None:
        self.next_offset: dict[TopicPartition, int] = {}

    def committed(self, spans: Sequence[Span]) -> None:
        for topic, partition, _first, last in spans:
            tp = TopicPartition(topic, partition)
            self.next_offset[tp] = max(self.next_offset.get(tp, 0), last + 1)

    def covers(self, ends: Mapping[TopicPartition, int]) -> bool:
        return all(self.next_offset.get(tp, 0) >= end for tp, end in ends.items())


class RouterProcess:
    """``liaison edge run`` as a subprocess with its seams on; stdout read line by line."""

    def __init__(
        self,
        bus: Bus,
        logs: Path,
        name: str,
        *,
        instance: int = 0,
        batch_max: int = 100,
        pause_at: str | None = None,
        pause_ms: int = 0,
        progress: Progress | None = None,
    ) -> None:
        self.bus = bus
        self.name = name
        self.log_path = logs / f"{name}.log"
        self.instance = instance
        self.batch_max = batch_max
        self.pause_at = pause_at
        self.pause_ms = pause_ms
        self.progress = progress
        self.announcements: list[Announcement] = []
        self.arrivals: list[float] = []
        """When each announcement was read (``time.monotonic()``)."""
        self.proc: asyncio.subprocess.Process | None = None
        self._log: IO[bytes] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._eof = False
        self._consumed: tuple[Span, ...] = ()

    async def start(self) -> None:
        env = self.bus.edge_env()
        pause = []
        if self.pause_at is not None:
            pause = ["--pause-at", self.pause_at, "--pause-ms", str(self.pause_ms)]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        self.proc = await asyncio.create_subprocess_exec(
            LIAISON,
            "edge",
            "run",
            "--instance",
            str(self.instance),
            "--announce-commits",
            "--batch-max",
            str(self.batch_max),
            *pause,
            stdout=asyncio.subprocess.PIPE,
            stderr=self._log,
            env=env,
            preexec_fn=_die_with_harness,
        )
        self._reader = asyncio.create_task(self._read(), name=f"{self.name} stdout")

    async def _read(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            announcement = parse_announcement(line.decode(errors="replace"))
            if announcement is None:
                continue
            if announcement.step == "consumed":
                self._consumed = announcement.spans
            elif announcement.step == "committed" and self.progress is not None:
                self.progress.committed(self._consumed)
            self.announcements.append(announcement)
            self.arrivals.append(time.monotonic())
            self._changed.set()
        self._eof = True
        self._changed.set()

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.returncode

    def arrived(self, announcement: Announcement) -> float:
        """When ``announcement`` (one of this router's) was read."""
        index = max(i for i, a in enumerate(self.announcements) if a is announcement)
        return self.arrivals[index]

    def mark(self) -> int:
        """The number of announcements so far (to wait for later ones)."""
        return len(self.announcements)

    async def wait_for(
        self,
        step: str | None,
        number: int | None = None,
        *,
        after: int = 0,
        timeout_s: float = 300.0,
    ) -> Announcement:
        """The first announcement from index ``after`` of ``step`` (any step if None), of
        transaction ``number`` if given. Raises :class:`ChaosError` if the router exits
        first, ``TimeoutError`` at the deadline."""

        def wanted(a: Announcement) -> bool:
            return (step is None or a.step == step) and (number is None or a.number == number)

        async def scan() -> Announcement:
            index = after
            while True:
                while index < len(self.announcements):
                    if wanted(self.announcements[index]):
                        return self.announcements[index]
                    index += 1
                if self._eof:
                    assert self.proc is not None
                    code = await self.proc.wait()
                    raise ChaosError(
                        f"router {self.name} exited (code {code}) before announcing "
                        f"{step or 'anything'} {'' if number is None else number}; "
                        f"log: {self.log_path}\n{self.log_tail()}"
                    )
                self._changed.clear()
                await self._changed.wait()

        try:
            return await asyncio.wait_for(scan(), timeout_s)
        except TimeoutError as exc:
            raise TimeoutError(
                f"router {self.name} did not announce {step} {number} within {timeout_s:.0f}s "
                f"(last: {self.announcements[-1:]}); log: {self.log_path}"
            ) from exc

    async def exited(self, timeout_s: float) -> int | None:
        """Wait for the process to exit: its exit code, or None if it still runs."""
        assert self.proc is not None
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout_s)
        except TimeoutError:
            return None

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def kill(self) -> None:
        """SIGKILL (also ends a stopped process) and wait for it."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
        await self.close()

    async def terminate(self, timeout_s: float = 60.0) -> int:
        """SIGTERM: the router commits its open batch and exits. Its exit code."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        code = await self.exited(timeout_s)
        if code is None:
            await self.kill()
            raise ChaosError(f"router {self.name} ignored SIGTERM for {timeout_s:.0f}s")
        await self.close()
        return code

    async def close(self) -> None:
        """Make sure the process is gone and its pipes and log closed."""
        if self.proc is not None:
            if self.proc.returncode is None:
                self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()
        if self._reader is not None:
            await self._reader
            self._reader = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 15) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


def _die_with_harness() -> None:  # runs in the child between fork and exec
    """No router outlives a harness killed outright (SIGKILL, `timeout`): PR_SET_PDEATHSIG."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


async def committed_offsets(
    bus: Bus, tps: Iterable[TopicPartition], connection: KafkaConnection | None = None
) -> dict[TopicPartition, int]:
    """The edge group's committed offsets (0 where none), read as the bootstrap admin."""
    async with Consumer(connection or bus.admin, group_id=bus.names.edge_group) as consumer:
        return {tp: (await consumer.committed(tp)) or 0 for tp in tps}


async def drain(
    bus: Bus,
    router: RouterProcess,
    workload: Workload,
    progress: Progress,
    *,
    timeout_s: float,
) -> None:
    """Wait until the edge group has committed every input written (the router's
    ``committed`` lines say when to ask; the group's offsets are the authority)."""
    ends = workload.ends()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    mark = router.mark()
    committed: dict[TopicPartition, int] = {}
    quiet = False
    async with Consumer(bus.admin, group_id=bus.names.edge_group) as consumer:
        while True:
            if quiet or progress.covers(ends):
                committed = {tp: (await consumer.committed(tp)) or 0 for tp in ends}
                if all(committed[tp] >= end for tp, end in ends.items()):
                    return
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ChaosError(
                    f"the router had not routed everything after {timeout_s:.0f}s: "
                    f"committed {committed}, written {ends}"
                )
            try:
                await router.wait_for("committed", after=mark, timeout_s=min(3.0, remaining))
                mark = router.mark()
                quiet = False
            except TimeoutError:
                # sleep-ok: nothing committed for 3 s: ask the group whether it is done (a
                # commit whose answer a killed router never saw announces nothing).
                quiet = True


# -- what is observed, and the verdict -----------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """One ``bulletin.decided`` audit event, reduced to what is checked."""

    outcome: str
    reason: str | None
    delivered: frozenset[str]


@dataclass(frozen=True)
class DeadLetter:
    ref: InputRef | None
    """From its ``liaison.source.*`` headers (None if they are missing or unreadable)."""
    reason: str | None
    detail: str | None
    value: bytes | None

    @staticmethod
    def of(record: Record) -> DeadLetter:
        headers = dict(record.headers)
        try:
            ref: InputRef | None = (
                headers["liaison.source.topic"].decode(),
                int(headers["liaison.source.partition"]),
                int(headers["liaison.source.offset"]),
            )
        except (KeyError, ValueError):
            ref = None
        reason = headers.get("liaison.reason")
        detail = headers.get("liaison.detail")
        return DeadLetter(
            ref,
            reason.decode(errors="replace") if reason is not None else None,
            detail.decode(errors="replace") if detail is not None else None,
            record.value,
        )


@dataclass
class Observed:
    """Everything read back from the bus after a scenario."""

    views: Counter[ViewKey] = field(default_factory=Counter)
    undecodable_views: int = 0
    decisions: dict[InputRef, list[Decision]] = field(default_factory=dict)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    audit_problems: list[str] = field(default_factory=list)
    audit_events: int = 0
    audit_checkpoints: int = 0


async def observe(bus: Bus) -> Observed:
    """Read every outbound topic, the audit log and the dead letters (committed records)."""
    observed = Observed()
    for agency in bus.agencies:
        for record in await read_to_end(bus.admin, bus.names.outbound(agency)):
            try:
                view = bus.codec.decode(record.value or b"").record
                observed.views[(str(view["bulletin"]["bulletin_id"]), agency)] += 1
            except (CodecError, KeyError, TypeError):
                observed.undecodable_views += 1
    evidence = await read_evidence(bus.admin, bus.names)
    key = bus.signer.public
    verification = verify(evidence.records, {key.key_id: key}, inputs=evidence.inputs)
    observed.audit_problems = [p.line() for p in verification.problems]
    observed.audit_events = sum(verification.events.values())
    observed.audit_checkpoints = verification.checkpoints
    for audit_record in evidence.records:
        try:
            event = json.loads(audit_record.value)
        except ValueError:
            continue  # verify() has reported it
        if not isinstance(event, dict) or event.get("type") != "bulletin.decided":
            continue
        origin = event.get("input") or {}
        ref = (str(origin.get("topic")), int(origin.get("partition", -1)), int(origin["offset"]))
        delivered = frozenset(
            r["agency"] for r in event.get("recipients", []) if r.get("delivered")
        )
        observed.decisions.setdefault(ref, []).append(
            Decision(str(event.get("outcome")), event.get("reason"), delivered)
        )
    observed.dead_letters = [
        DeadLetter.of(r) for r in await read_to_end(bus.admin, bus.names.deadletter)
    ]
    return observed


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    expected: str
    observed: str


@dataclass
class Outcome:
    """A scenario's checks (each a row of the verdict) and facts (what was done, measured)."""

    scenario: str
    title: str
    checks: list[Check] = field(default_factory=list)
    facts: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def check(self, name: str, ok: bool, observed: str, expected: str) -> bool:
        self.checks.append(Check(name, ok, expected, observed))
        return ok

    def none(self, name: str, found: Sequence[Any], of: int | None = None) -> bool:
        """A check that ``found`` is empty; the first few are shown."""
        shown = ", ".join(_short(x) for x in list(found)[:3])
        observed = f"{len(found):,}" + (f" of {of:,}" if of is not None else "")
        return self.check(name, not found, f"{observed} {shown}".strip(), "0")

    def fact(self, name: str, value: str) -> None:
        self.facts.append((name, value))

    @property
    def violations(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    @property
    def ok(self) -> bool:
        return bool(self.checks) and not self.violations

    def summary(self) -> str:
        lines = [f"{self.scenario} ({self.title}): {len(self.violations)} violation(s)"]
        lines += [
            f"  {c.name}: expected {c.expected}, observed {c.observed}" for c in self.violations
        ]
        return "\n".join(lines + self.errors)


def _short(item: Any) -> str:
    text = repr(item)
    return text if len(text) <= 60 else text[:57] + "..."


def judge(outcome: Outcome, workload: Workload, observed: Observed) -> None:
    """The checks every scenario ends with; each adds a row to ``outcome``."""
    expected = workload.expected_views()
    delivered = observed.views
    total = sum(expected.values())
    outcome.none("views lost", [k for k, n in expected.items() if delivered[k] < n], total)
    outcome.none(
        "views duplicated", [k for k, n in delivered.items() if n > expected[k] > 0], total
    )
    outcome.none("views to an unentitled agency", [k for k in delivered if k not in expected])
    outcome.none("undecodable views", ["view"] * observed.undecodable_views)

    inputs = workload.inputs
    decisions = observed.decisions
    outcome.none(
        "inputs without an audit decision", [r for r in inputs if not decisions.get(r)], len(inputs)
    )
    outcome.none(
        "inputs with more than one decision", [r for r, ds in decisions.items() if len(ds) > 1]
    )
    outcome.none("decisions about unknown inputs", [r for r in decisions if r not in inputs])
    outcome.none(
        "decisions that differ from the policy",
        [
            (ref, ds[0])
            for ref, expectation in inputs.items()
            if len(ds := decisions.get(ref, [])) == 1 and not _agrees(expectation, ds[0])
        ],
    )
    outcome.none("audit log problems (verify)", observed.audit_problems)

    letters: dict[InputRef, list[DeadLetter]] = {}
    for letter in observed.dead_letters:
        if letter.ref is not None:
            letters.setdefault(letter.ref, []).append(letter)
    rejected = {ref: e for ref, e in inputs.items() if e.outcome == "rejected"}
    outcome.none(
        "rejected inputs without exactly one dead letter",
        [ref for ref in rejected if len(letters.get(ref, [])) != 1],
        len(rejected),
    )
    outcome.none(
        "dead letters without their reason, detail or bytes",
        [
            (ref, letters[ref][0].reason)
            for ref, e in rejected.items()
            if len(letters.get(ref, [])) == 1 and not _dead_letter_agrees(e, letters[ref][0])
        ],
    )
    outcome.none(
        "dead letters of no rejected input",
        [d.ref for d in observed.dead_letters if d.ref is None or d.ref not in rejected],
    )
    resent = Counter(
        e.outcome if e.outcome == "duplicate" else "id_reused"
        for e in inputs.values()
        if e.outcome == "duplicate" or e.reason == "id_reused"
    )
    outcome.fact(
        "re-sends in the input",
        f"{resent['duplicate']:,} re-sent (one decision, no view), "
        f"{resent['id_reused']:,} other content under a used id (dead-lettered)",
    )
    outcome.fact(
        "read back",
        f"{sum(delivered.values()):,} views, {observed.audit_events:,} audit events, "
        f"{observed.audit_checkpoints:,} signed checkpoints, "
        f"{len(observed.dead_letters):,} dead letters",
    )


def _agrees(expectation: Expectation, decision: Decision) -> bool:
    if expectation.outcome != decision.outcome:
        return False
    if expectation.outcome == "accepted":
        return decision.delivered == expectation.recipients
    return decision.reason is not None and expectation.reason in (None, decision.reason)


def _dead_letter_agrees(expectation: Expectation, letter: DeadLetter) -> bool:
    return (
        bool(letter.reason)
        and expectation.reason in (None, letter.reason)
        and bool(letter.detail)
        and letter.value == expectation.value
    )


# -- scenarios -------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _scenario(outcome: Outcome) -> AsyncIterator[None]:
    """Time the scenario; any failure to carry it out is a violation in its verdict."""
    started = time.monotonic()
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - whatever stopped the scenario is its verdict
        outcome.check("scenario ran to completion", False, f"{type(exc).__name__}", "yes")
        outcome.errors.append("".join(traceback.format_exception(exc)))
    finally:
        outcome.seconds = time.monotonic() - started


@contextlib.asynccontextmanager
async def _own_bus(admin: KafkaConnection, policy: bool = True) -> AsyncIterator[Bus]:
    bus = await build_bus(admin, SHORTS)
    try:
        if policy:
            await bus.publish_policy(chaos_policy(bus))
        yield bus
    finally:
        await asyncio.to_thread(teardown_bus, bus)


def _compiled(bus: Bus) -> CompiledPolicy:
    return compile_policy(parse_policy(chaos_policy(bus)), bus.schema, bus.keys)


async def _finish(
    bus: Bus,
    outcome: Outcome,
    workload: Workload,
    progress: Progress,
    config: ChaosConfig,
    logs: Path,
    name: str,
    router: RouterProcess | None = None,
) -> None:
    """Route whatever is left with a router that is not disturbed, stop it with SIGTERM,
    and judge what the bus holds."""
    if router is None:
        router = RouterProcess(bus, logs, name, batch_max=config.batch_max, progress=progress)
        await router.start()
    try:
        await drain(bus, router, workload, progress, timeout_s=config.timeout_s)
        code = await router.terminate()
    finally:
        await router.close()
    outcome.check("the last router stops cleanly on SIGTERM", code == 0, f"exit {code}", "exit 0")
    judge(outcome, workload, await observe(bus))


async def run_r1(admin: KafkaConnection, workdir: Path, config: ChaosConfig) -> Outcome:
    """R1: SIGKILL the router at each step of a transaction and at random moments."""
    outcome = Outcome("R1", "router SIGKILLed at each step and at random")
    async with _scenario(outcome), _own_bus(admin) as bus:
        await _r1(bus, workdir / "r1", config, outcome)
    return outcome


@dataclass
class _Kill:
    kind: str
    number: int
    landed: str = ""
    spans: tuple[Span, ...] = ()
    acknowledged: bool = False
    """The router announced the transaction committed before it died."""


async def _r1(bus: Bus, logs: Path, config: ChaosConfig, outcome: Outcome) -> None:
    compiled = _compiled(bus)
    rng = random.Random(config.seed)
    workload = Workload()
    started = time.monotonic()
    await send_records(
        bus, workload, BulletinSource(bus, compiled, config.seed).take(config.bulletins)
    )
    outcome.fact("bulletins written", f"{config.bulletins:,} in {time.monotonic() - started:.1f} s")
    ends = workload.ends()
    progress = Progress()
    kinds = [KILL_KINDS[i % len(KILL_KINDS)] for i in range(config.kills)]
    rng.shuffle(kinds)
    # Transactions per router life: the kills spread over the stream, with some to spare.
    per_life = max(1, config.bulletins // config.batch_max // (config.kills + 2))
    kills: list[_Kill] = []
    unsettled: _Kill | None = None  # a kill during commit, whose outcome the successor settles
    commit_outcomes: Counter[str] = Counter()
    started = time.monotonic()
    for index, kind in enumerate(kinds):
        committed = await committed_offsets(bus, ends)
        remaining = sum(end - committed[tp] for tp, end in ends.items()) // config.batch_max
        if remaining < 4:
            outcome.fact("kills stopped early", f"after {index}: the stream was nearly routed")
            break
        number = rng.randint(per_life // 2, max(per_life // 2, per_life * 3 // 2))
        number = min(number, remaining // 2)
        pause = f"{kind}:{number}" if kind in PAUSE_STEPS else None
        router = RouterProcess(
            bus,
            logs,
            f"r1-{index:02d}-{kind}",
            batch_max=config.batch_max,
            pause_at=pause,
            pause_ms=LONG_PAUSE_MS if pause else 0,
            progress=progress,
        )
        await router.start()
        try:
            if unsettled is not None:
                commit_outcomes[await _settle(bus, router, unsettled, config)] += 1
                unsettled = None
            kill = _Kill(kind, number)
            if kind == "random":
                await router.wait_for("consumed", number, timeout_s=config.timeout_s)
                delay = rng.uniform(0.0, 0.25)
                # sleep-ok: the router routes on for `delay` seconds, then dies wherever it
                # is; its own exit meanwhile would end the wait (and is a violation).
                code = await router.exited(delay)
                if code is not None:
                    raise ChaosError(f"router {router.name} exited on its own (code {code})")
                last = router.announcements[-1]
                kill.landed = f"after {last.step} {last.number}"
            else:
                seen = await router.wait_for(kind, number, timeout_s=config.timeout_s)
                kill.spans = _consumed_spans(router, seen)
                if kind == "committing":
                    # sleep-ok: at once the kill lands while EndTxn is in flight; a few ms
                    # later, after the answer. The successor settles the outcome either way.
                    await router.exited(rng.choice((0.0, 0.0, 0.005, 0.02)))
            await router.kill()
            kill.acknowledged = any(
                a.step == "committed" and a.number == number for a in router.announcements
            )
        finally:
            await router.close()
        kills.append(kill)
        if kind == "committing":
            unsettled = kill
    final = RouterProcess(bus, logs, "r1-final", batch_max=config.batch_max, progress=progress)
    await final.start()
    if unsettled is not None:
        try:
            commit_outcomes[await _settle(bus, final, unsettled, config)] += 1
        except BaseException:
            await final.close()
            raise
    await _finish(bus, outcome, workload, progress, config, logs, "r1-final", final)
    outcome.fact("routing through the kills", f"{time.monotonic() - started:.1f} s")
    by_kind = Counter(k.kind for k in kills)
    outcome.check(
        "router SIGKILLs", len(kills) >= config.kills, f"{len(kills)}", f">= {config.kills}"
    )
    if config.kills >= len(KILL_KINDS):
        missing = [k for k in KILL_KINDS if not by_kind[k]]
        outcome.check(
            "steps killed at",
            not missing,
            ", ".join(f"{k} {by_kind[k]}" for k in KILL_KINDS),
            "each step at least once",
        )
    outcome.fact("kills by step", ", ".join(f"{k}: {by_kind[k]}" for k in KILL_KINDS))
    outcome.fact(
        "transactions killed as their commit started",
        ", ".join(f"{n} {state}" for state, n in sorted(commit_outcomes.items())) or "none",
    )
    landed = Counter(k.landed for k in kills if k.kind == "random")
    outcome.fact("random kills landed", ", ".join(f"{w} x{n}" for w, n in landed.items()) or "none")


def _consumed_spans(router: RouterProcess, seen: Announcement) -> tuple[Span, ...]:
    """The batch of the transaction an announcement belongs to (its last ``consumed``)."""
    at = max(i for i, a in enumerate(router.announcements) if a is seen)
    for announcement in reversed(router.announcements[: at + 1]):
        if announcement.step == "consumed":
            return announcement.spans
    return ()


async def _settle(bus: Bus, successor: RouterProcess, kill: _Kill, config: ChaosConfig) -> str:
    """Did a transaction killed as its commit started commit? Once the successor has
    announced anything, its InitProducerId has completed or aborted it for good."""
    with contextlib.suppress(TimeoutError):
        await successor.wait_for(None, timeout_s=min(60.0, config.timeout_s))
    spans = {TopicPartition(t, p): (first, last) for t, p, first, last in kill.spans}
    committed = await committed_offsets(bus, spans)
    if spans and all(committed[tp] > last for tp, (_first, last) in spans.items()):
        return "committed" if kill.acknowledged else "committed, the router died before the answer"
    if all(committed[tp] <= first for tp, (first, _last) in spans.items()):
        return "aborted"
    return "partly committed (!)"


async def run_r2(workdir: Path, config: ChaosConfig) -> Outcome:
    """R2: SIGKILL the broker mid-stream and restart it on the same data, port and credentials."""
    outcome = Outcome("R2", "broker SIGKILLed mid-stream, restarted on its data")
    async with _scenario(outcome):
        broker = Broker(BrokerConfig(data_dir=workdir / "r2" / "broker"))
        broker.start()  # in this (main) thread: the JVM dies with us (PR_SET_PDEATHSIG)
        holder = [broker]
        try:
            async with _own_bus(broker.connection) as bus:
                await _r2(bus, holder, workdir / "r2", config, outcome)
        finally:
            holder[0].stop()
    return outcome


async def _r2(
    bus: Bus, holder: list[Broker], logs: Path, config: ChaosConfig, outcome: Outcome
) -> None:
    compiled = _compiled(bus)
    rng = random.Random(config.seed + 2)
    workload = Workload()
    source = BulletinSource(bus, compiled, config.seed + 2)
    # Input in parts: one before the first crash, one after each restart (so a router has
    # something to commit once the broker is back).
    parts = max(1, config.broker_kills) + 1
    sizes = [config.r2_bulletins // parts] * parts
    sizes[0] += config.r2_bulletins - sum(sizes)
    await send_records(bus, workload, source.take(sizes[0]))
    progress = Progress()
    router: RouterProcess | None = None
    restarts = 0
    lives = 0
    kills = 0
    try:
        for kill in range(config.broker_kills):
            variant = ("open transaction", "random moment")[kill % 2]
            if router is not None:
                code = await router.terminate()
                outcome.check(
                    f"router stops cleanly before broker kill {kill + 1}",
                    code == 0,
                    f"exit {code}",
                    "exit 0",
                )
            number = rng.randint(1, 4)
            lives += 1
            router = RouterProcess(
                bus,
                logs,
                f"r2-{kill}-{lives}",
                batch_max=config.batch_max,
                pause_at=f"pre-commit:{number}" if variant == "open transaction" else None,
                pause_ms=5_000,
                progress=progress,
            )
            await router.start()
            if variant == "open transaction":
                await router.wait_for("pre-commit", number, timeout_s=config.timeout_s)
            else:
                await router.wait_for("committed", number, timeout_s=config.timeout_s)
                # sleep-ok: the fault lands a random moment after a commit; the router
                # routes on meanwhile (its exit would end the wait early).
                await router.exited(rng.uniform(0.0, 0.2))
            mark = router.mark()
            killed_at = time.monotonic()
            holder[0].kill()
            kills += 1
            # sleep-ok: the broker stays down for a while, the router working against a dead
            # broker meanwhile (if it gives up and exits, the wait ends early).
            await router.exited(rng.uniform(1.0, 3.0))
            restarting_at = time.monotonic()
            holder[0] = Broker(holder[0].restart_config())
            holder[0].start()
            ready_at = time.monotonic()
            await send_records(bus, workload, source.take(sizes[kill + 1]))
            # Recovery: the router (or, if it gave up, its replacement) commits again.
            for _attempt in range(5):
                if router.returncode is not None:
                    restarts += 1
                    lives += 1
                    await router.close()
                    router = RouterProcess(
                        bus,
                        logs,
                        f"r2-{kill}-{lives}",
                        batch_max=config.batch_max,
                        progress=progress,
                    )
                    await router.start()
                    mark = 0
                try:
                    seen = await router.wait_for(
                        "committed", after=mark, timeout_s=config.timeout_s
                    )
                    break
                except ChaosError:
                    continue  # it exited: start another
            else:
                raise ChaosError("no router committed after the broker came back (5 tries)")
            recovered_at = router.arrived(seen)
            outcome.fact(
                f"broker kill {kill + 1} ({variant})",
                f"down {restarting_at - killed_at:.1f} s, restart to ready "
                f"{ready_at - restarting_at:.1f} s, first commit {recovered_at - ready_at:.1f} s "
                "after ready",
            )
        if config.broker_kills == 0:
            await send_records(bus, workload, source.take(sizes[1]))
        if router is not None and router.returncode is not None:
            restarts += 1
            await router.close()
            router = None
        await _finish(bus, outcome, workload, progress, config, logs, "r2-final", router)
        router = None
    finally:
        if router is not None:
            await router.close()
    wanted = max(1, config.broker_kills)
    outcome.check("broker SIGKILLs", kills >= wanted, f"{kills}", f">= {wanted}")
    outcome.fact("routers that gave up while the broker was down", f"{restarts}")
    outcome.fact(
        "bulletins",
        f"{config.r2_bulletins:,} ({', '.join(f'{n:,}' for n in sizes)}: before the first crash "
        "and after each restart)",
    )


async def run_r3(admin: KafkaConnection, workdir: Path, config: ChaosConfig) -> Outcome:
    """R3: a zombie router (SIGSTOP) and its successor with the same instance number."""
    outcome = Outcome("R3", "zombie router fenced by its successor")
    async with _scenario(outcome), _own_bus(admin) as bus:
        await _r3(bus, workdir / "r3", config, outcome)
    return outcome


async def _r3(bus: Bus, logs: Path, config: ChaosConfig, outcome: Outcome) -> None:
    compiled = _compiled(bus)
    rng = random.Random(config.seed + 3)
    workload = Workload()
    source = BulletinSource(bus, compiled, config.seed + 3)
    progress = Progress()
    per_round = max(8 * config.batch_max, config.r3_bulletins // max(1, config.zombie_rounds))
    order = ("pre-commit", "begun", "consumed")
    fenced: list[str] = []
    for round_ in range(config.zombie_rounds):
        step = order[round_ % len(order)]
        await send_records(bus, workload, source.take(per_round * 3 // 4))
        number = rng.randint(0, 2)
        zombie = RouterProcess(
            bus,
            logs,
            f"r3-{round_}-zombie",
            batch_max=config.batch_max,
            pause_at=f"{step}:{number}",
            pause_ms=2_000,
            progress=progress,
        )
        successor = RouterProcess(
            bus, logs, f"r3-{round_}-successor", batch_max=config.batch_max, progress=progress
        )
        try:
            await zombie.start()
            await zombie.wait_for(step, number, timeout_s=config.timeout_s)
            zombie.signal(signal.SIGSTOP)  # frozen inside its pause, mid-transaction
            await successor.start()
            # Its InitProducerId fenced the zombie (and aborted its open transaction).
            await successor.wait_for("committed", timeout_s=config.timeout_s)
            resumed = zombie.mark()
            zombie.signal(signal.SIGCONT)
            code = await zombie.exited(timeout_s=120.0)
            log = zombie.log_text()
            after = [a for a in zombie.announcements[resumed:] if a.step == "committed"]
            where = f"zombie frozen at {step} {number}"
            outcome.check(
                f"{where}: exits once resumed", code not in (None, 0), f"exit {code}", "non-zero"
            )
            outcome.check(
                f"{where}: fenced",
                "ProducerFencedError" in log,
                "ProducerFencedError" if "ProducerFencedError" in log else "not fenced",
                "ProducerFencedError",
            )
            outcome.none(f"{where}: commits after resuming", after)
            # A fenced transaction's deliveries are closed, not left for the garbage
            # collector to report. (aiokafka still logs a few of its own futures' fencing
            # errors as "never retrieved": upstream, not counted here.)
            unawaited = [line for line in log.splitlines() if "was never awaited" in line]
            outcome.none(f"{where}: deliveries left unawaited in its log", unawaited)
            if "ProducerFencedError" in log:
                fenced.append(step)
            # The successor goes on: more input, routed by it alone.
            mark = successor.mark()
            await send_records(bus, workload, source.take(per_round - per_round * 3 // 4))
            await successor.wait_for("committed", after=mark, timeout_s=config.timeout_s)
            await drain(bus, successor, workload, progress, timeout_s=config.timeout_s)
            outcome.check(
                f"{where}: successor still routing",
                successor.returncode is None,
                "running" if successor.returncode is None else f"exit {successor.returncode}",
                "running",
            )
            code = await successor.terminate()
            outcome.check(
                f"round {round_ + 1}: successor stops cleanly", code == 0, f"exit {code}", "exit 0"
            )
        finally:
            await zombie.close()
            await successor.close()
    judge(outcome, workload, await observe(bus))
    outcome.fact("zombies fenced", f"{len(fenced)} of {config.zombie_rounds} ({', '.join(fenced)})")
    outcome.fact("bulletins", f"{len(workload.inputs):,}")


async def run_f1(admin: KafkaConnection, workdir: Path, config: ChaosConfig) -> Outcome:
    """F1: fuzzed records interleaved with valid bulletins."""
    outcome = Outcome("F1", "malformed inbound records (hypothesis)")
    async with _scenario(outcome), _own_bus(admin) as bus:
        await _f1(bus, workdir / "f1", config, outcome)
    return outcome


async def _f1(bus: Bus, logs: Path, config: ChaosConfig, outcome: Outcome) -> None:
    compiled = _compiled(bus)
    rng = random.Random(config.seed + 4)
    context = FuzzContext(
        schema=bus.schema,
        codec=bus.codec,
        bulletin_schema_id=bus.bulletin_schema_id,
        view_schema_id=bus.view_schema_id,
        agencies={s: bus.agency(s) for s in SOURCES},
    )
    started = time.monotonic()
    samples = draw_samples(context, config.fuzz_examples, config.seed)
    outcome.fact(
        "malformed records drawn",
        f"{len(samples):,} by hypothesis in {time.monotonic() - started:.1f} s",
    )
    records: list[Outgoing] = []
    category_misses: list[tuple[str, str | None]] = []
    unhandled: list[str] = []
    for sample in samples:
        agency = bus.agency(sample.source)
        try:
            expectation = oracle(bus, compiled, agency, sample.value)
        except Exception as exc:  # noqa: BLE001 - what the router's decode path would not survive
            unhandled.append(f"{sample.label}: {type(exc).__name__}")
            expectation = Expectation("rejected", value=sample.value)
        expectation = Expectation(
            expectation.outcome,
            expectation.reason,
            expectation.bulletin_id,
            expectation.recipients,
            expectation.value,
            sample.label,
        )
        if (sample.must_reject and expectation.outcome != "rejected") or (
            sample.reason is not None and expectation.reason != sample.reason
        ):
            category_misses.append((sample.label, expectation.reason))
        records.append(Outgoing(agency, sample.key, sample.value, expectation))
    source = BulletinSource(bus, compiled, config.seed + 4)
    records.extend(source.take(config.fuzz_good))
    rng.shuffle(records)
    outcome.none("records the decode path cannot handle", unhandled)
    outcome.none("samples whose category the router's rules contradict", category_misses)

    progress = Progress()
    workload = Workload()
    router = RouterProcess(bus, logs, "f1", batch_max=config.batch_max, progress=progress)
    await router.start()
    try:
        await send_records(bus, workload, records)
        await drain(bus, router, workload, progress, timeout_s=config.timeout_s)
        # Still alive and still committing: a few more valid bulletins must go through.
        mark = router.mark()
        await send_records(bus, workload, source.take(5))
        await router.wait_for("committed", after=mark, timeout_s=config.timeout_s)
        await drain(bus, router, workload, progress, timeout_s=config.timeout_s)
        alive = router.returncode is None
        outcome.check(
            "router alive and committing after the fuzz",
            alive,
            "yes" if alive else f"exit {router.returncode}",
            "yes",
        )
        code = await router.terminate()
    finally:
        await router.close()
    outcome.check("the router stops cleanly on SIGTERM", code == 0, f"exit {code}", "exit 0")
    observed = await observe(bus)
    judge(outcome, workload, observed)
    labels = Counter(e.label for e in workload.inputs.values())
    outcome.fact("records sent", ", ".join(f"{label} {n}" for label, n in sorted(labels.items())))
    reasons = Counter(d.reason for d in observed.dead_letters)
    outcome.fact(
        "dead letters by reason", ", ".join(f"{r} {n}" for r, n in sorted(reasons.items(), key=str))
    )
    routed = sum(1 for e in workload.inputs.values() if e.outcome == "accepted")
    outcome.fact("routed (valid) records", f"{routed:,}")


SCENARIOS: dict[str, str] = {
    "R1": "SIGKILL the router at each step of a transaction and at random moments",
    "R2": "SIGKILL the broker mid-stream, restart it on the same data",
    "R3": "zombie router: SIGSTOP, successor with the same instance, SIGCONT",
    "F1": "fuzz the from-topics with malformed records",
}


async def run_scenarios(
    names: Sequence[str],
    admin: KafkaConnection | None,
    workdir: Path,
    config: ChaosConfig,
    *,
    announce: Callable[[str], None] = lambda _line: None,
) -> list[Outcome]:
    """Run the named scenarios in order on the broker ``admin`` administers (R2 starts
    a broker of its own, which it kills)."""
    outcomes = []
    for name in names:
        announce(f"{name}: {SCENARIOS[name]}")
        if name == "R2":
            outcome = await run_r2(workdir, config)
        else:
            assert admin is not None, f"{name} needs a broker"
            run = {"R1": run_r1, "R3": run_r3, "F1": run_f1}[name]
            outcome = await run(admin, workdir, config)
        announce(
            f"{name}: {'ok' if outcome.ok else 'VIOLATED'} in {outcome.seconds:.0f} s "
            f"({len(outcome.violations)} violation(s))"
        )
        outcomes.append(outcome)
    return outcomes


# -- the verdict -------------------------------------------------------------------------------


def verdict_table(outcomes: Sequence[Outcome]) -> Table:
    table = Table(title="Chaos verdict", show_lines=False)
    for column in ("scenario", "check", "expected", "observed", "verdict"):
        table.add_column(column, overflow="fold")
    for outcome in outcomes:
        for check in outcome.checks:
            verdict = "[green]ok[/]" if check.ok else "[bold red]VIOLATED[/]"
            table.add_row(
                outcome.scenario,
                escape(check.name),
                escape(check.expected),
                escape(check.observed),
                verdict,
            )
        table.add_section()
    return table


def facts_table(outcomes: Sequence[Outcome]) -> Table:
    table = Table(title="What was done and measured")
    for column in ("scenario", "fact", "value"):
        table.add_column(column, overflow="fold")
    for outcome in outcomes:
        table.add_row(outcome.scenario, "scenario", outcome.title)
        for name, value in outcome.facts:
            table.add_row(outcome.scenario, escape(name), escape(value))
        table.add_row(outcome.scenario, "duration", f"{outcome.seconds:.1f} s")
        verdict = (
            "[green]PASS[/]" if outcome.ok else f"[bold red]FAIL ({len(outcome.violations)})[/]"
        )
        table.add_row(outcome.scenario, "verdict", verdict)
        table.add_section()
    return table


def print_verdicts(outcomes: Sequence[Outcome], console: Console | None = None) -> None:
    console = console or Console()
    console.print(facts_table(outcomes))
    console.print(verdict_table(outcomes))
    for outcome in outcomes:
        for error in outcome.errors:
            console.print(f"[bold red]{outcome.scenario} stopped:[/]\n{escape(error)}")
    violations = sum(len(o.violations) for o in outcomes)
    if violations:
        console.print(f"[bold red]{violations} violation(s)[/]")
    else:
        console.print(f"[green]no violations in {len(outcomes)} scenario(s)[/]")
