"""The ``liaison`` command line."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from pydantic import SecretStr
from rich.console import Console

from bus.broker import KAFKA_VERSION, Broker, BrokerConfig, cache_root, kafka_libs
from bus.broker._compose import render_compose
from bus.broker._launcher import read_state
from bus.errors import LiaisonError
from bus.kafka import KafkaAdmin, KafkaConnection
from bus.registry import (
    DEFAULT_TOPIC,
    KafkaRegistryStore,
    SchemaRegistry,
    create_kafka_registry_app,
)
from bus.schemas import BULLETIN, SchemaCatalog, check_history, release, releases

app = typer.Typer(
    name="liaison",
    help="Liaison: an inter-agency information-sharing bus on Apache Kafka.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
broker_app = typer.Typer(
    help="Run a local, secured, single-node Apache Kafka broker.", no_args_is_help=True
)
app.add_typer(broker_app, name="broker")
schemas_app = typer.Typer(help="Bulletin schemas: check, release, register.", no_args_is_help=True)
app.add_typer(schemas_app, name="schemas")
registry_app = typer.Typer(
    help="The schema registry (Confluent-compatible REST API).", no_args_is_help=True
)
app.add_typer(registry_app, name="registry")

out = Console()
err = Console(stderr=True)

DataDir = Annotated[
    Path,
    typer.Option(
        "--data-dir",
        help="Broker storage, config, log and credentials.",
        envvar="LIAISON_BROKER_DIR",
    ),
]
_DEFAULT_DATA_DIR = Path(".liaison/broker")


def _fail(exc: LiaisonError) -> typer.Exit:
    err.print(f"[bold red]error:[/] {type(exc).__name__}: {exc}", highlight=False, markup=True)
    return typer.Exit(code=2)


def _raise_keyboard_interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@broker_app.command("fetch")
def broker_fetch(
    version: Annotated[str, typer.Option(help="Apache Kafka version.")] = KAFKA_VERSION,
) -> None:
    """Resolve the Kafka broker jars from Maven Central into the cache (once per version)."""
    started = time.monotonic()
    try:
        libs = kafka_libs(version, progress=lambda m: err.print(m, highlight=False))
    except LiaisonError as exc:
        raise _fail(exc) from exc
    jars = len(list(libs.glob("*.jar")))
    out.print(f"{jars} jars for Kafka {version} in {libs} ({time.monotonic() - started:.1f}s)")


@broker_app.command("start")
def broker_start(
    data_dir: DataDir = _DEFAULT_DATA_DIR,
    client_port: Annotated[int, typer.Option(help="SCRAM client listener port.")] = 9092,
    controller_port: Annotated[int, typer.Option(help="KRaft controller port.")] = 9093,
    detach: Annotated[
        bool,
        typer.Option("--detach", help="Return once ready; stop later with `liaison broker stop`."),
    ] = False,
    timeout_s: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for readiness.")
    ] = 120.0,
) -> None:
    """Start the broker; in the foreground it runs until Ctrl-C (or SIGTERM)."""
    config = BrokerConfig(
        data_dir=data_dir.resolve(),
        client_port=client_port,
        controller_port=controller_port,
        start_timeout_s=timeout_s,
    )
    if Broker.is_detached_running(config.data_dir):
        err.print(f"a broker is already running for {config.data_dir}; see `liaison broker status`")
        raise typer.Exit(code=1)
    broker = Broker(config, progress=lambda m: err.print(m, highlight=False))
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    started = time.monotonic()
    # One try block from start to stop: a Ctrl-C at any instant ends in broker.stop().
    try:
        broker.start(detach=detach)
        out.print(
            f"[green]ready[/] in {time.monotonic() - started:.1f}s: {broker.bootstrap_servers} "
            f"(SASL_PLAINTEXT, SCRAM-SHA-512, user admin; password in "
            f"{config.data_dir / 'credentials.json'})",
            highlight=False,
        )
        if detach:
            return
        out.print("press Ctrl-C to stop")
        code = broker.wait()
        err.print(f"[red]the broker exited on its own with code {code}[/]; see {broker.log_path}")
        raise typer.Exit(code=1)
    except LiaisonError as exc:
        raise _fail(exc) from exc
    except KeyboardInterrupt:
        err.print("interrupted: stopping the broker")
    finally:
        broker.stop()


@broker_app.command("stop")
def broker_stop(data_dir: DataDir = _DEFAULT_DATA_DIR) -> None:
    """Stop a broker started with ``--detach``."""
    try:
        pid = Broker.stop_detached(data_dir.resolve())
    except LiaisonError as exc:
        raise _fail(exc) from exc
    out.print(f"stopped the broker (pid {pid})")


@broker_app.command("status")
def broker_status(data_dir: DataDir = _DEFAULT_DATA_DIR) -> None:
    """Say whether a detached broker runs and answers authenticated requests (exit 0 if so)."""
    data_dir = data_dir.resolve()
    if not Broker.is_detached_running(data_dir):
        out.print(f"no broker running for {data_dir}")
        raise typer.Exit(code=1)
    state = read_state(data_dir)
    try:
        with KafkaAdmin(Broker.detached_connection(data_dir), timeout_s=10) as admin:
            brokers = admin.broker_count()
    except LiaisonError as exc:
        raise _fail(exc) from exc
    out.print(
        f"running: pid {state['pid']}, Kafka {state['kafka_version']}, "
        f"{state['bootstrap_servers']}, {brokers} broker(s) answering",
        highlight=False,
    )


@broker_app.command("compose")
def broker_compose(
    output: Annotated[Path, typer.Option(help="Where to write the compose file.")] = Path(
        "docker-compose.yml"
    ),
) -> None:
    """Write docker-compose.yml from the launcher's own broker settings."""
    output.write_text(render_compose())
    out.print(f"wrote {output}")


@broker_app.command("cache")
def broker_cache() -> None:
    """Print where downloaded jars are cached."""
    out.print(str(cache_root()))


SchemaDir = Annotated[
    Path | None,
    typer.Option(
        "--schemas",
        help="Schema directory (default: the repository's schemas/).",
        envvar="LIAISON_SCHEMAS_DIR",
    ),
]


def _connection(data_dir: Path) -> KafkaConnection:
    """Kafka credentials: LIAISON_KAFKA_* variables, else the local broker in data_dir."""
    bootstrap = os.environ.get("LIAISON_KAFKA_BOOTSTRAP")
    if bootstrap:
        return KafkaConnection(
            bootstrap_servers=bootstrap,
            username=os.environ.get("LIAISON_KAFKA_USERNAME", "admin"),
            password=SecretStr(os.environ.get("LIAISON_KAFKA_PASSWORD", "")),
        )
    return Broker.detached_connection(data_dir.resolve())


@schemas_app.command("check")
def schemas_check(schemas: SchemaDir = None) -> None:
    """Verify the frozen history and that the schema files match the latest release."""
    try:
        catalog = SchemaCatalog.load(schemas)
        current = check_history(catalog)
    except LiaisonError as exc:
        raise _fail(exc) from exc
    kinds = ", ".join(sorted(catalog.kinds()))
    out.print(f"{BULLETIN} v{current.version} is released and current; kinds: {kinds}")


@schemas_app.command("release")
def schemas_release(schemas: SchemaDir = None) -> None:
    """Freeze the current schema files as the next version, after a compatibility check."""
    try:
        catalog = SchemaCatalog.load(schemas)
        before = len(releases(catalog))
        current = release(catalog)
    except LiaisonError as exc:
        raise _fail(exc) from exc
    if current.version == before:
        out.print(f"{BULLETIN} v{current.version} is already released; nothing to do")
    else:
        out.print(f"released {BULLETIN} v{current.version}")


@schemas_app.command("register")
def schemas_register(
    schemas: SchemaDir = None,
    data_dir: DataDir = _DEFAULT_DATA_DIR,
    topic: Annotated[str, typer.Option(help="The registry's topic.")] = DEFAULT_TOPIC,
) -> None:
    """Register every released bulletin schema version, in order (idempotent)."""

    async def register_all(catalog: SchemaCatalog) -> list[str]:
        lines = []
        async with KafkaRegistryStore(_connection(data_dir), topic=topic) as store:
            registry = SchemaRegistry(store)
            for rel in releases(catalog):
                v = await registry.register(BULLETIN, rel.text)
                lines.append(
                    f"{BULLETIN} release v{rel.version}: "
                    f"subject version {v.version}, id {v.schema_id}"
                )
        return lines

    try:
        catalog = SchemaCatalog.load(schemas)
        check_history(catalog)
        for line in asyncio.run(register_all(catalog)):
            out.print(line, highlight=False)
    except LiaisonError as exc:
        raise _fail(exc) from exc


@registry_app.command("serve")
def registry_serve(
    data_dir: DataDir = _DEFAULT_DATA_DIR,
    port: Annotated[int, typer.Option(help="HTTP port on 127.0.0.1.")] = 8081,
    topic: Annotated[str, typer.Option(help="The registry's topic.")] = DEFAULT_TOPIC,
) -> None:
    """Serve the registry's REST API on 127.0.0.1 until Ctrl-C."""
    import uvicorn

    try:
        app_ = create_kafka_registry_app(_connection(data_dir), topic=topic)
    except LiaisonError as exc:
        raise _fail(exc) from exc
    uvicorn.run(app_, host="127.0.0.1", port=port, log_level="info")


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
