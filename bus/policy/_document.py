"""The sharing policy document: agencies, sharing rules and redactions.

A policy is YAML in files and JSON through the API; both validate into :class:`Policy`.
This module checks the document's own shape; :mod:`bus.policy._compile` checks it
against the schemas (kinds, paths, tags, field types) and compiles it.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from bus.bulletin import AGENCY_ID_PATTERN, Marking, Status
from bus.errors import PolicyError

__all__ = [
    "MARKING_ORDER",
    "Action",
    "Agency",
    "DropRedaction",
    "GeneralizeRedaction",
    "MaskRedaction",
    "Policy",
    "PseudonymizeRedaction",
    "RecipientSelector",
    "Redaction",
    "SharingRule",
    "SourceSelector",
    "TruncateRedaction",
    "load_policy",
    "parse_policy",
]

MARKING_ORDER = {m: i for i, m in enumerate(Marking)}
"""CLEAR < GREEN < AMBER < AMBER_STRICT < RED."""

_RULE_ID = r"^[a-z0-9][a-z0-9._-]{0,63}$"


class Action(StrEnum):
    """Redaction actions, from least to most restrictive (the combination order)."""

    TRUNCATE = "truncate"
    """Keep the first ``max_chars`` characters of text."""
    GENERALIZE = "generalize"
    """Coarsen: positions to a grid, times to an hour or a day, numbers to buckets."""
    PSEUDONYMIZE = "pseudonymize"
    """Replace text by a keyed HMAC token, stable per recipient, unlinkable across them."""
    MASK = "mask"
    """Replace text by a fixed token."""
    DROP = "drop"
    """Remove the value (the field becomes null)."""


class Agency(BaseModel):
    """A participating agency."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, description="Display name (fictional in this repository).")
    groups: list[str] = Field(default_factory=list)
    attributes: dict[str, str] = Field(
        default_factory=dict, description="For example jurisdiction, sector."
    )
    accepts: list[Status] = Field(
        default_factory=lambda: [Status.ACTUAL],
        description="Statuses it receives; exercise and test traffic only if listed.",
    )


class _Target(BaseModel):
    """A redaction targets a field path or a tag, not both."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    field: str | None = Field(
        default=None,
        description="Dotted path, e.g. body.reporting_officer.name; arrays are "
        "transparent: body.persons_involved.name is every element's name.",
    )
    tag: str | None = Field(default=None, description="Every field carrying this liaison.tag.")

    @model_validator(mode="after")
    def _one_target(self) -> _Target:
        if (self.field is None) == (self.tag is None):
            raise ValueError("a redaction names exactly one of `field` or `tag`")
        return self

    @property
    def target(self) -> str:
        return f"field {self.field}" if self.field is not None else f"tag {self.tag}"


class DropRedaction(_Target):
    action: Literal[Action.DROP]


class MaskRedaction(_Target):
    action: Literal[Action.MASK]
    token: str = Field(default="[withheld]", max_length=64)


class PseudonymizeRedaction(_Target):
    action: Literal[Action.PSEUDONYMIZE]


class GeneralizeRedaction(_Target):
    action: Literal[Action.GENERALIZE]
    grid_km: float | None = Field(
        default=None, ge=0.001, le=1000, allow_inf_nan=False, description="For positions."
    )
    time_unit: Literal["hour", "day"] | None = Field(default=None, description="For times.")
    bucket: float | None = Field(
        default=None, ge=1e-6, le=1e12, allow_inf_nan=False, description="For numbers."
    )

    @model_validator(mode="after")
    def _one_parameter(self) -> GeneralizeRedaction:
        given = [p for p in (self.grid_km, self.time_unit, self.bucket) if p is not None]
        if len(given) != 1:
            raise ValueError(
                "generalize takes exactly one of grid_km (positions), time_unit (times) "
                "or bucket (numbers)"
            )
        return self


class TruncateRedaction(_Target):
    action: Literal[Action.TRUNCATE]
    max_chars: int = Field(ge=0, le=100_000)


Redaction = Annotated[
    DropRedaction | MaskRedaction | PseudonymizeRedaction | GeneralizeRedaction | TruncateRedaction,
    Field(discriminator="action"),
]


class SourceSelector(BaseModel):
    """Which source agencies a rule covers: listed agencies, members of listed groups, or all."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    agencies: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    all: bool = False

    @model_validator(mode="after")
    def _not_empty(self) -> SourceSelector:
        if not (self.agencies or self.groups or self.all):
            raise ValueError("a selector names agencies, groups, or all: true")
        return self


class RecipientSelector(BaseModel):
    """Which recipients a rule covers.

    An agency is selected when it is *named* (listed in ``agencies``, a member of one
    of ``groups``, or ``all``) **and** it matches every ``where`` attribute (its value
    is one of those listed). With only ``where``, every agency is named.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    agencies: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    all: bool = False
    where: dict[str, list[str]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _not_empty(self) -> RecipientSelector:
        if not (self.agencies or self.groups or self.all or self.where):
            raise ValueError("a selector names agencies, groups, all: true, or where:")
        return self


class SharingRule(BaseModel):
    """Lets bulletins of ``kinds`` from ``source``, up to ``max_marking``, reach ``recipients``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=_RULE_ID)
    description: str = ""
    source: SourceSelector
    recipients: RecipientSelector
    kinds: list[str] = Field(min_length=1, description='Kinds, or ["*"] for all.')
    max_marking: Marking = Field(description="The most restrictive marking the rule shares.")
    redact: list[Redaction] = Field(default_factory=list)

    @field_validator("max_marking", mode="before")
    @classmethod
    def _tlp_label(cls, value: Any) -> Any:
        # Accept the TLP 2.0 spelling AMBER+STRICT as well as the enum's AMBER_STRICT.
        return value.replace("+", "_").upper() if isinstance(value, str) else value


class Policy(BaseModel):
    """A versioned sharing policy."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = Field(ge=1)
    description: str = ""
    agencies: dict[str, Agency]
    rules: list[SharingRule] = Field(default_factory=list)

    @field_validator("agencies")
    @classmethod
    def _agency_ids(cls, agencies: dict[str, Agency]) -> dict[str, Agency]:
        import re

        for agency_id in agencies:
            if not re.fullmatch(AGENCY_ID_PATTERN, agency_id):
                raise ValueError(f"agency id {agency_id!r} must match {AGENCY_ID_PATTERN}")
        return agencies

    @model_validator(mode="after")
    def _unique_rule_ids(self) -> Policy:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.id in seen:
                raise ValueError(f"rule id {rule.id!r} is used twice; rule ids must be unique")
            seen.add(rule.id)
        return self

    @property
    def groups(self) -> dict[str, set[str]]:
        """Group name -> member agency ids."""
        members: dict[str, set[str]] = {}
        for agency_id, agency in self.agencies.items():
            for group in agency.groups:
                members.setdefault(group, set()).add(agency_id)
        return members


def parse_policy(data: Any, *, origin: str = "policy") -> Policy:
    """Validate plain data (parsed YAML or JSON); errors name each bad location."""
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise PolicyError(f"{origin} is not a valid policy: {problems}") from exc


def load_policy(path: Path) -> Policy:
    """Read a YAML policy file."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise PolicyError(f"cannot read policy {path}: {exc}") from exc
    return parse_policy(data, origin=str(path))
