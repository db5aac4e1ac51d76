"""Helpers for tests that talk to the real broker: waits with deadlines, never sleeps."""

from __future__ import annotations

import time
from collections.abc import Callable

from bus.kafka import Consumer, Record


async def read_until(
    consumer: Consumer,
    done: Callable[[list[Record]], bool],
    *,
    timeout_s: float = 30.0,
) -> list[Record]:
    """Read records until ``done(records)`` holds; fail the test at the deadline."""
    records: list[Record] = []
    deadline = time.monotonic() + timeout_s
    while not done(records):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(
                f"condition not met within {timeout_s}s; read {len(records)} record(s): "
                f"{[r.value for r in records][:20]}"
            )
        records.extend(await consumer.getmany(timeout_ms=int(min(remaining, 1.0) * 1000)))
    return records


async def read_count(consumer: Consumer, count: int, *, timeout_s: float = 30.0) -> list[Record]:
    """Read exactly until at least ``count`` records arrived."""
    return await read_until(consumer, lambda rs: len(rs) >= count, timeout_s=timeout_s)
