"""Differential test: the compiled policy against a naive rule-by-rule evaluator.

The evaluator below is written from the semantics in :mod:`bus.policy._compile`'s
docstring, without its plans, resolver or step combination: for each recipient it
scans every rule, matches source, recipient, kind and marking, applies the marking
and status constraints, and works out each field's redaction by scanning the
matching rules' redactions (tags expanded through the schema catalog). Only the
final application of the steps reuses :func:`bus.policy._redact.apply_steps`. For
random valid policies and bulletins, both must agree exactly on every view
(recipient, rules, forwarding flag, manifest, record, and the plan's steps) and every
withheld reason. Example counts come from the hypothesis profile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import given

from bus.bulletin import Bulletin, BulletinSchema, Marking
from bus.policy import (
    Action,
    AppliedRedaction,
    GeneralizeRedaction,
    MaskRedaction,
    Policy,
    Redaction,
    RedactionKeys,
    SharingRule,
    Step,
    TruncateRedaction,
    WithheldReason,
    compile_policy,
)
from bus.policy._redact import OpTree, apply_steps
from bus.schemas import FieldInfo
from tests.policy_strategies import Scenario, redaction_keys, scenarios
from tests.strategies import real_schema

SCHEMA = real_schema()
FIELDS = {kind: SCHEMA.catalog.fields(kind) for kind in SCHEMA.kinds}

_LEVEL = ["CLEAR", "GREEN", "AMBER", "AMBER_STRICT", "RED"]
_STRENGTH = ["truncate", "generalize", "pseudonymize", "mask", "drop"]
_TEXT = {"string", "array<string>"}
_NUMBER = {"int", "long", "float", "double"}


@dataclass(frozen=True)
class NaiveView:
    recipient: str
    rules: tuple[str, ...]
    not_for_forwarding: bool
    steps: dict[str, Step]
    redactions: tuple[AppliedRedaction, ...]
    record: dict[str, Any]


@dataclass(frozen=True)
class NaiveOutcome:
    views: dict[str, NaiveView]
    withheld: dict[str, tuple[WithheldReason, tuple[str, ...]]]


def _in_source(policy: Policy, rule: SharingRule, source: str) -> bool:
    if rule.source.all or source in rule.source.agencies:
        return True
    return any(g in policy.agencies[source].groups for g in rule.source.groups)


def _in_recipients(policy: Policy, rule: SharingRule, agency: str) -> bool:
    selector = rule.recipients
    me = policy.agencies[agency]
    for attribute, allowed in selector.where.items():
        if attribute not in me.attributes or me.attributes[attribute] not in allowed:
            return False
    if selector.all:
        return True
    if not selector.agencies and not selector.groups:
        return True  # only `where`: every agency is named
    return agency in selector.agencies or any(g in me.groups for g in selector.groups)


def _covers(rule: SharingRule, bulletin: Bulletin) -> bool:
    kind_ok = "*" in rule.kinds or bulletin.kind in rule.kinds
    marking_ok = _LEVEL.index(bulletin.marking.value) <= _LEVEL.index(rule.max_marking.value)
    return kind_ok and marking_ok


def _applies(redaction: Redaction, info: FieldInfo) -> bool:
    """Whether the redaction can transform this field (for tag expansion)."""
    if not info.optional:
        return False
    action = redaction.action
    if action == "drop":
        return True
    if action in ("mask", "pseudonymize", "truncate"):
        return info.shape in _TEXT
    assert isinstance(redaction, GeneralizeRedaction)
    if redaction.grid_km is not None:
        return info.shape in ("point", "array<point>")
    if redaction.time_unit is not None:
        return info.shape == "timestamp"
    return info.shape in _NUMBER


def _naive_steps(rules: list[SharingRule], kind: str) -> dict[str, Step]:
    fields = FIELDS[kind]
    asked: dict[str, list[tuple[str, Redaction]]] = {}
    for rule in rules:
        for redaction in rule.redact:
            if redaction.field is not None:
                targets = [redaction.field] if redaction.field in fields else []
            else:
                targets = [
                    path
                    for path, info in fields.items()
                    if redaction.tag in info.tags and _applies(redaction, info)
                ]
            for path in targets:
                asked.setdefault(path, []).append((rule.id, redaction))
    steps: dict[str, Step] = {}
    for path, requests in asked.items():
        strongest = max(_STRENGTH.index(r.action) for _, r in requests)
        winners = [r for _, r in requests if _STRENGTH.index(r.action) == strongest]
        masks = [r.token for r in winners if isinstance(r, MaskRedaction)]
        cuts = [r.max_chars for r in winners if isinstance(r, TruncateRedaction)]
        general = [r for r in winners if isinstance(r, GeneralizeRedaction)]
        grids = [r.grid_km for r in general if r.grid_km is not None]
        units = [r.time_unit for r in general if r.time_unit is not None]
        buckets = [r.bucket for r in general if r.bucket is not None]
        steps[path] = Step(
            action=Action(_STRENGTH[strongest]),
            rules=tuple(sorted({rule_id for rule_id, _ in requests})),
            token=min(masks) if masks else None,
            grid_km=max(grids) if grids else None,
            time_unit=("day" if "day" in units else "hour") if units else None,
            bucket=max(buckets) if buckets else None,
            max_chars=min(cuts) if cuts else None,
        )
    return steps


def naive_evaluate(
    policy: Policy, schema: BulletinSchema, keys: RedactionKeys, bulletin: Bulletin
) -> NaiveOutcome:
    views: dict[str, NaiveView] = {}
    withheld: dict[str, tuple[WithheldReason, tuple[str, ...]]] = {}
    source = bulletin.source_agency
    for agency in policy.agencies:
        if agency == source:
            continue
        if source not in policy.agencies:
            withheld[agency] = (WithheldReason.UNKNOWN_SOURCE, ())
            continue
        if bulletin.kind not in schema.kinds:
            withheld[agency] = (WithheldReason.UNKNOWN_KIND, ())
            continue
        rules = [
            rule
            for rule in policy.rules
            if _in_source(policy, rule, source)
            and _in_recipients(policy, rule, agency)
            and _covers(rule, bulletin)
        ]
        if not rules:
            withheld[agency] = (WithheldReason.NO_RULE, ())
            continue
        ids = tuple(sorted(rule.id for rule in rules))
        listed = agency in bulletin.releasable_to
        if bulletin.status not in policy.agencies[agency].accepts:
            withheld[agency] = (WithheldReason.STATUS_NOT_ACCEPTED, ids)
        elif bulletin.marking is Marking.RED and not listed:
            withheld[agency] = (WithheldReason.NOT_RELEASABLE, ids)
        elif (
            bulletin.marking is Marking.AMBER_STRICT
            and not listed
            and not any(agency in rule.recipients.agencies for rule in rules)
        ):
            withheld[agency] = (WithheldReason.NOT_NAMED, ids)
        else:
            steps = _naive_steps(rules, bulletin.kind)
            record = {**bulletin.envelope_avro(), "body": bulletin.body}
            redacted, manifest = apply_steps(
                record, OpTree.build(steps), keys.for_recipient(agency)
            )
            views[agency] = NaiveView(
                recipient=agency,
                rules=ids,
                not_for_forwarding=bulletin.marking in (Marking.AMBER_STRICT, Marking.RED),
                steps=steps,
                redactions=tuple(manifest),
                record=redacted,
            )
    return NaiveOutcome(views, withheld)


@given(scenarios(SCHEMA), redaction_keys())
def test_the_compiled_policy_decides_exactly_as_the_naive_rule_by_rule_evaluator(
    scenario: Scenario, keys: RedactionKeys
) -> None:
    compiled = compile_policy(scenario.policy, SCHEMA, keys)
    for bulletin in scenario.bulletins:
        decision = compiled.evaluate(bulletin)
        expected = naive_evaluate(scenario.policy, SCHEMA, keys, bulletin)
        assert decision.policy_version == scenario.policy.version
        withheld = {w.recipient: (w.reason, w.rules) for w in decision.withheld}
        assert len(withheld) == len(decision.withheld), "one outcome per agency"
        assert withheld == expected.withheld
        assert sorted(v.recipient for v in decision.views) == sorted(expected.views)
        plan = {
            e.recipient: e
            for e in compiled.plans.get(
                (bulletin.source_agency, bulletin.kind, bulletin.marking), ()
            )
        }
        for view in decision.views:
            naive = expected.views[view.recipient]
            assert view.policy_version == scenario.policy.version
            assert view.rules == naive.rules
            assert view.not_for_forwarding is naive.not_for_forwarding
            assert dict(plan[view.recipient].steps) == naive.steps
            assert view.redactions == naive.redactions
            assert view.record == naive.record
