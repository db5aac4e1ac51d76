"""The chaos scenarios, small: every fault and every check of ``make chaos``, in the suite.

R1 kills the router once at each step of a transaction and once at random (2,000
bulletins); R2 SIGKILLs a broker of its own while a transaction is open and restarts it;
R3 freezes a zombie at three different steps; F1 sends a few hundred hypothesis-made
malformed records. ``python -m tests.chaos`` runs them at full size (docs/chaos.md).
The first tests prove the verdict itself: given a bus that lost, duplicated or leaked
something, it says so.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from rich.console import Console

from bus.kafka import KafkaConnection
from tests.chaos.harness import (
    Announcement,
    ChaosConfig,
    DeadLetter,
    Decision,
    Expectation,
    Observed,
    Outcome,
    Workload,
    judge,
    parse_announcement,
    print_verdicts,
    run_f1,
    run_r1,
    run_r2,
    run_r3,
)

SMALL = ChaosConfig(
    bulletins=2_000,
    kills=5,
    r2_bulletins=1_000,
    broker_kills=1,
    r3_bulletins=2_400,
    zombie_rounds=3,
    fuzz_examples=200,
    fuzz_good=100,
    timeout_s=180.0,
)

ALWAYS = {
    "views lost",
    "views duplicated",
    "views to an unentitled agency",
    "inputs without an audit decision",
    "inputs with more than one decision",
    "decisions that differ from the policy",
    "audit log problems (verify)",
    "rejected inputs without exactly one dead letter",
    "dead letters of no rejected input",
}
"""Checks every scenario must have made (a verdict without them proves nothing)."""


def _verdict(outcome: Outcome) -> None:
    print_verdicts([outcome], Console(width=160))  # shown by pytest when the test fails
    names = {c.name for c in outcome.checks}
    assert outcome.ok, outcome.summary()
    assert names >= ALWAYS, f"checks missing from the verdict: {ALWAYS - names}"


def _check(outcome: Outcome, name: str) -> bool:
    return any(c.name == name and c.ok for c in outcome.checks)


# -- the verdict finds what is wrong (no broker) ------------------------------------------


A, B, C = "a-1", "b-1", "c-1"
T = "bus1.from.a-1"


def _workload() -> Workload:
    return Workload(
        {
            (T, 0, 0): Expectation("accepted", bulletin_id="a-1:1", recipients=frozenset({B, C})),
            (T, 0, 1): Expectation("accepted", bulletin_id="a-1:2", recipients=frozenset({B})),
            (T, 0, 2): Expectation("rejected", reason="bad_magic", value=b"\x07junk"),
        }
    )


def _faithful() -> Observed:
    return Observed(
        views=Counter({("a-1:1", B): 1, ("a-1:1", C): 1, ("a-1:2", B): 1}),
        decisions={
            (T, 0, 0): [Decision("accepted", None, frozenset({B, C}))],
            (T, 0, 1): [Decision("accepted", None, frozenset({B}))],
            (T, 0, 2): [Decision("rejected", "bad_magic", frozenset())],
        },
        dead_letters=[DeadLetter((T, 0, 2), "bad_magic", "first byte is 7", b"\x07junk")],
    )


def test_a_faithful_bus_passes_the_verdict() -> None:
    outcome = Outcome("T", "faithful")

    judge(outcome, _workload(), _faithful())

    assert outcome.ok, outcome.summary()
    assert {c.name for c in outcome.checks} >= ALWAYS


def test_the_verdict_names_every_kind_of_violation() -> None:
    observed = _faithful()
    observed.views = Counter({("a-1:1", B): 2, ("a-1:2", B): 1, ("a-1:2", C): 1})
    observed.decisions[(T, 0, 1)].append(Decision("accepted", None, frozenset({B})))
    observed.decisions[(T, 0, 0)] = [Decision("accepted", None, frozenset({B}))]
    del observed.decisions[(T, 0, 2)]
    observed.decisions[(T, 0, 9)] = [Decision("rejected", "truncated", frozenset())]
    observed.dead_letters = [
        DeadLetter((T, 0, 2), "truncated", "", b"\x07junk"),
        DeadLetter((T, 0, 1), "bad_magic", "x", b"bulletin"),
    ]
    observed.audit_problems = ["removed edge.0#7"]
    outcome = Outcome("T", "broken")

    judge(outcome, _workload(), observed)

    assert {c.name for c in outcome.violations} == {
        "views lost",  # (a-1:1, c-1)
        "views duplicated",  # (a-1:1, b-1) twice
        "views to an unentitled agency",  # (a-1:2, c-1)
        "inputs without an audit decision",  # offset 2
        "inputs with more than one decision",  # offset 1
        "decisions about unknown inputs",  # offset 9
        "decisions that differ from the policy",  # offset 0 lacks c-1
        "audit log problems (verify)",
        "dead letters without their reason, detail or bytes",  # wrong reason, no detail
        "dead letters of no rejected input",  # offset 1 was accepted
    }


def test_a_rejected_input_without_its_dead_letter_is_a_violation() -> None:
    observed = _faithful()
    observed.dead_letters = []
    outcome = Outcome("T", "no dead letter")

    judge(outcome, _workload(), observed)

    assert [c.name for c in outcome.violations] == [
        "rejected inputs without exactly one dead letter"
    ]


def test_resends_routed_again_are_violations() -> None:
    first = Expectation("accepted", bulletin_id="a-1:1", recipients=frozenset({B}))
    workload = Workload()
    for offset, value in enumerate([b"v1", b"v1", b"v2"]):  # written in this order
        workload.inputs[(T, 0, offset)] = workload.settle(A, value, first)
    assert [(e.outcome, e.reason) for e in workload.inputs.values()] == [
        ("accepted", None),
        ("duplicate", "duplicate"),
        ("rejected", "id_reused"),
    ]
    faithful = Observed(
        views=Counter({("a-1:1", B): 1}),
        decisions={
            (T, 0, 0): [Decision("accepted", None, frozenset({B}))],
            (T, 0, 1): [Decision("duplicate", "duplicate", frozenset())],
            (T, 0, 2): [Decision("rejected", "id_reused", frozenset())],
        },
        dead_letters=[DeadLetter((T, 0, 2), "id_reused", "already accepted", b"v2")],
    )
    routed_again = Observed(
        views=Counter({("a-1:1", B): 3}),
        decisions={(T, 0, o): [Decision("accepted", None, frozenset({B}))] for o in range(3)},
    )
    fine, broken = Outcome("T", "faithful"), Outcome("T", "routes re-sends")

    judge(fine, workload, faithful)
    judge(broken, workload, routed_again)

    assert fine.ok, fine.summary()
    assert {c.name for c in broken.violations} == {
        "views duplicated",
        "decisions that differ from the policy",
        "rejected inputs without exactly one dead letter",
    }


def test_the_router_announcements_parse() -> None:
    line = "consumed 3 bus1.from.a-1:0:100-199 bus1.from.b-1:2:7-9\n"

    assert parse_announcement(line) == Announcement(
        "consumed", 3, (("bus1.from.a-1", 0, 100, 199), ("bus1.from.b-1", 2, 7, 9))
    )
    assert parse_announcement("committed 12") == Announcement("committed", 12)
    assert parse_announcement("2026-12-02 INFO liaison.edge instance 0 owns 4") is None


# -- the scenarios, on the real broker ----------------------------------------------------


@pytest.mark.integration
async def test_r1_routers_killed_at_every_step_lose_and_duplicate_nothing(
    admin_connection: KafkaConnection, tmp_path: Path
) -> None:
    outcome = await run_r1(admin_connection, tmp_path, SMALL)

    _verdict(outcome)
    assert _check(outcome, "router SIGKILLs")
    assert _check(outcome, "steps killed at")  # consumed, begun, pre-commit, committing, random


@pytest.mark.integration
async def test_r2_a_sigkilled_broker_restarted_on_its_data_loses_and_duplicates_nothing(
    tmp_path: Path,
) -> None:
    outcome = await run_r2(tmp_path, SMALL)  # a broker of its own: this one is killed

    _verdict(outcome)
    assert _check(outcome, "broker SIGKILLs")


@pytest.mark.integration
async def test_r3_a_resumed_zombie_is_fenced_and_duplicates_nothing(
    admin_connection: KafkaConnection, tmp_path: Path
) -> None:
    outcome = await run_r3(admin_connection, tmp_path, SMALL)

    _verdict(outcome)
    for step in ("pre-commit", "begun", "consumed"):
        fenced = [c for c in outcome.checks if c.name.startswith(f"zombie frozen at {step} ")]
        assert fenced, f"no zombie was frozen at {step}"
        assert any(c.name.endswith(": fenced") for c in fenced)


@pytest.mark.integration
async def test_f1_malformed_records_are_dead_lettered_and_the_router_goes_on(
    admin_connection: KafkaConnection, tmp_path: Path
) -> None:
    outcome = await run_f1(admin_connection, tmp_path, SMALL)

    _verdict(outcome)
    assert _check(outcome, "router alive and committing after the fuzz")
    assert _check(outcome, "records the decode path cannot handle")
