"""Read the audit log from Kafka, and write or read an evidence bundle (offline, no broker).

A bundle is a directory:

* ``records.jsonl``: one ``{"offset": n, "value": "<base64 of the record value>"}`` per
  audit record, in offset order, from the start of the log;
* ``inputs.json``: ``[{"topic", "partition", "start", "end"}]``, the input offsets that must
  each have one decision (see :func:`bus.audit.verify`);
* ``keys.json``: the public keys published in the log (``audit.key`` events): never a trust
  anchor (whoever forges the records can replace it), only where ``--fingerprint`` looks;
* ``manifest.json``: when and by what it was made, the period asked for, counts, and the
  SHA-256 of each of the other files.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bus import __version__
from bus.audit._keys import PublicKey
from bus.audit._verify import AuditRecord
from bus.errors import ConfigError
from bus.kafka import Consumer, KafkaConnection, TopicPartition
from bus.topics import TopicNames

__all__ = ["Evidence", "read_bundle", "read_evidence", "write_bundle"]

_FILES = ("records.jsonl", "inputs.json", "keys.json")


@dataclass
class Evidence:
    """What verification and reports work on."""

    records: list[AuditRecord]
    inputs: dict[tuple[str, int], tuple[int, int]]
    keys: dict[str, PublicKey] = field(default_factory=dict)
    """Keys published in the log: compare their ids with the ones you trust."""
    bundle_problems: list[str] = field(default_factory=list)

    def events(self) -> list[dict[str, Any]]:
        parsed = []
        for record in self.records:
            try:
                body = json.loads(record.value)
            except ValueError:
                continue
            if isinstance(body, dict):
                parsed.append(body)
        return parsed


def published_keys(records: list[AuditRecord]) -> dict[str, PublicKey]:
    keys: dict[str, PublicKey] = {}
    for record in records:
        if b'"audit.key"' not in record.value:
            continue
        try:
            body = json.loads(record.value)
            if body.get("type") == "audit.key":
                key = PublicKey.from_json(body)
                keys[key.key_id] = key
        except (ValueError, ConfigError):
            continue
    return keys


async def read_evidence(connection: KafkaConnection, names: TopicNames) -> Evidence:
    """Input ranges first (the routers' committed offsets), then the audit log to its end:
    every decision for an offset below a committed one is then in what was read."""
    async with Consumer(connection, group_id=names.edge_group) as consumer:
        topics = await consumer.topic_partitions()
        tps = sorted(
            TopicPartition(t, p) for t, ps in topics.items() if names.agency_of(t) for p in ps
        )
        starts = await consumer.beginning_offsets(tps) if tps else {}
        inputs: dict[tuple[str, int], tuple[int, int]] = {}
        for tp in tps:
            committed = await consumer.committed(tp)
            inputs[(tp.topic, tp.partition)] = (starts[tp], max(starts[tp], committed or 0))
    audit = TopicPartition(names.audit, 0)
    records: list[AuditRecord] = []
    async with Consumer(connection) as consumer:
        end = (await consumer.assign_from_beginning([audit]))[audit]
        while await consumer.position(audit) < end:
            for record in await consumer.getmany(timeout_ms=500):
                if record.offset < end:
                    records.append(AuditRecord(record.offset, record.value or b""))
    return Evidence(records, inputs, published_keys(records))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_bundle(
    evidence: Evidence,
    directory: Path,
    *,
    period: tuple[datetime | None, datetime | None] = (None, None),
) -> dict[str, Any]:
    """Write the bundle; returns its manifest."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / "records.jsonl").open("w", encoding="utf-8") as out:
        for record in evidence.records:
            value = base64.b64encode(record.value).decode()
            out.write(json.dumps({"offset": record.offset, "value": value}) + "\n")
    inputs = [
        {"topic": t, "partition": p, "start": s, "end": e}
        for (t, p), (s, e) in sorted(evidence.inputs.items())
    ]
    (directory / "inputs.json").write_text(json.dumps(inputs, indent=1))
    keys = [k.to_json() for k in evidence.keys.values()]
    (directory / "keys.json").write_text(json.dumps(keys, indent=1))
    manifest = {
        "format": "liaison-audit-bundle/1",
        "created_at": datetime.now(UTC).isoformat(),
        "created_by": f"liaison {__version__}",
        "period": {"from": _iso(period[0]), "to": _iso(period[1])},
        "records": len(evidence.records),
        "first_offset": evidence.records[0].offset if evidence.records else None,
        "last_offset": evidence.records[-1].offset if evidence.records else None,
        "sha256": {name: _sha256(directory / name) for name in _FILES},
    }
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when is not None else None


def read_bundle(directory: Path) -> Evidence:
    """Read a bundle; a file whose hash differs from the manifest's is a bundle problem."""
    try:
        manifest = json.loads((directory / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{directory} holds no readable manifest.json: {exc}") from exc
    problems = []
    for name in _FILES:
        path = directory / name
        if not path.is_file():
            raise ConfigError(f"the bundle {directory} lacks {name}")
        if _sha256(path) != manifest.get("sha256", {}).get(name):
            problems.append(f"{name} does not match the SHA-256 in manifest.json")
    records = []
    with (directory / "records.jsonl").open(encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, 1):
            try:
                row = json.loads(line)
                records.append(
                    AuditRecord(int(row["offset"]), base64.b64decode(row["value"], validate=True))
                )
            except (ValueError, KeyError, TypeError):
                problems.append(f"records.jsonl line {number} is unreadable")
    inputs: dict[tuple[str, int], tuple[int, int]] = {}
    try:
        for i in json.loads((directory / "inputs.json").read_text(errors="replace")):
            inputs[(str(i["topic"]), int(i["partition"]))] = (int(i["start"]), int(i["end"]))
    except (ValueError, KeyError, TypeError):
        problems.append("inputs.json is unreadable: completeness cannot be checked")
    keys = {}
    try:
        for entry in json.loads((directory / "keys.json").read_text(errors="replace")):
            key = PublicKey.from_json(entry)
            keys[key.key_id] = key
    except (ValueError, KeyError, TypeError, ConfigError):
        problems.append("keys.json is unreadable: give the trusted keys with --public-key")
    return Evidence(records, inputs, keys, problems)
