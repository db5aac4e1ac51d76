"""Edge router throughput and latency, against a transactional passthrough in the same run.

    .venv/bin/python benchmarks/edge.py [--bulletins 10000] [--latency-bulletins 300]

Starts its own broker (bus.broker) and an isolated bus (bus.sandbox) with one source and
4 recipients. Three contenders, interleaved over ``--rounds`` rounds in a rotating order (medians
reported, and the median of each round's paired ratio):
the baseline, the router with its audit chain and signed checkpoints (every
``--checkpoint-every`` events), and the router writing unchained audit events (a benchmark
seam), whose ratio is what chaining and checkpointing cost. Two measurements each:

* throughput: a backlog of N bulletins is produced first, then timed from the first
  committed batch until the last input is committed (bulletins per second);
* latency: bulletins are produced at a steady 50 per second while the router runs;
  end-to-end time from the producer's send to a read_committed consumer of one recipient.

The baseline does the same Kafka work in the same transactions: consume the inbound
topic, write the input bytes to the 4 outbound topics and one audit record, send the
offsets, commit (batches of the same size and interval); it does no decoding, policy,
redaction or encoding. The ratio is what Liaison's logic costs on top of Kafka's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from bus.broker import Broker, BrokerConfig
from bus.bulletin import Marking, Status
from bus.kafka import Consumer, Producer, RecordMetadata, TopicPartition
from bus.sandbox import Bus, build_bus, running_edge

RECIPIENTS = ("b", "c", "d", "e")
BATCH = 200
INTERVAL_MS = 100


async def passthrough(bus: Bus, stop: asyncio.Event, progress: Callable[[int], None]) -> None:
    """The baseline: same transactions, same fan-out, no Liaison logic (as the edge principal)."""
    source = bus.agency("a")
    inbound = TopicPartition(bus.names.inbound(source), 0)
    outs = [bus.names.outbound(bus.agency(r)) for r in RECIPIENTS]
    consumer = Consumer(bus.edge, group_id=bus.names.edge_group)
    producer = Producer(bus.edge, transactional_id=bus.names.edge_transactional_id(99))
    async with consumer, producer:
        consumer.assign([inbound])
        committed = await consumer.committed(inbound)
        if committed is None:
            await consumer.seek_to_beginning(inbound)
        else:
            consumer.seek(inbound, committed)
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=INTERVAL_MS, max_records=BATCH)
            if not batch:
                continue
            await producer.begin_transaction()
            await producer.send_offsets_to_transaction(
                {inbound: batch[-1].offset + 1}, bus.names.edge_group
            )
            pending: list[Awaitable[RecordMetadata]] = []
            for record in batch:
                for topic in outs:
                    pending.append(await producer.enqueue(topic, record.value, key=record.key))
                audit = json.dumps({"offset": record.offset, "outcome": "passed"}).encode()
                pending.append(await producer.enqueue(bus.names.audit, audit, key=record.key))
            for p in pending:
                await p
            await producer.commit_transaction()
            progress(len(batch))


def policy(bus: Bus) -> dict[str, Any]:
    return bus.policy(
        [
            {
                "id": "fan-out",
                "source": {"agencies": [bus.agency("a")]},
                "recipients": {"agencies": [bus.agency(r) for r in RECIPIENTS]},
                "kinds": ["*"],
                "max_marking": "AMBER",
                "redact": [
                    {"tag": "contact", "action": "pseudonymize"},
                    {"tag": "pii", "action": "mask"},
                    {"field": "body.incident_location", "action": "generalize", "grid_km": 10},
                ],
            }
        ]
    )


async def produce(
    bus: Bus, count: int, seed: int, rate: float | None = None, id_prefix: str = ""
) -> dict[str, float]:
    """Send ``count`` bulletins as agency a; returns bulletin id -> send time."""
    gen = bus.generator("a", seed=seed)
    sent: dict[str, float] = {}
    a = bus.agency("a")
    async with Producer(bus.agencies[a]) as producer:
        pending = []
        start = time.perf_counter()
        for i, b in enumerate(gen.stream(count)):
            b = b.model_copy(
                update={
                    "marking": Marking.GREEN,
                    "status": Status.ACTUAL,
                    "bulletin_id": id_prefix + b.bulletin_id,
                }
            )
            data = bus.codec.encode(bus.bulletin_schema_id, bus.schema.to_avro(b))
            if rate is not None:
                await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            sent[b.bulletin_id] = time.perf_counter()
            topic = bus.names.inbound(a)
            pending.append(await producer.enqueue(topic, data, key=b.bulletin_id.encode()))
        for p in pending:
            await p
    return sent


async def receive_times(bus: Bus, expected: int, stop_after_s: float = 120) -> dict[bytes, float]:
    """Receive times per record key on recipient b, read_committed."""
    b = bus.agency("b")
    seen: dict[bytes, float] = {}
    deadline = time.perf_counter() + stop_after_s
    async with Consumer(bus.agencies[b], bus.names.outbound(b)) as consumer:
        while len(seen) < expected and time.perf_counter() < deadline:
            for record in await consumer.getmany(timeout_ms=200):
                seen.setdefault(record.key or b"", time.perf_counter())
    return seen


async def measure(
    bus: Bus, run: Callable[[asyncio.Event, Callable[[int], None]], Any], n: int, n_latency: int
) -> tuple[float, float, float]:
    done = asyncio.Event()
    processed = 0
    first: list[tuple[float, int]] = []

    def progress(count: int) -> None:
        nonlocal processed
        processed += count
        if not first:
            first.append((time.perf_counter(), processed))
        if processed >= n:
            done.set()

    await produce(bus, n, seed=1)
    stop = asyncio.Event()
    task = asyncio.create_task(run(stop, progress))
    await asyncio.wait_for(done.wait(), 600)
    # From the first committed batch: start-up (a few hundred ms, more for the chained
    # router, which reads its chain position) is not throughput.
    started, counted = first[0]
    throughput = (n - counted) / (time.perf_counter() - started)
    # latency: a paced stream on top of the drained backlog
    receiver = asyncio.create_task(receive_times(bus, n + n_latency))
    sent = await produce(bus, n_latency, seed=2, rate=50, id_prefix="latency-")
    received = await receiver
    stop.set()
    await task
    lat = sorted(
        (received[k.encode()] - t) * 1000 for k, t in sent.items() if k.encode() in received
    )
    p50 = statistics.median(lat)
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    return throughput, p50, p99


CONTENDERS = ("baseline", "router", "unchained")


async def main_async(args: argparse.Namespace) -> None:
    with Broker(BrokerConfig(data_dir=Path(tempfile.mkdtemp()))) as broker:
        runs: dict[str, list[tuple[float, float, float]]] = {c: [] for c in CONTENDERS}
        for round_ in range(args.rounds):
            # Rotate who goes first: each bus adds topics and the broker's JIT keeps warming,
            # so a fixed order would favour one contender every round.
            shift = round_ % len(CONTENDERS)
            for label in CONTENDERS[shift:] + CONTENDERS[:shift]:
                bus = await build_bus(broker.connection, ("a", *RECIPIENTS))
                await bus.publish_policy(policy(bus))
                runs[label].append(
                    await measure(
                        bus, contender(bus, label, args), args.bulletins, args.latency_bulletins
                    )
                )
        results = {
            label: tuple(statistics.median(r[i] for r in rs) for i in range(3))
            for label, rs in runs.items()
        }
        print(
            f"edge: {args.bulletins} bulletins backlog, 1 source -> {len(RECIPIENTS)} recipients, "
            f"batches of {BATCH} / {INTERVAL_MS} ms; latency from {args.latency_bulletins} "
            f"bulletins at 50/s; checkpoint every {args.checkpoint_every} events; "
            f"medians of {args.rounds} interleaved rounds"
        )
        print(f"{'':10} {'bulletins/s':>12} {'(min-max)':>13} {'p50 ms':>8} {'p99 ms':>8}")
        for label, (tput, p50, p99) in results.items():
            spread = [r[0] for r in runs[label]]
            print(
                f"{label:10} {tput:12.0f} {min(spread):6.0f}-{max(spread):<6.0f} "
                f"{p50:8.1f} {p99:8.1f}"
            )
        for name, ours, base in (
            ("router / baseline", "router", "baseline"),
            ("router / unchained", "router", "unchained"),
        ):
            # Each round's contenders ran back to back: their ratio cancels the machine's drift.
            paired = [o[0] / b[0] for o, b in zip(runs[ours], runs[base], strict=True)]
            latency = [results[ours][i] / results[base][i] for i in (1, 2)]
            print(
                f"{name:20} throughput {statistics.median(paired):5.2f} "
                f"(rounds {min(paired):.2f}-{max(paired):.2f})  "
                f"p50 {latency[0]:5.2f}  p99 {latency[1]:5.2f}"
            )
        paired_cost = [
            1 - o[0] / u[0] for o, u in zip(runs["router"], runs["unchained"], strict=True)
        ]
        print(
            f"audit chaining and checkpointing cost {statistics.median(paired_cost):.1%} of the "
            f"router's throughput (median of {args.rounds} paired rounds; "
            f"{min(paired_cost):.1%} to {max(paired_cost):.1%})"
        )


def contender(
    bus: Bus, label: str, args: argparse.Namespace
) -> Callable[[asyncio.Event, Callable[[int], None]], Any]:
    if label == "baseline":

        async def baseline(stop: asyncio.Event, progress: Callable[[int], None]) -> None:
            await passthrough(bus, stop, progress)

        return baseline

    async def router(stop: asyncio.Event, progress: Callable[[int], None]) -> None:
        async with running_edge(
            bus,
            batch_max=BATCH,
            commit_interval_ms=INTERVAL_MS,
            checkpoint_every=args.checkpoint_every,
            audit_chain=label == "router",
        ) as edge:
            seen = 0
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.05)
                now = edge.stats["bulletins"]
                if now != seen:
                    progress(now - seen)
                    seen = now

    return router


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bulletins", type=int, default=10_000)
    parser.add_argument("--latency-bulletins", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--checkpoint-every", type=int, default=100)
    asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
