"""Codec cost per bulletin, against plain fastavro measured in the same run.

    .venv/bin/python benchmarks/codec.py [--bulletins 2000] [--rounds 7]

The baseline is fastavro's ``schemaless_writer``/``schemaless_reader`` on the same
records and the same parsed schema; the ratios say what the Confluent framing, the
checks (trailing bytes, size) and the union-name handling cost on top. A third row
adds ``BulletinSchema.from_avro`` (the semantic rules), which the edge router runs too.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer

from bus.bulletin import BulletinGenerator, BulletinSchema
from bus.codec import WireCodec
from bus.schemas import SchemaCatalog, canonical_json


def _per_item_us(fn: Callable[[], object], count: int) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) / count * 1e6


def _compare(
    baseline: Callable[[], object], candidate: Callable[[], object], count: int, rounds: int
) -> tuple[float, float, float, float]:
    """Interleave baseline and candidate each round, so drift on a shared machine hits
    both alike; return median microseconds of each, and the median and spread of the
    per-round ratio."""
    base, cand, ratios = [], [], []
    for _ in range(rounds):
        b = _per_item_us(baseline, count)
        c = _per_item_us(candidate, count)
        base.append(b)
        cand.append(c)
        ratios.append(c / b)
    quartiles = statistics.quantiles(ratios, n=4)
    return (
        statistics.median(base),
        statistics.median(cand),
        statistics.median(ratios),
        quartiles[2] - quartiles[0],
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bulletins", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)

    schema = BulletinSchema(SchemaCatalog.load())
    text = canonical_json(schema.composed)
    parsed = parse_schema(json.loads(text))
    codec = WireCodec({1: text}.__getitem__)
    records: list[dict[str, Any]] = [
        schema.to_avro(b) for b in BulletinGenerator(schema, seed=1).stream(args.bulletins)
    ]
    framed = [codec.encode(1, r) for r in records]
    plain = []
    for r in records:
        out = io.BytesIO()
        schemaless_writer(out, parsed, r)
        plain.append(out.getvalue())

    def fastavro_encode() -> None:
        for r in records:
            out = io.BytesIO()
            schemaless_writer(out, parsed, r)
            out.getvalue()  # both sides end with the bytes in hand

    def fastavro_decode() -> None:
        for data in plain:
            schemaless_reader(
                io.BytesIO(data),
                parsed,
                None,
                return_record_name=True,
                return_record_name_override=True,
            )

    def ours_encode() -> None:
        for r in records:
            codec.encode(1, r)

    def ours_decode() -> None:
        for data in framed:
            codec.decode(data)

    def ours_decode_validate() -> None:
        for data in framed:
            schema.from_avro(codec.decode(data).record)

    n, rounds = args.bulletins, args.rounds
    size = statistics.mean(len(f) for f in framed)
    print(f"codec: {n} generated bulletins, mean {size:.0f} bytes framed, {rounds} rounds")
    print("each row runs interleaved with its fastavro baseline; ratio = median per-round ratio")
    print(f"{'':28} {'us/bulletin':>11} {'baseline us':>11} {'ratio':>7} {'IQR':>6}")
    rows = [
        ("WireCodec.encode", fastavro_encode, ours_encode),
        ("WireCodec.decode", fastavro_decode, ours_decode),
        ("WireCodec.decode + rules", fastavro_decode, ours_decode_validate),
    ]
    for label, baseline, candidate in rows:
        base_us, ours_us, ratio, spread = _compare(baseline, candidate, n, rounds)
        print(f"{label:28} {ours_us:11.1f} {base_us:11.1f} {ratio:7.2f} {spread:6.2f}")


if __name__ == "__main__":
    main()
