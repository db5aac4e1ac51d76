"""Hypothesis strategies and test-side helpers for the sharing policy engine.

:func:`policies` draws random policies that are *valid*: every name they use is
defined, and every redaction targets a field (or a tag) where its action fits, judged
from the schema catalog (``FieldInfo.optional``, ``.shape``, ``.tags``) and
:data:`bus.policy._redact.ACTION_FITS`, so that :func:`bus.policy.compile_policy`
accepts them. :func:`policy_bulletins` draws valid bulletins from the seeded
generator for the policy's agencies, with every marking, status and
``releasable_to`` list.

The helpers below the strategies read the policy's semantics independently of
:mod:`bus.policy._compile` (which rules match a recipient, which redactions a rule asks
for on which path), and handle the fastavro-form records the views carry.
"""

from __future__ import annotations

import copy
import functools
import json
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from hypothesis import strategies as st
from pydantic import SecretBytes

from bus.bulletin import Bulletin, BulletinGenerator, BulletinSchema, Marking, Status
from bus.codec import WireCodec
from bus.policy import (
    MARKING_ORDER,
    Action,
    Agency,
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
    View,
)
from bus.policy._redact import ACTION_FITS
from bus.schemas import VIEW, FieldInfo

__all__ = [
    "AGENCIES",
    "OUTSIDER",
    "VIEW_SCHEMA_ID",
    "Option",
    "Scenario",
    "canary_maker",
    "encode_view",
    "fits",
    "kind_fields",
    "matching_rules",
    "parameter_of",
    "plant_text",
    "policies",
    "policy_bulletins",
    "populated_bulletin",
    "redaction_keys",
    "redaction_options",
    "requested",
    "scenarios",
    "text_slots",
    "values_at",
    "view_codec",
]

AGENCIES: tuple[str, ...] = (
    "north-river",
    "harbour-watch",
    "vale-fire",
    "saltmarsh-health",
    "upland-transit",
    "delta-police",
)
"""Fictional agency ids the policies draw from."""

OUTSIDER = "stray-agency"
"""An agency id no drawn policy defines: its bulletins must reach nobody."""

GROUPS = ("emergency", "health", "flood", "maritime", "infrastructure")
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "sector": ("water", "fire", "health", "maritime", "transport"),
    "jurisdiction": ("north-county", "estuary"),
}
TOKEN_ALPHABET = "abcdefghijklmnopqrstuvwxyz[] *-"
"""Mask tokens: no capitals, so no token can spell a test's canary."""

GENERALIZE_SHAPES: dict[str, frozenset[str]] = {
    "grid_km": frozenset({"point", "array<point>"}),
    "time_unit": frozenset({"timestamp"}),
    "bucket": frozenset({"int", "long", "float", "double"}),
}
"""Which field shapes each generalize parameter coarsens."""

VIEW_SCHEMA_ID = 1


# -- what fits where ---------------------------------------------------------------------


@functools.cache
def kind_fields(schema: BulletinSchema, kind: str) -> Mapping[str, FieldInfo]:
    """``schema.catalog.fields(kind)``, walked once per kind (read-only)."""
    return MappingProxyType(schema.catalog.fields(kind))


@dataclass(frozen=True)
class Option:
    """A redaction the schema admits for some kind: a target, an action, and (for
    generalize) which parameter it takes."""

    field: str | None
    tag: str | None
    action: Action
    parameter: str | None = None


def fits(info: FieldInfo, action: Action, parameter: str | None = None) -> bool:
    """Whether ``action`` can redact the field and keep the record schema-valid."""
    if not info.optional:
        return False
    if action is Action.DROP:
        return True
    if info.shape not in ACTION_FITS[action]:
        return False
    if action is Action.GENERALIZE:
        return parameter is not None and info.shape in GENERALIZE_SHAPES[parameter]
    return True


def parameter_of(redaction: Redaction) -> str | None:
    """The generalize parameter a redaction sets (None for the other actions)."""
    if isinstance(redaction, GeneralizeRedaction):
        if redaction.grid_km is not None:
            return "grid_km"
        if redaction.time_unit is not None:
            return "time_unit"
        return "bucket"
    return None


def _choices() -> Iterator[tuple[Action, str | None]]:
    for action in Action:
        if action is Action.GENERALIZE:
            for parameter in GENERALIZE_SHAPES:
                yield action, parameter
        else:
            yield action, None


@functools.cache
def redaction_options(schema: BulletinSchema, kinds: tuple[str, ...]) -> tuple[Option, ...]:
    """Every (target, action) a rule covering ``kinds`` may use and still compile.

    A field path must exist in some kind and the action must fit it wherever it exists;
    a tag must be carried by some field the action fits.
    """
    per_kind = [kind_fields(schema, k) for k in kinds]
    paths = sorted({p for fields in per_kind for p in fields})
    tags = sorted({t for fields in per_kind for i in fields.values() for t in i.tags})
    options: list[Option] = []
    for path in paths:
        infos = [fields[path] for fields in per_kind if path in fields]
        for action, parameter in _choices():
            if all(fits(i, action, parameter) for i in infos):
                options.append(Option(path, None, action, parameter))
    for tag in tags:
        tagged = [i for fields in per_kind for i in fields.values() if tag in i.tags]
        for action, parameter in _choices():
            if any(fits(i, action, parameter) for i in tagged):
                options.append(Option(None, tag, action, parameter))
    return tuple(options)


# -- strategies --------------------------------------------------------------------------

_MARKINGS = st.sampled_from([*Marking, Marking.AMBER_STRICT, Marking.RED])
"""Every marking, the two with hard constraints (where widening would hide) twice as often."""
_GRIDS = st.sampled_from([0.5, 1.0, 5.0, 10.0, 50.0, 1000.0]) | st.floats(0.01, 1000.0)
_BUCKETS = st.sampled_from([1.0, 2.0, 5.0, 10.0, 25.0]) | st.floats(0.5, 1000.0)
_TOKENS = st.text(TOKEN_ALPHABET, max_size=16)
_MAX_CHARS = st.integers(0, 40)
_TIME_UNITS: st.SearchStrategy[Literal["hour", "day"]] = st.sampled_from(["hour", "day"])
_REDACTION_COUNTS = st.sampled_from(range(7))
_RULE_COUNTS = st.sampled_from(range(1, 9))  # uniform: integers() favours the ends
_RULE_LETTERS = st.permutations("abcdefgh")
_VERSIONS = st.integers(1, 10_000)
_GROUP_LISTS = st.lists(st.sampled_from(GROUPS), max_size=3, unique=True)
_ATTRIBUTE_VALUES = {name: st.sampled_from(values) for name, values in ATTRIBUTES.items()}
_SEEDS = st.integers(0, 2**32 - 1)
_NULL_PROBABILITIES = st.sampled_from((0.0, 0.2, 0.5, 1.0))
_EARLIER = st.integers(0, 3)

# Strategies are built once per argument set: hypothesis validates each new one on first use.


@functools.cache
def _subsets(pool: tuple[str, ...], min_size: int, max_size: int) -> st.SearchStrategy[list[str]]:
    return st.lists(st.sampled_from(pool), min_size=min_size, max_size=max_size, unique=True)


@functools.cache
def _choice(pool: tuple[str, ...]) -> st.SearchStrategy[str]:
    return st.sampled_from(pool)


@functools.cache
def _counts(most: int) -> st.SearchStrategy[int]:
    return st.sampled_from(range(1, most + 1))  # uniform: integers() favours the ends


@functools.cache
def _kind_lists(kinds: tuple[str, ...]) -> st.SearchStrategy[list[str]]:
    return st.just(["*"]) | st.lists(st.sampled_from(kinds), min_size=1, unique=True)


@functools.cache
def _option_choices(schema: BulletinSchema, kinds: tuple[str, ...]) -> st.SearchStrategy[Option]:
    options = redaction_options(schema, kinds)
    # Half the draws from the redactions that can touch text, where leaks would show.
    textual = [o for o in options if o.tag is not None or o.action is not Action.GENERALIZE]
    return st.sampled_from(options) | st.sampled_from(textual)


def _redaction(draw: st.DrawFn, option: Option) -> Redaction:
    target: dict[str, Any] = {"field": option.field, "tag": option.tag}
    if option.action is Action.DROP:
        return DropRedaction(**target, action=Action.DROP)
    if option.action is Action.MASK:
        token = draw(_TOKENS)
        return MaskRedaction(**target, action=Action.MASK, token=token)
    if option.action is Action.PSEUDONYMIZE:
        return PseudonymizeRedaction(**target, action=Action.PSEUDONYMIZE)
    if option.action is Action.TRUNCATE:
        max_chars = draw(_MAX_CHARS)
        return TruncateRedaction(**target, action=Action.TRUNCATE, max_chars=max_chars)
    if option.parameter == "grid_km":
        return GeneralizeRedaction(**target, action=Action.GENERALIZE, grid_km=draw(_GRIDS))
    if option.parameter == "time_unit":
        unit = draw(_TIME_UNITS)
        return GeneralizeRedaction(**target, action=Action.GENERALIZE, time_unit=unit)
    return GeneralizeRedaction(**target, action=Action.GENERALIZE, bucket=draw(_BUCKETS))


def _some(draw: st.DrawFn, pool: Sequence[str], max_size: int = 3) -> list[str]:
    return draw(_subsets(tuple(pool), 1, max_size))


def _source(draw: st.DrawFn, ids: Sequence[str], groups: Sequence[str]) -> SourceSelector:
    modes = ["agencies", "all", "all", *(["groups", "both"] if groups else [])]
    mode = draw(_choice(tuple(modes)))
    if mode == "all":
        return SourceSelector(all=True)
    return SourceSelector(
        agencies=_some(draw, ids) if mode in ("agencies", "both") else [],
        groups=_some(draw, groups) if mode in ("groups", "both") else [],
    )


def _where(draw: st.DrawFn) -> dict[str, list[str]]:
    attributes = _some(draw, sorted(ATTRIBUTES), max_size=2)
    return {a: _some(draw, ATTRIBUTES[a], max_size=2) for a in attributes}


def _recipients(draw: st.DrawFn, ids: Sequence[str], groups: Sequence[str]) -> RecipientSelector:
    modes = [
        "agencies",
        "all",
        "all",
        "where",
        "agencies+where",
        *(["groups", "groups+where"] * bool(groups)),
    ]
    mode = draw(_choice(tuple(modes)))
    return RecipientSelector(
        agencies=_some(draw, ids) if mode.startswith("agencies") else [],
        groups=_some(draw, groups) if mode.startswith("groups") else [],
        all=mode == "all",
        where=_where(draw) if mode.endswith("where") else {},
    )


def _rule(
    draw: st.DrawFn, schema: BulletinSchema, rule_id: str, ids: Sequence[str], groups: Sequence[str]
) -> SharingRule:
    all_kinds = tuple(sorted(schema.kinds))
    kinds = draw(_kind_lists(all_kinds))
    covered = all_kinds if kinds == ["*"] else tuple(sorted(kinds))
    choose = _option_choices(schema, covered)
    redact = [_redaction(draw, draw(choose)) for _ in range(draw(_REDACTION_COUNTS))]
    return SharingRule(
        id=rule_id,
        source=_source(draw, ids, groups),
        recipients=_recipients(draw, ids, groups),
        kinds=kinds,
        max_marking=draw(_MARKINGS),
        redact=redact,
    )


_ACCEPTS = st.lists(st.sampled_from(list(Status)), max_size=3, unique=True) | st.lists(
    st.sampled_from([Status.EXERCISE, Status.TEST]), max_size=2, unique=True
).map(lambda extra: [Status.ACTUAL, *extra])
"""Mostly agencies that take real traffic, and some that take exercises or tests."""
_STATUSES = st.sampled_from([Status.ACTUAL] * 4 + [Status.EXERCISE, Status.TEST])
_OUTSIDER = st.sampled_from([False] * 9 + [True])


def _agency(draw: st.DrawFn, agency_id: str) -> Agency:
    attributes = {
        name: draw(values) for name, values in _ATTRIBUTE_VALUES.items() if draw(st.booleans())
    }
    return Agency(
        name=f"Agency {agency_id}",
        groups=draw(_GROUP_LISTS),
        attributes=attributes,
        accepts=draw(_ACCEPTS),
    )


@st.composite
def policies(draw: st.DrawFn, schema: BulletinSchema, agencies: Sequence[str]) -> Policy:
    """Random valid policies over (a subset of at least three of) ``agencies``: they compile."""
    ids = draw(_subsets(tuple(agencies), min(3, len(agencies)), len(agencies)))
    defined = {agency_id: _agency(draw, agency_id) for agency_id in ids}
    groups = sorted({g for agency in defined.values() for g in agency.groups})
    # Rule ids in an order unrelated to their position, so sorting them means something.
    letters = draw(_RULE_LETTERS)
    count = draw(_RULE_COUNTS)
    rules = [_rule(draw, schema, f"rule-{letters[i]}", ids, groups) for i in range(count)]
    return Policy(version=draw(_VERSIONS), agencies=defined, rules=rules)


def redaction_keys() -> st.SearchStrategy[RedactionKeys]:
    """Pseudonymization master keys."""
    return st.binary(min_size=16, max_size=64).map(
        lambda key: RedactionKeys(master=SecretBytes(key))
    )


@st.composite
def policy_bulletins(
    draw: st.DrawFn,
    schema: BulletinSchema,
    agencies: Sequence[str],
    *,
    outsiders: Sequence[str] = (),
) -> Bulletin:
    """Valid bulletins from ``agencies`` (now and then from an ``outsiders`` id) with a
    drawn marking, status and ``releasable_to`` (never empty for TLP:RED)."""
    generator = BulletinGenerator(
        schema,
        seed=draw(_SEEDS),
        agencies=agencies,
        null_probability=draw(_NULL_PROBABILITIES),
        follow_up_probability=0.5,
    )
    for _ in generator.stream(draw(_EARLIER)):
        pass
    bulletin = generator.bulletin(draw(_choice(tuple(sorted(schema.kinds)))))
    marking = draw(_MARKINGS)
    pool = (*agencies, *outsiders)
    releasable = draw(_subsets(pool, 1 if marking is Marking.RED else 0, len(agencies)))
    update: dict[str, Any] = {
        "marking": marking,
        "status": draw(_STATUSES),
        "releasable_to": releasable,
    }
    stray: bool = draw(_OUTSIDER)
    if outsiders and stray:
        update["source_agency"] = draw(_choice(tuple(outsiders)))
    return bulletin.model_copy(update=update)


@dataclass(frozen=True)
class Scenario:
    """A policy and some bulletins to evaluate under it."""

    policy: Policy
    bulletins: tuple[Bulletin, ...]


@st.composite
def scenarios(
    draw: st.DrawFn,
    schema: BulletinSchema,
    agencies: Sequence[str] = AGENCIES,
    *,
    max_bulletins: int = 8,
    outsiders: Sequence[str] = (OUTSIDER,),
) -> Scenario:
    """A random valid policy and 1 to ``max_bulletins`` bulletins from its agencies."""
    policy = draw(policies(schema, agencies))
    ids = list(policy.agencies)
    count = draw(_counts(max_bulletins))
    drawn = [draw(policy_bulletins(schema, ids, outsiders=outsiders)) for _ in range(int(count))]
    return Scenario(policy, tuple(drawn))


# -- the policy, read naively ------------------------------------------------------------


def matching_rules(policy: Policy, bulletin: Bulletin, recipient: str) -> list[SharingRule]:
    """The rules that cover this bulletin's source, kind and marking and ``recipient``,
    read straight from the policy document (no compilation)."""
    agencies = policy.agencies
    source = agencies.get(bulletin.source_agency)
    target = agencies[recipient]
    found = []
    for rule in policy.rules:
        s, r = rule.source, rule.recipients
        source_ok = source is not None and (
            s.all
            or bulletin.source_agency in s.agencies
            or any(g in source.groups for g in s.groups)
        )
        named = (
            r.all
            or not (r.agencies or r.groups)
            or recipient in r.agencies
            or any(g in target.groups for g in r.groups)
        )
        where_ok = all(target.attributes.get(a) in values for a, values in r.where.items())
        kind_ok = rule.kinds == ["*"] or bulletin.kind in rule.kinds
        marking_ok = MARKING_ORDER[bulletin.marking] <= MARKING_ORDER[rule.max_marking]
        if source_ok and named and where_ok and kind_ok and marking_ok:
            found.append(rule)
    return found


def requested(
    schema: BulletinSchema, kind: str, rules: Sequence[SharingRule]
) -> dict[str, list[tuple[str, Redaction]]]:
    """Path -> (rule id, redaction) for every redaction the rules ask for on ``kind``,
    tags expanded to the fields that carry them where the action fits."""
    fields = kind_fields(schema, kind)
    out: dict[str, list[tuple[str, Redaction]]] = {}
    for rule in rules:
        for redaction in rule.redact:
            action, parameter = Action(redaction.action), parameter_of(redaction)
            if redaction.field is not None:
                paths = [redaction.field] if redaction.field in fields else []
            else:
                paths = [
                    i.path
                    for i in fields.values()
                    if redaction.tag in i.tags and fits(i, action, parameter)
                ]
            for path in paths:
                out.setdefault(path, []).append((rule.id, redaction))
    return out


# -- records -----------------------------------------------------------------------------


def text_slots(schema: BulletinSchema, kind: str) -> list[FieldInfo]:
    """Every optional text field of ``kind``: strings and arrays of strings."""
    return [
        i
        for i in kind_fields(schema, kind).values()
        if i.optional and i.shape in ("string", "array<string>")
    ]


def _empty(path: str, fields: Mapping[str, FieldInfo]) -> Any:
    """A record (or a one-record array) for ``path`` with every field null, if its fields
    are all optional; else None."""
    info = fields[path]
    children = [
        i for p, i in fields.items() if p.startswith(path + ".") and "." not in p[len(path) + 1 :]
    ]
    if not children or not all(c.optional for c in children):
        return None
    record = {c.path.rpartition(".")[2]: None for c in children}
    if info.shape == "record":
        return record
    if info.shape == "array<record>":
        return [record]
    return None


def _plant(
    container: dict[str, Any],
    parts: Sequence[str],
    prefix: str,
    fields: Mapping[str, FieldInfo],
    make: Callable[[str], str],
) -> None:
    key, rest = parts[0], parts[1:]
    path = prefix + key
    if not rest:
        if fields[path].shape == "string":
            container[key] = make(path)
        else:
            count = len(container.get(key) or ()) or 2
            container[key] = [make(path) for _ in range(count)]
        return
    child = container.get(key)
    if child is None or child == []:
        child = _empty(path, fields)
        if child is None:
            return
        container[key] = child
    for item in child if isinstance(child, list) else [child]:
        if isinstance(item, dict):
            _plant(item, rest, path + ".", fields, make)


def plant_text(
    schema: BulletinSchema,
    bulletin: Bulletin,
    make: Callable[[str], str],
    paths: Sequence[str] | None = None,
) -> Bulletin:
    """``bulletin`` with every optional text field (or those at ``paths``) set to
    ``make(path)`` (each array element its own call), creating the optional records
    that hold them when they are null; the result is checked valid."""
    fields = kind_fields(schema, bulletin.kind)
    wanted = [i.path for i in text_slots(schema, bulletin.kind)] if paths is None else paths
    data = copy.deepcopy(bulletin.model_dump(mode="python"))
    for path in wanted:
        _plant(data, path.split("."), "", fields, make)
    planted = Bulletin.model_validate(data)
    schema.validate(planted)
    return planted


def values_at(record: Mapping[str, Any], path: str) -> list[Any]:
    """The values at dotted ``path`` (arrays of records are transparent; a null parent
    contributes nothing)."""
    found: list[Any] = []

    def walk(value: Any, parts: Sequence[str]) -> None:
        if isinstance(value, list):
            for item in value:
                walk(item, parts)
        elif isinstance(value, dict):
            if len(parts) == 1:
                found.append(value.get(parts[0]))
            else:
                walk(value.get(parts[0]), parts[1:])

    walk(record, path.split("."))
    return found


def populated_bulletin(
    schema: BulletinSchema, kind: str, seed: int, agencies: Sequence[str], path: str
) -> Bulletin:
    """A bulletin of ``kind`` with a value at ``path`` (every element non-null, arrays
    not empty), the first such bulletin from ``seed`` on."""
    for attempt in range(200):
        generator = BulletinGenerator(
            schema, seed=seed + attempt, agencies=agencies, null_probability=0.0
        )
        bulletin = generator.bulletin(kind)
        found = values_at({**bulletin.envelope_avro(), "body": bulletin.body}, path)
        if found and all(v is not None and v != [] for v in found):
            return bulletin
    raise AssertionError(f"no {kind} with a value at {path} within 200 seeds of {seed}")


def canary_maker(seed: int) -> Callable[[str], str]:
    """A source of distinct canaries, ``CANARY`` and 12 hex digits, reproducible from ``seed``."""
    rng = random.Random(seed)
    issued: set[str] = set()

    def make(_path: str) -> str:
        while True:
            canary = f"CANARY{rng.getrandbits(48):012x}"
            if canary not in issued:
                issued.add(canary)
                return canary

    return make


# -- views on the wire -------------------------------------------------------------------


def view_codec(schema: BulletinSchema) -> WireCodec:
    """A codec that knows the View schema as id :data:`VIEW_SCHEMA_ID`."""
    text = json.dumps(schema.catalog.composed(VIEW))
    return WireCodec({VIEW_SCHEMA_ID: text}.__getitem__)


def encode_view(codec: WireCodec, schema: BulletinSchema, view: View, kind: str) -> bytes:
    """The view as framed Avro, as a recipient would receive it."""
    return codec.encode(VIEW_SCHEMA_ID, view.avro(schema.kinds[kind]))
