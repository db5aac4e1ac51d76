"""Typed Kafka ACLs, independent of any client library."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["Acl", "AclFilter", "AclOperation", "AclPermission", "PatternType", "ResourceType"]


class ResourceType(StrEnum):
    """What an ACL protects."""

    TOPIC = "TOPIC"
    """A topic, by name or name prefix."""
    GROUP = "GROUP"
    """A consumer group id."""
    TRANSACTIONAL_ID = "TRANSACTIONAL_ID"
    """A producer's transactional id."""
    CLUSTER = "CLUSTER"
    """The cluster itself; its only resource name is ``kafka-cluster``."""


class PatternType(StrEnum):
    """How the resource name is matched."""

    LITERAL = "LITERAL"
    """The name exactly (or ``*`` for every resource of the type)."""
    PREFIXED = "PREFIXED"
    """Every resource whose name starts with the given prefix."""


class AclOperation(StrEnum):
    """The operation an ACL allows or denies (Kafka's names)."""

    ALL = "ALL"
    READ = "READ"
    WRITE = "WRITE"
    CREATE = "CREATE"
    DELETE = "DELETE"
    ALTER = "ALTER"
    DESCRIBE = "DESCRIBE"
    CLUSTER_ACTION = "CLUSTER_ACTION"
    DESCRIBE_CONFIGS = "DESCRIBE_CONFIGS"
    ALTER_CONFIGS = "ALTER_CONFIGS"
    IDEMPOTENT_WRITE = "IDEMPOTENT_WRITE"


class AclPermission(StrEnum):
    """Whether a matching ACL grants or refuses. DENY always wins over ALLOW."""

    ALLOW = "ALLOW"
    DENY = "DENY"


class Acl(BaseModel):
    """One ACL binding: ``principal`` may (or may not) do ``operation`` on a resource."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    principal: str = Field(description="For example User:agency-north.")
    resource_type: ResourceType
    resource_name: str = Field(min_length=1)
    operation: AclOperation
    pattern: PatternType = PatternType.LITERAL
    permission: AclPermission = AclPermission.ALLOW
    host: str = "*"

    @field_validator("principal")
    @classmethod
    def _principal_has_type(cls, value: str) -> str:
        kind, sep, name = value.partition(":")
        if not sep or not kind or not name:
            raise ValueError(f"principal {value!r} must look like User:<name>")
        return value

    def __str__(self) -> str:
        return (
            f"{self.permission} {self.principal} {self.operation} on {self.resource_type} "
            f"{self.pattern.lower()} {self.resource_name!r}"
        )


class AclFilter(BaseModel):
    """Matches ACLs for describe and delete; a field left ``None`` matches anything."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    principal: str | None = None
    resource_type: ResourceType | None = None
    resource_name: str | None = None
    operation: AclOperation | None = None
    pattern: PatternType | None = None
    permission: AclPermission | None = None
    host: str | None = None
