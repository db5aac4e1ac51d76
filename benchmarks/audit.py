"""Audit verification speed: `verify` over a synthetic log, against parsing it, in one run.

    .venv/bin/python benchmarks/audit.py [--events 100000] [--checkpoint-every 1000]

Builds a log of N decision events in two chains (the shape the router writes, with four
recipients and redactions each), a signed checkpoint every K events per chain, then times:

* baseline: parsing every record's JSON (the least any reader of the log must do);
* verify: chains, checkpoint signatures and roots, and completeness of N inputs.

Prints seconds per 100,000 events for both and their ratio.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence

from bus.audit import AuditRecord, ChainState, Signer, new_key_hex, verify


def build(events: int, every: int) -> tuple[list[AuditRecord], Signer]:
    signer = Signer(bytes.fromhex(new_key_hex()))
    chains = [ChainState("edge.0"), ChainState("edge.1")]
    records: list[AuditRecord] = []
    for n in range(events):
        chain = chains[n % 2]
        event = {
            "type": "bulletin.decided",
            "outcome": "accepted",
            "bulletin_id": f"north-river:{n:08d}",
            "source": "north-river",
            "kind": "situation_report",
            "marking": "AMBER",
            "input": {"topic": "liaison.from.north-river", "partition": n % 2, "offset": n // 2},
            "sha256": f"{n:064x}",
            "policy_version": 3,
            "time": "2026-12-02T10:00:00.000000+00:00",
            "recipients": [
                {
                    "agency": agency,
                    "delivered": True,
                    "rules": ["emergency-alerts"],
                    "redactions": [
                        {"path": "body.persons_involved", "action": "drop"},
                        {"path": "body.contact.phone", "action": "pseudonymize"},
                    ],
                }
                for agency in ("harbour-watch", "vale-fire", "saltmarsh-health")
            ]
            + [{"agency": "upland-transit", "delivered": False, "reason": "no_rule"}],
        }
        records.append(AuditRecord(len(records), chain.seal(event)))
        if chain.since_checkpoint >= every:
            records.append(AuditRecord(len(records), chain.checkpoint(signer)))
    for chain in chains:
        if chain.since_checkpoint:
            records.append(AuditRecord(len(records), chain.checkpoint(signer)))
    return records, signer


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--checkpoint-every", type=int, default=1000)
    args = parser.parse_args(argv)
    records, signer = build(args.events, args.checkpoint_every)
    half = (args.events + 1) // 2
    inputs = {
        ("liaison.from.north-river", 0): (0, half),
        ("liaison.from.north-river", 1): (0, args.events // 2),
    }

    started = time.perf_counter()
    for record in records:
        json.loads(record.value)
    parse_s = time.perf_counter() - started

    started = time.perf_counter()
    result = verify(records, {signer.public.key_id: signer.public}, inputs=inputs)
    verify_s = time.perf_counter() - started
    assert result.ok, result.problems[:5]

    scale = 100_000 / args.events
    print(
        f"audit: {args.events} events in 2 chains, a checkpoint every {args.checkpoint_every} "
        f"events per chain ({result.checkpoints} checkpoints), {result.inputs_checked} inputs"
    )
    print(f"{'':10} {'s per 100k events':>18}")
    print(f"{'parse':10} {parse_s * scale:18.2f}")
    print(f"{'verify':10} {verify_s * scale:18.2f}")
    print(f"{'ratio':10} {verify_s / parse_s:18.1f}   (verify / parse)")


if __name__ == "__main__":
    main()
