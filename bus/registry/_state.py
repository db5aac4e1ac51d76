"""Registry state: a pure fold over the records of the schemas topic.

The topic is the source of truth, as Confluent Schema Registry keeps ``_schemas``:
a service rebuilds this state by applying every record from the start. Records use
Confluent's key shapes::

    {"keytype": "SCHEMA", "subject": s, "version": v, "magic": 1}
        -> {"subject": s, "version": v, "id": n, "schema": "...", "deleted": false}
    {"keytype": "CONFIG", "subject": s or null, "magic": 0}
        -> {"compatibilityLevel": "BACKWARD"}        (null value: subject setting removed)

Planning a registration is pure too (:meth:`RegistryState.plan_registration`): the
caller appends the planned record and waits until it is applied.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bus.errors import IncompatibleSchemaError, InvalidSchemaError, RegistryLookupError
from bus.schemas._compat import DEFAULT_MODE, CompatibilityMode, incompatibilities, parse_avro

__all__ = [
    "SUBJECT_NOT_FOUND",
    "RegistryRecord",
    "RegistryState",
    "SchemaVersion",
    "schema_identity",
]

SUBJECT_NOT_FOUND = 40401
VERSION_NOT_FOUND = 40402
SCHEMA_NOT_FOUND = 40403
SUBJECT_CONFIG_NOT_FOUND = 40408


@dataclass(frozen=True)
class SchemaVersion:
    """One version of a subject."""

    subject: str
    version: int
    schema_id: int
    schema: str


@dataclass(frozen=True)
class RegistryRecord:
    """One record of the schemas topic: JSON key and JSON value (``None`` is a tombstone)."""

    key: dict[str, Any]
    value: dict[str, Any] | None

    def key_bytes(self) -> bytes:
        return json.dumps(self.key, sort_keys=True, separators=(",", ":")).encode()

    def value_bytes(self) -> bytes | None:
        if self.value is None:
            return None
        return json.dumps(self.value, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, key: bytes | None, value: bytes | None) -> RegistryRecord:
        if key is None:
            raise ValueError("schemas topic record without a key")
        return cls(key=json.loads(key), value=json.loads(value) if value is not None else None)

    @classmethod
    def schema(cls, v: SchemaVersion) -> RegistryRecord:
        return cls(
            key={"keytype": "SCHEMA", "subject": v.subject, "version": v.version, "magic": 1},
            value={
                "subject": v.subject,
                "version": v.version,
                "id": v.schema_id,
                "schema": v.schema,
                "deleted": False,
            },
        )

    @classmethod
    def config(cls, subject: str | None, mode: CompatibilityMode | None) -> RegistryRecord:
        return cls(
            key={"keytype": "CONFIG", "subject": subject, "magic": 0},
            value=None if mode is None else {"compatibilityLevel": mode.value},
        )


def schema_identity(text: str) -> str:
    """What makes two schema texts "identical": the same JSON, whitespace and key order aside."""
    try:
        return json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
    except json.JSONDecodeError as exc:
        raise InvalidSchemaError(f"schema is not JSON: {exc}") from exc


@dataclass
class RegistryState:
    """Subjects, versions, ids and compatibility settings."""

    subjects: dict[str, list[SchemaVersion]] = field(default_factory=dict)
    texts: dict[int, str] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)
    """schema_identity -> id: the same schema gets the same id under every subject."""
    global_mode: CompatibilityMode = DEFAULT_MODE
    subject_modes: dict[str, CompatibilityMode] = field(default_factory=dict)
    applied: int = 0
    """How many records have been applied (for read-your-writes waits)."""

    # -- the fold ----------------------------------------------------------------------

    def apply(self, record: RegistryRecord) -> None:
        """Apply one record. Records that would contradict earlier ones are ignored, so
        the first writer of an id or a subject version wins, whatever comes later."""
        self.applied += 1
        keytype = record.key.get("keytype")
        if keytype == "SCHEMA" and record.value is not None:
            self._apply_schema(record.value)
        elif keytype == "CONFIG":
            subject = record.key.get("subject")
            mode = (
                CompatibilityMode(record.value["compatibilityLevel"])
                if record.value is not None
                else None
            )
            if subject is None:
                self.global_mode = mode or DEFAULT_MODE
            elif mode is None:
                self.subject_modes.pop(subject, None)
            else:
                self.subject_modes[subject] = mode

    def _apply_schema(self, value: Mapping[str, Any]) -> None:
        if value.get("deleted"):
            return
        v = SchemaVersion(
            subject=str(value["subject"]),
            version=int(value["version"]),
            schema_id=int(value["id"]),
            schema=str(value["schema"]),
        )
        identity = schema_identity(v.schema)
        known_text = self.texts.get(v.schema_id)
        if known_text is not None and schema_identity(known_text) != identity:
            return  # id already bound to another schema
        versions = self.subjects.setdefault(v.subject, [])
        if any(existing.version == v.version for existing in versions):
            return  # version already taken
        versions.append(v)
        versions.sort(key=lambda x: x.version)
        self.texts.setdefault(v.schema_id, v.schema)
        self.ids.setdefault(identity, v.schema_id)

    # -- queries -----------------------------------------------------------------------

    def mode_for(self, subject: str) -> CompatibilityMode:
        return self.subject_modes.get(subject, self.global_mode)

    def versions(self, subject: str) -> list[SchemaVersion]:
        versions = self.subjects.get(subject)
        if not versions:
            raise RegistryLookupError(
                f"Subject '{subject}' not found.", error_code=SUBJECT_NOT_FOUND
            )
        return versions

    def version(self, subject: str, version: int | str) -> SchemaVersion:
        """``version`` is a number, ``"latest"`` or -1."""
        versions = self.versions(subject)
        if version in ("latest", -1, "-1"):
            return versions[-1]
        try:
            number = int(version)
        except ValueError as exc:
            raise InvalidSchemaError(
                f"The specified version '{version}' is not a valid version id. Allowed values "
                'are between [1, 2^31-1] and the string "latest"'
            ) from exc
        for v in versions:
            if v.version == number:
                return v
        raise RegistryLookupError(
            f"Version {number} not found for subject '{subject}'.", error_code=VERSION_NOT_FOUND
        )

    def schema_text(self, schema_id: int) -> str:
        text = self.texts.get(schema_id)
        if text is None:
            raise RegistryLookupError(f"Schema {schema_id} not found", error_code=SCHEMA_NOT_FOUND)
        return text

    def lookup(self, subject: str, schema: str) -> SchemaVersion:
        """The version of ``subject`` holding ``schema``."""
        identity = schema_identity(schema)
        for v in self.versions(subject):
            if schema_identity(v.schema) == identity:
                return v
        raise RegistryLookupError(
            f"Schema not found under subject '{subject}'", error_code=SCHEMA_NOT_FOUND
        )

    def compatibility_problems(
        self, subject: str, schema: str, against: int | str | None = None
    ) -> list[str]:
        """Why ``schema`` may not join ``subject`` (empty if it may).

        With ``against``, test against that one version only (Confluent's
        ``/compatibility/subjects/{s}/versions/{v}``); otherwise per the subject's mode.
        """
        parse_avro(schema)
        if against is not None:
            existing = [self.version(subject, against).schema]
            mode = self.mode_for(subject)
            single = CompatibilityMode(mode.value.removesuffix("_TRANSITIVE"))
            return incompatibilities(schema, existing, single)
        history = [v.schema for v in self.subjects.get(subject, [])]
        return incompatibilities(schema, history, self.mode_for(subject))

    # -- planning writes ---------------------------------------------------------------

    def plan_registration(self, subject: str, schema: str) -> tuple[SchemaVersion, bool]:
        """The version ``schema`` gets under ``subject``, and whether it is new.

        An identical schema already under the subject returns its version; one known
        under another subject keeps its id. Raises :class:`InvalidSchemaError` or
        :class:`IncompatibleSchemaError`.
        """
        parse_avro(schema)
        identity = schema_identity(schema)
        for v in self.subjects.get(subject, []):
            if schema_identity(v.schema) == identity:
                return v, False
        problems = self.compatibility_problems(subject, schema)
        if problems:
            raise IncompatibleSchemaError(
                "Schema being registered is incompatible with an earlier schema for the "
                f"subject under {self.mode_for(subject).value}: " + "; ".join(problems)
            )
        schema_id = self.ids.get(identity, max(self.texts, default=0) + 1)
        latest = self.subjects.get(subject, [])
        version = latest[-1].version + 1 if latest else 1
        return SchemaVersion(subject, version, schema_id, schema), True
