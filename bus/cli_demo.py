"""``liaison demo``: the whole bus on this machine, or its parts (``setup``, ``agencies``)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from bus.errors import LiaisonError

# The demo's parts (the broker launcher, the API, the router, uvicorn) are imported when
# a demo command runs, so that `liaison` starts quickly.
if TYPE_CHECKING:
    from bus.demo import DemoPaths
    from bus.kafka import KafkaConnection

__all__ = ["demo_app"]

demo_app = typer.Typer(
    help="The demo: a broker, the edge router, the admin API and fictional agencies.",
    invoke_without_command=True,
)
out = Console()
err = Console(stderr=True)

StateDir = Annotated[
    Path, typer.Option("--state-dir", envvar="LIAISON_DEMO_DIR", help="The demo's state.")
]
PolicyFile = Annotated[
    Path | None,
    typer.Option(help="The sharing policy (default: examples/policy.yaml).", show_default=False),
]
Rate = Annotated[float, typer.Option(help="Bulletins per second the agencies drop.")]
_DEFAULT_STATE = Path(".liaison/demo")


def _default_policy() -> Path:
    for candidate in (
        Path(os.environ.get("LIAISON_DEMO_POLICY", "")),
        Path(__file__).resolve().parents[1] / "examples" / "policy.yaml",
        Path("/app/examples/policy.yaml"),
    ):
        if candidate.is_file():
            return candidate
    err.print("no example policy found: pass --policy or set LIAISON_DEMO_POLICY")
    raise typer.Exit(code=2)


def _admin_from_environment() -> KafkaConnection:
    from bus.cli import _connection

    return _connection(Path(".liaison/broker"))


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


def _logging() -> None:
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    logging.getLogger("liaison.demo").setLevel(logging.INFO)


@demo_app.callback()
def demo(
    ctx: typer.Context,
    state_dir: StateDir = _DEFAULT_STATE,
    policy: PolicyFile = None,
    host: Annotated[str, typer.Option(help="Address of the admin API.")] = "127.0.0.1",
    api_port: Annotated[int, typer.Option(help="Port of the admin API (0: any free).")] = 8000,
    rate: Rate = 2.0,
    keep: Annotated[
        bool, typer.Option(help="Keep the previous run's state instead of starting afresh.")
    ] = False,
) -> None:
    """Run everything until Ctrl-C: prints the dashboard URL (with an admin token)."""
    if ctx.invoked_subcommand is not None:
        return
    import shutil

    from bus.broker import Broker, BrokerConfig

    _logging()
    policy_path = policy or _default_policy()
    if state_dir.exists() and not keep:
        if not (state_dir / "broker").exists() and any(state_dir.iterdir()):
            err.print(f"{state_dir} is not a demo directory; choose another --state-dir")
            raise typer.Exit(code=2)
        shutil.rmtree(state_dir)
    err.print(f"starting a broker in {state_dir / 'broker'} (Kafka from Maven Central jars)...")
    try:
        with Broker(BrokerConfig(data_dir=state_dir / "broker")) as broker:
            asyncio.run(_run_all(broker.connection, state_dir, policy_path, host, api_port, rate))
    except LiaisonError as exc:
        err.print(f"[bold red]error:[/] {type(exc).__name__}: {exc}")
        raise typer.Exit(code=2) from exc
    except KeyboardInterrupt:  # Ctrl-C while the broker was still starting
        err.print("interrupted")
        raise typer.Exit(code=130) from None
    err.print("demo stopped; everything is shut down")


async def _run_all(
    admin: KafkaConnection, state_dir: Path, policy: Path, host: str, api_port: int, rate: float
) -> None:

    from bus.api import ApiSettings, create_app
    from bus.audit import load_signer
    from bus.credentials import connection_from_file
    from bus.demo import (
        ADMIN_PRINCIPAL,
        EDGE_PRINCIPAL,
        demo_schema,
        pseudonym_keys,
        run_agencies,
        setup,
    )
    from bus.edge import EdgeConfig, EdgeRouter
    from bus.serving import EmbeddedServer, http_config

    stop = asyncio.Event()
    _stop_on_signals(stop)
    schema = demo_schema()
    paths = await setup(
        admin,
        state_dir,
        policy_path=policy,
        schema=schema,
        report=lambda m: err.print(m, soft_wrap=True, highlight=False),
    )
    router = EdgeRouter(
        connection_from_file(paths.credentials_of(EDGE_PRINCIPAL)),
        schema,
        pseudonym_keys(paths),
        EdgeConfig(),
        signer=load_signer(paths.audit_key),
    )
    tasks = [asyncio.create_task(router.run(stop), name="edge")]
    app = create_app(
        connection_from_file(paths.credentials_of(ADMIN_PRINCIPAL)),
        ApiSettings(tokens_path=paths.tokens, public_bootstrap=admin.bootstrap_servers),
        schema=schema,
        extra_metrics=[router.metrics.registry],
        signer=load_signer(paths.audit_key),
    )
    server = EmbeddedServer(http_config(app, host=host, port=api_port, log_level="warning"))
    tasks.append(asyncio.create_task(server.serve(), name="admin api"))
    try:
        await server.ready.wait()
        if not server.started:
            raise LiaisonError(f"the admin API could not start on {host}:{api_port}")
        tasks.append(
            asyncio.create_task(run_agencies(paths, schema, stop, rate_per_s=rate), name="agencies")
        )
        _banner(paths, host, server.port, admin.bootstrap_servers)
        await stop.wait()
        err.print("stopping: agencies, edge router, admin API, broker...")
    finally:
        stop.set()
        server.should_exit = True
        results = await asyncio.gather(*tasks, return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        for failure in failures:
            err.print(f"[red]a demo part failed:[/] {failure!r}")


def _banner(paths: DemoPaths, host: str, port: int, bootstrap: str) -> None:
    from bus.demo import ADAPTER_AGENCIES

    token = paths.admin_token.read_text().strip()
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host  # noqa: S104 - display only
    base = f"http://{shown}:{port}"
    out.print()
    out.print("[bold]Liaison demo is running[/] (every agency here is fictional)")
    out.print(f"  dashboard:   {base}/dashboard#token={token}", highlight=False, soft_wrap=True)
    out.print(f"  admin token: {token}", highlight=False, soft_wrap=True)
    out.print(f"  API docs:    {base}/docs", highlight=False)
    out.print(f"  broker:      {bootstrap} (SCRAM-SHA-512; credentials in {paths.credentials})")
    out.print(f"  agencies at work: {', '.join(ADAPTER_AGENCIES)}; files in {paths.root}/agencies")
    out.print(
        f"  try: LIAISON_API_URL={base} LIAISON_API_TOKEN=$(cat {paths.admin_token}) "
        "liaison api status",
        highlight=False,
        soft_wrap=True,
    )
    out.print("Ctrl-C stops everything.")


@demo_app.command("setup")
def demo_setup(state_dir: StateDir = _DEFAULT_STATE, policy: PolicyFile = None) -> None:
    """Provision the demo bus on a running broker (idempotent; docker-compose's `setup`).

    Runs as a principal allowed to provision (LIAISON_KAFKA_* or LIAISON_KAFKA_CREDENTIALS).
    """
    from bus.demo import demo_schema, setup

    _logging()
    policy_path = policy or _default_policy()
    try:
        paths = asyncio.run(
            setup(
                _admin_from_environment(),
                state_dir,
                policy_path=policy_path,
                schema=demo_schema(),
                report=lambda m: err.print(m, soft_wrap=True, highlight=False),
            )
        )
    except LiaisonError as exc:
        err.print(f"[bold red]error:[/] {type(exc).__name__}: {exc}")
        raise typer.Exit(code=2) from exc
    err.print(f"demo bus ready; state in {paths.root}")


@demo_app.command("agencies")
def demo_agencies(
    state_dir: StateDir = _DEFAULT_STATE,
    rate: Rate = 2.0,
    health_port: Annotated[
        int | None, typer.Option(help="Serve GET /healthz on 127.0.0.1:PORT.")
    ] = None,
) -> None:
    """Run the demo agencies' adapters and bulletin generator until Ctrl-C."""
    from bus.demo import DemoPaths, demo_schema, run_agencies

    _logging()
    paths = DemoPaths(state_dir)

    async def main() -> None:
        stop = asyncio.Event()
        _stop_on_signals(stop)
        await run_agencies(paths, demo_schema(), stop, rate_per_s=rate, health_port=health_port)

    try:
        asyncio.run(main())
    except LiaisonError as exc:
        err.print(f"[bold red]error:[/] {type(exc).__name__}: {exc}")
        raise typer.Exit(code=2) from exc
    err.print("demo agencies stopped")
