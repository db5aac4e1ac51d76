"""verify(): every kind of problem from the tampering that should cause it, and only then.

Logs are written the way the writers write them (``ChainState`` and a ``Signer``): two router
chains interleaved, a checkpoint after every third event of a chain, decisions naming their
input coordinates. Each test applies one mutation and checks that the problem found names
the right kind, audit offset, chain and seq. Audit offsets start at 1000, so an offset is
never mistaken for a position in the list. A hypothesis property then draws random valid logs
(which must verify clean) and random single mutations of them (which must not).
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from bus.audit import (
    CHECKPOINT,
    AuditRecord,
    ChainState,
    Problem,
    ProblemKind,
    Signer,
    Verification,
    canonical,
    verify,
)

SIGNER = Signer(bytes(range(32)))
STRANGER = Signer(bytes(range(200, 232)))
KEYS = {SIGNER.public.key_id: SIGNER.public}
NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
BASE = 1000
"""The audit offset of the first record."""

POLICE, FIRE = "liaison.in.police", "liaison.in.fire"
PARTITIONS = ((POLICE, 0), (POLICE, 1), (FIRE, 0))
CHAINS = ("edge.0", "edge.1")


class Log:
    """An audit log as the writers produce it."""

    def __init__(self) -> None:
        self.values: list[bytes] = []
        self.states: dict[str, ChainState] = {}
        self.next_input: dict[tuple[str, int], int] = {}
        self.decided = 0

    def state(self, chain: str) -> ChainState:
        return self.states.setdefault(chain, ChainState(chain))

    def append(self, value: bytes) -> int:
        self.values.append(value)
        return len(self.values) - 1

    def decide(
        self, chain: str, topic: str = POLICE, partition: int = 0, *, offset: int | None = None
    ) -> int:
        """A decision about the partition's next input offset (or the one given)."""
        if offset is None:
            offset = self.next_input.get((topic, partition), 0)
            self.next_input[(topic, partition)] = offset + 1
        self.decided += 1
        event = {
            "type": "bulletin.decided",
            "outcome": "accepted",
            "bulletin_id": f"police:{self.decided:06d}",
            "input": {"topic": topic, "partition": partition, "offset": offset},
            "time": NOW.isoformat(),
        }
        return self.append(self.state(chain).seal(event))

    def note(self, chain: str) -> int:
        return self.append(self.state(chain).seal({"type": "policy.activated", "version": 2}))

    def checkpoint(self, chain: str, signer: Signer = SIGNER) -> int:
        return self.append(self.state(chain).checkpoint(signer, now=NOW))

    def seal_all(self) -> None:
        for chain, state in self.states.items():
            if state.since_checkpoint:
                self.checkpoint(chain)

    def inputs(self) -> dict[tuple[str, int], tuple[int, int]]:
        return {tp: (0, end) for tp, end in self.next_input.items()}

    def anchors(self) -> list[dict[str, Any]]:
        """The last checkpoint of each chain: what an auditor would keep."""
        latest: dict[str, dict[str, Any]] = {}
        for body in map(json.loads, self.values):
            if body["type"] == CHECKPOINT:
                latest[body["chain"]] = body
        return list(latest.values())


def standard() -> Log:
    """Two chains, interleaved; a checkpoint after every third event of a chain; sealed."""
    log = Log()
    for n in range(14):
        chain = CHAINS[n % 2]
        if n % 5 == 4:
            log.note(chain)
        else:
            log.decide(chain, *PARTITIONS[n % 3])
        if log.state(chain).since_checkpoint == 3:
            log.checkpoint(chain)
    log.seal_all()
    return log


def records(values: list[bytes]) -> list[AuditRecord]:
    return [AuditRecord(BASE + i, value) for i, value in enumerate(values)]


def check(
    values: list[bytes],
    *,
    inputs: dict[tuple[str, int], tuple[int, int]] | None = None,
    anchors: list[dict[str, Any]] | None = None,
    keys: dict[str, Any] | None = None,
) -> Verification:
    return verify(
        records(values), KEYS if keys is None else keys, inputs=inputs, anchors=anchors or ()
    )


def where(values: list[bytes], chain: str, seq: int) -> int:
    """The list position of an event."""
    for i, value in enumerate(values):
        body = json.loads(value)
        if body.get("type") != CHECKPOINT and (body["chain"], body["seq"]) == (chain, seq):
            return i
    raise AssertionError(f"no {chain}#{seq}")


def checkpoints_of(values: list[bytes], chain: str) -> list[int]:
    """The list positions of a chain's checkpoints, in log order."""
    return [
        i
        for i, value in enumerate(values)
        if (body := json.loads(value)).get("type") == CHECKPOINT and body["chain"] == chain
    ]


def of_kind(result: Verification, kind: ProblemKind) -> list[Problem]:
    return [p for p in result.problems if p.kind == kind]


def only(result: Verification, kind: ProblemKind) -> Problem:
    found = of_kind(result, kind)
    assert len(found) == 1, result.problems
    return found[0]


def resign(value: bytes, signer: Signer, **changes: Any) -> bytes:
    """A checkpoint with some fields changed, signed again by ``signer``."""
    body = {k: v for k, v in json.loads(value).items() if k != "signature"}
    body.update(changes)
    signature = base64.b64encode(signer.sign(canonical(body))).decode()
    return canonical({**body, "signature": signature})


# ---------------------------------------------------------------------------------------------
# A clean log


def test_a_clean_log_verifies_and_is_counted() -> None:
    log = standard()
    result = check(log.values, inputs=log.inputs(), anchors=log.anchors())
    assert result.ok, result.problems
    assert result.events == {"edge.0": 7, "edge.1": 7}
    assert result.checkpoints == len(checkpoints_of(log.values, "edge.0")) + len(
        checkpoints_of(log.values, "edge.1")
    )
    assert result.unsealed == {"edge.0": 0, "edge.1": 0}
    assert result.decisions == log.decided
    assert result.inputs_checked == sum(log.next_input.values())
    assert result.as_dict()["ok"] is True


def test_unsealed_counts_the_events_after_a_chains_last_checkpoint() -> None:
    log = standard()
    log.decide("edge.0")
    log.note("edge.0")
    log.note("admin")
    result = check(log.values, inputs=log.inputs())
    assert result.ok, result.problems
    assert result.unsealed == {"edge.0": 2, "edge.1": 0, "admin": 1}


def test_an_empty_log_verifies() -> None:
    result = check([], inputs={})
    assert result.ok
    assert (result.events, result.checkpoints, result.decisions) == ({}, 0, 0)


# ---------------------------------------------------------------------------------------------
# Events: altered, removed, reordered, inserted, unchained, unreadable


def test_an_altered_byte_in_an_event_is_altered_at_that_event() -> None:
    log = standard()
    values = list(log.values)
    at = where(values, "edge.0", 1)
    assert b'"outcome":"accepted"' in values[at]
    values[at] = values[at].replace(b'"outcome":"accepted"', b'"outcome":"acceptee"')
    result = check(values)
    assert {p.kind for p in result.problems} == {ProblemKind.ALTERED}
    assert (
        Problem(
            ProblemKind.ALTERED,
            BASE + at,
            f"seq 2 (offset {BASE + where(values, 'edge.0', 2)}) records a different hash for "
            "its predecessor",
            "edge.0",
            1,
        )
        in result.problems
    )
    # and every signed checkpoint of the chain covers it
    flagged = {p.offset for p in result.problems if p.seq != 1}
    assert flagged == {BASE + i for i in checkpoints_of(values, "edge.0")}


def test_an_altered_last_event_is_caught_by_the_checkpoint_over_it() -> None:
    log = standard()
    values = list(log.values)
    last = where(values, "edge.1", 6)
    assert b'"outcome":"accepted"' in values[last]
    values[last] = values[last].replace(b'"outcome":"accepted"', b'"outcome":"acceptee"')
    result = check(values)
    problem = only(result, ProblemKind.ALTERED)
    final = checkpoints_of(values, "edge.1")[-1]
    assert (problem.offset, problem.chain, problem.seq) == (BASE + final, "edge.1", 7)


def test_a_removed_event_is_removed_with_its_chain_and_seq() -> None:
    log = standard()
    values = list(log.values)
    del values[where(values, "edge.0", 2)]
    result = check(values)
    problem = only(result, ProblemKind.REMOVED)
    assert problem == Problem(
        ProblemKind.REMOVED, None, "seq 2 of chain edge.0 missing", "edge.0", 2
    )
    # the checkpoints over it can no longer be recomputed
    assert {p.offset for p in of_kind(result, ProblemKind.ALTERED)} == {
        BASE + i for i in checkpoints_of(values, "edge.0")
    }


def test_a_removed_decision_is_a_missing_decision_when_inputs_are_given() -> None:
    log = standard()
    values = list(log.values)
    gone = json.loads(values[where(values, "edge.1", 3)])["input"]
    del values[where(values, "edge.1", 3)]
    result = check(values, inputs=log.inputs())
    assert only(result, ProblemKind.REMOVED).seq == 3
    missing = only(result, ProblemKind.MISSING_DECISION)
    assert missing.offset is None
    assert missing.detail == (
        f"{gone['topic']}[{gone['partition']}] offset {gone['offset']}: no decision"
    )


def test_removed_consecutive_events_are_one_run() -> None:
    log = standard()
    values = list(log.values)
    for seq in (4, 3):
        del values[where(values, "edge.0", seq)]
    problem = only(check(values), ProblemKind.REMOVED)
    assert (problem.detail, problem.seq) == ("seqs 3..4 of chain edge.0 missing", 3)


def test_two_swapped_events_of_a_chain_are_reordered() -> None:
    log = standard()
    values = list(log.values)
    first, second = where(values, "edge.0", 0), where(values, "edge.0", 1)
    values[first], values[second] = values[second], values[first]
    result = check(values, inputs=log.inputs(), anchors=log.anchors())
    assert result.problems == [
        Problem(ProblemKind.REORDERED, BASE + second, "seq 0 after seq 1", "edge.0", 0)
    ]


def test_events_of_different_chains_may_interleave_in_any_order() -> None:
    log = Log()
    log.decide("edge.0")
    log.decide("edge.1", FIRE)
    log.seal_all()
    values = list(log.values)
    values[0], values[1] = values[1], values[0]
    assert check(values, inputs=log.inputs()).ok


def test_a_duplicated_event_is_inserted_at_the_copy() -> None:
    log = standard()
    values = list(log.values)
    original = where(values, "edge.1", 1)
    values.append(values[original])
    result = check(values, inputs=log.inputs(), anchors=log.anchors())
    problem = only(result, ProblemKind.INSERTED)
    assert (problem.offset, problem.chain, problem.seq) == (BASE + len(values) - 1, "edge.1", 1)
    assert problem.detail == f"seq 1 again, with the same bytes as offset {BASE + original}"
    assert not of_kind(result, ProblemKind.DUPLICATE_DECISION)  # the copy is not a decision


def test_an_event_reusing_a_seq_with_other_bytes_is_inserted() -> None:
    log = standard()
    values = list(log.values)
    forged = json.loads(values[where(values, "edge.0", 2)])
    forged["outcome"] = "rejected"
    values.append(canonical(forged))
    problem = only(check(values), ProblemKind.INSERTED)
    assert problem.offset == BASE + len(values) - 1
    assert "other bytes than" in problem.detail


@pytest.mark.parametrize(
    "links",
    [
        {},
        {"chain": "edge.0", "prev": "0" * 64},
        {"chain": "edge.0", "seq": 0},
        {"chain": 7, "seq": 0, "prev": "0" * 64},
        {"chain": "edge.0", "seq": -1, "prev": "0" * 64},
        {"chain": "edge.0", "seq": True, "prev": "0" * 64},
        {"chain": "edge.0", "seq": "0", "prev": "0" * 64},
        {"chain": "edge.0", "seq": 0, "prev": "0" * 63},
        {"chain": "edge.0", "seq": 0, "prev": "A" * 64},
    ],
    ids=repr,
)
def test_an_event_without_valid_chain_fields_is_unchained(links: dict[str, Any]) -> None:
    log = standard()
    values = [*log.values, canonical({"type": "bulletin.decided", **links})]
    problem = only(check(values), ProblemKind.UNCHAINED)
    assert problem.offset == BASE + len(values) - 1
    assert problem.detail == "a bulletin.decided event outside any chain"


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        (b"not json", "not JSON"),
        (b"", "not JSON"),
        (b"\xff\xfe\x00", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'"audit.checkpoint"', "not a JSON object"),
    ],
)
def test_a_record_that_is_not_a_json_object_is_unreadable(value: bytes, detail: str) -> None:
    log = standard()
    values = list(log.values)
    values.insert(3, value)
    result = check(values)
    assert result.problems == [Problem(ProblemKind.UNREADABLE, BASE + 3, detail)]


# ---------------------------------------------------------------------------------------------
# Checkpoints: keys, signatures, replays, order, anchors


def test_a_checkpoint_signed_by_an_unknown_key_is_unknown_key() -> None:
    log = standard()
    values = list(log.values)
    at = checkpoints_of(values, "edge.1")[1]
    values[at] = resign(values[at], STRANGER, key_id=STRANGER.public.key_id)
    result = check(values)
    problem = only(result, ProblemKind.UNKNOWN_KEY)
    assert (problem.offset, problem.chain) == (BASE + at, "edge.1")
    assert STRANGER.public.key_id in problem.detail
    assert result.ok is False


def test_every_checkpoint_is_unknown_key_when_the_auditor_trusts_no_key() -> None:
    log = standard()
    result = check(log.values, keys={})
    assert {p.offset for p in of_kind(result, ProblemKind.UNKNOWN_KEY)} == {
        BASE + i for chain in CHAINS for i in checkpoints_of(log.values, chain)
    }
    assert result.unsealed == {"edge.0": 7, "edge.1": 7}  # nothing counts as signed


def test_a_flipped_signature_bit_is_a_bad_signature() -> None:
    log = standard()
    values = list(log.values)
    at = checkpoints_of(values, "edge.0")[0]
    body = json.loads(values[at])
    signature = bytearray(base64.b64decode(body["signature"]))
    signature[10] ^= 0x04
    values[at] = canonical({**body, "signature": base64.b64encode(signature).decode()})
    result = check(values)
    assert result.problems == [
        Problem(ProblemKind.BAD_SIGNATURE, BASE + at, "the signature does not verify", "edge.0")
    ]


@pytest.mark.parametrize(
    "change",
    [
        {"tree_size": 2},
        {"root": "00" * 32},
        {"time": "2027-01-01T00:00:00+00:00"},
        {"last": "00" * 32},
        {"signature": "not base64!"},
        {"signature": ""},
    ],
    ids=repr,
)
def test_a_checkpoint_changed_after_signing_is_a_bad_signature(change: dict[str, Any]) -> None:
    log = standard()
    values = list(log.values)
    at = checkpoints_of(values, "edge.0")[0]
    values[at] = canonical({**json.loads(values[at]), **change})
    problem = only(check(values), ProblemKind.BAD_SIGNATURE)
    assert (problem.offset, problem.chain) == (BASE + at, "edge.0")


def test_a_signature_rewritten_in_another_base64_spelling_is_a_bad_signature() -> None:
    """A 64-byte signature's last base64 digit carries four unused bits: setting them spells
    the same signature with other bytes, which would otherwise pass unnoticed."""
    log = standard()
    values = list(log.values)
    at = checkpoints_of(values, "edge.0")[0]
    body = json.loads(values[at])
    text = body["signature"]
    assert text.endswith("==")
    digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = digits.index(text[-3])
    respelled = text[:-3] + digits[last ^ 0b0001] + "=="
    assert base64.b64decode(respelled) == base64.b64decode(text)
    values[at] = canonical({**body, "signature": respelled})
    problem = only(check(values), ProblemKind.BAD_SIGNATURE)
    assert problem.offset == BASE + at


def test_an_older_checkpoint_replayed_later_is_a_replayed_checkpoint() -> None:
    log = standard()
    values = list(log.values)
    first = checkpoints_of(values, "edge.0")[0]
    values.append(values[first])
    result = check(values, inputs=log.inputs(), anchors=log.anchors())
    assert result.problems == [
        Problem(
            ProblemKind.REPLAYED_CHECKPOINT,
            BASE + len(values) - 1,
            "tree size 3 after a checkpoint of size 7",
            "edge.0",
            3,
        )
    ]


def test_a_checkpoint_moved_before_the_events_it_covers_is_reordered() -> None:
    log = standard()
    values = list(log.values)
    moved = values.pop(checkpoints_of(values, "edge.0")[0])
    values.insert(0, moved)
    result = check(values, inputs=log.inputs(), anchors=log.anchors())
    problem = only(result, ProblemKind.REORDERED)
    assert (problem.offset, problem.chain, problem.seq) == (BASE, "edge.0", 3)
    assert problem.detail.startswith("checkpoint of size 3 precedes seq ")
    assert result.problems == [problem]


def test_a_checkpoint_after_later_events_of_its_chain_is_in_order() -> None:
    """A checkpoint of size n may come after seq n: the writer checkpoints when it can."""
    log = Log()
    log.decide("edge.0")
    checkpoint = log.state("edge.0").checkpoint(SIGNER, now=NOW)
    log.decide("edge.0")
    log.append(checkpoint)
    log.checkpoint("edge.0")
    assert check(log.values, inputs=log.inputs()).ok


def test_a_truncated_log_is_truncated_against_an_anchor() -> None:
    log = standard()
    anchors = log.anchors()
    values = log.values[: where(log.values, "edge.0", 5)]
    result = check(values, anchors=anchors)
    assert {p.kind for p in result.problems} == {ProblemKind.TRUNCATED}
    (problem,) = [p for p in result.problems if p.chain == "edge.0"]
    assert (problem.offset, problem.seq) == (None, 7)
    assert problem.detail == (
        "the auditor holds a checkpoint of edge.0 at size 7; the log has 5 of its events"
    )


def test_a_truncated_log_without_anchors_looks_whole() -> None:
    """The limit CT shares: the newest part of a log can go unnoticed without anchors."""
    log = standard()
    assert check(log.values[: where(log.values, "edge.0", 5)]).ok


def test_an_anchor_for_a_chain_the_log_lacks_is_truncated() -> None:
    log = standard()
    anchor = {**log.anchors()[0], "chain": "edge.9"}
    problem = only(check(log.values, anchors=[anchor]), ProblemKind.TRUNCATED)
    assert problem.chain == "edge.9"
    assert problem.detail.endswith("the log has 0 of its events")


def test_an_anchor_with_a_different_root_is_altered() -> None:
    log = standard()
    anchor = {**log.anchors()[1], "root": "00" * 32}
    result = check(log.values, anchors=[anchor])
    assert result.problems == [
        Problem(
            ProblemKind.ALTERED,
            None,
            f"the log's tree head of {anchor['chain']} at size {anchor['tree_size']} differs "
            "from the checkpoint the auditor holds",
            anchor["chain"],
            anchor["tree_size"],
        )
    ]


FORGED_HUGE_CHECKPOINT = """
from bus.audit import CHECKPOINT, AuditRecord, canonical, verify
forged = canonical({"type": CHECKPOINT, "chain": "edge.0", "tree_size": 10**15})
print(verify([AuditRecord(0, forged)], {}).problems[0].kind)
"""


def test_an_unsigned_checkpoint_claiming_a_huge_tree_is_reported_promptly() -> None:
    """A forged checkpoint costs the auditor no more than a real one: sizes it claims are not
    walked. (In a child process, so that a verifier that does walk them is killed.)"""
    done = subprocess.run(
        [sys.executable, "-c", FORGED_HUGE_CHECKPOINT],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    assert done.stdout.strip() == "unknown_key"


def test_a_checkpoint_without_chain_or_size_is_unreadable() -> None:
    log = standard()
    values = [*log.values, canonical({"type": CHECKPOINT, "tree_size": 3})]
    problem = only(check(values), ProblemKind.UNREADABLE)
    assert (problem.offset, problem.detail) == (
        BASE + len(values) - 1,
        "a checkpoint without chain/size",
    )


# ---------------------------------------------------------------------------------------------
# Completeness: one decision per input offset


def decision_about(values: list[bytes], topic: str, partition: int, offset: int) -> int:
    """The list position of the first decision about an input record."""
    for i, value in enumerate(values):
        if json.loads(value).get("input") == {
            "topic": topic,
            "partition": partition,
            "offset": offset,
        }:
            return i
    raise AssertionError(f"no decision about {topic}[{partition}]@{offset}")


def test_two_decisions_about_one_input_offset_are_a_duplicate_decision() -> None:
    log = standard()
    first = decision_about(log.values, FIRE, 0, 1)
    second = log.decide("edge.0", FIRE, 0, offset=1)
    log.seal_all()
    result = check(log.values, inputs=log.inputs(), anchors=log.anchors())
    problem = only(result, ProblemKind.DUPLICATE_DECISION)
    assert problem.detail == f"{FIRE}[0]@1: 2 decisions"
    assert problem.offset in {BASE + first, BASE + second}  # at one of the two decisions
    assert result.problems == [problem]


def test_a_decision_about_a_partition_without_inputs_is_an_unknown_input() -> None:
    log = standard()
    at = log.decide("edge.0", "liaison.in.ghost", 3, offset=5)
    inputs = {tp: span for tp, span in log.inputs().items() if tp[0] != "liaison.in.ghost"}
    result = check(log.values, inputs=inputs)
    assert result.problems == [
        Problem(
            ProblemKind.UNKNOWN_INPUT,
            BASE + at,
            "a decision about liaison.in.ghost[3]@5, a partition with no input",
        )
    ]


def test_a_decision_without_its_input_is_an_unknown_input() -> None:
    log = standard()
    at = log.append(log.state("edge.0").seal({"type": "bulletin.decided", "outcome": "rejected"}))
    result = check(log.values, inputs=log.inputs())
    assert result.problems == [
        Problem(ProblemKind.UNKNOWN_INPUT, BASE + at, "a decision without its input")
    ]


def test_decisions_outside_the_input_range_are_not_judged() -> None:
    log = Log()
    for _ in range(8):
        log.decide("edge.0", POLICE, 0)
    log.decide("edge.0", POLICE, 0, offset=0)  # a duplicate below start
    log.decide("edge.1", POLICE, 0, offset=7)  # a duplicate at the end
    log.decide("edge.1", POLICE, 0, offset=9)  # past the end
    log.seal_all()
    result = check(log.values, inputs={(POLICE, 0): (2, 7)})
    assert result.ok, result.problems
    assert result.inputs_checked == 5


def test_a_duplicate_inside_the_range_is_judged_where_outside_ones_are_not() -> None:
    log = Log()
    for _ in range(4):
        log.decide("edge.0", POLICE, 0)
    again = log.decide("edge.1", POLICE, 0, offset=2)
    result = check(log.values, inputs={(POLICE, 0): (1, 4)})
    problem = only(result, ProblemKind.DUPLICATE_DECISION)
    assert problem.detail == f"{POLICE}[0]@2: 2 decisions"
    assert problem.offset in {BASE + 2, BASE + again}
    assert result.problems == [problem]


def test_input_offsets_without_decisions_are_missing_decisions_in_runs() -> None:
    log = standard()
    inputs = {**log.inputs(), (FIRE, 0): (0, log.next_input[(FIRE, 0)] + 3)}
    result = check(log.values, inputs=inputs)
    end = log.next_input[(FIRE, 0)]
    assert result.problems == [
        Problem(
            ProblemKind.MISSING_DECISION,
            None,
            f"{FIRE}[0] offsets {end}..{end + 2}: no decision",
        )
    ]


# ---------------------------------------------------------------------------------------------
# Properties: random valid logs verify; a random single mutation never does

Op = tuple[str, str, tuple[str, int]]
ops = st.lists(
    st.tuples(
        st.sampled_from((*CHAINS, "admin")),
        st.sampled_from(("decide", "decide", "note", "checkpoint")),
        st.sampled_from(PARTITIONS),
    ),
    min_size=1,
    max_size=30,
)


def build(plan: list[Op], *, sealed: bool) -> Log:
    log = Log()
    for chain, op, (topic, partition) in plan:
        if op == "decide":
            log.decide(chain, topic, partition)
        elif op == "note":
            log.note(chain)
        elif log.state(chain).since_checkpoint:
            log.checkpoint(chain)
    if sealed:
        log.seal_all()
    return log


@given(ops, st.booleans())
def test_a_random_valid_log_never_reports_a_problem(plan: list[Op], sealed: bool) -> None:
    log = build(plan, sealed=sealed)
    result = check(log.values, inputs=log.inputs(), anchors=log.anchors())
    assert result.ok, result.problems
    assert result.decisions == log.decided
    assert result.unsealed == {
        chain: state.since_checkpoint for chain, state in log.states.items() if state.seq
    }


Mutation = Callable[[list[bytes], st.DataObject], list[bytes]]


def event_positions(values: list[bytes]) -> list[int]:
    return [i for i, v in enumerate(values) if json.loads(v)["type"] != CHECKPOINT]


def flip_a_byte(values: list[bytes], data: st.DataObject) -> list[bytes]:
    at = data.draw(st.integers(min_value=0, max_value=len(values) - 1), label="record")
    value = bytearray(values[at])
    byte = data.draw(st.integers(min_value=0, max_value=len(value) - 1), label="byte")
    value[byte] ^= data.draw(st.integers(min_value=1, max_value=255), label="xor")
    return [*values[:at], bytes(value), *values[at + 1 :]]


def drop_an_event(values: list[bytes], data: st.DataObject) -> list[bytes]:
    at = data.draw(st.sampled_from(event_positions(values)), label="dropped")
    return [*values[:at], *values[at + 1 :]]


def swap_two_events_of_a_chain(values: list[bytes], data: st.DataObject) -> list[bytes]:
    by_chain: dict[str, list[int]] = {}
    for i in event_positions(values):
        by_chain.setdefault(json.loads(values[i])["chain"], []).append(i)
    candidates = sorted(chain for chain, at in by_chain.items() if len(at) >= 2)
    assume(candidates)
    chain = data.draw(st.sampled_from(candidates), label="chain")
    first, second = data.draw(
        st.lists(st.sampled_from(by_chain[chain]), min_size=2, max_size=2, unique=True),
        label="swapped",
    )
    swapped = list(values)
    swapped[first], swapped[second] = values[second], values[first]
    return swapped


def duplicate_a_record(values: list[bytes], data: st.DataObject) -> list[bytes]:
    at = data.draw(st.integers(min_value=0, max_value=len(values) - 1), label="copied")
    to = data.draw(st.integers(min_value=0, max_value=len(values)), label="inserted at")
    return [*values[:to], values[at], *values[to:]]


def truncate(values: list[bytes], data: st.DataObject) -> list[bytes]:
    cut = data.draw(st.integers(min_value=0, max_value=event_positions(values)[-1]), label="cut")
    return values[:cut]


MUTATIONS: dict[str, Mutation] = {
    "flip a byte": flip_a_byte,
    "drop an event": drop_an_event,
    "swap two events of a chain": swap_two_events_of_a_chain,
    "duplicate a record": duplicate_a_record,
    "truncate (with anchors)": truncate,
}


@given(ops, st.sampled_from(sorted(MUTATIONS)), st.data())
def test_a_single_mutation_of_a_sealed_log_is_always_reported(
    plan: list[Op], mutation: str, data: st.DataObject
) -> None:
    log = build(plan, sealed=True)
    assume(event_positions(log.values))
    mutated = MUTATIONS[mutation](log.values, data)
    assert mutated != log.values
    result = check(mutated, inputs=log.inputs(), anchors=log.anchors())
    assert not result.ok, mutation


def test_problems_are_sorted_by_offset_with_absent_things_last() -> None:
    log = standard()
    values = list(log.values)
    del values[where(values, "edge.0", 2)]
    values.insert(1, b"garbage")
    result = check(values, inputs=log.inputs())
    offsets = [p.offset for p in result.problems]
    known = [o for o in offsets if o is not None]
    assert known == sorted(known)
    assert offsets[len(known) :] == [None] * (len(offsets) - len(known))
    assert all(p.line() for p in result.problems)
    assert result.as_dict()["problems"][0]["kind"] == result.problems[0].kind.value
