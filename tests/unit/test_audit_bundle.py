"""Evidence bundles (write, read, tamper) and inclusion proofs, offline: no broker.

A bundle is written from evidence built in memory and read back; its manifest must list the
SHA-256 of each file, and any edited byte must surface as a bundle problem, never as a crash.
``prove`` must return, for every decision under a checkpoint, a proof that checks with the
few lines of RFC 9162 verification a third party would run.
"""

from __future__ import annotations

import base64
import hashlib
import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bus.audit import (
    CHECKPOINT,
    AuditRecord,
    ChainState,
    Signer,
    checkpoint_message,
    leaf_hash,
    verify,
    verify_inclusion,
)
from bus.audit._io import Evidence, read_bundle, write_bundle
from bus.audit._prove import prove
from bus.errors import ConfigError, LiaisonError

SIGNER = Signer(bytes(range(32)))
KEYS = {SIGNER.public.key_id: SIGNER.public}
NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
POLICE = "liaison.in.police"
FILES = ("records.jsonl", "inputs.json", "keys.json")


def decision(n: int, *, source: str = "police") -> dict[str, Any]:
    return {
        "type": "bulletin.decided",
        "outcome": "accepted",
        "bulletin_id": f"{source}:{n:06d}",
        "source": source,
        "input": {"topic": f"liaison.in.{source}", "partition": 0, "offset": n},
        "time": NOW.isoformat(),
    }


def small_log(*, tail: int = 0) -> list[AuditRecord]:
    """Two chains, eleven decisions, checkpoints of both after the 5th and the 11th, and
    ``tail`` decisions of edge.0 after its last checkpoint."""
    states = {"edge.0": ChainState("edge.0"), "edge.1": ChainState("edge.1")}
    values = []
    for n in range(11):
        chain = "edge.0" if n % 3 else "edge.1"
        values.append(states[chain].seal(decision(n)))
        if n in (4, 10):
            values.extend(state.checkpoint(SIGNER, now=NOW) for state in states.values())
    for n in range(11, 11 + tail):
        values.append(states["edge.0"].seal(decision(n)))
    return [AuditRecord(500 + i, value) for i, value in enumerate(values)]


def evidence(records: list[AuditRecord] | None = None) -> Evidence:
    records = small_log() if records is None else records
    return Evidence(records, {(POLICE, 0): (0, 11)}, dict(KEYS))


# ---------------------------------------------------------------------------------------------
# Bundles


def test_a_bundle_round_trips_records_inputs_and_keys(tmp_path: Path) -> None:
    written = evidence()
    write_bundle(written, tmp_path / "bundle")
    read = read_bundle(tmp_path / "bundle")
    assert read.records == written.records
    assert read.inputs == written.inputs
    assert read.keys == written.keys
    assert read.bundle_problems == []


def test_a_read_bundle_verifies_as_the_log_did(tmp_path: Path) -> None:
    write_bundle(evidence(), tmp_path)
    read = read_bundle(tmp_path)
    result = verify(read.records, read.keys, inputs=read.inputs)
    assert result.ok, result.problems
    assert result.decisions == 11


@given(
    st.lists(st.tuples(st.integers(min_value=0, max_value=2**62), st.binary(max_size=40))),
    st.dictionaries(
        st.tuples(st.text(min_size=1, max_size=12), st.integers(min_value=0, max_value=99)),
        st.tuples(
            st.integers(min_value=0, max_value=10**9), st.integers(min_value=0, max_value=10**9)
        ),
        max_size=4,
    ),
)
def test_any_records_and_inputs_round_trip_byte_for_byte(
    rows: list[tuple[int, bytes]], inputs: dict[tuple[str, int], tuple[int, int]]
) -> None:
    written = Evidence([AuditRecord(o, v) for o, v in rows], inputs)
    with tempfile.TemporaryDirectory() as directory:
        write_bundle(written, Path(directory))
        read = read_bundle(Path(directory))
    assert read.records == written.records
    assert read.inputs == written.inputs
    assert read.bundle_problems == []


def test_the_manifest_lists_the_sha256_of_each_file(tmp_path: Path) -> None:
    manifest = write_bundle(evidence(), tmp_path)
    assert json.loads((tmp_path / "manifest.json").read_text()) == manifest
    assert manifest["sha256"] == {
        name: hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() for name in FILES
    }


def test_the_manifest_counts_the_records_and_names_the_period(tmp_path: Path) -> None:
    records = small_log()
    start, end = datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 3, tzinfo=UTC)
    manifest = write_bundle(evidence(records), tmp_path, period=(start, end))
    assert manifest["format"] == "liaison-audit-bundle/1"
    assert manifest["records"] == len(records)
    assert (manifest["first_offset"], manifest["last_offset"]) == (500, 500 + len(records) - 1)
    assert manifest["period"] == {"from": start.isoformat(), "to": end.isoformat()}
    assert write_bundle(evidence([]), tmp_path / "empty")["first_offset"] is None


def test_records_jsonl_holds_each_offset_and_base64_value(tmp_path: Path) -> None:
    records = small_log()
    write_bundle(evidence(records), tmp_path)
    lines = (tmp_path / "records.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"offset": r.offset, "value": base64.b64encode(r.value).decode()} for r in records
    ]


def test_an_edited_byte_of_records_jsonl_is_a_bundle_problem(tmp_path: Path) -> None:
    write_bundle(evidence(), tmp_path)
    path = tmp_path / "records.jsonl"
    data = bytearray(path.read_bytes())
    data[40] ^= 0x01
    path.write_bytes(bytes(data))
    assert "records.jsonl does not match the SHA-256 in manifest.json" in (
        read_bundle(tmp_path).bundle_problems
    )


@given(st.data())
def test_any_edited_byte_of_records_jsonl_is_a_bundle_problem_never_a_crash(
    data: st.DataObject,
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        bundle = Path(directory)
        write_bundle(evidence(small_log()[:4]), bundle)
        path = bundle / "records.jsonl"
        content = bytearray(path.read_bytes())
        at = data.draw(st.integers(min_value=0, max_value=len(content) - 1), label="byte")
        content[at] ^= data.draw(st.integers(min_value=1, max_value=255), label="xor")
        path.write_bytes(bytes(content))
        problems = read_bundle(bundle).bundle_problems
    assert "records.jsonl does not match the SHA-256 in manifest.json" in problems


def test_an_unreadable_line_of_records_jsonl_is_named_by_its_number(tmp_path: Path) -> None:
    write_bundle(evidence(), tmp_path)
    path = tmp_path / "records.jsonl"
    lines = path.read_text().splitlines()
    lines[2] = '{"offset": 502, "value": "not base64!"}'
    path.write_text("\n".join(lines) + "\n")
    problems = read_bundle(tmp_path).bundle_problems
    assert "records.jsonl line 3 is unreadable" in problems


def test_an_edited_inputs_json_is_a_bundle_problem(tmp_path: Path) -> None:
    write_bundle(evidence(), tmp_path)
    path = tmp_path / "inputs.json"
    path.write_text(path.read_text().replace('"end": 11', '"end": 10'))
    read = read_bundle(tmp_path)
    assert read.bundle_problems == ["inputs.json does not match the SHA-256 in manifest.json"]
    assert read.inputs == {(POLICE, 0): (0, 10)}


@pytest.mark.parametrize("name", FILES)
def test_a_bundle_missing_a_file_is_a_config_error_naming_it(tmp_path: Path, name: str) -> None:
    write_bundle(evidence(), tmp_path)
    (tmp_path / name).unlink()
    with pytest.raises(ConfigError, match=f"lacks {name}"):
        read_bundle(tmp_path)


def test_a_bundle_without_a_manifest_is_a_config_error_naming_it(tmp_path: Path) -> None:
    write_bundle(evidence(), tmp_path)
    (tmp_path / "manifest.json").unlink()
    with pytest.raises(ConfigError, match=r"no readable manifest\.json"):
        read_bundle(tmp_path)


# ---------------------------------------------------------------------------------------------
# Inclusion proofs


def decisions_in(records: list[AuditRecord]) -> list[dict[str, Any]]:
    return [
        body
        for body in (json.loads(r.value) for r in records)
        if body.get("type") == "bulletin.decided"
    ]


def last_checkpoint(records: list[AuditRecord], chain: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [
        body
        for body in (json.loads(r.value) for r in records)
        if body.get("type") == CHECKPOINT and body["chain"] == chain
    ]
    return found[-1]


def test_every_decision_under_a_checkpoint_has_a_proof_that_verifies() -> None:
    records = small_log()
    for body in decisions_in(records):
        proof = prove(records, body["bulletin_id"])
        event = proof["event"].encode()
        assert json.loads(event) == body
        assert leaf_hash(event).hex() == proof["leaf_hash"]
        assert (proof["chain"], proof["leaf_index"]) == (body["chain"], body["seq"])
        assert proof["checkpoint"] == last_checkpoint(records, body["chain"])
        assert proof["tree_size"] == proof["checkpoint"]["tree_size"]
        assert proof["root"] == proof["checkpoint"]["root"]
        assert verify_inclusion(
            leaf_hash(event),
            proof["leaf_index"],
            proof["tree_size"],
            [bytes.fromhex(h) for h in proof["proof"]],
            bytes.fromhex(proof["checkpoint"]["root"]),
        ), body["bulletin_id"]


def test_a_proofs_checkpoint_is_signed_by_the_log_key() -> None:
    records = small_log()
    checkpoint = prove(records, "police:000003")["checkpoint"]
    signature = base64.b64decode(checkpoint["signature"])
    assert SIGNER.public.verify(signature, checkpoint_message(checkpoint))


def test_a_proof_does_not_verify_for_another_decision() -> None:
    records = small_log()
    proof = prove(records, "police:000001")
    other = prove(records, "police:000002")["event"].encode()
    assert not verify_inclusion(
        leaf_hash(other),
        proof["leaf_index"],
        proof["tree_size"],
        [bytes.fromhex(h) for h in proof["proof"]],
        bytes.fromhex(proof["root"]),
    )


def test_a_decision_after_the_last_checkpoint_must_wait_for_the_next() -> None:
    records = small_log(tail=2)
    with pytest.raises(LiaisonError, match="retry after the next checkpoint") as error:
        prove(records, "police:000012")
    assert "seq" in str(error.value)
    assert "edge.0" in str(error.value)


def test_a_decision_of_a_chain_never_checkpointed_must_wait_for_the_first() -> None:
    state = ChainState("admin")
    records = [AuditRecord(0, state.seal(decision(1)))]
    with pytest.raises(LiaisonError, match="retry after the next checkpoint"):
        prove(records, "police:000001")


def test_an_unknown_bulletin_id_is_named() -> None:
    with pytest.raises(LiaisonError, match=r"no decision about bulletin 'police:424242'"):
        prove(small_log(), "police:424242")


def test_an_unknown_source_is_named() -> None:
    with pytest.raises(LiaisonError, match=r"'police:000001' from fire"):
        prove(small_log(), "police:000001", source="fire")


def test_a_source_picks_the_decision_among_equal_bulletin_ids() -> None:
    state = ChainState("edge.0")
    police = {**decision(1), "bulletin_id": "shared:1"}
    fire = {**decision(1, source="fire"), "bulletin_id": "shared:1"}
    values = [state.seal(police), state.seal(fire), state.checkpoint(SIGNER, now=NOW)]
    records = [AuditRecord(i, v) for i, v in enumerate(values)]
    assert prove(records, "shared:1")["leaf_index"] == 0
    assert prove(records, "shared:1", source="fire")["leaf_index"] == 1


def test_a_chain_with_a_missing_event_says_to_run_verify() -> None:
    records = small_log()
    first = next(r for r in records if json.loads(r.value).get("seq") == 0)
    damaged = [r for r in records if r is not first]
    body = json.loads(first.value)
    other = next(b for b in decisions_in(damaged) if b["chain"] == body["chain"] and b["seq"] == 1)
    with pytest.raises(LiaisonError, match="liaison audit verify"):
        prove(damaged, other["bulletin_id"])
