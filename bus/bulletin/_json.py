"""The JSON form of a bulletin, for adapters and people.

The envelope is pydantic's JSON form (RFC 3339 timestamps, enum symbols). The body
is fastavro's Python form except that ``timestamp-millis`` fields are RFC 3339
strings, found by walking the kind's Avro schema. ``from_json(to_json(b)) == b``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

__all__ = ["body_from_json", "body_to_json"]

_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


def _is_timestamp(typ: Any) -> bool:
    return isinstance(typ, dict) and typ.get("logicalType") == "timestamp-millis"


def _convert(
    value: Any,
    typ: Any,
    ns: str,
    types: Mapping[str, Any],
    leaf: Callable[[Any], Any],
) -> Any:
    if value is None:
        return None
    branches = typ if isinstance(typ, list) else [typ]
    for branch in branches:
        if _is_timestamp(branch):
            converted = leaf(value)
            if converted is not value:
                return converted
        elif isinstance(branch, dict) and branch.get("type") == "array" and isinstance(value, list):
            return [_convert(item, branch["items"], ns, types, leaf) for item in value]
        elif isinstance(branch, str) and branch not in _PRIMITIVES and isinstance(value, dict):
            full = branch if "." in branch else f"{ns}.{branch}"
            schema = types.get(full)
            if schema is not None and schema.get("type") == "record":
                return _record(value, full, types, leaf)
    return value


def _record(
    value: Mapping[str, Any], full: str, types: Mapping[str, Any], leaf: Callable[[Any], Any]
) -> dict[str, Any]:
    schema = types[full]
    ns = full.rpartition(".")[0]
    fields = {f["name"]: f["type"] for f in schema["fields"]}
    return {
        name: _convert(item, fields[name], ns, types, leaf) if name in fields else item
        for name, item in value.items()
    }


def _to_text(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _from_text(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return value  # left for the rules to report, with its path
    return value


def body_to_json(body: Mapping[str, Any], full: str, types: Mapping[str, Any]) -> dict[str, Any]:
    """``body`` (a record of type ``full``) with every timestamp as an RFC 3339 string."""
    return _record(body, full, types, _to_text)


def body_from_json(body: Mapping[str, Any], full: str, types: Mapping[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`body_to_json`; a malformed timestamp stays a string."""
    return _record(body, full, types, _from_text)
