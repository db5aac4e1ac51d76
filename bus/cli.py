"""The ``liaison`` command line."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from prometheus_client import start_http_server
from pydantic import SecretBytes, SecretStr
from rich.console import Console

from bus.adapters import (
    AdapterRunner,
    Direction,
    discover_adapters,
    load_runner_config,
)
from bus.audit import load_signer
from bus.broker import KAFKA_VERSION, Broker, BrokerConfig, cache_root, kafka_libs
from bus.broker._compose import render_compose
from bus.broker._launcher import read_state
from bus.bulletin import BulletinGenerator, BulletinSchema
from bus.cli_api import api_app
from bus.cli_audit import audit_app
from bus.cli_demo import demo_app
from bus.credentials import connection_from_file, save_credentials
from bus.edge import EdgeConfig, EdgeRouter, install_stop_signals, publish_policy
from bus.errors import ConfigError, LiaisonError
from bus.kafka import KafkaAdmin, KafkaConnection
from bus.policy import (
    CompiledPolicy,
    RedactionKeys,
    compile_policy,
    diff,
    dry_run,
    load_policy,
)
from bus.provision import Provisioner, ProvisionResult, admin_service_acls, edge_acls
from bus.registry import (
    DEFAULT_TOPIC,
    KafkaRegistryStore,
    SchemaRegistry,
    create_kafka_registry_app,
)
from bus.schemas import ROOTS, SchemaCatalog, check_history, release, releases
from bus.topics import TopicNames

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
policy_app = typer.Typer(help="Sharing policies: check, dry-run, diff.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")
agency_app = typer.Typer(
    help="Provision agencies: add, rotate, revoke, list.", no_args_is_help=True
)
app.add_typer(agency_app, name="agency")
edge_app = typer.Typer(help="The edge router.", no_args_is_help=True)
app.add_typer(edge_app, name="edge")
adapter_app = typer.Typer(
    help="Adapters: connect an agency's systems to the bus.", no_args_is_help=True
)
app.add_typer(adapter_app, name="adapter")
registry_app = typer.Typer(
    help="The schema registry (Confluent-compatible REST API).", no_args_is_help=True
)
app.add_typer(registry_app, name="registry")
app.add_typer(api_app, name="api")
app.add_typer(demo_app, name="demo")
app.add_typer(audit_app, name="audit")

out = Console()
err = Console(stderr=True)

AuditKeyFile = Annotated[
    Path | None,
    typer.Option(
        "--audit-key-file",
        envvar="LIAISON_AUDIT_KEY_FILE",
        help="The audit log's Ed25519 signing key (liaison audit keygen); else LIAISON_AUDIT_KEY.",
        show_default=False,
    ),
]

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
    """Kafka credentials, first found of: LIAISON_KAFKA_CREDENTIALS (a credentials file
    written by provisioning), LIAISON_KAFKA_BOOTSTRAP/USERNAME/PASSWORD, the local broker
    in ``data_dir``."""
    credentials = os.environ.get("LIAISON_KAFKA_CREDENTIALS")
    if credentials:
        try:
            return connection_from_file(Path(credentials))
        except ConfigError as exc:
            raise _fail(exc) from exc
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
    """Verify the frozen history and that the schema files match the latest releases."""
    try:
        catalog = SchemaCatalog.load(schemas)
        current = [check_history(catalog, root) for root in ROOTS]
    except LiaisonError as exc:
        raise _fail(exc) from exc
    for rel in current:
        out.print(f"{rel.name} v{rel.version} is released and current")
    out.print(f"kinds: {', '.join(sorted(catalog.kinds()))}")


@schemas_app.command("release")
def schemas_release(schemas: SchemaDir = None) -> None:
    """Freeze changed schemas as their next versions, after a compatibility check."""
    try:
        catalog = SchemaCatalog.load(schemas)
        for root in ROOTS:
            before = len(releases(catalog, root))
            current = release(catalog, root)
            if current.version == before:
                out.print(f"{root} v{current.version} is already released; nothing to do")
            else:
                out.print(f"released {root} v{current.version}")
    except LiaisonError as exc:
        raise _fail(exc) from exc


@schemas_app.command("register")
def schemas_register(
    schemas: SchemaDir = None,
    data_dir: DataDir = _DEFAULT_DATA_DIR,
    topic: Annotated[str, typer.Option(help="The registry's topic.")] = DEFAULT_TOPIC,
) -> None:
    """Register every released version of each schema, in order (idempotent).

    Subjects are the records' full names (Confluent's RecordNameStrategy).
    """

    async def register_all(catalog: SchemaCatalog) -> list[str]:
        lines = []
        async with KafkaRegistryStore(_connection(data_dir), topic=topic) as store:
            for root, rel, v in await SchemaRegistry(store).register_releases(catalog):
                lines.append(
                    f"{root} release v{rel.version}: subject version {v.version}, id {v.schema_id}"
                )
        return lines

    try:
        catalog = SchemaCatalog.load(schemas)
        for root in ROOTS:
            check_history(catalog, root)
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


def _keys() -> RedactionKeys:
    """Pseudonym key from LIAISON_PSEUDONYM_KEY (hex) or the file LIAISON_PSEUDONYM_KEY_FILE
    names, else a random one for this run."""
    raw = os.environ.get("LIAISON_PSEUDONYM_KEY")
    key_file = os.environ.get("LIAISON_PSEUDONYM_KEY_FILE")
    if not raw and key_file:
        try:
            raw = Path(key_file).read_text().strip()
        except OSError as exc:
            raise typer.BadParameter(
                f"LIAISON_PSEUDONYM_KEY_FILE={key_file}: {exc.strerror}"
            ) from exc
    if raw:
        try:
            return RedactionKeys(master=SecretBytes(bytes.fromhex(raw)))
        except ValueError as exc:
            raise typer.BadParameter(
                "the pseudonym key must be hex (for example from `openssl rand -hex 32`)"
            ) from exc
    err.print("LIAISON_PSEUDONYM_KEY is unset: pseudonyms use a random key for this run only")
    return RedactionKeys(master=SecretBytes(secrets.token_bytes(32)))


def _compiled(path: Path, schemas: Path | None) -> tuple[BulletinSchema, CompiledPolicy]:
    schema = BulletinSchema(SchemaCatalog.load(schemas))
    return schema, compile_policy(load_policy(path), schema, _keys())


@policy_app.command("check")
def policy_check(
    path: Annotated[Path, typer.Argument(help="Policy YAML file.")], schemas: SchemaDir = None
) -> None:
    """Validate a policy against the schemas and compile it."""
    try:
        _, compiled = _compiled(path, schemas)
    except LiaisonError as exc:
        raise _fail(exc) from exc
    policy = compiled.policy
    entries = sum(len(e) for e in compiled.plans.values())
    out.print(
        f"policy v{policy.version}: {len(policy.agencies)} agencies, {len(policy.rules)} rules, "
        f"{len(compiled.plans)} plans, {entries} recipient entries: OK"
    )


@policy_app.command("dry-run")
def policy_dry_run(
    path: Annotated[Path, typer.Argument(help="Candidate policy YAML file.")],
    bulletin: Annotated[
        Path | None, typer.Option(help="A bulletin as JSON; default: a generated sample.")
    ] = None,
    kind: Annotated[str | None, typer.Option(help="Kind of the generated sample.")] = None,
    source: Annotated[str | None, typer.Option(help="Source agency of the sample.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the generated sample.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    schemas: SchemaDir = None,
) -> None:
    """Show each agency's view of a bulletin, and why, under a candidate policy."""
    try:
        schema, compiled = _compiled(path, schemas)
        if bulletin is not None:
            sample = schema.parse(json.loads(bulletin.read_text()))
        else:
            agencies = [source] if source else list(compiled.policy.agencies)
            sample = BulletinGenerator(schema, seed=seed, agencies=agencies).bulletin(kind)
        result = dry_run(compiled, sample)
    except LiaisonError as exc:
        raise _fail(exc) from exc
    if as_json:
        out.print_json(json.dumps(result.as_dict()))
        return
    out.print(
        f"bulletin {result.bulletin_id}: {result.kind} from {result.source}, {result.marking}, "
        f"policy v{result.policy_version}",
        highlight=False,
    )
    for agency in result.agencies:
        matched = [r.rule for r in agency.rules if r.matched]
        head = "[green]delivered[/]" if agency.delivered else f"[red]withheld[/] ({agency.reason})"
        out.print(f"  {agency.agency}: {head}; rules matched: {', '.join(matched) or 'none'}")
        for rule in agency.rules:
            if not rule.matched:
                out.print(f"      {rule.rule}: {rule.why}", highlight=False)
        for f in agency.fields:
            if f.decision != "kept":
                via = f" (via {f.via})" if f.via else ""
                out.print(
                    f"      {f.path}: {f.decision}{via} by {', '.join(f.rules)}", highlight=False
                )


@policy_app.command("diff")
def policy_diff(
    old: Annotated[Path, typer.Argument(help="The policy in force.")],
    new: Annotated[Path, typer.Argument(help="The candidate.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    schemas: SchemaDir = None,
) -> None:
    """Which agencies would gain or lose which kinds and fields."""
    try:
        _, before = _compiled(old, schemas)
        _, after = _compiled(new, schemas)
    except LiaisonError as exc:
        raise _fail(exc) from exc
    result = diff(before, after)
    if as_json:
        out.print_json(json.dumps(result.as_dict()))
        return
    for line in result.lines():
        out.print(line, highlight=False)


CredentialsDir = Annotated[
    Path,
    typer.Option("--credentials-dir", help="Where new agency credentials are written (0600)."),
]
_DEFAULT_CREDENTIALS = Path(".liaison/credentials")


def _save_credentials(directory: Path, agency: str, bootstrap: str, password: str) -> Path:
    return save_credentials(directory, agency, bootstrap, password)


def _report(result: ProvisionResult, credentials_dir: Path, bootstrap: str) -> None:
    for change in result.changes or ["nothing to change"]:
        out.print(f"  {change}", highlight=False)
    if result.password is not None:
        path = _save_credentials(credentials_dir, result.agency, bootstrap, result.password)
        out.print(f"credentials for {result.agency} written to {path} (hand them over securely)")


@agency_app.command("add")
def agency_add(
    agency: Annotated[str, typer.Argument(help="Agency id, e.g. north-river.")],
    name: Annotated[str, typer.Option(help="Display name.")] = "",
    data_dir: DataDir = _DEFAULT_DATA_DIR,
    credentials_dir: CredentialsDir = _DEFAULT_CREDENTIALS,
) -> None:
    """Create the agency's topics, credentials and ACLs (idempotent)."""
    connection = _connection(data_dir)
    try:
        result = asyncio.run(_provisioned(connection, lambda p: p.add(agency, name=name)))
    except LiaisonError as exc:
        raise _fail(exc) from exc
    _report(result, credentials_dir, connection.bootstrap_servers)


@agency_app.command("rotate")
def agency_rotate(
    agency: Annotated[str, typer.Argument(help="Agency id.")],
    data_dir: DataDir = _DEFAULT_DATA_DIR,
    credentials_dir: CredentialsDir = _DEFAULT_CREDENTIALS,
) -> None:
    """Replace the agency's password; the old one stops working."""
    connection = _connection(data_dir)
    try:
        result = asyncio.run(_provisioned(connection, lambda p: p.rotate(agency)))
    except LiaisonError as exc:
        raise _fail(exc) from exc
    _report(result, credentials_dir, connection.bootstrap_servers)


@agency_app.command("revoke")
def agency_revoke(
    agency: Annotated[str, typer.Argument(help="Agency id.")],
    data_dir: DataDir = _DEFAULT_DATA_DIR,
) -> None:
    """Remove the agency's credentials and ACLs; its topics and data stay."""
    connection = _connection(data_dir)
    try:
        result = asyncio.run(_provisioned(connection, lambda p: p.revoke(agency)))
    except LiaisonError as exc:
        raise _fail(exc) from exc
    _report(result, _DEFAULT_CREDENTIALS, connection.bootstrap_servers)


@agency_app.command("list")
def agency_list(data_dir: DataDir = _DEFAULT_DATA_DIR) -> None:
    """Agencies recorded in the agencies topic."""
    connection = _connection(data_dir)
    try:
        records = asyncio.run(Provisioner(connection).agencies())
    except LiaisonError as exc:
        raise _fail(exc) from exc
    for record in sorted(records.values(), key=lambda r: r.id):
        out.print(
            f"{record.id:24} {record.state:8} {record.changed_at:%Y-%m-%d %H:%M} {record.name}"
        )


async def _provisioned(
    connection: KafkaConnection, action: Callable[[Provisioner], Awaitable[ProvisionResult]]
) -> ProvisionResult:
    provisioner = Provisioner(connection)
    await provisioner.ensure_bus_topics()
    return await action(provisioner)


@agency_app.command("service")
def service_add(
    role: Annotated[str, typer.Argument(help="edge or admin.")],
    name: Annotated[str, typer.Option(help="Principal name.")] = "",
    data_dir: DataDir = _DEFAULT_DATA_DIR,
    credentials_dir: CredentialsDir = _DEFAULT_CREDENTIALS,
) -> None:
    """Create a service principal (the edge router or the admin service) with only its ACLs."""
    names = TopicNames()
    acl_for = {"edge": edge_acls, "admin": admin_service_acls}
    if role not in acl_for:
        err.print(f"role must be edge or admin, not {role!r}")
        raise typer.Exit(code=2)
    principal = name or f"liaison.{role}"
    connection = _connection(data_dir)

    async def grant() -> ProvisionResult:
        provisioner = Provisioner(connection, names=names)
        await provisioner.ensure_bus_topics()
        acls = acl_for[role](f"User:{principal}", names)
        return await provisioner.grant(principal, acls, secrets.token_urlsafe(24))

    try:
        result = asyncio.run(grant())
    except LiaisonError as exc:
        raise _fail(exc) from exc
    _report(result, credentials_dir, connection.bootstrap_servers)


@policy_app.command("publish")
def policy_publish(
    path: Annotated[Path, typer.Argument(help="Policy YAML file to put in force.")],
    data_dir: DataDir = _DEFAULT_DATA_DIR,
    schemas: SchemaDir = None,
) -> None:
    """Validate a policy and make it the one in force (routers reload it without restart)."""
    try:
        _, compiled = _compiled(path, schemas)
        body = json.dumps(compiled.policy.model_dump(mode="json")).encode()
        asyncio.run(publish_policy(_connection(data_dir), body, TopicNames()))
    except LiaisonError as exc:
        raise _fail(exc) from exc
    out.print(f"policy v{compiled.policy.version} published")


@edge_app.command("run")
def edge_run(
    instance: Annotated[int, typer.Option(help="This instance's number, from 0.")] = 0,
    of: Annotated[int, typer.Option("--of", help="How many instances share the work.")] = 1,
    batch_max: Annotated[int, typer.Option(help="Bulletins per transaction at most.")] = 200,
    commit_interval_ms: Annotated[int, typer.Option(help="Longest a batch stays open.")] = 100,
    prefix: Annotated[
        str, typer.Option(help="Topic prefix of the bus.", envvar="LIAISON_TOPIC_PREFIX")
    ] = "liaison",
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve Prometheus metrics on this port.")
    ] = None,
    audit_key_file: AuditKeyFile = None,
    metrics_host: Annotated[str, typer.Option(help="Address of the metrics server.")] = (
        "127.0.0.1"
    ),
    # Fault-injection seams for the crash and chaos tests (tests/chaos), off by default.
    announce_commits: Annotated[bool, typer.Option(hidden=True)] = False,
    pause_at: Annotated[str | None, typer.Option(hidden=True)] = None,
    pause_ms: Annotated[int, typer.Option(hidden=True)] = 0,
    data_dir: DataDir = _DEFAULT_DATA_DIR,
    schemas: SchemaDir = None,
) -> None:
    """Route bulletins until SIGTERM or Ctrl-C (the open batch commits first).

    Credentials: LIAISON_KAFKA_CREDENTIALS (file) or LIAISON_KAFKA_BOOTSTRAP/USERNAME/PASSWORD
    (the edge principal). Pseudonym key: LIAISON_PSEUDONYM_KEY (hex) or
    LIAISON_PSEUDONYM_KEY_FILE, required so tokens survive restarts. Audit signing key:
    --audit-key-file / LIAISON_AUDIT_KEY_FILE (or LIAISON_AUDIT_KEY, hex), required.
    """
    if not (
        os.environ.get("LIAISON_PSEUDONYM_KEY") or os.environ.get("LIAISON_PSEUDONYM_KEY_FILE")
    ):
        err.print(
            "LIAISON_PSEUDONYM_KEY (hex) or LIAISON_PSEUDONYM_KEY_FILE is required: "
            "pseudonyms must survive restarts"
        )
        raise typer.Exit(code=2)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        config = EdgeConfig(
            instance=instance,
            instances=of,
            batch_max=batch_max,
            commit_interval_ms=commit_interval_ms,
            announce_commits=announce_commits,
            pause_at=pause_at,
            pause_ms=pause_ms,
            names=TopicNames(prefix=prefix),
        )
        router = EdgeRouter(
            _connection(data_dir),
            BulletinSchema(SchemaCatalog.load(schemas)),
            _keys(),
            config,
            signer=load_signer(audit_key_file),
        )
    except (LiaisonError, ValueError) as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(code=2) from exc

    if metrics_port is not None:
        start_http_server(metrics_port, addr=metrics_host, registry=router.metrics.registry)

    async def main() -> None:
        stop = asyncio.Event()
        install_stop_signals(stop)
        await router.run(stop)

    try:
        asyncio.run(main())
    except LiaisonError as exc:
        raise _fail(exc) from exc
    err.print(f"edge {instance}/{of} stopped: {router.stats}")


@adapter_app.command("list")
def adapter_list() -> None:
    """List the installed adapter types (entry-point group liaison.adapters)."""
    try:
        adapters = discover_adapters()
    except LiaisonError as exc:
        raise _fail(exc) from exc
    for name, adapter in sorted(adapters.items()):
        directions = [
            d.value
            for d, f in ((Direction.SOURCE, adapter.source), (Direction.SINK, adapter.sink))
            if f
        ]
        out.print(
            f"{name:10} {'/'.join(directions):12} {adapter.summary}",
            highlight=False,
            soft_wrap=True,
        )


@adapter_app.command("check")
def adapter_check(
    config: Annotated[Path, typer.Argument(help="The adapter configuration (YAML).")],
    schemas: SchemaDir = None,
) -> None:
    """Validate a configuration file and every instance's config, without Kafka."""
    try:
        loaded = load_runner_config(config)
        AdapterRunner(
            KafkaConnection(
                bootstrap_servers="unused:9092", username="unused", password=SecretStr("")
            ),
            loaded,
            schema=BulletinSchema(SchemaCatalog.load(schemas)),
        )
    except LiaisonError as exc:
        raise _fail(exc) from exc
    for spec in loaded.instances:
        out.print(f"{spec.name}: {spec.type} {spec.direction.value} ok", highlight=False)


@adapter_app.command("run")
def adapter_run(
    config: Annotated[Path, typer.Argument(help="The adapter configuration (YAML).")],
    health_port: Annotated[
        int | None,
        typer.Option(help="Serve GET /healthz on 127.0.0.1:PORT (overrides the file)."),
    ] = None,
    data_dir: DataDir = _DEFAULT_DATA_DIR,
    schemas: SchemaDir = None,
) -> None:
    """Run the configured adapter instances for one agency until SIGTERM or Ctrl-C.

    Credentials: LIAISON_KAFKA_BOOTSTRAP/USERNAME/PASSWORD (the agency's own).
    Exit codes: 0 stopped cleanly, 2 bad configuration or a failure.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        loaded = load_runner_config(config)
        if health_port is not None:
            loaded = loaded.model_copy(update={"health_port": health_port})
        runner = AdapterRunner(
            _connection(data_dir), loaded, schema=BulletinSchema(SchemaCatalog.load(schemas))
        )
    except LiaisonError as exc:
        raise _fail(exc) from exc

    async def main() -> None:
        stop = asyncio.Event()
        install_stop_signals(stop)
        await runner.run(stop)

    try:
        asyncio.run(main())
    except LiaisonError as exc:
        raise _fail(exc) from exc
    except Exception as exc:  # an adapter's bug: show it, exit 2 as documented
        logging.getLogger("liaison.adapter").exception("the runner failed")
        err.print(f"[bold red]error:[/] {type(exc).__name__} in an adapter: {exc}")
        raise typer.Exit(code=2) from exc
    err.print(runner.status().line(), highlight=False)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
