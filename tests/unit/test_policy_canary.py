"""No leaks: a value the policy withholds from an agency never reaches it, in any byte.

A unique canary (``CANARY`` and 12 hex digits) is planted in every optional text field
of random bulletins, each array element its own, nested people and place names
included. For every agency the test works out, from the policy document alone,
which canaries it is denied: all of them without a view; with a view, those in
fields its matching rules drop, mask, pseudonymize or truncate below the canary's
length, or that sit under a dropped parent. None of those may occur anywhere in the
view's encoded bytes (record and redaction manifest); every other canary must occur,
so the check can fail both ways. Example counts come from the hypothesis profile.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from hypothesis import given
from hypothesis import strategies as st

from bus.bulletin import Bulletin
from bus.policy import Action, Redaction, RedactionKeys, TruncateRedaction, compile_policy
from tests.policy_strategies import (
    Scenario,
    canary_maker,
    encode_view,
    matching_rules,
    plant_text,
    redaction_keys,
    requested,
    scenarios,
    view_codec,
)
from tests.strategies import real_schema

SCHEMA = real_schema()
CODEC = view_codec(SCHEMA)
HIDING = (Action.DROP, Action.MASK, Action.PSEUDONYMIZE)


def _planted(bulletin: Bulletin, seed: int) -> tuple[Bulletin, dict[str, str]]:
    """The bulletin with a canary in every optional text slot, and canary -> path."""
    make = canary_maker(seed)
    where: dict[str, str] = {}

    def plant(path: str) -> str:
        canary = make(path)
        where[canary] = path
        return canary

    return plant_text(SCHEMA, bulletin, plant), where


def _hides(redaction: Redaction, canary: str) -> bool:
    if Action(redaction.action) in HIDING:
        return True
    return isinstance(redaction, TruncateRedaction) and redaction.max_chars < len(canary)


def _denied(canary: str, path: str, asked: Mapping[str, Sequence[tuple[str, Redaction]]]) -> bool:
    """Whether a canary at ``path`` is withheld, given every redaction asked for by path."""
    for target, redactions in asked.items():
        if target == path and any(_hides(r, canary) for _, r in redactions):
            return True
        if path.startswith(target + ".") and any(
            Action(r.action) is Action.DROP for _, r in redactions
        ):
            return True
    return False


@given(scenarios(SCHEMA), redaction_keys(), st.integers(0, 2**32 - 1))
def test_no_denied_canary_reaches_an_agency_and_every_allowed_canary_does(
    scenario: Scenario, keys: RedactionKeys, seed: int
) -> None:
    compiled = compile_policy(scenario.policy, SCHEMA, keys)
    for index, generated in enumerate(scenario.bulletins):
        bulletin, where = _planted(generated, seed + index)
        assert where, "every kind has optional text to plant canaries in"
        decision = compiled.evaluate(bulletin)
        refusals = repr(decision.withheld)
        assert not any(canary in refusals for canary in where)
        for view in decision.views:
            rules = matching_rules(scenario.policy, bulletin, view.recipient)
            asked = requested(SCHEMA, bulletin.kind, rules)
            wire = encode_view(CODEC, SCHEMA, view, bulletin.kind)
            for canary, path in where.items():
                present = canary.encode() in wire
                if _denied(canary, path, asked):
                    assert not present, f"{canary} at {path} leaked to {view.recipient}"
                else:
                    assert present, f"{canary} at {path} was withheld from {view.recipient}"
