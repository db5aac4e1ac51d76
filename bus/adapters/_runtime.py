"""The parts of the adapter runtime that need no broker: retries, rejects, metrics.

The Kafka runner (:mod:`bus.adapters._runner`) and the contract kit
(:mod:`bus.adapters.testing`) share them, so the kit checks an adapter against the
very code that will run it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bus.adapters._contract import DeliveredView, PublishOutcome, Sink
from bus.bulletin import Bulletin, BulletinSchema
from bus.errors import BulletinInvalid, DeliveryError, RecordRejected

__all__ = [
    "DeliveryResult",
    "InstanceMetrics",
    "RejectsFile",
    "RetryPolicy",
    "check_bulletin",
    "deliver_with_retry",
]

log = logging.getLogger("liaison.adapter")


@dataclass
class InstanceMetrics:
    """Counters of one adapter instance, shown by the status line and the health endpoint."""

    published: int = 0
    delivered: int = 0
    rejected: int = 0
    retries: int = 0
    last_error: str = ""
    last_activity: float | None = None

    def touch(self) -> None:
        self.last_activity = time.time()

    def snapshot(self) -> dict[str, Any]:
        return {
            "published": self.published,
            "delivered": self.delivered,
            "rejected": self.rejected,
            "retries": self.retries,
            "last_error": self.last_error,
            "last_activity": self.last_activity,
        }


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with equal jitter (a delay between half and all of the
    ceiling), without an attempt limit by default."""

    initial_ms: int = 200
    max_ms: int = 30_000
    multiplier: float = 2.0
    max_attempts: int | None = None
    """``None``: retry until it succeeds or the runner stops (nothing is ever skipped)."""

    def delay_s(self, attempt: int, rng: random.Random) -> float:
        """Delay before retry number ``attempt`` (1 for the first retry)."""
        growth = self.multiplier ** min(attempt - 1, 60)  # no float overflow in a long outage
        ceiling = min(self.max_ms, self.initial_ms * growth)
        return rng.uniform(ceiling / 2, ceiling) / 1000


@dataclass(frozen=True)
class DeliveryResult:
    """How one view fared; ``reason`` and ``detail`` are set when it was rejected."""

    delivered: bool
    attempts: int
    reason: str = ""
    detail: str = ""
    stopped: bool = False
    """True when the runner stopped during retries: neither delivered nor rejected."""


async def deliver_with_retry(
    sink: Sink,
    view: DeliveredView,
    *,
    retry: RetryPolicy,
    stop: asyncio.Event,
    metrics: InstanceMetrics | None = None,
    rng: random.Random | None = None,
) -> DeliveryResult:
    """Deliver one view as the contract says: retriable errors are retried with backoff.

    Returns when the view is delivered, is rejected for good, or ``stop`` is set
    during a backoff (``stopped``: the caller must then not commit its offset).
    """
    rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
    metrics = metrics or InstanceMetrics()
    attempt = 0
    while True:
        attempt += 1
        try:
            await sink.deliver(view)
        except RecordRejected as exc:
            return _rejected(metrics, attempt, exc.reason, str(exc))
        except DeliveryError as exc:
            metrics.last_error = "delivery_error"
            if not exc.retriable:
                return _rejected(metrics, attempt, "undeliverable", str(exc))
            if retry.max_attempts is not None and attempt >= retry.max_attempts:
                return _rejected(metrics, attempt, "retries_exhausted", str(exc))
            metrics.retries += 1
            delay = retry.delay_s(attempt, rng)
            log.warning("delivery of %s failed (%s); retry in %.2fs", view.dedup_key, exc, delay)
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except TimeoutError:
                continue
            return DeliveryResult(delivered=False, attempts=attempt, stopped=True)
        except Exception as exc:
            log.exception("sink raised an unexpected %s; sending the view to rejects", type(exc))
            return _rejected(metrics, attempt, "sink_error", f"{type(exc).__name__}: {exc}")
        metrics.delivered += 1
        metrics.touch()
        return DeliveryResult(delivered=True, attempts=attempt)


def _rejected(metrics: InstanceMetrics, attempts: int, reason: str, detail: str) -> DeliveryResult:
    metrics.rejected += 1
    metrics.last_error = reason  # never the detail: /healthz shows it
    metrics.touch()
    return DeliveryResult(delivered=False, attempts=attempts, reason=reason, detail=detail)


def check_bulletin(
    item: Bulletin | Mapping[str, Any], schema: BulletinSchema, agency: str
) -> tuple[Bulletin | None, PublishOutcome | None]:
    """Validate what a source hands the outlet: the bulletin, or the rejection outcome."""
    bulletin_id = item.bulletin_id if isinstance(item, Bulletin) else item.get("bulletin_id")
    shown = bulletin_id if isinstance(bulletin_id, str) else None
    try:
        if isinstance(item, Bulletin):
            schema.validate(item)
            bulletin = item
        else:
            bulletin = schema.from_json(item)
    except BulletinInvalid as exc:
        return None, PublishOutcome(
            accepted=False, bulletin_id=shown, reason="invalid_bulletin", detail=str(exc)
        )
    if bulletin.source_agency != agency:
        return None, PublishOutcome(
            accepted=False,
            bulletin_id=shown,
            reason="wrong_source",
            detail=f"source_agency is {bulletin.source_agency!r} but this runner publishes "
            f"for {agency!r}; set source_agency to {agency!r}",
        )
    return bulletin, None


@dataclass
class RejectsFile:
    """The agency's own record of what an instance could not take in or hand out.

    One JSON object per line: time, instance, origin, reason, detail. The file is
    the agency's own (it never reaches the bus); each line is flushed and fsynced
    before the runtime moves on, so nothing is ever silently dropped.
    """

    path: Path
    instance: str
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def write(self, *, origin: str, reason: str, detail: str) -> None:
        line = json.dumps(
            {
                "time": datetime.now(UTC).isoformat(),
                "instance": self.instance,
                "origin": origin,
                "reason": reason,
                "detail": detail,
            }
        )
        async with self._lock:
            await asyncio.to_thread(self._append, line)

    def _append(self, line: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as out:
            out.write(line + "\n")
            out.flush()
            os.fsync(out.fileno())

    def read(self) -> list[dict[str, Any]]:
        """Every entry so far (for tests and the status command)."""
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line]
