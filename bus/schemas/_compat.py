"""Confluent Schema Registry compatibility modes on Apache Avro's own resolution checker.

The rules of schema resolution (which reader can read which writer's data) come from
the Apache ``avro`` package's ``ReaderWriterCompatibilityChecker``, a port of the Java
``SchemaCompatibility`` that Confluent's registry uses. This module only adds the
modes, with Confluent's definitions:

=====================  ==============================================================
BACKWARD               the new schema can read data written with the latest one
BACKWARD_TRANSITIVE    ... with every earlier one
FORWARD                the latest schema can read data written with the new one
FORWARD_TRANSITIVE     every earlier schema can read data written with the new one
FULL                   BACKWARD and FORWARD
FULL_TRANSITIVE        BACKWARD_TRANSITIVE and FORWARD_TRANSITIVE
NONE                   no check
=====================  ==============================================================
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import cast

import avro.errors
import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from bus.errors import InvalidSchemaError

__all__ = ["DEFAULT_MODE", "CompatibilityMode", "incompatibilities", "parse_avro"]


class CompatibilityMode(StrEnum):
    """How a new schema version must relate to the registered ones (Confluent's modes)."""

    NONE = "NONE"
    """Anything goes."""
    BACKWARD = "BACKWARD"
    """Consumers on the new schema can read data written with the latest one."""
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    """Consumers on the new schema can read data written with any earlier one."""
    FORWARD = "FORWARD"
    """Consumers on the latest schema can read data written with the new one."""
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    """Consumers on any earlier schema can read data written with the new one."""
    FULL = "FULL"
    """Both BACKWARD and FORWARD."""
    FULL_TRANSITIVE = "FULL_TRANSITIVE"
    """Both BACKWARD_TRANSITIVE and FORWARD_TRANSITIVE."""


DEFAULT_MODE = CompatibilityMode.BACKWARD_TRANSITIVE


def parse_avro(text: str) -> avro.schema.Schema:
    """Parse schema text; raises :class:`InvalidSchemaError` with the parser's reason."""
    try:
        return avro.schema.parse(text)
    except (avro.errors.AvroException, json.JSONDecodeError, TypeError, ValueError) as exc:
        raise InvalidSchemaError(f"not a valid Avro schema: {exc}") from exc


# avro 1.12 leaves the constructor unannotated; the cast states what it returns.
_checker = cast(Callable[[], ReaderWriterCompatibilityChecker], ReaderWriterCompatibilityChecker)


def _problems(reader: avro.schema.Schema, writer: avro.schema.Schema, label: str) -> list[str]:
    result = _checker().get_compatibility(reader, writer)
    if result.compatibility is SchemaCompatibilityType.compatible:
        return []
    kinds = ", ".join(sorted({i.value.replace("_", " ") for i in result.incompatibilities}))
    # messages and locations are unordered sets in avro 1.12: report them side by side.
    details = f"{kinds or 'incompatible'}: {', '.join(sorted(result.messages))}"
    details += f" (at {', '.join(sorted(result.locations))})"
    return [f"{label}: {details}"]


def incompatibilities(new: str, existing: Sequence[str], mode: CompatibilityMode) -> list[str]:
    """Why ``new`` may not follow ``existing`` (oldest first) under ``mode``; empty if it may."""
    if mode is CompatibilityMode.NONE or not existing:
        return []
    candidate = parse_avro(new)
    transitive = mode.value.endswith("_TRANSITIVE")
    against = list(enumerate(existing, start=1))
    if not transitive:
        against = against[-1:]
    backward = mode.value.startswith(("BACKWARD", "FULL"))
    forward = mode.value.startswith(("FORWARD", "FULL"))
    problems: list[str] = []
    for version, text in against:
        old = parse_avro(text)
        if backward:
            problems += _problems(
                candidate, old, f"new schema cannot read data of version {version}"
            )
        if forward:
            problems += _problems(
                old, candidate, f"version {version} cannot read data of new schema"
            )
    return problems
