"""Liaison's benchmark: the edge router against plain Kafka, every number from one run.

    make bench                                   # the full run
    .venv/bin/python benchmarks/run.py --quick   # a smaller one (a few minutes)

One broker (``bus.broker``, started here), one seeded workload: the five bulletin kinds as
the generator mixes them, padded to a 1 KB median record (log-normal sizes), markings
CLEAR/GREEN/AMBER/AMBER+STRICT/RED, one source agency and 4 or 16 recipients, under a policy
that uses every redaction action (drop, mask, pseudonymize, generalize, truncate).

Contenders, interleaved round by round in a rotating order so that machine drift and the
broker's warm-up fall on all of them alike (throughput is timed from the first committed
batch to the last input committed, so start-up is not counted):

* B0: plain consume -> produce to one topic, offsets committed by the consumer;
* B1: the same inside a transaction per batch (offsets in the transaction);
* B2: a transaction per batch that writes each input to every recipient's topic plus one
  audit record: the router's Kafka work without decoding, policy, redaction or encoding;
* router: the edge router (``bus.edge``) with its audit chain and signed checkpoints.

Then: end-to-end latency of B2 and the router at half the router's measured maximum
(p50/p99/p99.9 from producer send to a ``read_committed`` consumer of one recipient);
scaling of 1 vs 2 router processes over an 8-partition inbound topic; the router process's
RSS sampled across ``--memory-bulletins``; and a cProfile of the router at full speed,
saved beside the results, whose five largest costs the summary names.

Results: ``benchmarks/results/<date>.json``, ``<date>.md`` and ``<date>-router.prof``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import math
import os
import platform
import pstats
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from bus.broker import Broker, BrokerConfig
from bus.bulletin import Bulletin, Marking, Status
from bus.edge import owner_of
from bus.kafka import Consumer, KafkaConnection, Producer, RecordMetadata, TopicPartition
from bus.policy import compile_policy, parse_policy
from bus.sandbox import Bus, build_bus, running_edge, teardown_bus

BATCH = 200
INTERVAL_MS = 100
MEDIAN_BYTES = 1024
RESULTS = Path(__file__).parent / "results"
SHORTS = "bcdefghijklmnopqrstuvwxyz"
console = Console(stderr=True)

# -- the workload -------------------------------------------------------------------------

_FILLER = (
    "Fictional exercise text for the benchmark: river levels, road closures, shelter "
    "capacity and staffing as reported by an imaginary agency. "
)
_TEXT_FIELDS = {
    "alert": "instruction",
    "notice": "text",
    "request_for_information": "context",
    "rfi_response": "answer",
    "situation_report": "summary",
}


def recipients_of(bus: Bus) -> list[str]:
    return sorted(a for a in bus.agencies if a != bus.agency("a"))


def workload(bus: Bus, count: int, seed: int) -> list[tuple[bytes, bytes]]:
    return [(key, value) for key, value, _b in bulletins(bus, count, seed)]


def bulletins(bus: Bus, count: int, seed: int) -> list[tuple[bytes, bytes, Bulletin]]:
    """``count`` encoded bulletins (key, value) from source agency a: sizes log-normal around
    a 1 KB median, markings mixed, one in twenty an exercise."""
    rng = random.Random(seed)  # noqa: S311 - a seeded workload, not a secret
    recipients = recipients_of(bus)
    markings = [Marking.CLEAR, Marking.GREEN, Marking.AMBER, Marking.AMBER_STRICT, Marking.RED]
    weights = [10, 45, 30, 10, 5]
    out: list[tuple[bytes, bytes, Bulletin]] = []
    for b in bus.generator("a", seed=seed).stream(count):
        marking = rng.choices(markings, weights)[0]
        update: dict[str, Any] = {
            "marking": marking,
            "status": Status.EXERCISE if rng.random() < 0.05 else Status.ACTUAL,
        }
        if marking is Marking.RED:
            update["releasable_to"] = [rng.choice(recipients)]
        b = b.model_copy(update=update)
        value = _encode(bus, b)
        target = min(int(rng.lognormvariate(math.log(MEDIAN_BYTES), 0.5)), 8 * MEDIAN_BYTES)
        if len(value) < target:
            b = _padded(b, target - len(value))
            value = _encode(bus, b)
        out.append((b.bulletin_id.encode(), value, b))
    return out


def _encode(bus: Bus, b: Bulletin) -> bytes:
    return bus.codec.encode(bus.bulletin_schema_id, bus.schema.to_avro(b))


def _padded(b: Bulletin, extra: int) -> Bulletin:
    name = _TEXT_FIELDS[b.kind]
    text = str(b.body.get(name) or "")
    filler = (_FILLER * (extra // len(_FILLER) + 1))[:extra]
    return b.model_copy(update={"body": {**b.body, name: text + " " + filler}})


def policy(bus: Bus) -> dict[str, Any]:
    """Every action: half the recipients get rule one's redactions, half rule two's."""
    recipients = recipients_of(bus)
    half = len(recipients) // 2
    return bus.policy(
        [
            {
                "id": "responders",
                "source": {"agencies": [bus.agency("a")]},
                "recipients": {"agencies": recipients[:half]},
                "kinds": ["*"],
                "max_marking": "AMBER+STRICT",
                "redact": [
                    {"tag": "contact", "action": "pseudonymize"},
                    {"field": "body.persons_involved", "action": "drop"},
                    {"field": "body.incident_location", "action": "generalize", "grid_km": 10},
                ],
            },
            {
                "id": "partners",
                "source": {"agencies": [bus.agency("a")]},
                "recipients": {"agencies": recipients[half:]},
                "kinds": ["*"],
                "max_marking": "AMBER",
                "redact": [
                    {"tag": "pii", "action": "mask", "token": "[withheld]"},
                    {"field": "body.casualties.displaced", "action": "generalize", "bucket": 10},
                    {"field": "body.summary", "action": "truncate", "max_chars": 280},
                ],
            },
        ]
    )


async def produce(
    bus: Bus, records: Sequence[tuple[bytes, bytes]], rate: float | None = None
) -> dict[bytes, float]:
    """Send ``records`` as agency a (at ``rate`` per second if given); key -> send time."""
    a = bus.agency("a")
    topic = bus.names.inbound(a)
    sent: dict[bytes, float] = {}
    async with Producer(bus.agencies[a]) as producer:
        pending: list[Awaitable[RecordMetadata]] = []
        start = time.perf_counter()
        for i, (key, value) in enumerate(records):
            if rate is not None:
                delay = start + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)  # sleep-ok: pacing the producer, not a wait
            sent[key] = time.perf_counter()
            pending.append(await producer.enqueue(topic, value, key=key))
        for p in pending:
            await p
    return sent


# -- the contenders -----------------------------------------------------------------------

Progress_ = Callable[[int], None]
Contender = Callable[[Bus, asyncio.Event, Progress_], Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class Passthrough:
    """What a baseline reads and writes: B0 (neither flag), B1 (transactional), B2 (both:
    every input to every recipient's topic plus one audit record, in one transaction)."""

    transactional: bool
    fan_out: bool

    def spec(self, bus: Bus) -> dict[str, Any]:
        outs = [bus.names.outbound(r) for r in recipients_of(bus)]
        return {
            "source": bus.names.inbound(bus.agency("a")),
            "outs": outs if self.fan_out else outs[:1],
            "audit": bus.names.audit if self.fan_out else None,
            "group": bus.names.edge_group,
            "transactional_id": (
                bus.names.edge_transactional_id(99) if self.transactional else None
            ),
        }

    async def __call__(self, bus: Bus, stop: asyncio.Event, progress: Progress_) -> None:
        await passthrough(bus.edge, self.spec(bus), stop, progress)


async def passthrough(
    connection: KafkaConnection, spec: dict[str, Any], stop: asyncio.Event, progress: Progress_
) -> None:
    source, outs, audit, group = spec["source"], spec["outs"], spec["audit"], spec["group"]
    transactional = spec["transactional_id"] is not None
    consumer = Consumer(connection, group_id=group)
    producer = Producer(connection, transactional_id=spec["transactional_id"])
    async with consumer, producer:
        partitions = (await consumer.topic_partitions())[source]
        tps = [TopicPartition(source, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=INTERVAL_MS, max_records=BATCH)
            if not batch:
                continue
            offsets = {TopicPartition(r.topic, r.partition): r.offset + 1 for r in batch}
            if transactional:
                await producer.begin_transaction()
                await producer.send_offsets_to_transaction(offsets, group)
            pending: list[Awaitable[RecordMetadata]] = []
            for record in batch:
                for topic in outs:
                    pending.append(await producer.enqueue(topic, record.value, key=record.key))
                if audit is not None:
                    event = {"offset": record.offset, "partition": record.partition}
                    pending.append(await producer.enqueue(audit, json.dumps(event).encode()))
            for p in pending:
                await p
            if transactional:
                await producer.commit_transaction()
            else:
                await consumer.commit(offsets)
            progress(len(batch))


async def router(bus: Bus, stop: asyncio.Event, progress: Progress_) -> None:
    async with running_edge(bus, batch_max=BATCH, commit_interval_ms=INTERVAL_MS) as edge:
        seen = 0
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.02)
            now = edge.stats["bulletins"]
            if now != seen:
                progress(now - seen)
                seen = now


CONTENDERS: dict[str, Contender] = {
    "B0": Passthrough(transactional=False, fan_out=False),
    "B1": Passthrough(transactional=True, fan_out=False),
    "B2": Passthrough(transactional=True, fan_out=True),
    "router": router,
}


@dataclass
class Lab:
    """The broker, the workload cache and the progress bar shared by every measurement."""

    broker: Broker
    args: argparse.Namespace
    progress: Progress
    task: Any
    buses: list[Bus] = field(default_factory=list)

    async def bus(self, recipients: int, *, partitions: int = 1) -> Bus:
        shorts = ("a", *SHORTS[:recipients])
        bus = await build_bus(self.broker.connection, shorts, partitions=partitions)
        await bus.publish_policy(policy(bus))
        self.buses.append(bus)
        return bus

    def advance(self, n: int = 1) -> None:
        self.progress.advance(self.task, n)

    def say(self, text: str) -> None:
        self.progress.update(self.task, description=text)
        if not console.is_terminal:  # no live bar in a log: one line per step instead
            console.print(f"{time.strftime('%H:%M:%S')} {text}")

    def cleanup(self) -> None:
        for bus in self.buses:
            with contextlib.suppress(Exception):
                teardown_bus(bus)
        self.buses.clear()


async def throughput(
    lab: Lab, bus: Bus, contender: Contender, n: int, profile: cProfile.Profile | None = None
) -> float:
    """Bulletins per second, from the first committed batch to the last input committed."""
    await produce(bus, workload(bus, n, seed=lab.args.seed))
    done = asyncio.Event()
    first: list[tuple[float, int]] = []
    processed = 0

    def progress(count: int) -> None:
        nonlocal processed
        processed += count
        if not first:
            first.append((time.perf_counter(), processed))
        if processed >= n:
            done.set()

    stop = asyncio.Event()
    if profile is not None:
        profile.enable()
    task = asyncio.create_task(contender(bus, stop, progress))
    try:
        await asyncio.wait_for(done.wait(), 1800)
        finished = time.perf_counter()
    finally:
        stop.set()
        await task
        if profile is not None:
            profile.disable()
    started, counted = first[0]
    return (n - counted) / (finished - started)


async def latency(
    lab: Lab, bus: Bus, contender: Contender, rate: float, n: int
) -> dict[str, float]:
    """End-to-end latency percentiles (ms) at ``rate`` bulletins per second."""
    sample = bulletins(bus, n, seed=lab.args.seed + 1)
    records = [(key, value) for key, value, _b in sample]
    first = recipients_of(bus)[0]
    compiled = compile_policy(parse_policy(policy(bus)), bus.schema, bus.keys)
    expected = {
        key
        for key, _v, b in sample
        if any(view.recipient == first for view in compiled.evaluate(b).views)
    }
    received: dict[bytes, float] = {}
    ready = asyncio.Event()

    async def receive() -> None:
        async with Consumer(bus.agencies[first], bus.names.outbound(first)) as consumer:
            ready.set()
            deadline = time.perf_counter() + n / rate + 60
            while time.perf_counter() < deadline and not expected <= received.keys():
                for record in await consumer.getmany(timeout_ms=100):
                    received.setdefault(record.key or b"", time.perf_counter())

    # The contender runs in a process of its own: in this one, its CPU work would delay
    # the receiver's clock and count as latency.
    passthrough = contender if isinstance(contender, Passthrough) else None
    async with RouterProcess(bus, passthrough=passthrough) as proc:
        receiver = asyncio.create_task(receive())
        await asyncio.wait_for(ready.wait(), 60)
        # warm-up: the process is up and routing once one bulletin went through
        warm = bulletins(bus, 1, seed=lab.args.seed + 2)
        await produce(bus, [(k, v) for k, v, _b in warm])
        await wait_committed(bus, 1, 120, lambda _d: None, [proc])
        sent = await produce(bus, records, rate=rate)
        await asyncio.wait_for(receiver, n / rate + 120)
    lat = sorted((received[k] - t) * 1000 for k, t in sent.items() if k in received)
    if not lat:
        raise RuntimeError("no bulletin reached the measured recipient")

    def pct(q: float) -> float:
        return lat[min(len(lat) - 1, int(len(lat) * q))]

    return {"p50": pct(0.5), "p99": pct(0.99), "p999": pct(0.999), "samples": len(lat)}


# -- router processes (scaling, memory) ---------------------------------------------------


class RouterProcess:
    """``liaison edge run`` as a process of its own, as deployed (or, with ``passthrough``,
    a baseline in a process of its own: ``run.py --serve-passthrough``)."""

    def __init__(
        self,
        bus: Bus,
        *,
        instance: int = 0,
        instances: int = 1,
        code: Path | None = None,
        passthrough: Passthrough | None = None,
    ) -> None:
        """``code``: a checkout whose ``bus`` package to run instead of this one's."""
        self.bus = bus
        self.code = code
        self.passthrough = passthrough
        self.instance = instance
        self.instances = instances
        self.proc: asyncio.subprocess.Process | None = None
        self.log = Path(tempfile.mkdtemp(prefix="liaison-bench-router-")) / "stderr.log"

    async def __aenter__(self) -> RouterProcess:
        bus = self.bus
        env = bus.edge_env()
        if self.code is not None:
            env["PYTHONPATH"] = str(self.code)
        command = ["-m", "bus.cli", "edge", "run"]
        command += ["--instance", str(self.instance), "--of", str(self.instances)]
        if self.passthrough is not None:
            env["LIAISON_BENCH_SPEC"] = json.dumps(self.passthrough.spec(bus))
            command = [__file__, "--serve-passthrough"]
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *command,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=self.log.open("wb"),
            env=env,
            cwd=self.code,
        )
        return self

    def check(self) -> None:
        """Raise with the end of the router's log if it has exited."""
        assert self.proc is not None
        if self.proc.returncode is not None:
            tail = self.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"router {self.instance} exited ({self.proc.returncode}):\n{tail}")

    async def __aexit__(self, *_exc: object) -> None:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(self.proc.wait(), 60)

    def rss_mb(self) -> float:
        assert self.proc is not None
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
        return kb / 1024


async def committed_total(bus: Bus) -> int:
    """Inputs the edge group has committed, over every inbound partition of agency a."""
    source = bus.names.inbound(bus.agency("a"))
    async with Consumer(bus.admin, group_id=bus.names.edge_group) as consumer:
        partitions = (await consumer.topic_partitions())[source]
        total = 0
        for p in partitions:
            total += await consumer.committed(TopicPartition(source, p)) or 0
        return total


async def wait_committed(
    bus: Bus,
    n: int,
    timeout_s: float,
    tick: Callable[[int], None],
    routers: Sequence[RouterProcess],
) -> None:
    """Poll the edge group's committed offsets until ``n`` inputs are committed."""
    deadline = time.perf_counter() + timeout_s
    while (done := await committed_total(bus)) < n:
        tick(done)
        for r in routers:
            r.check()
        if time.perf_counter() > deadline:
            raise TimeoutError(f"only {done} of {n} inputs committed in {timeout_s:.0f} s")
        await asyncio.sleep(0.05)  # sleep-ok: a deadline poll of another process's progress
    tick(done)


async def scaling(lab: Lab, n: int) -> dict[str, Any]:
    """1 vs 2 router processes over an 8-partition inbound topic (same backlog each)."""
    rates: dict[int, list[float]] = {1: [], 2: []}
    split: list[int] = []
    for round_ in range(lab.args.rounds):
        for instances in (1, 2) if round_ % 2 == 0 else (2, 1):
            bus = await lab.bus(4, partitions=8)
            await produce(bus, workload(bus, n, seed=lab.args.seed))
            source = bus.names.inbound(bus.agency("a"))
            split = [
                sum(owner_of(source, p, instances) == i for p in range(8)) for i in range(instances)
            ]
            first: list[tuple[float, int]] = []

            def tick(done: int, first: list[tuple[float, int]] = first) -> None:
                if done and not first:
                    first.append((time.perf_counter(), done))

            async with contextlib.AsyncExitStack() as stack:
                routers = [
                    await stack.enter_async_context(
                        RouterProcess(bus, instance=i, instances=instances)
                    )
                    for i in range(instances)
                ]
                await wait_committed(bus, n, 1800, tick, routers)
            started, counted = first[0]
            rates[instances].append((n - counted) / (time.perf_counter() - started))
            lab.cleanup()
            lab.advance()
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    return {
        "one": one,
        "two": two,
        "ratio": two / one,
        "rounds": rates,
        "partitions_per_instance": split,
        "note": "timed from the first committed batch to the last input committed",
    }


async def process_throughput(lab: Lab, n: int, code: Path | None) -> float:
    """One router process (of this checkout or of ``code``) over a backlog of ``n``."""
    bus = await lab.bus(lab.args.compare_recipients)
    await produce(bus, workload(bus, n, seed=lab.args.seed))
    first: list[tuple[float, int]] = []

    def tick(done: int) -> None:
        if done and not first:
            first.append((time.perf_counter(), done))

    async with RouterProcess(bus, code=code) as proc:
        await wait_committed(bus, n, 1800, tick, [proc])
    finished = time.perf_counter()
    lab.cleanup()
    started, counted = first[0]
    return (n - counted) / (finished - started)


async def compare(lab: Lab, rev: str, n: int) -> dict[str, Any]:
    """This checkout's router against revision ``rev``'s, both as processes, interleaved."""
    sha = _git("rev-parse", "--short", rev).strip()
    tree = Path(tempfile.mkdtemp(prefix=f"liaison-bench-{sha}-"))
    _git("worktree", "add", "--detach", str(tree), sha)
    try:
        runs: dict[str, list[float]] = {"before": [], "after": []}
        for order in _rotations(["before", "after"], lab.args.rounds):
            for which in order:
                lab.say(f"before/after: router at {sha} vs this checkout: {which}")
                code = tree if which == "before" else None
                runs[which].append(await process_throughput(lab, n, code))
                lab.advance()
    finally:
        _git("worktree", "remove", "--force", str(tree))
    paired = [a / b for a, b in zip(runs["after"], runs["before"], strict=True)]
    return {
        "revision": sha,
        "recipients": lab.args.compare_recipients,
        "before": statistics.median(runs["before"]),
        "after": statistics.median(runs["after"]),
        "ratio": statistics.median(paired),
        "rounds": runs,
    }


def _git(*args: str) -> str:
    root = Path(__file__).resolve().parent.parent
    return subprocess.run(
        ["git", *args], cwd=root, check=True, capture_output=True, text=True
    ).stdout


async def memory(lab: Lab, n: int) -> dict[str, Any]:
    """The router process's RSS across ``n`` bulletins, produced in chunks ahead of it."""
    bus = await lab.bus(4)
    chunk = 20_000
    samples: list[tuple[int, float]] = []
    async with RouterProcess(bus) as proc:
        sent = 0
        while sent < n:
            size = min(chunk, n - sent)
            await produce(bus, workload(bus, size, seed=lab.args.seed + sent))
            sent += size
            # keep at most two chunks of backlog: the disk and the producer stay small
            await wait_committed(bus, max(0, sent - chunk), 3600, lambda _d: None, [proc])
            samples.append((await committed_total(bus), proc.rss_mb()))
            lab.advance(size)
        await wait_committed(bus, n, 3600, lambda _d: None, [proc])
        samples.append((n, proc.rss_mb()))
    lab.cleanup()
    rss = [mb for _n, mb in samples]
    tail = samples[len(samples) // 10 :]
    slope = _slope(tail)
    return {
        "bulletins": n,
        "rss_mb_first": rss[0],
        "rss_mb_max": max(rss),
        "rss_mb_last": rss[-1],
        "growth_mb_per_100k": slope * 100_000,
        "samples": samples,
    }


def _slope(points: Sequence[tuple[int, float]]) -> float:
    if len(points) < 2:
        return 0.0
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in points) / den if den else 0.0


# -- the run ------------------------------------------------------------------------------


def _rotations(names: Sequence[str], rounds: int) -> Iterator[list[str]]:
    for r in range(rounds):
        shift = r % len(names)
        yield [*names[shift:], *names[:shift]]


def top_costs(profile: cProfile.Profile, count: int = 5) -> list[dict[str, Any]]:
    """The functions with the most time of their own (not counting the event loop's wait)."""
    stats = pstats.Stats(profile, stream=io.StringIO())
    rows = []
    for (filename, line, name), (_cc, calls, tottime, cumtime, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if "poll" in name or "selectors" in filename:
            continue  # idle: waiting for the broker
        short = filename.split("site-packages/")[-1].split("/work/main/")[-1]
        rows.append(
            {
                "function": f"{short}:{line}({name})",
                "calls": calls,
                "own_s": tottime,
                "cum_s": cumtime,
            }
        )
    rows.sort(key=lambda r: -float(r["own_s"]))
    return rows[:count]


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    fanouts = [int(x) for x in args.recipients.split(",") if x.strip()]
    steps = (
        len(fanouts) * args.rounds * len(CONTENDERS)  # throughput
        + len(fanouts) * 2  # latency
        + 1  # profile
        + (2 * args.rounds if args.scaling else 0)
        + (2 * args.rounds if args.compare else 0)
    )
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "workload": {
            "bulletins": args.bulletins,
            "seed": args.seed,
            "median_bytes_target": MEDIAN_BYTES,
            "batch": BATCH,
            "interval_ms": INTERVAL_MS,
            "rounds": args.rounds,
        },
    }
    with (
        Broker(BrokerConfig(data_dir=Path(tempfile.mkdtemp(prefix="liaison-bench-")))) as broker,
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=console,
        ) as bar,
    ):
        lab = Lab(broker, args, bar, bar.add_task("starting", total=steps))
        probe = await lab.bus(4)
        sizes = sorted(len(v) for _k, v in workload(probe, 2000, seed=args.seed))
        results["workload"]["median_bytes"] = sizes[len(sizes) // 2]
        lab.cleanup()
        for fan in fanouts:
            runs: dict[str, list[float]] = {name: [] for name in CONTENDERS}
            for order in _rotations(list(CONTENDERS), args.rounds):
                for name in order:
                    lab.say(f"throughput, {fan} recipients: {name}")
                    bus = await lab.bus(fan)
                    runs[name].append(await throughput(lab, bus, CONTENDERS[name], args.bulletins))
                    lab.cleanup()
                    lab.advance()
            med = {name: statistics.median(r) for name, r in runs.items()}
            paired = [r / b for r, b in zip(runs["router"], runs["B2"], strict=True)]
            rate = med["router"] / 2
            lat: dict[str, Any] = {}
            for name in ("B2", "router"):
                lab.say(f"latency, {fan} recipients at {rate:.0f}/s: {name}")
                bus = await lab.bus(fan)
                n = max(args.latency_bulletins, int(rate * 5))
                lat[name] = await latency(lab, bus, CONTENDERS[name], rate, n)
                lab.cleanup()
                lab.advance()
            results[f"recipients_{fan}"] = {
                "throughput": med,
                "throughput_rounds": runs,
                "router_to_B2": statistics.median(paired),
                "router_to_B2_rounds": paired,
                "latency_rate": rate,
                "latency_ms": lat,
                "added_p99_ms": lat["router"]["p99"] - lat["B2"]["p99"],
                "added_p50_ms": lat["router"]["p50"] - lat["B2"]["p50"],
            }
        lab.say("profile of the router at full speed (4 recipients)")
        profile = cProfile.Profile()
        bus = await lab.bus(4)
        rate = await throughput(lab, bus, router, args.bulletins, profile)
        lab.cleanup()
        lab.advance()
        stamp = args.name
        RESULTS.mkdir(exist_ok=True)
        profile.dump_stats(RESULTS / f"{stamp}-router.prof")
        results["profile"] = {
            "file": f"{stamp}-router.prof",
            "bulletins_per_s_under_profiler": rate,
            "top": top_costs(profile),
        }
        if args.compare:
            results["before_after"] = await compare(lab, args.compare, args.scaling_bulletins)
        if args.scaling:
            lab.say("scaling: 1 vs 2 router processes")
            results["scaling"] = await scaling(lab, args.scaling_bulletins)
        if args.memory_bulletins:
            lab.say(f"memory: router RSS over {args.memory_bulletins:,} bulletins")
            bar.update(lab.task, total=steps + args.memory_bulletins)
            results["memory"] = await memory(lab, args.memory_bulletins)
        lab.say("done")
    return results


def summary(results: dict[str, Any]) -> str:
    w = results["workload"]
    lines = [
        f"# Liaison benchmark, {results['date']}",
        "",
        f"{results['machine']['cpus']} CPUs, Python {results['machine']['python']}; "
        f"{w['bulletins']:,} bulletins per throughput run (median {w['median_bytes']} bytes), "
        f"batches of {w['batch']} / {w['interval_ms']} ms, medians of {w['rounds']} rounds "
        "interleaved in a rotating order.",
        "",
    ]
    fans = sorted(
        int(k.removeprefix("recipients_")) for k in results if k.startswith("recipients_")
    )
    for key in (f"recipients_{fan}" for fan in fans):
        r = results[key]
        fan = key.removeprefix("recipients_")
        t = r["throughput"]
        lines += [
            f"## 1 source -> {fan} recipients",
            "",
            "| contender | bulletins/s | / B2 |",
            "|---|---:|---:|",
        ]
        for name, value in t.items():
            lines.append(f"| {name} | {value:,.0f} | {value / t['B2']:.2f} |")
        ratios = r["router_to_B2_rounds"]
        lat = r["latency_ms"]
        lines += [
            "",
            f"Router / B2 (median of paired rounds): **{r['router_to_B2']:.2f}** "
            f"(rounds {min(ratios):.2f}-{max(ratios):.2f}).",
            "",
            f"Latency at {r['latency_rate']:.0f} bulletins/s (half the router's maximum), ms:",
            "",
            "| | p50 | p99 | p99.9 | samples |",
            "|---|---:|---:|---:|---:|",
        ]
        for name in ("B2", "router"):
            x = lat[name]
            lines.append(
                f"| {name} | {x['p50']:.1f} | {x['p99']:.1f} | {x['p999']:.1f} | {x['samples']} |"
            )
        lines += ["", f"Added p99 over B2: **{r['added_p99_ms']:.1f} ms**.", ""]
    p = results["profile"]
    lines += [
        "## Where the router's time goes",
        "",
        f"cProfile of a full-speed run (`{p['file']}`, "
        f"{p['bulletins_per_s_under_profiler']:.0f} bulletins/s under the profiler); "
        "the five largest costs of their own, the event loop's idle wait left out:",
        "",
        "| function | calls | own s | cumulative s |",
        "|---|---:|---:|---:|",
    ]
    for row in p["top"]:
        lines.append(
            f"| `{row['function']}` | {row['calls']:,} | {row['own_s']:.2f} | {row['cum_s']:.2f} |"
        )
    lines.append("")
    if "before_after" in results:
        c = results["before_after"]
        lines += [
            "## Before and after",
            "",
            f"One router process of revision `{c['revision']}`: {c['before']:.0f} bulletins/s; "
            f"of this checkout: {c['after']:.0f} (**{c['ratio']:.2f}x**, median of paired "
            f"rounds, {c['recipients']} recipients).",
            "",
        ]
    if "scaling" in results:
        s = results["scaling"]
        lines += [
            "## Scaling",
            "",
            f"1 router process: {s['one']:.0f} bulletins/s; 2 processes: {s['two']:.0f} "
            f"(**{s['ratio']:.2f}x**); 8 inbound partitions, split "
            f"{'/'.join(map(str, s['partitions_per_instance']))} between the two; "
            f"{s['note']}.",
            "",
        ]
    if "memory" in results:
        m = results["memory"]
        lines += [
            "## Memory",
            "",
            f"Router RSS over {m['bulletins']:,} bulletins: "
            f"first sample {m['rss_mb_first']:.0f} MB, "
            f"max {m['rss_mb_max']:.0f} MB, last {m['rss_mb_last']:.0f} MB; "
            f"trend {m['growth_mb_per_100k']:+.2f} MB per 100,000 bulletins.",
            "",
        ]
    return "\n".join(lines)


def serve_passthrough() -> None:
    """A baseline in a process of its own, until SIGTERM (see :class:`RouterProcess`)."""
    connection = KafkaConnection(
        bootstrap_servers=os.environ["LIAISON_KAFKA_BOOTSTRAP"],
        username=os.environ["LIAISON_KAFKA_USERNAME"],
        password=SecretStr(os.environ["LIAISON_KAFKA_PASSWORD"]),
    )
    spec = json.loads(os.environ["LIAISON_BENCH_SPEC"])

    async def serve() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await passthrough(connection, spec, stop, lambda _n: None)

    asyncio.run(serve())


def main(argv: Sequence[str] | None = None) -> None:
    if argv is None and sys.argv[1:] == ["--serve-passthrough"]:
        serve_passthrough()
        return
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--bulletins", type=int, default=20_000, help="per throughput run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--recipients", default="4,16", help="comma-separated fan-outs ('' skips throughput)"
    )
    parser.add_argument("--latency-bulletins", type=int, default=3000)
    parser.add_argument("--scaling-bulletins", type=int, default=20_000)
    parser.add_argument("--no-scaling", dest="scaling", action="store_false")
    parser.add_argument("--memory-bulletins", type=int, default=1_000_000, help="0 skips it")
    parser.add_argument("--seed", type=int, default=20261202)
    parser.add_argument(
        "--compare",
        metavar="REV",
        help="also run the router of git revision REV (a worktree) against this one",
    )
    parser.add_argument("--compare-recipients", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="small sizes, two rounds")
    parser.add_argument(
        "--name",
        default=datetime.now(UTC).strftime("%Y-%m-%d"),
        help="results go to benchmarks/results/NAME.json, .md and -router.prof (default: today)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.bulletins, args.rounds, args.latency_bulletins = 4000, 2, 1000
        args.scaling_bulletins, args.memory_bulletins = 6000, 50_000
    started = time.perf_counter()
    results = asyncio.run(main_async(args))
    results["duration_s"] = round(time.perf_counter() - started, 1)
    stamp = args.name
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stamp}.json").write_text(json.dumps(results, indent=2) + "\n")
    text = summary(results)
    (RESULTS / f"{stamp}.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
