"""``python -m tests.chaos``: the chaos scenarios at full size on a broker of their own.

Starts a broker in a temporary directory (R2 starts and kills another one), runs the
scenarios, prints the verdict table and exits 1 on any violation. The temporary
directory (routers' logs, brokers' data) is kept when something was violated.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from bus.broker import Broker, BrokerConfig
from tests.chaos.harness import SCENARIOS, ChaosConfig, print_verdicts, run_scenarios


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    defaults = ChaosConfig()
    parser = argparse.ArgumentParser(
        prog="python -m tests.chaos",
        description="Fault injection against the edge router on a real broker (issue 10).",
    )
    parser.add_argument(
        "--scenario",
        default=",".join(SCENARIOS),
        help=f"comma-separated, from {', '.join(SCENARIOS)} (default: all)",
    )
    parser.add_argument("--bulletins", type=int, default=defaults.bulletins, help="R1's stream")
    parser.add_argument("--kills", type=int, default=defaults.kills, help="R1's router SIGKILLs")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--r2-bulletins", type=int, default=defaults.r2_bulletins)
    parser.add_argument("--broker-kills", type=int, default=defaults.broker_kills)
    parser.add_argument("--r3-bulletins", type=int, default=defaults.r3_bulletins)
    parser.add_argument("--zombie-rounds", type=int, default=defaults.zombie_rounds)
    parser.add_argument(
        "--fuzz-examples", type=int, default=defaults.fuzz_examples, help="F1's malformed records"
    )
    parser.add_argument("--fuzz-good", type=int, default=defaults.fuzz_good)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # The harness's own clients log every refused connection while a broker is down (R2)
    # or a coordinator is loading: expected here, and the verdict says what matters.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    names = [n.strip().upper() for n in args.scenario.split(",") if n.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    console = Console()
    if unknown or not names:
        console.print(f"unknown scenario(s) {unknown}; choose from {', '.join(SCENARIOS)}")
        return 2
    config = ChaosConfig(
        bulletins=args.bulletins,
        kills=args.kills,
        seed=args.seed,
        r2_bulletins=args.r2_bulletins,
        broker_kills=args.broker_kills,
        r3_bulletins=args.r3_bulletins,
        zombie_rounds=args.zombie_rounds,
        fuzz_examples=args.fuzz_examples,
        fuzz_good=args.fuzz_good,
    )
    workdir = Path(tempfile.mkdtemp(prefix="liaison-chaos-"))
    started = time.monotonic()

    def say(line: str) -> None:
        console.print(f"[dim]{time.monotonic() - started:7.1f}s[/] {line}", highlight=False)

    broker: Broker | None = None
    try:
        if any(n != "R2" for n in names):
            broker = Broker(BrokerConfig(data_dir=workdir / "broker"), progress=say)
            broker.start()
        admin = broker.connection if broker is not None else None
        outcomes = asyncio.run(run_scenarios(names, admin, workdir, config, announce=say))
    finally:
        if broker is not None:
            broker.stop()
    print_verdicts(outcomes, console)
    failed = any(not o.ok for o in outcomes)
    if failed or args.keep:
        console.print(f"logs and broker data kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
