"""Request and answer models of the admin API (the OpenAPI document is made from these)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from bus.bulletin import AGENCY_ID_PATTERN
from bus.provision import MAX_PARTITIONS

_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def _rfc3339(value: object) -> object:
    """Only RFC 3339 date-times (5.6) with their offset: no number (Unix time), no date
    alone, no local time. The message never repeats the value."""
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError(
            "must be an RFC 3339 date-time with an offset, such as 2026-01-31T08:00:00Z "
            "(write a + offset as %2B in a query)"
        )
    return value


DateTime = Annotated[datetime, BeforeValidator(_rfc3339)]
"""A date-time as OpenAPI's ``format: date-time`` means it: RFC 3339, offset included."""

__all__ = [
    "ActivationOut",
    "AgencyOut",
    "AuditOut",
    "CredentialsOut",
    "DateTime",
    "DeadLetterDetail",
    "DeadLetterOut",
    "DeadLetterPage",
    "DiffOut",
    "DryRunIn",
    "FlowOut",
    "HealthOut",
    "PartitionsIn",
    "PartitionsOut",
    "PolicyOut",
    "PolicyPutOut",
    "PolicySummary",
    "ProvisionIn",
    "ProvisionOut",
    "ReadyOut",
    "ReplayIn",
    "ReplayOut",
    "RevokeOut",
    "SampleSpec",
    "SummaryOut",
    "TokenCreated",
    "TokenIn",
    "TokenOut",
    "ValidateOut",
]

_FICTIONAL = "north-river"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AgencyOut(BaseModel):
    id: str = Field(examples=[_FICTIONAL])
    name: str = Field(examples=["North River Flood Authority"])
    state: Literal["active", "revoked"]
    changed_at: datetime


class ProvisionIn(_In):
    id: str = Field(pattern=AGENCY_ID_PATTERN, examples=[_FICTIONAL])
    name: str = Field(default="", max_length=200, examples=["North River Flood Authority"])
    partitions: int | None = Field(
        default=None,
        ge=1,
        le=MAX_PARTITIONS,
        examples=[4],
        description="Partitions of each of the agency's two topics, if they are created "
        "(default: the API's agency_partitions setting); existing topics keep theirs.",
    )


class PartitionsIn(_In):
    partitions: int = Field(
        ge=1,
        le=MAX_PARTITIONS,
        examples=[4],
        description="The new total for each of the agency's two topics (never fewer than now).",
    )


class PartitionsOut(BaseModel):
    agency: AgencyOut
    changes: list[str] = Field(
        examples=[["grew topic liaison.from.north-river from 1 to 4 partitions"]]
    )


class CredentialsOut(BaseModel):
    """Kafka credentials of an agency: shown once, never stored by the API."""

    username: str = Field(examples=[_FICTIONAL])
    password: str = Field(examples=["<generated, shown once>"])
    bootstrap_servers: str = Field(examples=["127.0.0.1:9092"])
    mechanism: str = "SCRAM-SHA-512"
    security_protocol: str = "SASL_PLAINTEXT"


class ProvisionOut(BaseModel):
    agency: AgencyOut
    changes: list[str] = Field(examples=[["created topic liaison.from.north-river"]])
    credentials: CredentialsOut | None = Field(
        description="Set only when credentials were created or replaced."
    )


class RevokeOut(BaseModel):
    agency: AgencyOut
    changes: list[str]
    tokens_revoked: list[str] = Field(description="Ids of the agency's API tokens removed.")


class PolicySummary(BaseModel):
    version: int = Field(examples=[3])
    description: str = Field(examples=["Example policy for the fictional Saltmarsh estuary."])
    stored_by: str
    stored_at: datetime
    active: bool


class PolicyOut(PolicySummary):
    policy: dict[str, Any] = Field(description="The policy document, as JSON.")


class PolicyPutOut(BaseModel):
    version: int
    created: bool = Field(description="False when the same document was already stored.")


class ValidateOut(BaseModel):
    valid: bool
    version: int | None = None
    problems: list[str] = Field(default_factory=list)
    plans: int | None = Field(default=None, description="Compiled (source, kind, marking) plans.")


class SampleSpec(_In):
    kind: str | None = Field(default=None, examples=["situation_report"])
    source: str | None = Field(default=None, pattern=AGENCY_ID_PATTERN, examples=[_FICTIONAL])
    seed: int = Field(default=0, ge=0, le=2**31)


class DryRunIn(_In):
    """A bulletin (its JSON form) or a spec for a generated fictional sample; not both."""

    bulletin: dict[str, Any] | None = None
    sample: SampleSpec | None = None


class DiffOut(BaseModel):
    diff: dict[str, Any]
    lines: list[str] = Field(examples=[["policy v1 -> v2", "+ vale-fire gained alert from ..."]])


class ActivationOut(BaseModel):
    sequence: int
    version: int
    previous: int | None
    action: Literal["activate", "rollback"]
    actor: str
    time: datetime


class DeadLetterOut(BaseModel):
    id: str = Field(examples=["0-17"], description="<partition>-<offset> in the dead-letter topic")
    reason: str = Field(examples=["invalid_bulletin"])
    detail: str = Field(examples=["rules: expires_before_issued"])
    source_topic: str
    source_partition: int | None
    source_offset: int | None
    source_agency: str | None
    key: str | None
    size: int
    time: datetime
    replayed: bool


class DeadLetterPage(BaseModel):
    dead_letters: list[DeadLetterOut]
    total: int = Field(description="How many match the filters (before the limit).")


class DeadLetterDetail(DeadLetterOut):
    value_base64: str = Field(description="The original bytes, base64.")
    headers: dict[str, str]


class ReplayIn(_In):
    ids: list[str] = Field(min_length=1, max_length=1000, examples=[["0-17", "0-18"]])
    force: bool = Field(default=False, description="Replay even if replayed before.")


class ReplayOut(BaseModel):
    replayed: list[dict[str, Any]]
    skipped: list[dict[str, str]]


class AuditOut(BaseModel):
    events: list[dict[str, Any]]
    matched: int
    scanned: int
    truncated: bool = Field(description="True when older events were beyond the scan limit.")


class TokenIn(_In):
    role: str = Field(examples=["auditor", "agency:north-river"], max_length=80)
    label: str = Field(default="", max_length=200)


class TokenOut(BaseModel):
    id: str
    role: str
    label: str
    created_at: datetime


class TokenCreated(BaseModel):
    token: str = Field(description="The bearer token: shown once, stored only as a hash.")
    info: TokenOut


class HealthOut(BaseModel):
    status: Literal["ok"]


class ReadyOut(BaseModel):
    status: Literal["ready", "not_ready"]
    checks: dict[str, bool]


class FlowOut(BaseModel):
    source: str
    recipient: str
    delivered: int
    withheld: int


class SummaryOut(BaseModel):
    """What the operations dashboard shows; never a payload value."""

    generated_at: datetime
    agencies: list[AgencyOut]
    flows: list[FlowOut]
    decisions: dict[str, int]
    recent: list[dict[str, Any]]
    dead_letters: dict[str, Any]
    router_lag: dict[str, Any]
