"""The forger of issue 15.1: rewrite an evidence bundle so that it is consistent with itself.

Edit one event, re-chain every event after it, recompute and re-sign every checkpoint with a
key of the forger's, publish that key in ``keys.json`` (and in the log's ``audit.key``
events), and rewrite the manifest's hashes. Nothing in the bundle then contradicts anything
else in it: only a key the auditor brings from elsewhere tells the forgery from the log.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from bus.audit import CHECKPOINT, ChainState, PublicKey, Signer

__all__ = ["forge_bundle"]

_FILES = ("records.jsonl", "inputs.json", "keys.json")


def _edited(body: dict[str, Any]) -> dict[str, Any]:
    """The decision now says the bulletin was rejected as junk."""
    forged = {k: v for k, v in body.items() if k not in ("deliveries", "views")}
    return {**forged, "outcome": "rejected", "reason": "bad_magic"}


def forge_bundle(directory: Path, forger: Signer, *, also_publish: Sequence[PublicKey] = ()) -> int:
    """Forge the bundle in ``directory`` in place; returns the offset of the edited event
    (the first accepted decision). ``also_publish`` lists more keys for ``keys.json``."""
    rows = [json.loads(line) for line in (directory / "records.jsonl").read_text().splitlines()]
    states: dict[str, ChainState] = {}
    edited: int | None = None
    forged_rows = []
    for row in rows:
        value = base64.b64decode(row["value"])
        body = json.loads(value)
        chain = body.get("chain")
        if not isinstance(chain, str):
            forged_rows.append(row)
            continue
        state = states.setdefault(chain, ChainState(chain))
        if body.get("type") == CHECKPOINT:
            assert body["tree_size"] == state.seq, "a checkpoint not over its chain so far"
            value = state.checkpoint(forger, now=datetime.fromisoformat(body["time"]))
        else:
            assert body["seq"] == state.seq, "a chain out of order"
            event = {k: v for k, v in body.items() if k not in ("chain", "seq", "prev")}
            if edited is None and event.get("outcome") == "accepted":
                event, edited = _edited(event), row["offset"]
            if event.get("type") == "audit.key":
                event.update(forger.public.to_json())
            value = state.seal(event)
        forged_rows.append({"offset": row["offset"], "value": base64.b64encode(value).decode()})
    assert edited is not None, "no accepted decision to edit"
    (directory / "records.jsonl").write_text("".join(json.dumps(row) + "\n" for row in forged_rows))
    keys = [forger.public.to_json(), *(k.to_json() for k in also_publish)]
    (directory / "keys.json").write_text(json.dumps(keys, indent=1))
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["sha256"] = {
        name: hashlib.sha256((directory / name).read_bytes()).hexdigest() for name in _FILES
    }
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return edited
