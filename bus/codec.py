"""The Confluent wire format: magic byte 0, a 4-byte big-endian schema id, Avro binary.

Pure: no I/O. The schema behind an id comes from a lookup function (the registry, or
a dict in tests). Every failure is a :class:`~bus.errors.CodecError` whose ``reason``
is a :class:`CodecReason`, the machine-readable code a dead letter carries. Messages
name offsets, sizes, ids and field paths, never payload values.

Records are fastavro's Python form. A union of several records (the bulletin
``body``) reads and writes as a ``(full name, record)`` tuple, so the branch is
explicit both ways.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.validation import ValidationError, validate

from bus.errors import CodecError, LiaisonError

__all__ = ["DEFAULT_MAX_BYTES", "CodecReason", "Decoded", "SchemaLookup", "WireCodec"]

MAGIC = 0
HEADER = struct.Struct(">bI")
DEFAULT_MAX_BYTES = 1024 * 1024
"""Largest encoded record accepted either way (1 MiB, Kafka's default message size)."""

SchemaLookup = Callable[[int], str]
"""Returns the schema text registered under an id; raises ``KeyError`` or
:class:`~bus.errors.RegistryLookupError` when there is none."""


class CodecReason(StrEnum):
    """Why bytes could not be decoded, or a record encoded. Stable: dead letters keep it."""

    BAD_MAGIC = "bad_magic"
    """The first byte is not 0: not Confluent wire format."""
    TRUNCATED = "truncated"
    """The bytes end before the header or the record does."""
    UNKNOWN_SCHEMA_ID = "unknown_schema_id"
    """The registry has no schema with the id in the header."""
    TRAILING_BYTES = "trailing_bytes"
    """Bytes remain after a complete record."""
    MALFORMED = "malformed"
    """The body does not decode under the writer schema (bad lengths, indexes, UTF-8)."""
    SCHEMA_MISMATCH = "schema_mismatch"
    """The record does not fit the schema, or the reader schema cannot resolve the writer's."""
    OVERSIZE = "oversize"
    """More bytes than the codec's ``max_bytes``."""


@dataclass(frozen=True)
class Decoded:
    """A decoded record and the id of the schema it was written with."""

    schema_id: int
    record: dict[str, Any]


def _fail(reason: CodecReason, message: str) -> CodecError:
    return CodecError(f"{message} [{reason.value}]", reason=reason.value)


class WireCodec:
    """Encode and decode Confluent-framed Avro, caching parsed schemas by id."""

    def __init__(self, lookup: SchemaLookup, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes < HEADER.size:
            raise ValueError(f"max_bytes={max_bytes} is smaller than the 5-byte header")
        self._lookup = lookup
        self.max_bytes = max_bytes
        self._writers: dict[int, Any] = {}
        self._readers: dict[str, Any] = {}
        self._splits: dict[int, tuple[Any, Any, str] | None] = {}

    def writer_schema(self, schema_id: int) -> Any:
        """The parsed schema for ``schema_id`` (looked up once, then cached)."""
        parsed = self._writers.get(schema_id)
        if parsed is None:
            try:
                text = self._lookup(schema_id)
            except (KeyError, LiaisonError) as exc:
                raise _fail(
                    CodecReason.UNKNOWN_SCHEMA_ID,
                    f"schema id {schema_id} is not registered; register the writer's schema "
                    "or check which registry the producer used",
                ) from exc
            parsed = parse_schema(json.loads(text))
            self._writers[schema_id] = parsed
        return parsed

    def _reader_schema(self, text: str) -> Any:
        parsed = self._readers.get(text)
        if parsed is None:
            parsed = parse_schema(json.loads(text))
            self._readers[text] = parsed
        return parsed

    def encode(self, schema_id: int, record: Mapping[str, Any]) -> bytes:
        """Frame ``record`` written with the schema registered as ``schema_id``."""
        schema = self.writer_schema(schema_id)
        out = io.BytesIO()
        out.write(HEADER.pack(MAGIC, schema_id))
        _write(out, schema, record, schema_id)
        return self._checked(out.getvalue())

    def encode_sharing_last(
        self, schema_id: int, records: Sequence[Mapping[str, Any]]
    ) -> list[bytes]:
        """Frame each of ``records`` as :meth:`encode` does (the same bytes), encoding the
        last field once for records whose last fields are equal.

        Avro writes a record as its fields' encodings one after the other, with nothing
        around them: a record's bytes are those of its other fields followed by those of its
        last. The views of one bulletin differ before their last field (``bulletin``), and
        recipients with the same redactions share it. A schema whose last field is not a
        self-contained record is encoded whole.
        """
        split = self._split(schema_id)
        if split is None:
            return [self.encode(schema_id, record) for record in records]
        head, last, name = split
        header = HEADER.pack(MAGIC, schema_id)
        shared: list[tuple[Any, bytes]] = []
        out: list[bytes] = []
        for record in records:
            value = record[name]
            tail = next((data for seen, data in shared if seen == value), None)
            if tail is None:
                buffer = io.BytesIO()
                _write(buffer, last, value, schema_id)
                tail = buffer.getvalue()
                shared.append((value, tail))
            buffer = io.BytesIO()
            buffer.write(header)
            _write(buffer, head, record, schema_id)
            buffer.write(tail)
            out.append(self._checked(buffer.getvalue()))
        return out

    def _split(self, schema_id: int) -> tuple[Any, Any, str] | None:
        """The schema without its last field, the last field's schema, and its name."""
        if schema_id not in self._splits:
            self.writer_schema(schema_id)  # an unknown id fails as it does for encode
            schema = json.loads(self._lookup(schema_id))
            fields = schema.get("fields") if isinstance(schema, dict) else None
            split = None
            if fields and isinstance(fields[-1].get("type"), dict):
                try:
                    split = (
                        parse_schema({**schema, "fields": fields[:-1]}),
                        parse_schema(fields[-1]["type"]),
                        str(fields[-1]["name"]),
                    )
                except Exception:  # noqa: BLE001 - e.g. names defined in one half, used in the other
                    split = None
            self._splits[schema_id] = split
        return self._splits[schema_id]

    def _checked(self, data: bytes) -> bytes:
        if len(data) > self.max_bytes:
            raise _fail(
                CodecReason.OVERSIZE,
                f"encoded record is {len(data)} bytes, over the limit of {self.max_bytes}; "
                "shorten free text or split the bulletin",
            )
        return data

    def decode(self, data: bytes, *, reader_schema: str | None = None) -> Decoded:
        """Decode framed bytes; with ``reader_schema``, resolve the writer's schema to it."""
        size = len(data)
        if size > self.max_bytes:
            raise _fail(CodecReason.OVERSIZE, f"{size} bytes is over the limit of {self.max_bytes}")
        if size >= 1 and data[0] != MAGIC:
            raise _fail(
                CodecReason.BAD_MAGIC,
                f"first byte is {data[0]}, not 0: not Confluent wire format "
                "(was it produced without a schema-registry serializer?)",
            )
        if size < HEADER.size:
            raise _fail(
                CodecReason.TRUNCATED,
                f"{size} bytes is shorter than the 5-byte header (magic byte and schema id)",
            )
        _, schema_id = HEADER.unpack_from(data)
        writer = self.writer_schema(schema_id)
        reader = self._reader_schema(reader_schema) if reader_schema is not None else None
        body = io.BytesIO(data)
        body.seek(HEADER.size)
        try:
            record = schemaless_reader(
                body,
                writer,
                reader,
                return_record_name=True,
                return_record_name_override=True,
            )
        except EOFError as exc:
            raise _fail(
                CodecReason.TRUNCATED,
                f"record ends early: {size} bytes do not hold a complete record of schema "
                f"{schema_id}",
            ) from exc
        except Exception as exc:  # fastavro signals bad input with many exception types
            if type(exc).__name__ == "SchemaResolutionError":
                raise _fail(
                    CodecReason.SCHEMA_MISMATCH,
                    f"reader schema cannot read data written with schema {schema_id}: {exc}",
                ) from exc
            if body.tell() >= size:
                # Input ran out mid-value (fastavro's C reader raises IndexError inside a
                # varint, not EOFError): the record is cut short.
                raise _fail(
                    CodecReason.TRUNCATED,
                    f"record ends early: {size} bytes do not hold a complete record of "
                    f"schema {schema_id}",
                ) from exc
            raise _fail(
                CodecReason.MALFORMED,
                f"bytes do not decode under schema {schema_id} ({type(exc).__name__} near "
                f"offset {body.tell()})",
            ) from exc
        if body.tell() != size:
            raise _fail(
                CodecReason.TRAILING_BYTES,
                f"{size - body.tell()} byte(s) follow a complete record of schema {schema_id}",
            )
        if not isinstance(record, dict):
            raise _fail(CodecReason.SCHEMA_MISMATCH, f"schema {schema_id} is not a record schema")
        return Decoded(schema_id=schema_id, record=record)


def _write(out: io.BytesIO, schema: Any, record: Mapping[str, Any], schema_id: int) -> None:
    try:
        schemaless_writer(out, schema, record)
    except Exception as exc:  # fastavro raises many types; name the fields instead
        raise _fail(
            CodecReason.SCHEMA_MISMATCH,
            f"record does not fit schema {schema_id}: {_mismatch(record, schema)}",
        ) from exc


def _mismatch(record: Mapping[str, Any], schema: Any) -> str:
    """Which fields do not fit, by name only: the values may be confidential."""
    try:
        validate(record, schema, raise_errors=True)
    except ValidationError as exc:
        fields = sorted({str(e.field) for e in exc.errors if getattr(e, "field", None)})
        return "fields " + ", ".join(fields) if fields else "the record's shape"
    except Exception:  # noqa: BLE001 - validation itself choked on the input's shape
        return "the record's shape"
    return "a value the writer refused"
