"""Avro schema files, their composition, frozen history and compatibility rules."""

from bus.schemas._catalog import (
    BULLETIN,
    ROOTS,
    VIEW,
    FieldInfo,
    SchemaCatalog,
    canonical_json,
    compose,
    default_schema_dir,
)
from bus.schemas._compat import DEFAULT_MODE, CompatibilityMode, incompatibilities, parse_avro
from bus.schemas._history import Release, check_history, release, releases

__all__ = [
    "BULLETIN",
    "DEFAULT_MODE",
    "ROOTS",
    "VIEW",
    "CompatibilityMode",
    "FieldInfo",
    "Release",
    "SchemaCatalog",
    "canonical_json",
    "check_history",
    "compose",
    "default_schema_dir",
    "incompatibilities",
    "parse_avro",
    "release",
    "releases",
]
