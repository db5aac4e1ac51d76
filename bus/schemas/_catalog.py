"""The schema files in ``schemas/``: load, compose and index them.

Each ``.avsc`` file holds one named type and is named by that type's full name
(``liaison.bulletin.Point.avsc``), the convention fastavro's ``load_schema`` also
follows. Types refer to each other by full name. :func:`compose` inlines every
reference once, depth first, giving the self-contained schema that is registered
and frozen, with docs and custom attributes (``liaison.tags``, ``liaison.kind``)
kept.

Kinds are data, not code: a record type with a ``"liaison.kind"`` attribute is a
bulletin body, and the envelope's ``body`` union lists them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bus.errors import SchemaFileError

__all__ = [
    "BULLETIN",
    "PRIMITIVES",
    "ROOTS",
    "VIEW",
    "FieldInfo",
    "SchemaCatalog",
    "canonical_json",
    "compose",
    "default_schema_dir",
]

BULLETIN = "liaison.bulletin.Bulletin"
"""Full name of the envelope record."""

VIEW = "liaison.bulletin.View"
"""Full name of what a recipient receives: a redacted bulletin and its manifest."""

ROOTS = (BULLETIN, VIEW)
"""The composed schemas that are released, frozen and registered."""

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_NAMED = ("record", "enum", "fixed")


def default_schema_dir() -> Path:
    """``$LIAISON_SCHEMAS_DIR``, else ``schemas/`` beside the ``bus`` package."""
    explicit = os.environ.get("LIAISON_SCHEMAS_DIR")
    if explicit:
        return Path(explicit)
    return Path(__file__).resolve().parent.parent.parent / "schemas"


def canonical_json(schema: Any) -> str:
    """Stable text for a schema: sorted keys would lose Avro's meaningful field order,
    so keys keep their order and only whitespace is normalised."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def _fullname(schema: Mapping[str, Any], enclosing_ns: str | None) -> str:
    name = str(schema["name"])
    if "." in name:
        return name
    ns = schema.get("namespace", enclosing_ns)
    return f"{ns}.{name}" if ns else name


def _namespace_of(fullname: str) -> str | None:
    return fullname.rpartition(".")[0] or None


@dataclass(frozen=True)
class FieldInfo:
    """One field reachable from the envelope, by dotted path (``body.reporting_officer.name``)."""

    path: str
    record: str
    """Full name of the record that declares the field."""
    optional: bool
    """True when ``null`` is in the field's type, so redaction can remove the value."""
    tags: frozenset[str]
    doc: str
    shape: str = "unknown"
    """The non-null type in brief: ``string``, ``int``, ``long``, ``double``, ``boolean``,
    ``timestamp``, ``enum``, ``point`` (a liaison.bulletin.Point), ``record``,
    ``array<...>`` or ``union``; redaction actions are checked against it."""


@dataclass
class SchemaCatalog:
    """Every named type in a schema directory, by full name."""

    directory: Path
    types: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, directory: Path | None = None) -> SchemaCatalog:
        """Read every ``*.avsc`` file; raises :class:`SchemaFileError` naming a bad file."""
        directory = directory or default_schema_dir()
        if not directory.is_dir():
            raise SchemaFileError(
                f"schema directory {directory} does not exist; set LIAISON_SCHEMAS_DIR"
            )
        catalog = cls(directory=directory)
        for path in sorted(directory.glob("*.avsc")):
            try:
                schema = json.loads(path.read_text())
            except json.JSONDecodeError as exc:
                raise SchemaFileError(f"{path.name} is not valid JSON: {exc}") from exc
            if not isinstance(schema, dict) or schema.get("type") not in _NAMED:
                raise SchemaFileError(
                    f"{path.name} must hold one named type (record, enum or fixed)"
                )
            name = _fullname(schema, None)
            if path.name != f"{name}.avsc":
                raise SchemaFileError(f"{path.name} defines {name}; rename the file to {name}.avsc")
            catalog.types[name] = schema
        catalog._check_references()
        return catalog

    def _check_references(self) -> None:
        for name, schema in self.types.items():
            for ref in _references(schema, _namespace_of(name)):
                if ref not in self.types:
                    raise SchemaFileError(
                        f"{name} refers to {ref}, but there is no {ref}.avsc in {self.directory}"
                    )

    def composed(self, name: str = BULLETIN) -> dict[str, Any]:
        """The self-contained schema for ``name`` (see :func:`compose`)."""
        return compose(name, self.types)

    def kinds(self) -> dict[str, str]:
        """Bulletin kinds: ``{"alert": "liaison.bulletin.kind.Alert", ...}``."""
        kinds: dict[str, str] = {}
        for name, schema in self.types.items():
            kind = schema.get("liaison.kind")
            if kind is not None:
                if kind in kinds:
                    raise SchemaFileError(
                        f"kind {kind!r} is declared by both {kinds[kind]} and {name}"
                    )
                kinds[str(kind)] = name
        return kinds

    def fields(self, kind: str) -> dict[str, FieldInfo]:
        """Every field of a bulletin of ``kind`` by dotted path (``body.casualties.injured``).

        Envelope fields come first; under ``body`` only that kind's record is followed.
        """
        kinds = self.kinds()
        if kind not in kinds:
            raise SchemaFileError(f"unknown kind {kind!r}; known kinds: {', '.join(sorted(kinds))}")
        return {info.path: info for info in self._walk(BULLETIN, "", (), body=kinds[kind])}

    def _walk(
        self, record: str, prefix: str, seen: tuple[str, ...], *, body: str | None = None
    ) -> Iterator[FieldInfo]:
        if record in seen:  # recursive types: stop rather than loop
            return
        schema = self.types[record]
        ns = _namespace_of(record)
        for f in schema["fields"]:
            path = f"{prefix}{f['name']}"
            branches = f["type"] if isinstance(f["type"], list) else [f["type"]]
            if body is not None and record == BULLETIN and f["name"] == "body":
                branches = [body]
            concrete = [b for b in branches if b != "null"]
            yield FieldInfo(
                path=path,
                record=record,
                optional="null" in branches,
                tags=frozenset(f.get("liaison.tags", ())),
                doc=str(f.get("doc", "")),
                shape=_shape(concrete[0], ns, self.types) if len(concrete) == 1 else "union",
            )
            for branch in branches:
                for target in _record_targets(branch, ns, self.types):
                    yield from self._walk(target, f"{path}.", (*seen, record))


POINT = "liaison.bulletin.Point"


def _shape(schema: Any, ns: str | None, types: Mapping[str, Any]) -> str:
    if isinstance(schema, str):
        if schema in PRIMITIVES:
            return schema
        full = _qualify(schema, ns)
        named = types.get(full, {})
        if named.get("type") == "record":
            return "point" if full == POINT else "record"
        return str(named.get("type", "unknown"))
    if isinstance(schema, dict):
        if schema.get("logicalType") in ("timestamp-millis", "timestamp-micros"):
            return "timestamp"
        if schema.get("type") == "array":
            return f"array<{_shape(schema['items'], ns, types)}>"
        if schema.get("type") in _NAMED:
            return "point" if _fullname(schema, ns) == POINT else str(schema["type"])
        return _shape(schema.get("type"), ns, types)
    return "union"


def _qualify(ref: str, ns: str | None) -> str:
    if ref in PRIMITIVES or "." in ref or ns is None:
        return ref
    return f"{ns}.{ref}"


def _references(schema: Any, ns: str | None) -> Iterator[str]:
    """Full names this schema refers to (not the ones it defines inline)."""
    if isinstance(schema, str):
        if schema not in PRIMITIVES:
            yield _qualify(schema, ns)
    elif isinstance(schema, list):
        for branch in schema:
            yield from _references(branch, ns)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind in _NAMED:
            inner_ns = _namespace_of(_fullname(schema, ns))
            for f in schema.get("fields", ()):
                yield from _references(f["type"], inner_ns)
        elif kind == "array":
            yield from _references(schema["items"], ns)
        elif kind == "map":
            yield from _references(schema["values"], ns)
        elif isinstance(kind, str | list | dict):
            yield from _references(kind, ns)


def _record_targets(schema: Any, ns: str | None, types: Mapping[str, Any]) -> Iterator[str]:
    """Records reached directly through a field type (through arrays and maps too)."""
    if isinstance(schema, str):
        full = _qualify(schema, ns)
        if full in types and types[full].get("type") == "record":
            yield full
    elif isinstance(schema, list):
        for branch in schema:
            yield from _record_targets(branch, ns, types)
    elif isinstance(schema, dict):
        if schema.get("type") == "array":
            yield from _record_targets(schema["items"], ns, types)
        elif schema.get("type") == "map":
            yield from _record_targets(schema["values"], ns, types)


def compose(name: str, types: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """Inline every referenced named type at its first use; later uses stay names.

    Names are written fully qualified, so the result reads the same wherever a
    type lands.
    """
    defined: set[str] = set()

    def expand(schema: Any, ns: str | None) -> Any:
        if isinstance(schema, str):
            full = _qualify(schema, ns)
            if full not in types:
                return schema
            if full in defined:
                return full
            return expand(types[full], _namespace_of(full))
        if isinstance(schema, list):
            return [expand(b, ns) for b in schema]
        if not isinstance(schema, dict):
            return schema
        kind = schema.get("type")
        if kind in _NAMED:
            full = _fullname(schema, ns)
            defined.add(full)
            out: dict[str, Any] = {}
            for key, value in schema.items():
                if key == "name":
                    out["name"] = full
                elif key == "namespace":
                    continue
                elif key == "fields":
                    inner = _namespace_of(full)
                    out["fields"] = [{**f, "type": expand(f["type"], inner)} for f in value]
                else:
                    out[key] = value
            return out
        if kind == "array":
            return {**schema, "items": expand(schema["items"], ns)}
        if kind == "map":
            return {**schema, "values": expand(schema["values"], ns)}
        return schema

    if name not in types:
        raise SchemaFileError(f"no schema named {name}")
    result: dict[str, Any] = expand(name, None)
    return result
