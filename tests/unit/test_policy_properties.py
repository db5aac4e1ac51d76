"""Properties of the sharing policy engine over random valid policies and bulletins.

Each property is checked against the policy document read naively
(:func:`tests.policy_strategies.matching_rules`), not against the compiled plans.
The number of examples comes from the hypothesis profile (``HYPOTHESIS_PROFILE``:
``default`` or ``proof``), never from the tests.
"""

from __future__ import annotations

import re
from typing import Any

from fastavro import parse_schema
from fastavro.validation import validate
from hypothesis import given
from hypothesis import strategies as st

from bus.bulletin import Bulletin, BulletinGenerator, Marking, Status
from bus.policy import (
    Action,
    Agency,
    CompiledPolicy,
    DropRedaction,
    GeneralizeRedaction,
    MaskRedaction,
    Policy,
    PseudonymizeRedaction,
    RecipientSelector,
    Redaction,
    RedactionKeys,
    SharingRule,
    SourceSelector,
    TruncateRedaction,
    WithheldReason,
    compile_policy,
)
from bus.schemas import VIEW
from tests.policy_strategies import (
    AGENCIES,
    VIEW_SCHEMA_ID,
    Scenario,
    encode_view,
    fits,
    matching_rules,
    plant_text,
    populated_bulletin,
    redaction_keys,
    scenarios,
    text_slots,
    values_at,
    view_codec,
)
from tests.strategies import real_schema

SCHEMA = real_schema()
KINDS = sorted(SCHEMA.kinds)
PARSED_VIEW = parse_schema(SCHEMA.catalog.composed(VIEW))
CODEC = view_codec(SCHEMA)
PSEUDONYM = re.compile(r"^pseudonym:[a-z2-7]{16}$")
TOKEN_CHARS = frozenset("pseudonym:abcdefghijklmnopqrstuvwxyz234567")
STRICT = (Marking.AMBER_STRICT, Marking.RED)
CONSTRAINT_REASONS = {
    WithheldReason.STATUS_NOT_ACCEPTED,
    WithheldReason.NOT_RELEASABLE,
    WithheldReason.NOT_NAMED,
}


def _compiled(scenario: Scenario, keys: RedactionKeys) -> CompiledPolicy:
    return compile_policy(scenario.policy, SCHEMA, keys)


def _passes_constraints(policy: Policy, bulletin: Bulletin, recipient: str) -> bool:
    """The marking and status constraints, read from the semantics: no rule overrides them."""
    if bulletin.status not in policy.agencies[recipient].accepts:
        return False
    releasable = recipient in bulletin.releasable_to
    if bulletin.marking is Marking.RED:
        return releasable
    if bulletin.marking is Marking.AMBER_STRICT:
        named = any(
            recipient in r.recipients.agencies for r in matching_rules(policy, bulletin, recipient)
        )
        return releasable or named
    return True


# -- default deny ------------------------------------------------------------------------


@given(scenarios(SCHEMA), redaction_keys())
def test_exactly_the_agencies_a_rule_matches_and_the_constraints_allow_receive_a_view(
    scenario: Scenario, keys: RedactionKeys
) -> None:
    compiled = _compiled(scenario, keys)
    policy = scenario.policy
    for bulletin in scenario.bulletins:
        decision = compiled.evaluate(bulletin)
        viewers = [v.recipient for v in decision.views]
        refused = {w.recipient: w for w in decision.withheld}
        others = [a for a in policy.agencies if a != bulletin.source_agency]
        # Every other agency gets exactly one outcome; the source gets none.
        assert sorted(viewers + [w.recipient for w in decision.withheld]) == sorted(others)
        assert bulletin.source_agency not in viewers
        assert bulletin.source_agency not in refused
        for agency in others:
            rules = matching_rules(policy, bulletin, agency)
            ids = tuple(sorted(r.id for r in rules))
            if bulletin.source_agency not in policy.agencies:
                assert refused[agency].reason is WithheldReason.UNKNOWN_SOURCE
            elif not rules:
                assert refused[agency].reason is WithheldReason.NO_RULE
                assert refused[agency].rules == ()
            elif _passes_constraints(policy, bulletin, agency):
                view = decision.view_for(agency)
                assert view is not None, f"{agency} is entitled by {ids} but got no view"
                assert view.rules == ids
            else:
                assert refused[agency].reason in CONSTRAINT_REASONS
                assert refused[agency].rules == ids


# -- markings restrict, never widen --------------------------------------------------------


@given(scenarios(SCHEMA), redaction_keys())
def test_markings_and_statuses_restrict_who_receives_and_views_carry_the_forwarding_flag(
    scenario: Scenario, keys: RedactionKeys
) -> None:
    compiled = _compiled(scenario, keys)
    policy = scenario.policy
    for bulletin in scenario.bulletins:
        decision = compiled.evaluate(bulletin)
        releasable = set(bulletin.releasable_to)
        for view in decision.views:
            agency = view.recipient
            if bulletin.marking is Marking.RED:
                assert agency in releasable
            if bulletin.marking is Marking.AMBER_STRICT:
                named = any(
                    agency in r.recipients.agencies
                    for r in matching_rules(policy, bulletin, agency)
                )
                assert agency in releasable or named
            assert bulletin.status in policy.agencies[agency].accepts
            assert view.not_for_forwarding is (bulletin.marking in STRICT)
        for withheld in decision.withheld:
            if withheld.reason is WithheldReason.NOT_RELEASABLE:
                assert bulletin.marking is Marking.RED
                assert withheld.recipient not in releasable
            elif withheld.reason is WithheldReason.NOT_NAMED:
                assert bulletin.marking is Marking.AMBER_STRICT
                assert withheld.recipient not in releasable
            elif withheld.reason is WithheldReason.STATUS_NOT_ACCEPTED:
                assert bulletin.status not in policy.agencies[withheld.recipient].accepts


# -- views are schema-valid ----------------------------------------------------------------


@given(scenarios(SCHEMA), redaction_keys())
def test_every_view_fits_the_view_schema_and_round_trips_through_the_wire_codec(
    scenario: Scenario, keys: RedactionKeys
) -> None:
    compiled = _compiled(scenario, keys)
    for bulletin in scenario.bulletins:
        for view in compiled.evaluate(bulletin).views:
            record = view.avro(SCHEMA.kinds[bulletin.kind])
            assert validate(record, PARSED_VIEW, raise_errors=True)
            decoded = CODEC.decode(encode_view(CODEC, SCHEMA, view, bulletin.kind))
            assert decoded.schema_id == VIEW_SCHEMA_ID
            assert decoded.record == record


# -- pseudonyms ----------------------------------------------------------------------------

_STRING_SLOTS = [(kind, i.path) for kind in KINDS for i in text_slots(SCHEMA, kind)]


def _share_all(agencies: list[str], kind: str, redact: list[Redaction]) -> Policy:
    return Policy(
        version=1,
        agencies={a: Agency(name=a) for a in agencies},
        rules=[
            SharingRule(
                id="share-all",
                source=SourceSelector(all=True),
                recipients=RecipientSelector(all=True),
                kinds=[kind],
                max_marking=Marking.RED,
                redact=redact,
            )
        ],
    )


def _actual(bulletin: Bulletin, agencies: list[str]) -> Bulletin:
    """The bulletin as ACTUAL, CLEAR and from the first agency: every other one gets it."""
    update: dict[str, Any] = {
        "status": Status.ACTUAL,
        "marking": Marking.CLEAR,
        "source_agency": agencies[0],
    }
    return bulletin.model_copy(update=update)


@given(
    slot=st.sampled_from(_STRING_SLOTS),
    recipients=st.integers(2, 4),
    value=st.text(min_size=1, max_size=40).filter(lambda v: not set(v) <= TOKEN_CHARS),
    other=st.text(min_size=1, max_size=40),
    seeds=st.tuples(st.integers(0, 10_000), st.integers(0, 10_000)),
    keys=redaction_keys(),
)
def test_pseudonyms_are_stable_per_recipient_unlinkable_across_recipients_and_hide_the_value(
    slot: tuple[str, str],
    recipients: int,
    value: str,
    other: str,
    seeds: tuple[int, int],
    keys: RedactionKeys,
) -> None:
    kind, path = slot
    agencies = list(AGENCIES[: recipients + 1])
    redact: list[Redaction] = [PseudonymizeRedaction(field=path, action=Action.PSEUDONYMIZE)]
    compiled = compile_policy(_share_all(agencies, kind, redact), SCHEMA, keys)

    def carrying(seed: int, text: str) -> Bulletin:
        generated = BulletinGenerator(SCHEMA, seed=seed, agencies=agencies).bulletin(kind)
        return plant_text(SCHEMA, _actual(generated, agencies), lambda _p: text, paths=[path])

    first, second, third = (
        carrying(seeds[0], value),
        carrying(seeds[1], value),
        carrying(seeds[0], other),
    )
    tokens: dict[str, set[Any]] = {}
    for agency in agencies[1:]:
        seen = set()
        for bulletin in (first, second):
            view = compiled.evaluate(bulletin).view_for(agency)
            assert view is not None
            found = values_at(view.record, path)
            flat = [t for v in found for t in (v if isinstance(v, list) else [v])]
            assert flat, f"nothing at {path}"
            for token in flat:
                assert isinstance(token, str)
                assert PSEUDONYM.fullmatch(token)
                assert value not in token
            seen.update(flat)
        assert len(seen) == 1, "one value, one recipient: one token"
        tokens[agency] = seen
        third_view = compiled.evaluate(third).view_for(agency)
        assert third_view is not None
        third_tokens = {
            t
            for v in values_at(third_view.record, path)
            for t in (v if isinstance(v, list) else [v])
        }
        assert (third_tokens == seen) is (other == value)
    distinct = {token for seen in tokens.values() for token in seen}
    assert len(distinct) == len(tokens), "two recipients must never share a token"


# -- most restrictive wins -----------------------------------------------------------------

_PARAMETER = {"point": "grid_km", "array<point>": "grid_km", "timestamp": "time_unit"}
_REDACTABLE = [
    (kind, info.path, info.shape)
    for kind in KINDS
    for info in SCHEMA.catalog.fields(kind).values()
    if info.optional
    and info.shape in ("string", "array<string>", "point", "array<point>", "timestamp", "int")
]


def _redactions_for(kind: str, path: str, shape: str) -> st.SearchStrategy[Redaction]:
    """Every action that fits the field, with drawn parameters."""
    info = SCHEMA.catalog.fields(kind)[path]
    target = {"field": st.just(path)}
    options: list[st.SearchStrategy[Redaction]] = [
        st.just(DropRedaction(field=path, action=Action.DROP))
    ]
    if fits(info, Action.MASK):
        options += [
            st.builds(
                MaskRedaction,
                **target,
                action=st.just(Action.MASK),
                token=st.text("abcdefgh[]", max_size=8),
            ),
            st.just(PseudonymizeRedaction(field=path, action=Action.PSEUDONYMIZE)),
            st.builds(
                TruncateRedaction,
                **target,
                action=st.just(Action.TRUNCATE),
                max_chars=st.integers(0, 30),
            ),
        ]
    parameter = _PARAMETER.get(shape, "bucket")
    if fits(info, Action.GENERALIZE, parameter):
        values: dict[str, st.SearchStrategy[Any]] = {
            "grid_km": st.floats(0.1, 1000.0),
            "time_unit": st.sampled_from(["hour", "day"]),
            "bucket": st.floats(0.5, 100.0),
        }
        options.append(
            st.builds(
                GeneralizeRedaction,
                **target,
                action=st.just(Action.GENERALIZE),
                **{parameter: values[parameter]},
            )
        )
    return st.one_of(options)


@st.composite
def _two_redactions(draw: st.DrawFn) -> tuple[str, str, Redaction, Redaction]:
    kind, path, shape = draw(st.sampled_from(_REDACTABLE))
    first = draw(_redactions_for(kind, path, shape))
    second = draw(
        _redactions_for(kind, path, shape).filter(
            lambda r: Action(r.action) != Action(first.action)
        )
    )
    return kind, path, first, second


def _two_rules(kind: str, first: Redaction, second: Redaction) -> Policy:
    def rule(rule_id: str, redaction: Redaction) -> SharingRule:
        return SharingRule(
            id=rule_id,
            source=SourceSelector(agencies=["north-river"]),
            recipients=RecipientSelector(agencies=["vale-fire"]),
            kinds=[kind],
            max_marking=Marking.RED,
            redact=[redaction],
        )

    return Policy(
        version=3,
        agencies={a: Agency(name=a) for a in ("north-river", "vale-fire")},
        rules=[rule("rule-one", first), rule("rule-two", second)],
    )


@given(choice=_two_redactions(), seed=st.integers(0, 10_000), keys=redaction_keys())
def test_when_two_rules_redact_one_field_differently_the_more_restrictive_action_wins(
    choice: tuple[str, str, Redaction, Redaction], seed: int, keys: RedactionKeys
) -> None:
    kind, path, first, second = choice
    order = list(Action)
    winner = max(first, second, key=lambda r: order.index(Action(r.action)))
    bulletin = _actual(
        populated_bulletin(SCHEMA, kind, seed, ["north-river", "vale-fire"], path),
        ["north-river", "vale-fire"],
    )
    both = compile_policy(_two_rules(kind, first, second), SCHEMA, keys)
    alone = compile_policy(_two_rules(kind, winner, winner), SCHEMA, keys)
    view = both.evaluate(bulletin).view_for("vale-fire")
    expected = alone.evaluate(bulletin).view_for("vale-fire")
    assert view is not None
    assert expected is not None
    assert view.record == expected.record
    [entry] = [r for r in view.redactions if r.path == path]
    assert entry.action is Action(winner.action)
    assert entry.rules == ("rule-one", "rule-two")
    shown = [
        leaf
        for value in values_at(view.record, path)
        for leaf in (value if isinstance(value, list) else [value])
    ]
    if isinstance(winner, DropRedaction):
        dropped = values_at(view.record, path)
        assert dropped
        assert all(value is None for value in dropped)
    elif isinstance(winner, MaskRedaction):
        assert shown
        assert set(shown) == {winner.token}
    elif isinstance(winner, PseudonymizeRedaction):
        assert shown
        assert all(PSEUDONYM.fullmatch(leaf) for leaf in shown)
