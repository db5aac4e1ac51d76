"""bus.codec.WireCodec: lossless round trips; malformed bytes fail only as CodecError."""

from __future__ import annotations

import json
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bus.bulletin import Bulletin, BulletinGenerator
from bus.codec import DEFAULT_MAX_BYTES, CodecReason, WireCodec
from bus.errors import CodecError, RegistryLookupError
from bus.schemas import VIEW, SchemaCatalog
from tests.strategies import bulletins, real_schema, real_schema_text

SCHEMA = real_schema()
KINDS = sorted(SCHEMA.kinds)
SCHEMA_ID = 7
CANARY = "CANARY-d41d8cd98f"
HEADER = struct.pack(">bI", 0, SCHEMA_ID)
FAST = settings(max_examples=50, deadline=None)


def _codec(**options: Any) -> WireCodec:
    return WireCodec({SCHEMA_ID: real_schema_text()}.__getitem__, **options)


CODEC = _codec()


def _encoded(bulletin: Bulletin) -> bytes:
    return CODEC.encode(SCHEMA_ID, SCHEMA.to_avro(bulletin))


def _sample(kind: str = "alert", seed: int = 1) -> Bulletin:
    return BulletinGenerator(SCHEMA, seed=seed, null_probability=0.0).bulletin(kind)


def _with_canary() -> Bulletin:
    """A notice whose free text holds the canary, placed last in the encoding's body."""
    bulletin = _sample("notice")
    return bulletin.model_copy(update={"body": {**bulletin.body, "text": f"Plan: {CANARY}"}})


def _decode_error(data: bytes, **options: Any) -> CodecError:
    with pytest.raises(CodecError) as caught:
        (_codec(**options) if options else CODEC).decode(data)
    return caught.value


def _decodes_or_fails_cleanly(data: bytes) -> None:
    """The property every input must have: a result, or a CodecError with a known reason.

    Any other exception escapes and fails the test.
    """
    error: CodecError | None = None
    try:
        CODEC.decode(data)
    except CodecError as exc:
        error = exc
    if error is not None:
        assert error.reason in set(CodecReason)
        assert f"[{error.reason}]" in str(error)


# -- round trips ---------------------------------------------------------------------


@FAST
@given(bulletin=bulletins(SCHEMA))
def test_generated_bulletins_survive_encode_and_decode_unchanged(bulletin: Bulletin) -> None:
    codec = CODEC
    decoded = codec.decode(codec.encode(SCHEMA_ID, SCHEMA.to_avro(bulletin)))
    assert decoded.schema_id == SCHEMA_ID
    assert SCHEMA.from_avro(decoded.record) == bulletin


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_bulletins_of_every_kind_survive_encode_and_decode_unchanged(
    kind: str, data: st.DataObject
) -> None:
    bulletin = data.draw(bulletins(SCHEMA, kind))
    codec = CODEC
    decoded = codec.decode(codec.encode(SCHEMA_ID, SCHEMA.to_avro(bulletin)))
    assert SCHEMA.from_avro(decoded.record) == bulletin


def test_encoding_frames_the_record_with_magic_byte_and_big_endian_schema_id() -> None:
    data = _encoded(_sample())
    assert data[:5] == b"\x00\x00\x00\x00\x07"


def test_the_multi_record_body_decodes_as_a_named_tuple() -> None:
    decoded = _codec().decode(_encoded(_sample("rfi_response")))
    name, record = decoded.record["body"]
    assert name == "liaison.bulletin.kind.RfiResponse"
    assert isinstance(record, dict)


# -- malformed input -----------------------------------------------------------------


@FAST
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_decode_or_raise_only_codec_error(data: bytes) -> None:
    _decodes_or_fails_cleanly(data)


@FAST
@given(body=st.binary(max_size=300))
def test_arbitrary_bytes_behind_a_valid_header_decode_or_raise_only_codec_error(
    body: bytes,
) -> None:
    _decodes_or_fails_cleanly(HEADER + body)


@FAST
@given(
    bulletin=bulletins(SCHEMA),
    edits=st.lists(
        st.tuples(st.integers(min_value=0), st.integers(0, 255)), min_size=1, max_size=4
    ),
)
def test_corrupted_encodings_decode_or_raise_only_codec_error(
    bulletin: Bulletin, edits: list[tuple[int, int]]
) -> None:
    data = bytearray(_encoded(bulletin))
    for position, byte in edits:
        data[len(HEADER) + position % (len(data) - len(HEADER))] = byte
    _decodes_or_fails_cleanly(bytes(data))


@pytest.mark.parametrize("kind", KINDS)
def test_every_truncation_of_a_valid_encoding_raises_codec_error(kind: str) -> None:
    data = _encoded(_sample(kind))
    for end in range(len(data)):
        error = _decode_error(data[:end])
        assert error.reason in {CodecReason.TRUNCATED, CodecReason.MALFORMED}, end


def test_truncations_inside_the_header_are_reported_as_truncated() -> None:
    data = _encoded(_sample())
    for end in range(5):
        assert _decode_error(data[:end]).reason == CodecReason.TRUNCATED


def test_truncation_inside_a_string_is_reported_as_truncated() -> None:
    data = _encoded(_sample())
    assert _decode_error(data[:-1]).reason == CodecReason.TRUNCATED


def test_every_truncation_after_the_header_is_reported_as_truncated() -> None:
    data = _encoded(_sample())
    reasons = {_decode_error(data[:end]).reason for end in range(5, len(data))}
    assert reasons == {CodecReason.TRUNCATED}


@pytest.mark.parametrize("extra", [b"\x00", b"\xff\xfe", b"x" * 40])
def test_bytes_after_a_complete_record_are_trailing_bytes(extra: bytes) -> None:
    error = _decode_error(_encoded(_sample()) + extra)
    assert error.reason == CodecReason.TRAILING_BYTES
    assert f"{len(extra)} byte(s)" in str(error)


@settings(max_examples=25, deadline=None)
@given(first=st.integers(1, 255))
def test_a_first_byte_other_than_zero_is_bad_magic(first: int) -> None:
    data = _encoded(_sample())
    error = _decode_error(bytes([first]) + data[1:])
    assert error.reason == CodecReason.BAD_MAGIC
    assert f"first byte is {first}" in str(error)


def test_a_single_nonzero_byte_is_bad_magic_rather_than_truncated() -> None:
    assert _decode_error(b"{").reason == CodecReason.BAD_MAGIC


@pytest.mark.parametrize("schema_id", [0, 8, 2**32 - 1])
def test_an_unregistered_schema_id_is_unknown_schema_id(schema_id: int) -> None:
    data = struct.pack(">bI", 0, schema_id) + _encoded(_sample())[5:]
    error = _decode_error(data)
    assert error.reason == CodecReason.UNKNOWN_SCHEMA_ID
    assert f"schema id {schema_id}" in str(error)


def test_a_registry_lookup_error_is_unknown_schema_id() -> None:
    def lookup(schema_id: int) -> str:
        raise RegistryLookupError(f"no schema {schema_id}", error_code=40403)

    with pytest.raises(CodecError) as caught:
        WireCodec(lookup).decode(HEADER + b"\x00")
    assert caught.value.reason == CodecReason.UNKNOWN_SCHEMA_ID


def test_encoding_with_an_unregistered_schema_id_is_unknown_schema_id() -> None:
    with pytest.raises(CodecError) as caught:
        _codec().encode(99, SCHEMA.to_avro(_sample()))
    assert caught.value.reason == CodecReason.UNKNOWN_SCHEMA_ID


def test_input_over_max_bytes_is_oversize_before_anything_is_parsed() -> None:
    data = _encoded(_sample())
    error = _decode_error(b"\x07" + data, max_bytes=len(data))
    assert error.reason == CodecReason.OVERSIZE
    assert str(len(data) + 1) in str(error)


def test_input_of_exactly_max_bytes_is_accepted() -> None:
    data = _encoded(_sample())
    assert _codec(max_bytes=len(data)).decode(data).schema_id == SCHEMA_ID


def test_encoding_a_record_over_max_bytes_is_oversize() -> None:
    bulletin = _sample()
    size = len(_encoded(bulletin))
    with pytest.raises(CodecError) as caught:
        _codec(max_bytes=size - 1).encode(SCHEMA_ID, SCHEMA.to_avro(bulletin))
    assert caught.value.reason == CodecReason.OVERSIZE


def test_the_default_limit_is_one_mebibyte() -> None:
    assert _codec().max_bytes == DEFAULT_MAX_BYTES == 1024 * 1024


def test_a_limit_below_the_header_size_is_refused() -> None:
    with pytest.raises(ValueError, match="5-byte header"):
        _codec(max_bytes=4)


# -- no payload in messages ----------------------------------------------------------


def test_the_canary_is_in_the_encoding_so_the_leak_tests_can_fail() -> None:
    assert CANARY.encode() in _encoded(_with_canary())


@pytest.mark.parametrize(
    "corrupt",
    [
        pytest.param(lambda d: d[: d.index(CANARY.encode()) + len(CANARY)], id="truncated"),
        pytest.param(lambda d: d + b"\x00", id="trailing"),
        pytest.param(lambda d: b"\x01" + d[1:], id="bad-magic"),
        pytest.param(lambda d: d[:5] + b"\xff" * 12 + d[17:], id="garbled-lengths"),
        pytest.param(
            lambda d: d.replace(CANARY.encode(), CANARY.encode()[:-1] + b"\xff"), id="bad-utf8"
        ),
    ],
)
def test_decode_errors_never_quote_the_payload(corrupt: Any) -> None:
    data: bytes = corrupt(_encoded(_with_canary()))
    error = _decode_error(data)
    assert CANARY not in str(error)


def test_decode_errors_from_a_resolving_reader_never_quote_the_payload() -> None:
    reader = json.loads(real_schema_text())
    reader["fields"].append({"name": "handling", "type": "string", "doc": "Required, no default."})
    with pytest.raises(CodecError) as caught:
        _codec().decode(_encoded(_with_canary()), reader_schema=json.dumps(reader))
    assert CANARY not in str(caught.value)


def test_encoding_a_record_that_does_not_fit_names_the_field_but_not_the_value() -> None:
    record = SCHEMA.to_avro(_sample())
    record["marking"] = CANARY
    with pytest.raises(CodecError) as caught:
        _codec().encode(SCHEMA_ID, record)
    assert caught.value.reason == CodecReason.SCHEMA_MISMATCH
    assert "marking" in str(caught.value)
    assert CANARY not in str(caught.value)


def test_a_body_field_that_does_not_fit_is_named_without_its_value() -> None:
    bulletin = _sample("alert")
    record = SCHEMA.to_avro(bulletin)
    record["body"] = ("liaison.bulletin.kind.Alert", {**bulletin.body, "category": CANARY})
    with pytest.raises(CodecError) as caught:
        _codec().encode(SCHEMA_ID, record)
    assert caught.value.reason == CodecReason.SCHEMA_MISMATCH
    assert "category" in str(caught.value)
    assert CANARY not in str(caught.value)


def test_a_missing_required_field_is_a_schema_mismatch() -> None:
    record = SCHEMA.to_avro(_sample())
    del record["source_agency"]
    with pytest.raises(CodecError) as caught:
        _codec().encode(SCHEMA_ID, record)
    assert caught.value.reason == CodecReason.SCHEMA_MISMATCH
    assert "source_agency" in str(caught.value)


# -- reader schemas ------------------------------------------------------------------


def _reader_with(field: dict[str, Any]) -> str:
    reader = json.loads(real_schema_text())
    reader["fields"].append(field)
    return json.dumps(reader)


def test_a_reader_schema_with_a_new_optional_field_fills_in_its_default() -> None:
    bulletin = _sample()
    reader = _reader_with(
        {"name": "handling", "type": ["null", "string"], "default": None, "doc": "New."}
    )
    decoded = _codec().decode(_encoded(bulletin), reader_schema=reader)
    assert decoded.record["handling"] is None
    del decoded.record["handling"]
    assert SCHEMA.from_avro(decoded.record) == bulletin


def test_a_reader_schema_that_needs_a_field_the_writer_lacks_is_schema_mismatch() -> None:
    reader = _reader_with({"name": "handling", "type": "string", "doc": "Required."})
    with pytest.raises(CodecError) as caught:
        _codec().decode(_encoded(_sample()), reader_schema=reader)
    assert caught.value.reason == CodecReason.SCHEMA_MISMATCH
    assert "handling" in str(caught.value)


def test_a_reader_schema_with_an_incompatible_field_type_is_schema_mismatch() -> None:
    reader = json.loads(real_schema_text())
    reader["fields"][0]["type"] = "int"  # bulletin_id: string -> int
    with pytest.raises(CodecError) as caught:
        _codec().decode(_encoded(_sample()), reader_schema=json.dumps(reader))
    assert caught.value.reason == CodecReason.SCHEMA_MISMATCH


# -- views that share their bulletin ----------------------------------------------------

VIEW_ID = 9
VIEW_CODEC = WireCodec({VIEW_ID: json.dumps(SchemaCatalog.load().composed(VIEW))}.__getitem__)


def _view(recipient: str, bulletin: Bulletin, *, strict: bool = False) -> dict[str, Any]:
    return {
        "recipient": recipient,
        "policy_version": 3,
        "rules": [f"rule-{recipient}"],
        "not_for_forwarding": strict,
        "redactions": [],
        "bulletin": SCHEMA.to_avro(bulletin),
    }


@FAST
@given(
    first=bulletins(SCHEMA),
    second=bulletins(SCHEMA),
    picks=st.lists(st.tuples(st.sampled_from("bcdefg"), st.booleans()), min_size=1, max_size=8),
)
def test_views_sharing_a_bulletin_encode_to_the_bytes_each_encodes_to_alone(
    first: Bulletin, second: Bulletin, picks: list[tuple[str, bool]]
) -> None:
    views = [_view(r, first if pick else second, strict=pick) for r, pick in picks]
    shared = VIEW_CODEC.encode_sharing_last(VIEW_ID, views)
    assert shared == [VIEW_CODEC.encode(VIEW_ID, view) for view in views]
    assert [VIEW_CODEC.decode(data).record for data in shared] == [
        VIEW_CODEC.decode(VIEW_CODEC.encode(VIEW_ID, view)).record for view in views
    ]


def test_a_schema_whose_last_field_is_not_a_record_is_encoded_whole() -> None:
    schema = {"type": "record", "name": "X", "fields": [{"name": "a", "type": "string"}]}
    codec = WireCodec({1: json.dumps(schema)}.__getitem__)
    records = [{"a": "x"}, {"a": "x"}, {"a": "y"}]
    assert codec.encode_sharing_last(1, records) == [codec.encode(1, r) for r in records]


def test_a_view_that_does_not_fit_fails_as_a_schema_mismatch_naming_no_value() -> None:
    view = _view("b", _sample("alert"))
    view["recipient"] = 12345
    with pytest.raises(CodecError) as caught:
        VIEW_CODEC.encode_sharing_last(VIEW_ID, [view])
    assert caught.value.reason == CodecReason.SCHEMA_MISMATCH
    assert "12345" not in str(caught.value)
