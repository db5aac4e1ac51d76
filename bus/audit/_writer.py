"""A writer's side of the audit chain: seal events, checkpoint, survive transactions and restarts.

A writer (one router instance, the admin API) owns one chain. Inside a Kafka transaction
it seals events on a *tentative* copy of its chain state; the copy becomes the state only
when the transaction commits. After an abort, or a commit whose outcome is unknown, the
writer re-reads its chain from the audit topic (:func:`recover_chain`), which holds exactly
what was committed.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from bus.audit._chain import CHECKPOINT, ChainState
from bus.audit._keys import Signer
from bus.kafka import Consumer, KafkaConnection, TopicPartition

__all__ = ["ChainWriter", "recover_chain", "recover_position"]

log = logging.getLogger("liaison.audit")


async def recover_chain(connection: KafkaConnection, topic: str, chain: str) -> ChainState:
    """The chain's committed state, from its last checkpoint and the events after it."""
    tp = TopicPartition(topic, 0)
    checkpoint: dict[str, Any] | None = None
    after: list[bytes] = []
    async with Consumer(connection) as consumer:
        end = (await consumer.assign_from_beginning([tp]))[tp]
        while await consumer.position(tp) < end:
            for record in await consumer.getmany(timeout_ms=500):
                value = record.value or b""
                if f'"chain":"{chain}"'.encode() not in value:
                    continue  # canonical JSON: a cheap test before parsing
                body = json.loads(value)
                if body.get("chain") != chain:
                    continue
                if body.get("type") == CHECKPOINT:
                    checkpoint, after = body, []
                else:
                    after.append(value)
    state = ChainState.resume(chain, checkpoint, after)
    log.info("audit chain %s resumes at seq %d", chain, state.seq)
    return state


async def recover_position(connection: KafkaConnection, topic: str, chain: str) -> ChainState:
    """The chain's committed position from the compacted position topic (a fresh chain if
    it has none)."""
    tp = TopicPartition(topic, 0)
    latest: bytes | None = None
    key = chain.encode()
    async with Consumer(connection) as consumer:
        end = (await consumer.assign_from_beginning([tp]))[tp]
        while await consumer.position(tp) < end:
            for record in await consumer.getmany(timeout_ms=500):
                if record.key == key:
                    latest = record.value
    state = ChainState.from_json(json.loads(latest)) if latest else ChainState(chain)
    log.info("audit chain %s resumes at seq %d", chain, state.seq)
    return state


class ChainWriter:
    """Seals one chain's events; checkpoints every ``every`` events or ``interval_s``."""

    def __init__(
        self,
        state: ChainState,
        signer: Signer | None,
        *,
        every: int = 1000,
        interval_s: float = 10.0,
    ) -> None:
        self.state = state
        self.signer = signer
        self.every = every
        self.interval_s = interval_s
        self._tentative: ChainState | None = None
        self._last_checkpoint = time.monotonic()
        self._checkpointed = False

    @property
    def chain(self) -> str:
        return self.state.chain

    def begin(self) -> None:
        """Start sealing for a transaction (on a copy of the committed state)."""
        self._tentative = self.state.copy()
        self._checkpointed = False

    def seal(self, event: dict[str, Any]) -> bytes:
        assert self._tentative is not None, "begin() first"
        return self._tentative.seal(event)

    def position(self) -> bytes:
        """The tentative position, to store with the events in the same transaction."""
        assert self._tentative is not None, "begin() first"
        return json.dumps(self._tentative.to_json()).encode()

    def checkpoint_due(self, *, force: bool = False, count_only: bool = False) -> bool:
        """``every`` events sealed since the last checkpoint, or ``interval_s`` elapsed
        (unless ``count_only``: a writer checking after each event of a transaction)."""
        tentative = self._tentative
        assert tentative is not None, "begin() first"
        if self.signer is None or tentative.since_checkpoint == 0:
            return False
        return (
            force
            or tentative.since_checkpoint >= self.every
            or (not count_only and time.monotonic() - self._last_checkpoint >= self.interval_s)
        )

    def due_in(self) -> float | None:
        """Seconds until the committed events not yet under a checkpoint are due one (0 when
        overdue), counted from the last checkpoint; None when there are none (or no key)."""
        if self.signer is None or self.state.since_checkpoint == 0:
            return None
        return max(0.0, self._last_checkpoint + self.interval_s - time.monotonic())

    def checkpoint(self) -> bytes:
        """A signed checkpoint over everything sealed so far (call when due)."""
        assert self._tentative is not None, "begin() first"
        assert self.signer is not None, "no signing key"
        self._checkpointed = True
        return self._tentative.checkpoint(self.signer)

    def committed(self) -> None:
        """The transaction committed: the tentative state is the state."""
        assert self._tentative is not None, "begin() first"
        if self._checkpointed:
            self._last_checkpoint = time.monotonic()
        self.state, self._tentative = self._tentative, None

    def discard(self) -> None:
        """The transaction aborted (or its outcome is unknown: then recover instead)."""
        self._tentative = None
