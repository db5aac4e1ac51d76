"""Dry run and diff: what a candidate policy would do, before it goes live.

* :func:`dry_run`: for one sample bulletin, each agency's view (or the reason it gets
  none) and a trace: every rule and why it matched or not, every redactable field and
  why it was kept or redacted.
* :func:`diff`: between two compiled versions, which agencies gain or lose which kinds,
  and which fields change treatment.

Both are for people (administrators reviewing a change); they scan rules freely.
The evaluation itself always goes through the compiled plans.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from bus.bulletin import Bulletin
from bus.policy._compile import CompiledPolicy, _Resolver
from bus.policy._document import MARKING_ORDER, SharingRule
from bus.policy._redact import Step

__all__ = ["AccessChange", "AgencyTrace", "DryRun", "FieldChange", "PolicyDiff", "diff", "dry_run"]


@dataclass(frozen=True)
class RuleTrace:
    rule: str
    matched: bool
    why: str


@dataclass(frozen=True)
class FieldTrace:
    path: str
    decision: str
    """``kept``, or the action with its parameters, e.g. ``generalize grid_km=10``."""
    rules: tuple[str, ...] = ()
    via: str = ""
    """The ancestor path whose redaction covers this field, if not the field itself."""


@dataclass(frozen=True)
class AgencyTrace:
    agency: str
    delivered: bool
    reason: str
    """``delivered``, or the withheld reason (see :class:`WithheldReason`)."""
    rules: tuple[RuleTrace, ...]
    fields: tuple[FieldTrace, ...] = ()
    view: dict[str, Any] | None = None


@dataclass(frozen=True)
class DryRun:
    policy_version: int
    bulletin_id: str
    source: str
    kind: str
    marking: str
    agencies: tuple[AgencyTrace, ...]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _why(
    rule: SharingRule, resolver: _Resolver, bulletin: Bulletin, agency: str, kinds: list[str]
) -> RuleTrace:
    if bulletin.source_agency not in resolver.sources(rule):
        return RuleTrace(rule.id, False, f"source {bulletin.source_agency} is not selected")
    if agency not in resolver.recipients(rule):
        return RuleTrace(rule.id, False, f"recipient {agency} is not selected")
    if bulletin.kind not in kinds:
        return RuleTrace(rule.id, False, f"kind {bulletin.kind} is not covered")
    if MARKING_ORDER[bulletin.marking] > MARKING_ORDER[rule.max_marking]:
        return RuleTrace(
            rule.id,
            False,
            f"marking {bulletin.marking.label} is above the rule's ceiling "
            f"{rule.max_marking.label}",
        )
    return RuleTrace(rule.id, True, "source, recipient, kind and marking all match")


def _describe(step: Step) -> str:
    return f"{step.action.value} {step.detail}".strip()


def _field_traces(
    compiled: CompiledPolicy, kind: str, steps: Mapping[str, Step]
) -> list[FieldTrace]:
    traces = []
    for path, info in compiled.schema.catalog.fields(kind).items():
        if not info.optional:
            continue
        covering = next(
            ((prefix, steps[prefix]) for prefix in _prefixes(path) if prefix in steps),
            None,
        )
        if covering is None:
            traces.append(FieldTrace(path, "kept"))
        else:
            prefix, step = covering
            via = "" if prefix == path else prefix
            traces.append(FieldTrace(path, _describe(step), step.rules, via))
    return traces


def _prefixes(path: str) -> list[str]:
    parts = path.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def dry_run(compiled: CompiledPolicy, bulletin: Bulletin) -> DryRun:
    """Each agency's outcome for ``bulletin`` under ``compiled``, with the reasons."""
    decision = compiled.evaluate(bulletin)
    policy = compiled.policy
    resolver = _Resolver(policy)
    kinds_of = {
        r.id: sorted(compiled.schema.kinds) if r.kinds == ["*"] else r.kinds for r in policy.rules
    }
    entries = {
        e.recipient: e
        for e in compiled.plans.get((bulletin.source_agency, bulletin.kind, bulletin.marking), ())
    }
    traces = []
    for agency in policy.agencies:
        if agency == bulletin.source_agency:
            continue
        rules = tuple(_why(r, resolver, bulletin, agency, kinds_of[r.id]) for r in policy.rules)
        view = decision.view_for(agency)
        if view is None:
            reason = next(w.reason.value for w in decision.withheld if w.recipient == agency)
            traces.append(AgencyTrace(agency, False, reason, rules))
            continue
        entry = entries[agency]
        traces.append(
            AgencyTrace(
                agency,
                True,
                "delivered",
                rules,
                tuple(_field_traces(compiled, bulletin.kind, entry.steps)),
                _jsonable(view.record),
            )
        )
    return DryRun(
        policy_version=compiled.version,
        bulletin_id=bulletin.bulletin_id,
        source=bulletin.source_agency,
        kind=bulletin.kind,
        marking=bulletin.marking.label,
        agencies=tuple(traces),
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


# -- diff -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccessChange:
    source: str
    recipient: str
    kind: str
    change: str
    """``gained`` or ``lost``."""
    markings: tuple[str, ...]


@dataclass(frozen=True)
class FieldChange:
    source: str
    recipient: str
    kind: str
    path: str
    before: str
    after: str
    markings: tuple[str, ...]


@dataclass(frozen=True)
class PolicyDiff:
    old_version: int
    new_version: int
    agencies_added: tuple[str, ...]
    agencies_removed: tuple[str, ...]
    access: tuple[AccessChange, ...]
    fields: tuple[FieldChange, ...]
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        """A human-readable summary, one change per line."""
        out = [f"policy v{self.old_version} -> v{self.new_version}"]
        out += [f"+ agency {a}" for a in self.agencies_added]
        out += [f"- agency {a}" for a in self.agencies_removed]
        out += [f"! {note}" for note in self.notes]
        for c in self.access:
            sign = "+" if c.change == "gained" else "-"
            out.append(
                f"{sign} {c.recipient} {c.change} {c.kind} from {c.source} "
                f"({', '.join(c.markings)})"
            )
        for f in self.fields:
            out.append(
                f"~ {f.recipient} / {f.kind} from {f.source}: {f.path}: {f.before} -> {f.after} "
                f"({', '.join(f.markings)})"
            )
        if len(out) == 1:
            out.append("no change in who receives what")
        return out


def diff(old: CompiledPolicy, new: CompiledPolicy) -> PolicyDiff:
    """Who gains or loses which kinds, and which fields change treatment."""
    access: dict[tuple[str, str, str, str], list[str]] = {}
    fields: dict[tuple[str, str, str, str, str, str], list[str]] = {}
    keys = sorted(set(old.plans) | set(new.plans), key=lambda k: (k[0], k[1], MARKING_ORDER[k[2]]))
    for key in keys:
        source, kind, marking = key
        before = {e.recipient: e for e in old.plans.get(key, ())}
        after = {e.recipient: e for e in new.plans.get(key, ())}
        for recipient in sorted(set(before) | set(after)):
            if recipient not in before:
                access.setdefault((source, recipient, kind, "gained"), []).append(marking.label)
                continue
            if recipient not in after:
                access.setdefault((source, recipient, kind, "lost"), []).append(marking.label)
                continue
            old_steps, new_steps = before[recipient].steps, after[recipient].steps
            for path in sorted(set(old_steps) | set(new_steps)):
                was = _describe(old_steps[path]) if path in old_steps else "kept"
                now = _describe(new_steps[path]) if path in new_steps else "kept"
                if was != now:
                    fields.setdefault((source, recipient, kind, path, was, now), []).append(
                        marking.label
                    )
    return PolicyDiff(
        old_version=old.version,
        new_version=new.version,
        agencies_added=tuple(sorted(set(new.policy.agencies) - set(old.policy.agencies))),
        agencies_removed=tuple(sorted(set(old.policy.agencies) - set(new.policy.agencies))),
        access=tuple(
            AccessChange(s, r, k, c, tuple(m)) for (s, r, k, c), m in sorted(access.items())
        ),
        fields=tuple(
            FieldChange(s, r, k, p, b, a, tuple(m))
            for (s, r, k, p, b, a), m in sorted(fields.items())
        ),
        notes=[
            f"{agency} accepts {', '.join(new.policy.agencies[agency].accepts)} "
            f"(was {', '.join(was.accepts)})"
            for agency, was in sorted(old.policy.agencies.items())
            if agency in new.policy.agencies and was.accepts != new.policy.agencies[agency].accepts
        ],
    )
