"""docs/audit.md defines every field the code writes in a checkpoint, a position record, a
public key and an evidence bundle: an independent implementer verifies from the page alone.

The fields are taken from what the code writes, not from a list kept here, so a field added
to a checkpoint or a bundle fails this test until the page names it (as `field`).
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bus.audit import AuditRecord, ChainState, Signer
from bus.audit._io import Evidence, write_bundle

DOC = Path(__file__).parents[2] / "docs" / "audit.md"
SIGNER = Signer(bytes(range(32)))
NOW = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)


def named_in_doc() -> set[str]:
    """Code spans of one word (`frontier`), and the quoted names in a JSON code span
    (`{"offset": N, "value": ...}`), in the prose: an example block defines nothing."""
    prose = re.sub(r"^```.*?^```", "", DOC.read_text(), flags=re.M | re.S)  # examples
    names = set()
    for span in re.findall(r"`([^`]+)`", prose):
        if not re.search(r"\s", span):
            names.add(span)
        names.update(re.findall(r'"([A-Za-z_][\w.]*)"', span))
    return names


def fields(value: Any) -> set[str]:
    """Every key of every object in ``value``."""
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in fields(v)}
    if isinstance(value, list):
        return {k for v in value for k in fields(v)}
    return set()


def written_bundle(tmp_path: Path) -> Path:
    chain = ChainState("admin")
    values = [
        chain.seal({"type": "audit.key", **SIGNER.public.to_json(), "previous": []}),
        chain.checkpoint(SIGNER, now=NOW),
    ]
    records = [AuditRecord(i, v) for i, v in enumerate(values)]
    evidence = Evidence(
        records, {("liaison.from.police", 0): (0, 0)}, {SIGNER.public.key_id: SIGNER.public}
    )
    write_bundle(evidence, tmp_path, period=(NOW, NOW))
    return tmp_path


def checkpoint() -> dict[str, Any]:
    chain = ChainState("edge.0")
    for n in range(6):
        chain.seal({"type": "bulletin.decided", "n": n})
    body: dict[str, Any] = json.loads(chain.checkpoint(SIGNER, now=NOW))
    return body


@pytest.mark.parametrize("name", ["records.jsonl", "inputs.json", "keys.json", "manifest.json"])
def test_each_bundle_file_and_every_field_in_it_is_named(tmp_path: Path, name: str) -> None:
    bundle = written_bundle(tmp_path)
    text = (bundle / name).read_text()
    rows = (
        [json.loads(line) for line in text.splitlines()] if name.endswith("l") else json.loads(text)
    )
    written = fields(rows)
    if name == "manifest.json":
        written.discard("records.jsonl")  # the keys of sha256 are the file names
        written -= {"inputs.json", "keys.json"}
        assert json.loads(text)["format"] in DOC.read_text()

    assert written, f"{name} holds no field: the test would prove nothing"
    assert name in named_in_doc()
    assert written - named_in_doc() == set()


def test_every_checkpoint_field_is_named() -> None:
    written = set(checkpoint())

    assert {"frontier", "last", "signature"} <= written
    assert written - named_in_doc() == set()


def test_every_field_of_a_link_and_of_the_position_record_is_named() -> None:
    chain = ChainState("edge.0")
    link = json.loads(chain.seal({"type": "bulletin.decided"}))

    assert set(link) - {"type"} - named_in_doc() == set()
    assert set(chain.to_json()) - named_in_doc() == set()


def test_the_published_key_fields_and_the_fingerprint_are_named() -> None:
    public = SIGNER.public

    assert {*public.to_json(), "fingerprint"} - named_in_doc() == set()
    assert public.key_id == public.fingerprint[:16]


def test_the_documented_frontier_fold_gives_the_root() -> None:
    """The page says: root = the frontier folded from the right with 0x01 nodes."""
    body = checkpoint()
    frontier = [bytes.fromhex(h) for h in body["frontier"]]
    assert len(frontier) == bin(body["tree_size"]).count("1")
    digest = frontier[-1]
    for left in reversed(frontier[:-1]):
        digest = hashlib.sha256(b"\x01" + left + digest).digest()

    assert digest.hex() == body["root"]
