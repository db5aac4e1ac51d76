"""Validate a policy against the schemas and compile it into per-(source, kind, marking) plans.

Compilation happens once per policy version. Evaluating a bulletin then looks up one
plan and walks its recipients: O(recipients), no rule scan.

Semantics (docs/policy.md has the long form):

* **Default deny.** Agency X receives a bulletin only if a rule matches its source,
  X as recipient, its kind, and has ``max_marking`` at or above its marking. A source
  never receives its own bulletin.
* **Markings restrict, never widen.** TLP:RED reaches only agencies in the bulletin's
  ``releasable_to``; TLP:AMBER+STRICT only agencies named in ``releasable_to`` or by
  agency id (not group or attribute) in a matching rule, and its views are marked
  not-for-forwarding (as RED's are). No rule can override either.
* **Exercise and test** bulletins reach only agencies whose ``accepts`` lists the status.
* **Several matching rules**: delivery needs one; each field gets the most restrictive
  redaction any of them asks for (:meth:`Step.combine`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from fastavro import parse_schema
from fastavro.validation import ValidationError as AvroValidationError
from fastavro.validation import validate

from bus.bulletin import Bulletin, BulletinGenerator, BulletinSchema, Marking
from bus.errors import PolicyError
from bus.policy._document import (
    MARKING_ORDER,
    Action,
    GeneralizeRedaction,
    MaskRedaction,
    Policy,
    Redaction,
    SharingRule,
    TruncateRedaction,
)
from bus.policy._redact import (
    ACTION_FITS,
    AppliedRedaction,
    OpTree,
    RedactionKeys,
    Step,
    apply_steps,
)
from bus.schemas import VIEW, FieldInfo

__all__ = [
    "CompiledPolicy",
    "Decision",
    "PlanEntry",
    "View",
    "Withheld",
    "WithheldReason",
    "compile_policy",
]


class WithheldReason(StrEnum):
    """Why an agency did not receive a bulletin."""

    NO_RULE = "no_rule"
    """No sharing rule covers this source, recipient, kind and marking (default deny)."""
    STATUS_NOT_ACCEPTED = "status_not_accepted"
    """The bulletin is an exercise or test, and the agency does not accept that status."""
    NOT_RELEASABLE = "not_releasable"
    """TLP:RED and the agency is not in ``releasable_to``."""
    NOT_NAMED = "not_named"
    """TLP:AMBER+STRICT and the agency is neither in ``releasable_to`` nor named by id."""
    UNKNOWN_SOURCE = "unknown_source"
    """The source agency is not in the policy: nothing is shared (fail closed)."""
    UNKNOWN_KIND = "unknown_kind"
    """The kind has no schema: nothing is shared (fail closed)."""


@dataclass(frozen=True)
class PlanEntry:
    """What one recipient gets for one (source, kind, marking)."""

    recipient: str
    rules: tuple[str, ...]
    named: bool
    """Named by agency id in a matching rule (counts for AMBER+STRICT)."""
    steps: Mapping[str, Step]
    tree: OpTree


@dataclass(frozen=True)
class View:
    """One recipient's view of a bulletin."""

    recipient: str
    policy_version: int
    rules: tuple[str, ...]
    not_for_forwarding: bool
    redactions: tuple[AppliedRedaction, ...]
    record: dict[str, Any]
    """The redacted bulletin: envelope fields and ``body`` as the kind's record."""

    def avro(self, body_type: str) -> dict[str, Any]:
        """The ``liaison.bulletin.View`` record the codec writes."""
        bulletin = dict(self.record)
        bulletin["body"] = (body_type, bulletin["body"])
        return {
            "recipient": self.recipient,
            "policy_version": self.policy_version,
            "rules": list(self.rules),
            "not_for_forwarding": self.not_for_forwarding,
            "redactions": [r.avro() for r in self.redactions],
            "bulletin": bulletin,
        }


@dataclass(frozen=True)
class Withheld:
    recipient: str
    reason: WithheldReason
    rules: tuple[str, ...] = ()
    """Rules that matched but could not override the marking or status."""


@dataclass(frozen=True)
class Decision:
    """Every agency's outcome for one bulletin."""

    bulletin_id: str
    source: str
    kind: str
    marking: Marking
    policy_version: int
    views: tuple[View, ...]
    withheld: tuple[Withheld, ...]

    def view_for(self, agency: str) -> View | None:
        return next((v for v in self.views if v.recipient == agency), None)


@dataclass
class CompiledPolicy:
    """A policy version ready to evaluate bulletins."""

    policy: Policy
    schema: BulletinSchema
    keys: RedactionKeys
    plans: dict[tuple[str, str, Marking], tuple[PlanEntry, ...]] = field(default_factory=dict)

    @property
    def version(self) -> int:
        return self.policy.version

    def evaluate(self, bulletin: Bulletin) -> Decision:
        """Decide, for every agency but the source, a view or the reason it gets none."""
        others = [a for a in self.policy.agencies if a != bulletin.source_agency]
        withheld: list[Withheld] = []
        views: list[View] = []

        def decision() -> Decision:
            return Decision(
                bulletin_id=bulletin.bulletin_id,
                source=bulletin.source_agency,
                kind=bulletin.kind,
                marking=bulletin.marking,
                policy_version=self.version,
                views=tuple(views),
                withheld=tuple(withheld),
            )

        if bulletin.source_agency not in self.policy.agencies:
            withheld.extend(Withheld(a, WithheldReason.UNKNOWN_SOURCE) for a in others)
            return decision()
        if bulletin.kind not in self.schema.kinds:
            withheld.extend(Withheld(a, WithheldReason.UNKNOWN_KIND) for a in others)
            return decision()
        entries = self.plans.get((bulletin.source_agency, bulletin.kind, bulletin.marking), ())
        covered = {e.recipient for e in entries}
        withheld.extend(Withheld(a, WithheldReason.NO_RULE) for a in others if a not in covered)
        record = bulletin.envelope_avro()
        record["body"] = bulletin.body
        releasable = set(bulletin.releasable_to)
        strict = bulletin.marking in (Marking.AMBER_STRICT, Marking.RED)
        for entry in entries:
            reason = self._refusal(bulletin, entry, releasable)
            if reason is not None:
                withheld.append(Withheld(entry.recipient, reason, entry.rules))
                continue
            redacted, manifest = apply_steps(
                record, entry.tree, self.keys.for_recipient(entry.recipient)
            )
            views.append(
                View(
                    recipient=entry.recipient,
                    policy_version=self.version,
                    rules=entry.rules,
                    not_for_forwarding=strict,
                    redactions=tuple(manifest),
                    record=redacted,
                )
            )
        return decision()

    def _refusal(
        self, bulletin: Bulletin, entry: PlanEntry, releasable: set[str]
    ) -> WithheldReason | None:
        if bulletin.status not in self.policy.agencies[entry.recipient].accepts:
            return WithheldReason.STATUS_NOT_ACCEPTED
        if bulletin.marking is Marking.RED and entry.recipient not in releasable:
            return WithheldReason.NOT_RELEASABLE
        if (
            bulletin.marking is Marking.AMBER_STRICT
            and entry.recipient not in releasable
            and not entry.named
        ):
            return WithheldReason.NOT_NAMED
        return None


# -- compilation ------------------------------------------------------------------------


class _Resolver:
    """Selectors resolved to agency sets, once per rule."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.groups = policy.groups

    def sources(self, rule: SharingRule) -> set[str]:
        s = rule.source
        if s.all:
            return set(self.policy.agencies)
        chosen = set(s.agencies)
        for g in s.groups:
            chosen |= self.groups.get(g, set())
        return chosen

    def recipients(self, rule: SharingRule) -> set[str]:
        r = rule.recipients
        if r.all or not (r.agencies or r.groups):
            named = set(self.policy.agencies)
        else:
            named = set(r.agencies)
            for g in r.groups:
                named |= self.groups.get(g, set())
        return {
            a
            for a in named
            if all(
                self.policy.agencies[a].attributes.get(attr) in allowed
                for attr, allowed in r.where.items()
            )
        }


def _params(redaction: Redaction) -> dict[str, Any]:
    if isinstance(redaction, MaskRedaction):
        return {"token": redaction.token}
    if isinstance(redaction, GeneralizeRedaction):
        return {
            "grid_km": redaction.grid_km,
            "time_unit": redaction.time_unit,
            "bucket": redaction.bucket,
        }
    if isinstance(redaction, TruncateRedaction):
        return {"max_chars": redaction.max_chars}
    return {}


def _fits(action: Action, info: FieldInfo, redaction: Redaction) -> bool:
    if not info.optional:
        return False
    if action is Action.DROP:
        return True
    if info.shape not in ACTION_FITS[action]:
        return False
    if isinstance(redaction, GeneralizeRedaction):
        if redaction.grid_km is not None:
            return info.shape in ("point", "array<point>")
        if redaction.time_unit is not None:
            return info.shape == "timestamp"
        return info.shape in ("int", "long", "float", "double")
    return True


_USE = {
    Action.MASK: "mask, pseudonymize and truncate work on text",
    Action.PSEUDONYMIZE: "mask, pseudonymize and truncate work on text",
    Action.TRUNCATE: "mask, pseudonymize and truncate work on text",
    Action.GENERALIZE: "generalize takes grid_km for positions, time_unit for times, "
    "bucket for numbers",
}


def _rule_steps(
    rule: SharingRule, kind: str, fields: Mapping[str, FieldInfo], problems: list[str]
) -> dict[str, Step]:
    """This rule's redactions for one kind, as path -> step; problems are collected."""
    steps: dict[str, Step] = {}
    for redaction in rule.redact:
        action = Action(redaction.action)
        step = Step(action=action, rules=(rule.id,), **_params(redaction))
        if redaction.field is not None:
            info = fields.get(redaction.field)
            if info is None:
                continue  # checked across all the rule's kinds in _check_targets
            if not info.optional:
                problems.append(
                    f"rule '{rule.id}' redacts required field `{redaction.field}` of kind "
                    f"`{kind}`; make the field optional in the schema or remove the redaction"
                )
                continue
            if not _fits(action, info, redaction):
                problems.append(
                    f"rule '{rule.id}' asks to {action.value} `{redaction.field}` of kind "
                    f"`{kind}`, which is {info.shape}; {_USE[action]}; use drop for anything"
                )
                continue
            targets = [redaction.field]
        else:
            tagged = [i for i in fields.values() if redaction.tag in i.tags]
            # A tag covers records and their leaves alike: apply where the action fits.
            targets = [i.path for i in tagged if _fits(action, i, redaction)]
        for path in targets:
            steps[path] = steps[path].combine(step) if path in steps else step
    return steps


def _check_targets(
    policy: Policy, schema: BulletinSchema, kinds_of: Mapping[str, list[str]], problems: list[str]
) -> None:
    catalog = schema.catalog
    for rule in policy.rules:
        kinds = kinds_of[rule.id]
        per_kind = {k: catalog.fields(k) for k in kinds}
        for redaction in rule.redact:
            action = Action(redaction.action)
            if redaction.field is not None:
                if not any(redaction.field in f for f in per_kind.values()):
                    problems.append(
                        f"rule '{rule.id}' redacts `{redaction.field}`, which no kind it covers "
                        f"({', '.join(kinds)}) has; check the path (dotted, e.g. "
                        "body.reporting_officer.name)"
                    )
            else:
                tagged = [
                    i for f in per_kind.values() for i in f.values() if redaction.tag in i.tags
                ]
                if not tagged:
                    known = sorted(
                        {t for f in per_kind.values() for i in f.values() for t in i.tags}
                    )
                    problems.append(
                        f"rule '{rule.id}' targets tag `{redaction.tag}`, which no field of "
                        f"{', '.join(kinds)} carries; known tags: {', '.join(known)}"
                    )
                elif not any(_fits(action, i, redaction) for i in tagged):
                    problems.append(
                        f"rule '{rule.id}' asks to {action.value} tag `{redaction.tag}`, but no "
                        f"field with that tag is of a type it fits; {_USE.get(action, '')}"
                    )


def _check_names(
    policy: Policy, schema: BulletinSchema, problems: list[str]
) -> dict[str, list[str]]:
    groups = policy.groups
    kinds_of: dict[str, list[str]] = {}
    for rule in policy.rules:
        for where, selector in (("source", rule.source), ("recipients", rule.recipients)):
            for agency in selector.agencies:
                if agency not in policy.agencies:
                    problems.append(
                        f"rule '{rule.id}' names agency '{agency}' in {where}, which the policy "
                        "does not define; add it under agencies or fix the id"
                    )
            for group in selector.groups:
                if group not in groups:
                    problems.append(
                        f"rule '{rule.id}' names group '{group}' in {where}, which no agency "
                        f"belongs to; known groups: {', '.join(sorted(groups)) or '(none)'}"
                    )
        if rule.kinds == ["*"]:
            kinds_of[rule.id] = sorted(schema.kinds)
        else:
            unknown = [k for k in rule.kinds if k not in schema.kinds]
            for k in unknown:
                problems.append(
                    f"rule '{rule.id}' names kind '{k}', which no schema defines; known kinds: "
                    f"{', '.join(sorted(schema.kinds))}"
                )
            kinds_of[rule.id] = [k for k in rule.kinds if k in schema.kinds]
    return kinds_of


def compile_policy(policy: Policy, schema: BulletinSchema, keys: RedactionKeys) -> CompiledPolicy:
    """Check ``policy`` against the schemas and compile it; raises :class:`PolicyError`
    listing every problem, each naming the rule and the field and saying what to do."""
    problems: list[str] = []
    kinds_of = _check_names(policy, schema, problems)
    _check_targets(policy, schema, kinds_of, problems)
    resolver = _Resolver(policy)
    fields_of = {k: schema.catalog.fields(k) for k in schema.kinds}
    rule_steps = {
        (rule.id, kind): _rule_steps(rule, kind, fields_of[kind], problems)
        for rule in policy.rules
        for kind in kinds_of[rule.id]
    }
    if problems:
        raise PolicyError(
            f"policy version {policy.version} has {len(problems)} problem(s): "
            + " | ".join(problems),
            problems=problems,
        )

    # (source, kind, marking) -> recipient -> matching rules, built rule by rule.
    matches: dict[tuple[str, str, Marking], dict[str, list[SharingRule]]] = {}
    for rule in policy.rules:
        sources = resolver.sources(rule)
        recipients = resolver.recipients(rule)
        markings = [m for m in Marking if MARKING_ORDER[m] <= MARKING_ORDER[rule.max_marking]]
        for source in sources:
            for kind in kinds_of[rule.id]:
                for marking in markings:
                    by_recipient = matches.setdefault((source, kind, marking), {})
                    for recipient in recipients - {source}:
                        by_recipient.setdefault(recipient, []).append(rule)

    # Many (key, recipient) pairs share a rule set: combine each set's steps once.
    combos: dict[tuple[str, tuple[str, ...]], tuple[dict[str, Step], OpTree]] = {}
    plans: dict[tuple[str, str, Marking], tuple[PlanEntry, ...]] = {}
    for (source, kind, marking), by_recipient in matches.items():
        entries = []
        for recipient in sorted(by_recipient):
            rules = by_recipient[recipient]
            ids = tuple(sorted(r.id for r in rules))
            combo = combos.get((kind, ids))
            if combo is None:
                steps = _combine(rule_steps[(r.id, kind)] for r in rules)
                combo = combos[(kind, ids)] = (steps, OpTree.build(steps))
            named = any(recipient in r.recipients.agencies for r in rules)
            entries.append(PlanEntry(recipient, ids, named, combo[0], combo[1]))
        plans[(source, kind, marking)] = tuple(entries)

    compiled = CompiledPolicy(policy=policy, schema=schema, keys=keys, plans=plans)
    _prove_views_valid(compiled, [(kind, ids, tree) for (kind, ids), (_, tree) in combos.items()])
    return compiled


def _combine(step_maps: Iterable[Mapping[str, Step]]) -> dict[str, Step]:
    combined: dict[str, Step] = {}
    for steps in step_maps:
        for path, step in steps.items():
            combined[path] = combined[path].combine(step) if path in combined else step
    return combined


def _prove_views_valid(
    compiled: CompiledPolicy, combos: list[tuple[str, tuple[str, ...], OpTree]]
) -> None:
    """Apply every distinct plan to a fully populated sample of its kind and validate the
    view against the View schema: a plan that would leave a view invalid never goes live."""
    schema = compiled.schema
    parsed = parse_schema(schema.catalog.composed(VIEW))
    full = BulletinGenerator(schema, seed=0, null_probability=0.0)
    samples: dict[str, dict[str, Any]] = {}
    problems = []
    for kind, ids, tree in combos:
        if kind not in samples:
            bulletin = full.bulletin(kind)
            samples[kind] = {**bulletin.envelope_avro(), "body": bulletin.body}
        redacted, manifest = apply_steps(samples[kind], tree, b"validation-key")
        view = View("validation", compiled.version, ids, False, tuple(manifest), redacted)
        try:
            validate(view.avro(schema.kinds[kind]), parsed, raise_errors=True)
        except AvroValidationError as exc:
            fields = sorted({str(getattr(e, "field", "?")) for e in exc.errors})
            problems.append(
                f"rules {', '.join(ids)} would leave a {kind} view schema-invalid at "
                f"{', '.join(fields)}; change the redaction to drop"
            )
    if problems:
        raise PolicyError(" | ".join(problems), problems=problems)
