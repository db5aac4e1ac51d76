"""Inclusion proofs: show that one decision is in the log a signed checkpoint commits to."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from bus.audit._chain import CHECKPOINT
from bus.audit._merkle import inclusion_proof, leaf_hash
from bus.audit._verify import AuditRecord
from bus.errors import LiaisonError

__all__ = ["prove"]


def prove(
    records: Sequence[AuditRecord], bulletin_id: str, *, source: str | None = None
) -> dict[str, Any]:
    """The decision about ``bulletin_id``, its leaf index in its chain, the latest checkpoint
    of that chain covering it, and the audit path from the leaf to the checkpoint's root."""
    leaves: dict[str, dict[int, bytes]] = {}
    found: tuple[str, int, bytes] | None = None
    checkpoints: dict[str, dict[str, Any]] = {}
    for record in records:
        try:
            body = json.loads(record.value)
        except ValueError:
            continue
        if not isinstance(body, dict) or not isinstance(body.get("chain"), str):
            continue
        chain = body["chain"]
        if body.get("type") == CHECKPOINT:
            checkpoints[chain] = body
            continue
        if not isinstance(body.get("seq"), int):
            continue
        leaves.setdefault(chain, {})[body["seq"]] = leaf_hash(record.value)
        if (
            found is None
            and body.get("type") == "bulletin.decided"
            and body.get("bulletin_id") == bulletin_id
            and (source is None or body.get("source") == source)
        ):
            found = (chain, body["seq"], record.value)
    if found is None:
        who = f" from {source}" if source else ""
        raise LiaisonError(f"no decision about bulletin {bulletin_id!r}{who} in the audit log")
    chain, seq, value = found
    checkpoint = checkpoints.get(chain)
    if checkpoint is None or int(checkpoint["tree_size"]) <= seq:
        raise LiaisonError(
            f"the decision is seq {seq} of chain {chain}, which no checkpoint covers yet; "
            "retry after the next checkpoint"
        )
    size = int(checkpoint["tree_size"])
    chain_leaves = leaves[chain]
    missing = [i for i in range(size) if i not in chain_leaves]
    if missing:
        raise LiaisonError(f"chain {chain} lacks seq {missing[0]}: run `liaison audit verify`")
    path = inclusion_proof([chain_leaves[i] for i in range(size)], seq)
    return {
        "bulletin_id": bulletin_id,
        "event": value.decode(),
        "chain": chain,
        "leaf_index": seq,
        "leaf_hash": leaf_hash(value).hex(),
        "tree_size": size,
        "root": checkpoint["root"],
        "proof": [h.hex() for h in path],
        "checkpoint": checkpoint,
    }
