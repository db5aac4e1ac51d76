"""Start-up time of the ``liaison`` command line, against Python's own in the same run.

    .venv/bin/python benchmarks/startup.py [--rounds 15] [--before DIR]

Each round runs every command once, in a rotating order, each in a fresh interpreter
(``python -m bus.cli ...``, as the console script does), so drift on a shared machine hits
all of them alike. Baselines: ``python -c pass`` (the interpreter) and ``python -c 'import
typer'`` (the CLI framework) and a one-command typer app run with one option (typer 0.29
builds a pydantic adapter per parameter it parses: the floor of any typer command). It
prints the median wall time of each and its ratio to the baselines. The heavy modules
(Kafka clients, FastAPI, Avro, cryptography) are imported by the commands that use them:
``--help`` and quick commands should cost little more than that floor
(tests/unit/test_cli_startup.py checks which modules they import, without timing).
``--before DIR`` adds the same commands run from another source tree (e.g. ``git archive
<rev> | tar -x -C DIR``), first on ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

_TYPER_APP = """
from pathlib import Path
import typer
app = typer.Typer()
@app.command()
def hello(path: Path = Path("."), count: int = 1) -> None:
    print(path, count)
app()
"""
BASELINES: dict[str, list[str]] = {
    "python -c pass": ["-c", "pass"],
    "python -c 'import typer'": ["-c", "import typer"],
    "a one-command typer app": ["-c", _TYPER_APP, "--count", "2"],
}
COMMANDS: dict[str, list[str]] = {
    "liaison --help": ["-m", "bus.cli", "--help"],
    "liaison edge --help": ["-m", "bus.cli", "edge", "--help"],
    "liaison api --help": ["-m", "bus.cli", "api", "--help"],
    "liaison broker cache": ["-m", "bus.cli", "broker", "cache"],
    "liaison adapter list": ["-m", "bus.cli", "adapter", "list"],
}


def _once(args: list[str], tree: str | None = None) -> float:
    env = None if tree is None else {**os.environ, "PYTHONPATH": tree}
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
        env=env,
        cwd=tree,  # `-m` puts the working directory first on sys.path
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--before", help="Another source tree to run the commands from.")
    args = parser.parse_args()
    every: dict[str, tuple[list[str], str | None]] = {
        **{name: (argv, None) for name, argv in {**BASELINES, **COMMANDS}.items()},
    }
    if args.before:
        every.update({f"before: {name}": (argv, args.before) for name, argv in COMMANDS.items()})
    names = list(every)
    times: dict[str, list[float]] = {name: [] for name in names}
    for name in names:  # warm the page cache and the .pyc files first
        _once(*every[name])
    for round_ in range(args.rounds):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(_once(*every[name]))
    python = statistics.median(times["python -c pass"])
    typer = statistics.median(times["python -c 'import typer'"])
    floor = statistics.median(times["a one-command typer app"])
    print(f"median of {args.rounds} rounds, each command in a fresh interpreter\n")
    print(
        f"| {'command':36} | {'median ms':>9} | {'/ python':>8} | {'/ import typer':>14} | "
        f"{'/ typer app':>11} |"
    )
    print(f"|{'-' * 38}|{'-' * 10}:|{'-' * 9}:|{'-' * 15}:|{'-' * 12}:|")
    for name in names:
        median = statistics.median(times[name])
        print(
            f"| {name:36} | {median * 1000:9.0f} | {median / python:8.2f} | "
            f"{median / typer:14.2f} | {median / floor:11.2f} |"
        )


if __name__ == "__main__":
    main()
