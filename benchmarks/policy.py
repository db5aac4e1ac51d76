"""Policy engine cost: compile time, and per-bulletin evaluate + redact + encode.

    .venv/bin/python benchmarks/policy.py [--bulletins 300] [--rounds 7]

* Compile: a synthetic policy of 100 fictional agencies and 20 rules (groups,
  attribute filters, tag and path redactions of every action).
* Evaluate: one source shares with exactly N recipients (4, 16, 64) under rules that
  pseudonymize contacts, drop persons, generalize positions and counts, truncate text.
  Each round evaluates the bulletins and encodes every view with the View schema.
  Baseline, measured interleaved in the same rounds: encoding the unredacted bulletin
  once per recipient with plain fastavro, which is what delivery costs with no policy.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from fastavro import parse_schema, schemaless_writer
from pydantic import SecretBytes

from bus.bulletin import Bulletin, BulletinGenerator, BulletinSchema, Marking, Status
from bus.codec import WireCodec
from bus.policy import CompiledPolicy, Policy, RedactionKeys, compile_policy, parse_policy
from bus.schemas import VIEW, SchemaCatalog, canonical_json

KEYS = RedactionKeys(master=SecretBytes(b"benchmark-only-key-0123456789abc"))
REDACT: list[dict[str, Any]] = [
    {"tag": "contact", "action": "pseudonymize"},
    {"field": "body.persons_involved", "action": "drop"},
    {"field": "body.incident_location", "action": "generalize", "grid_km": 10},
    {"field": "body.casualties.displaced", "action": "generalize", "bucket": 10},
    {"field": "body.summary", "action": "truncate", "max_chars": 120},
    {"tag": "pii", "action": "mask"},
]


def agencies(n: int) -> dict[str, Any]:
    sectors = ["water", "fire", "health", "transport", "maritime"]
    return {
        f"agency-{i:03d}": {
            "name": f"Fictional Agency {i}",
            "groups": [f"group-{i % 10}", "all-agencies"],
            "attributes": {"sector": sectors[i % 5], "jurisdiction": f"county-{i % 7}"},
            "accepts": ["ACTUAL", "EXERCISE"],
        }
        for i in range(n)
    }


def compile_policy_100x20() -> Policy:
    rules = []
    for r in range(20):
        recipients: dict[str, Any] = (
            {"groups": [f"group-{(r + 1) % 10}", f"group-{(r + 2) % 10}"]}
            if r % 3 == 0
            else {"where": {"sector": ["health", "fire"]}}
            if r % 3 == 1
            else {"all": True}
        )
        rules.append(
            {
                "id": f"rule-{r:02d}",
                "source": {"groups": [f"group-{r % 10}"]},
                "recipients": recipients,
                "kinds": ["*"] if r % 2 else ["situation_report", "alert"],
                "max_marking": ["GREEN", "AMBER", "AMBER_STRICT"][r % 3],
                "redact": REDACT[: 1 + r % len(REDACT)],
            }
        )
    return parse_policy({"version": 1, "agencies": agencies(100), "rules": rules})


def fan_out_policy(recipients: int) -> Policy:
    ids = list(agencies(recipients + 1))
    return parse_policy(
        {
            "version": 1,
            "agencies": agencies(recipients + 1),
            "rules": [
                {
                    "id": "fan-out",
                    "source": {"agencies": [ids[0]]},
                    "recipients": {"agencies": ids[1:]},
                    "kinds": ["situation_report"],
                    "max_marking": "AMBER",
                    "redact": REDACT,
                }
            ],
        }
    )


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bulletins", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    schema = BulletinSchema(SchemaCatalog.load())

    big = compile_policy_100x20()
    compile_s = [timed(lambda: compile_policy(big, schema, KEYS)) for _ in range(args.rounds)]
    compiled_big = compile_policy(big, schema, KEYS)
    entries = sum(len(e) for e in compiled_big.plans.values())
    print(
        f"compile 100 agencies x 20 rules: median {statistics.median(compile_s) * 1e3:.0f} ms "
        f"({len(compiled_big.plans)} plans, {entries} recipient entries)"
    )

    view_text = canonical_json(schema.catalog.composed(VIEW))
    bulletin_schema = parse_schema(json.loads(canonical_json(schema.composed)))
    codec = WireCodec({1: view_text}.__getitem__)
    print(
        f"\nevaluate + redact + encode views, {args.bulletins} situation reports per round, "
        f"{args.rounds} rounds (interleaved with the baseline)"
    )
    print(
        f"{'recipients':>10} {'us/bulletin':>12} {'us/recipient':>13} "
        f"{'baseline us/recip':>18} {'ratio':>6} {'IQR':>5}"
    )
    for n in (4, 16, 64):
        compiled = compile_policy(fan_out_policy(n), schema, KEYS)
        source = next(iter(compiled.policy.agencies))
        bulletins = list(
            BulletinGenerator(schema, seed=5, agencies=[source]).stream(
                args.bulletins, kind="situation_report"
            )
        )
        bulletins = [
            b.model_copy(update={"status": Status.ACTUAL, "marking": Marking.GREEN})
            for b in bulletins
        ]
        records = [schema.to_avro(b) for b in bulletins]
        body_type = schema.kinds["situation_report"]

        def policy_path(
            bulletins: list[Bulletin] = bulletins,
            compiled: CompiledPolicy = compiled,
            n: int = n,
            body_type: str = body_type,
        ) -> None:
            for b in bulletins:
                decision = compiled.evaluate(b)
                assert len(decision.views) == n
                for view in decision.views:
                    codec.encode(1, view.avro(body_type))

        def baseline(records: list[dict[str, Any]] = records, n: int = n) -> None:
            for record in records:
                for _ in range(n):
                    out = io.BytesIO()
                    schemaless_writer(out, bulletin_schema, record)
                    out.getvalue()

        ours, base, ratios = [], [], []
        for _ in range(args.rounds):
            b = timed(baseline)
            o = timed(policy_path)
            base.append(b)
            ours.append(o)
            ratios.append(o / b)
        per_bulletin = statistics.median(ours) / args.bulletins * 1e6
        per_recipient_base = statistics.median(base) / args.bulletins / n * 1e6
        q = statistics.quantiles(ratios, n=4)
        print(
            f"{n:10d} {per_bulletin:12.0f} {per_bulletin / n:13.1f} {per_recipient_base:18.1f} "
            f"{statistics.median(ratios):6.2f} {q[2] - q[0]:5.2f}"
        )


if __name__ == "__main__":
    main()
