"""The audit log's format: hash-chained events and signed checkpoints, per writer.

Every audit record's value is the RFC 8785 canonical JSON of the event. An event carries
``chain`` (its writer: ``edge.<i>`` for router instance i, ``admin`` for the admin API),
``seq`` (0, 1, 2... within the chain) and ``prev``, the hex leaf hash of the chain's
previous event (64 zeros for the first). An event's leaf hash is RFC 6962's
``SHA-256(0x00 || value)`` over the record value's bytes, so anyone can recompute it.

Every N events or T seconds (and when a writer stops), the writer appends a checkpoint:
``{"type": "audit.checkpoint", "chain", "tree_size", "root", "time", "key_id",
"frontier", "last", "signature"}``, where ``root`` is the Merkle tree head over the
chain's first ``tree_size`` leaf hashes and ``signature`` is Ed25519 over the canonical JSON of the
checkpoint without its ``signature``. Checkpoints are not chained themselves; their
roots bind every event before them. ``frontier`` and ``last`` let a restarted writer
resume its tree without re-reading it.

Chains are per writer, not per partition: two routers appending to one partition cannot
know each other's last hash without coordination, while one transactional id per chain
(fenced by Kafka) guarantees one writer per chain.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import rfc8785

from bus.audit._keys import Signer
from bus.audit._merkle import Frontier, leaf_hash

__all__ = [
    "CHECKPOINT",
    "GENESIS",
    "ChainState",
    "canonical",
    "checkpoint_message",
]

CHECKPOINT = "audit.checkpoint"
GENESIS = "0" * 64


_SAFE_INT = 2**53


def _plain(value: Any) -> bool:
    """Whether ``json.dumps`` already writes ``value`` as RFC 8785 does: no float, integers
    a double holds exactly, ASCII keys (so code-point order is UTF-16 order).

    Exact types only (a ``str`` or ``int`` subclass takes the general path), walked with a
    stack rather than recursion: this runs once per audit event, on the router's hot path.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is dict:
            for key, child in item.items():
                if type(key) is not str or not key.isascii():
                    return False
                if type(child) is not str:
                    stack.append(child)
        elif kind is list:
            stack.extend(item)
        elif kind is int:
            if not -_SAFE_INT < item < _SAFE_INT:
                return False
        elif not (kind is str or kind is bool or item is None):
            return False
    return True


def canonical(value: Any) -> bytes:
    """RFC 8785 (JSON Canonicalization Scheme) bytes of a JSON value.

    Audit events hold only strings, small integers, booleans, lists and objects with ASCII
    keys: for those, the standard library's sorted, compact, non-ASCII-preserving output is
    byte for byte RFC 8785's (same escapes, lowercase ``\\u00xx``), and several times
    faster than the general implementation, which everything else goes through.
    """
    if _plain(value):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return rfc8785.dumps(value)


def checkpoint_message(checkpoint: dict[str, Any]) -> bytes:
    """What a checkpoint's signature covers: its canonical JSON without ``signature``."""
    return canonical({k: v for k, v in checkpoint.items() if k != "signature"})


@dataclass
class ChainState:
    """Where a writer's chain stands: the next seq, the last leaf hash, the tree so far."""

    chain: str
    seq: int = 0
    prev: str = GENESIS
    tree: Frontier = field(default_factory=Frontier)
    since_checkpoint: int = 0

    def copy(self) -> ChainState:
        return ChainState(self.chain, self.seq, self.prev, self.tree.copy(), self.since_checkpoint)

    def seal(self, event: dict[str, Any]) -> bytes:
        """The record value of ``event`` as the chain's next link; advances the state."""
        value = canonical({**event, "chain": self.chain, "seq": self.seq, "prev": self.prev})
        digest = leaf_hash(value)
        self.tree.append(digest)
        self.seq += 1
        self.prev = digest.hex()
        self.since_checkpoint += 1
        return value

    def checkpoint(self, signer: Signer, *, now: datetime | None = None) -> bytes:
        """A signed tree head over every event sealed so far, as a record value."""
        body = {
            "type": CHECKPOINT,
            "chain": self.chain,
            "tree_size": self.tree.size,
            "root": self.tree.root().hex(),
            "time": (now or datetime.now(UTC)).isoformat(),
            "key_id": signer.public.key_id,
            "frontier": self.tree.to_json(),
            "last": self.prev,
        }
        signature = signer.sign(canonical(body))
        self.since_checkpoint = 0
        return canonical({**body, "signature": base64.b64encode(signature).decode()})

    def to_json(self) -> dict[str, Any]:
        """The position a writer stores beside its events (same transaction)."""
        return {
            "chain": self.chain,
            "seq": self.seq,
            "prev": self.prev,
            "frontier": self.tree.to_json(),
            "since_checkpoint": self.since_checkpoint,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChainState:
        seq = int(data["seq"])
        return cls(
            chain=str(data["chain"]),
            seq=seq,
            prev=str(data["prev"]),
            tree=Frontier.from_json(seq, data["frontier"]),
            since_checkpoint=int(data.get("since_checkpoint", 0)),
        )

    @classmethod
    def resume(
        cls, chain: str, checkpoint: dict[str, Any] | None, after: list[bytes]
    ) -> ChainState:
        """The state after a checkpoint (or from the start) and the events that followed it."""
        state = cls(chain)
        if checkpoint is not None:
            size = int(checkpoint["tree_size"])
            state.tree = Frontier.from_json(size, checkpoint["frontier"])
            state.seq = size
            state.prev = str(checkpoint["last"])
        for value in after:
            digest = leaf_hash(value)
            state.tree.append(digest)
            state.seq += 1
            state.prev = digest.hex()
            state.since_checkpoint += 1
        return state
