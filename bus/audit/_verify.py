"""Verify an audit log: chains, checkpoints, signatures, and completeness. Pure, no I/O.

:func:`verify` takes the audit records in log order (from the topic, or from an exported
bundle), the trusted public keys, optionally the range of offsets of every input partition,
and optionally checkpoints the auditor already holds (anchors against truncation). It
reports every problem with its position (the audit record's offset) and kind.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bus.audit._chain import CHECKPOINT, GENESIS, checkpoint_message
from bus.audit._keys import PublicKey
from bus.audit._merkle import Frontier, leaf_hash

__all__ = ["AuditRecord", "Problem", "ProblemKind", "Verification", "verify"]

_HEX64 = re.compile(r"[0-9a-f]{64}")


class ProblemKind(StrEnum):
    """What :func:`verify` can find wrong."""

    UNREADABLE = "unreadable"
    """A record that is not a JSON object."""
    UNCHAINED = "unchained"
    """An event without a valid chain, seq or prev: not written by a chaining writer."""
    ALTERED = "altered"
    """An event's bytes differ from what its successor or a checkpoint committed to."""
    REMOVED = "removed"
    """A sequence number of a chain is missing."""
    REORDERED = "reordered"
    """An event (or checkpoint) appears out of its chain's order."""
    INSERTED = "inserted"
    """A second event with a sequence number already used in its chain."""
    BAD_SIGNATURE = "bad_signature"
    """A checkpoint whose signature does not verify."""
    UNKNOWN_KEY = "unknown_key"
    """A checkpoint signed by a key the auditor was not given."""
    REPLAYED_CHECKPOINT = "replayed_checkpoint"
    """A checkpoint no larger than an earlier one of its chain."""
    TRUNCATED = "truncated"
    """The log ends before (or no longer holds) a checkpoint the auditor holds."""
    MISSING_DECISION = "missing_decision"
    """An input record with no decision."""
    DUPLICATE_DECISION = "duplicate_decision"
    """An input record with more than one decision."""
    UNKNOWN_INPUT = "unknown_input"
    """A decision about an input record that does not exist."""


@dataclass(frozen=True)
class AuditRecord:
    """One record of the audit topic (or of an exported bundle)."""

    offset: int
    value: bytes


@dataclass(frozen=True)
class Problem:
    kind: ProblemKind
    offset: int | None
    """The audit record it is found at (None: it is about something absent)."""
    detail: str
    chain: str | None = None
    seq: int | None = None

    def line(self) -> str:
        where = f"offset {self.offset}" if self.offset is not None else "-"
        link = f" {self.chain}#{self.seq}" if self.chain is not None else ""
        return f"{self.kind.value:20} {where:>14}{link}: {self.detail}"


@dataclass
class Verification:
    """What was checked and what was found."""

    problems: list[Problem] = field(default_factory=list)
    events: dict[str, int] = field(default_factory=dict)
    """Events per chain."""
    checkpoints: int = 0
    unsealed: dict[str, int] = field(default_factory=dict)
    """Events per chain after its last checkpoint: chained, but not yet signed."""
    decisions: int = 0
    inputs_checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events": self.events,
            "checkpoints": self.checkpoints,
            "unsealed": self.unsealed,
            "decisions": self.decisions,
            "inputs_checked": self.inputs_checked,
            "problems": [
                {
                    "kind": p.kind.value,
                    "offset": p.offset,
                    "chain": p.chain,
                    "seq": p.seq,
                    "detail": p.detail,
                }
                for p in self.problems
            ],
        }


@dataclass
class _Event:
    offset: int
    seq: int
    prev: str
    leaf: bytes
    kind: str
    origin: Any
    """The ``input`` of a decision (kept alone: holding every parsed event would make the
    garbage collector rescan them all, and verification quadratic in practice)."""


def _parse(record: AuditRecord, found: list[Problem]) -> dict[str, Any] | None:
    try:
        body = json.loads(record.value)
    except ValueError:
        found.append(Problem(ProblemKind.UNREADABLE, record.offset, "not JSON"))
        return None
    if not isinstance(body, dict):
        found.append(Problem(ProblemKind.UNREADABLE, record.offset, "not a JSON object"))
        return None
    return body


def _is_link(body: dict[str, Any]) -> bool:
    seq, prev = body.get("seq"), body.get("prev")
    return (
        isinstance(body.get("chain"), str)
        and isinstance(seq, int)
        and not isinstance(seq, bool)
        and seq >= 0
        and isinstance(prev, str)
        and _HEX64.fullmatch(prev) is not None
    )


def verify(
    records: Iterable[AuditRecord],
    keys: Mapping[str, PublicKey],
    *,
    inputs: Mapping[tuple[str, int], tuple[int, int]] | None = None,
    anchors: Sequence[Mapping[str, Any]] = (),
) -> Verification:
    """Check everything.

    ``inputs`` maps every input partition (topic, partition) to the offsets ``[start,
    end)`` that must each have exactly one decision: from the first record retention kept
    to the routers' committed offset (what has been consumed).
    """
    result = Verification()
    found = result.problems
    chains: dict[str, list[_Event]] = defaultdict(list)
    checkpoints: list[tuple[int, dict[str, Any]]] = []
    for record in records:
        body = _parse(record, found)
        if body is None:
            continue
        if body.get("type") == CHECKPOINT:
            checkpoints.append((record.offset, body))
        elif _is_link(body):
            chains[body["chain"]].append(
                _Event(
                    record.offset,
                    body["seq"],
                    body["prev"],
                    leaf_hash(record.value),
                    str(body.get("type")),
                    body.get("input") if body.get("type") == "bulletin.decided" else None,
                )
            )
        else:
            kind = body.get("type", "?")
            found.append(
                Problem(ProblemKind.UNCHAINED, record.offset, f"a {kind} event outside any chain")
            )
    canonical_events = {name: _check_chain(name, events, found) for name, events in chains.items()}
    result.events = {name: len(by_seq) for name, by_seq in canonical_events.items()}
    sealed = _check_checkpoints(checkpoints, canonical_events, chains, keys, found)
    result.checkpoints = len(checkpoints)
    result.unsealed = {
        name: sum(1 for seq in by_seq if seq >= sealed.get(name, 0))
        for name, by_seq in canonical_events.items()
    }
    _check_anchors(anchors, canonical_events, checkpoints, found)
    decisions = [
        event
        for by_seq in canonical_events.values()
        for event in by_seq.values()
        if event.kind == "bulletin.decided"
    ]
    result.decisions = len(decisions)
    if inputs is not None:
        result.inputs_checked = sum(end - start for start, end in inputs.values())
        _check_completeness(decisions, inputs, found)
    found.sort(key=lambda p: (p.offset is None, p.offset or 0, p.kind.value))
    return result


def _check_chain(name: str, events: list[_Event], found: list[Problem]) -> dict[int, _Event]:
    by_seq: dict[int, _Event] = {}
    highest = -1
    for event in events:
        if event.seq in by_seq:
            first = by_seq[event.seq]
            same = "the same bytes as" if first.leaf == event.leaf else "other bytes than"
            found.append(
                Problem(
                    ProblemKind.INSERTED,
                    event.offset,
                    f"seq {event.seq} again, with {same} offset {first.offset}",
                    name,
                    event.seq,
                )
            )
            continue
        if event.seq < highest:
            found.append(
                Problem(
                    ProblemKind.REORDERED,
                    event.offset,
                    f"seq {event.seq} after seq {highest}",
                    name,
                    event.seq,
                )
            )
        by_seq[event.seq] = event
        highest = max(highest, event.seq)
    missing = [seq for seq in range(highest + 1) if seq not in by_seq]
    for start, end in _runs(missing):
        span = f"seq {start}" if start == end else f"seqs {start}..{end}"
        found.append(
            Problem(ProblemKind.REMOVED, None, f"{span} of chain {name} missing", name, start)
        )
    for seq, event in by_seq.items():
        expected = GENESIS if seq == 0 else None
        if seq > 0 and seq - 1 in by_seq:
            expected = by_seq[seq - 1].leaf.hex()
        if expected is not None and event.prev != expected:
            earlier = by_seq.get(seq - 1)
            where = earlier.offset if earlier is not None else event.offset
            found.append(
                Problem(
                    ProblemKind.ALTERED,
                    where,
                    f"seq {seq} (offset {event.offset}) records a different hash for its "
                    f"predecessor",
                    name,
                    seq - 1 if earlier is not None else seq,
                )
            )
    return by_seq


def _runs(numbers: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for n in numbers:
        if runs and runs[-1][1] == n - 1:
            runs[-1] = (runs[-1][0], n)
        else:
            runs.append((n, n))
    return runs


def _roots(by_seq: dict[int, _Event], sizes: set[int]) -> dict[int, bytes | None]:
    """The tree head at each size, or None where an event below it is missing."""
    roots: dict[int, bytes | None] = {}
    tree = Frontier()
    if 0 in sizes:
        roots[0] = tree.root()
    for seq in range(max(sizes, default=0)):
        if seq not in by_seq:
            roots.update({s: None for s in sizes if s > seq})
            break
        tree.append(by_seq[seq].leaf)
        if seq + 1 in sizes:
            roots[seq + 1] = tree.root()
    return roots


def _check_checkpoints(
    checkpoints: list[tuple[int, dict[str, Any]]],
    canonical_events: dict[str, dict[int, _Event]],
    chains: dict[str, list[_Event]],
    keys: Mapping[str, PublicKey],
    found: list[Problem],
) -> dict[str, int]:
    """Signatures, order and roots; returns each chain's largest verified tree size."""
    wanted: dict[str, set[int]] = defaultdict(set)
    for _, body in checkpoints:
        if isinstance(body.get("chain"), str) and isinstance(body.get("tree_size"), int):
            wanted[body["chain"]].add(body["tree_size"])
    roots = {name: _roots(canonical_events.get(name, {}), sizes) for name, sizes in wanted.items()}
    # For each checkpoint size, the covered event that comes last in the log.
    last_covered: dict[str, dict[int, _Event | None]] = {}
    for name, sizes in wanted.items():
        by_seq = canonical_events.get(name, {})
        latest: _Event | None = None
        marks: dict[int, _Event | None] = {}
        # Sizes beyond the last event cannot be covered (their roots fail): stop there,
        # whatever size an unsigned record claims.
        for seq in range(min(max(sizes, default=0), max(by_seq, default=-1) + 1) + 1):
            if seq in sizes:
                marks[seq] = latest
            event = by_seq.get(seq)
            if event is not None and (latest is None or event.offset > latest.offset):
                latest = event
        last_covered[name] = marks
    largest: dict[str, int] = {}
    for offset, body in checkpoints:
        chain, size = body.get("chain"), body.get("tree_size")
        if not isinstance(chain, str) or not isinstance(size, int) or isinstance(size, bool):
            found.append(Problem(ProblemKind.UNREADABLE, offset, "a checkpoint without chain/size"))
            continue
        if not _signed(offset, body, keys, found, chain):
            continue
        if chain in largest and size <= largest[chain]:
            found.append(
                Problem(
                    ProblemKind.REPLAYED_CHECKPOINT,
                    offset,
                    f"tree size {size} after a checkpoint of size {largest[chain]}",
                    chain,
                    size,
                )
            )
            continue
        latest = last_covered[chain].get(size)
        if latest is not None and latest.offset > offset:
            found.append(
                Problem(
                    ProblemKind.REORDERED,
                    offset,
                    f"checkpoint of size {size} precedes seq {latest.seq} "
                    f"(offset {latest.offset}) that it covers",
                    chain,
                    size,
                )
            )
        root = roots[chain].get(size)
        if root is None or root.hex() != body.get("root"):
            found.append(
                Problem(
                    ProblemKind.ALTERED,
                    offset,
                    f"the tree head over seqs 0..{size - 1} does not match this signed "
                    "checkpoint: an event it covers was altered, removed or inserted",
                    chain,
                    size,
                )
            )
        largest[chain] = size
    return largest


def _signed(
    offset: int,
    body: dict[str, Any],
    keys: Mapping[str, PublicKey],
    found: list[Problem],
    chain: str,
) -> bool:
    key = keys.get(str(body.get("key_id")))
    if key is None:
        found.append(
            Problem(
                ProblemKind.UNKNOWN_KEY,
                offset,
                f"signed by key {body.get('key_id')!r}, which is not among the trusted keys",
                chain,
            )
        )
        return False
    try:
        signature = base64.b64decode(str(body.get("signature")), validate=True)
    except (binascii.Error, ValueError):
        signature = b""
    if base64.b64encode(signature).decode() != body.get("signature"):
        signature = b""  # another spelling of it (unused bits set): not the bytes signed
    if not key.verify(signature, checkpoint_message(body)):
        found.append(
            Problem(ProblemKind.BAD_SIGNATURE, offset, "the signature does not verify", chain)
        )
        return False
    return True


def _check_anchors(
    anchors: Sequence[Mapping[str, Any]],
    canonical_events: dict[str, dict[int, _Event]],
    checkpoints: list[tuple[int, dict[str, Any]]],
    found: list[Problem],
) -> None:
    held = {(b.get("chain"), b.get("tree_size"), b.get("root")) for _, b in checkpoints}
    for anchor in anchors:
        chain, size = str(anchor.get("chain")), int(anchor.get("tree_size", 0))
        by_seq = canonical_events.get(chain, {})
        root = _roots(by_seq, {size}).get(size)
        if root is None:
            have = len(by_seq)
            found.append(
                Problem(
                    ProblemKind.TRUNCATED,
                    None,
                    f"the auditor holds a checkpoint of {chain} at size {size}; "
                    f"the log has {have} of its events",
                    chain,
                    size,
                )
            )
        elif root.hex() != anchor.get("root"):
            found.append(
                Problem(
                    ProblemKind.ALTERED,
                    None,
                    f"the log's tree head of {chain} at size {size} differs from the "
                    "checkpoint the auditor holds",
                    chain,
                    size,
                )
            )
        elif (chain, size, anchor.get("root")) not in held:
            # Every event is there, but the checkpoint itself was cut (the log's tail is
            # its writers' last checkpoints) or taken out.
            found.append(
                Problem(
                    ProblemKind.TRUNCATED,
                    None,
                    f"the auditor holds a checkpoint of {chain} at size {size}; the log does not",
                    chain,
                    size,
                )
            )


def _check_completeness(
    decisions: list[_Event],
    inputs: Mapping[tuple[str, int], tuple[int, int]],
    found: list[Problem],
) -> None:
    counts: Counter[tuple[str, int, int]] = Counter()
    where: dict[tuple[str, int, int], int] = {}
    for event in decisions:
        origin = event.origin or {}
        try:
            key = (str(origin["topic"]), int(origin["partition"]), int(origin["offset"]))
        except (KeyError, TypeError, ValueError):
            found.append(
                Problem(ProblemKind.UNKNOWN_INPUT, event.offset, "a decision without its input")
            )
            continue
        counts[key] += 1
        where.setdefault(key, event.offset)
        if (key[0], key[1]) not in inputs:
            found.append(
                Problem(
                    ProblemKind.UNKNOWN_INPUT,
                    event.offset,
                    f"a decision about {key[0]}[{key[1]}]@{key[2]}, a partition with no input",
                )
            )
        # Offsets outside [start, end) are not judged: below start, retention deleted the
        # input; at or past end, the range was taken before this decision was committed.
    for (topic, partition), (start, end) in sorted(inputs.items()):
        missing = [o for o in range(start, end) if counts[(topic, partition, o)] == 0]
        for first, last in _runs(missing):
            span = f"offset {first}" if first == last else f"offsets {first}..{last}"
            found.append(
                Problem(
                    ProblemKind.MISSING_DECISION,
                    None,
                    f"{topic}[{partition}] {span}: no decision",
                )
            )
        for offset in range(start, end):
            if counts[(topic, partition, offset)] > 1:
                found.append(
                    Problem(
                        ProblemKind.DUPLICATE_DECISION,
                        where[(topic, partition, offset)],
                        f"{topic}[{partition}]@{offset}: "
                        f"{counts[(topic, partition, offset)]} decisions",
                    )
                )
