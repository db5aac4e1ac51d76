"""The ``liaison`` command line."""

# ruff: noqa: E402 - the stop handlers are installed before the other imports, on purpose

from __future__ import annotations

import sys

from bus.service import catch_early

# First thing, before anything slow is imported: a service (edge run, adapter run, api
# serve, registry serve) stops cleanly on SIGTERM or Ctrl-C from its first instant.
catch_early(sys.argv[1:])

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from bus.broker import KAFKA_VERSION, cache_root, kafka_libs
from bus.cli_api import api_app
from bus.cli_audit import audit_app
from bus.cli_demo import demo_app
from bus.edge import DEFAULT_MAX_ENTRIES, DEFAULT_WINDOW_S
from bus.errors import ConfigError, LiaisonError
from bus.topics import TopicNames

# Heavy modules (Kafka clients, FastAPI, uvicorn, Avro, cryptography, the policy compiler)
# are imported inside the commands that use them: `liaison --help` and quick commands start
# in a fraction of a second (benchmarks/startup.py; tests/unit/test_cli_startup.py).
if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from types import FrameType

    from bus.bulletin import BulletinSchema
    from bus.kafka import KafkaConnection
    from bus.policy import CompiledPolicy, RedactionKeys
    from bus.provision import Provisioner, ProvisionResult

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
_REGISTRY_TOPIC = TopicNames().schemas
"""bus.registry.DEFAULT_TOPIC, without importing the registry (and its Kafka clients)."""


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
    import time

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
    import signal
    import time

    from bus.broker import Broker, BrokerConfig

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
    from bus.broker import Broker

    try:
        pid = Broker.stop_detached(data_dir.resolve())
    except LiaisonError as exc:
        raise _fail(exc) from exc
    out.print(f"stopped the broker (pid {pid})")


@broker_app.command("status")
def broker_status(data_dir: DataDir = _DEFAULT_DATA_DIR) -> None:
    """Say whether a detached broker runs and answers authenticated requests (exit 0 if so)."""
    from bus.broker import Broker, read_state
    from bus.kafka import KafkaAdmin

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
    from bus.broker._compose import render_compose

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
    from pydantic import SecretStr

    from bus.broker import Broker
    from bus.credentials import connection_from_file
    from bus.kafka import KafkaConnection

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


AllowSuperUser = Annotated[
    bool,
    typer.Option(
        "--allow-super-user",
        help="Run even as a super user of the broker, which bypasses every ACL (a warning is "
        "printed at each start). For tests and emergencies only.",
    ),
]


def _service_connection(command: tuple[str, str], allow_super_user: bool) -> KafkaConnection:
    """A service's own credentials, given explicitly (bus.service); exit 2 saying what to
    set when there are none, or when they name a super user that was not allowed."""
    from bus.service import service_connection

    try:
        return service_connection(command, allow_super_user=allow_super_user)
    except ConfigError as exc:
        raise _fail(exc) from exc


async def _vetted(
    command: tuple[str, str], connection: KafkaConnection, allow_super_user: bool
) -> None:
    """Ask the broker whether the service's principal is a super user: refused (exit 2)
    unless allowed, and then a warning at every start."""
    import asyncio

    from bus.service import check_not_super_user

    try:
        warning = await asyncio.to_thread(
            check_not_super_user, command, connection, allow_super_user=allow_super_user
        )
    except LiaisonError as exc:
        raise _fail(exc) from exc
    if warning is not None:
        err.print(f"[bold red]{warning}[/]", highlight=False)


@schemas_app.command("check")
def schemas_check(schemas: SchemaDir = None) -> None:
    """Verify the frozen history and that the schema files match the latest releases."""
    from bus.schemas import ROOTS, SchemaCatalog, check_history

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
    from bus.schemas import ROOTS, SchemaCatalog, release, releases

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
    topic: Annotated[str, typer.Option(help="The registry's topic.")] = _REGISTRY_TOPIC,
) -> None:
    """Register every released version of each schema, in order (idempotent).

    Subjects are the records' full names (Confluent's RecordNameStrategy).
    """
    import asyncio

    from bus.registry import KafkaRegistryStore, SchemaRegistry
    from bus.schemas import ROOTS, SchemaCatalog, check_history

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
    port: Annotated[int, typer.Option(help="HTTP port on 127.0.0.1.")] = 8081,
    topic: Annotated[str, typer.Option(help="The registry's topic.")] = _REGISTRY_TOPIC,
    allow_writes: Annotated[
        bool,
        typer.Option(
            "--allow-writes",
            help="Also serve registration and compatibility-mode changes, to ANYONE who can "
            "reach the port (this server authenticates no one).",
        ),
    ] = False,
    allow_super_user: AllowSuperUser = False,
) -> None:
    """Serve the registry's REST API on 127.0.0.1 until SIGTERM or Ctrl-C (exit 0).

    It authenticates no one, so it serves lookups only (what stores nothing) unless
    --allow-writes; the admin API's /registry serves both, with tokens.

    Credentials: LIAISON_KAFKA_CREDENTIALS (file) or LIAISON_KAFKA_BOOTSTRAP/USERNAME/PASSWORD
    of a principal that may write the registry's topic (the admin service); never a super
    user unless --allow-super-user.
    """
    import asyncio

    from bus.api._http import RequestGuard
    from bus.registry import create_kafka_registry_app
    from bus.service import stop_signals
    from bus.serving import EmbeddedServer, http_config, serve_until

    command = ("registry", "serve")
    with stop_signals.handling():
        connection = _service_connection(command, allow_super_user)
        try:
            app_ = create_kafka_registry_app(connection, topic=topic, allow_writes=allow_writes)
            if allow_writes:
                err.print(
                    "[bold red]warning:[/] --allow-writes: anyone who can reach "
                    f"127.0.0.1:{port} may register schemas and change compatibility modes"
                )
            # the API's limits and 405s; every path here is the registry's (Confluent's shape)
            app_.add_middleware(RequestGuard, routes=app_.router.routes, registry_prefix="/")
        except LiaisonError as exc:
            raise _fail(exc) from exc

        async def main() -> None:
            stop = stop_signals.event()
            try:
                if stop.is_set():
                    return
                await _vetted(command, connection, allow_super_user)
                if stop.is_set():
                    return
                config = http_config(app_, host="127.0.0.1", port=port, log_level="info")
                await serve_until(EmbeddedServer(config), stop)
            finally:
                stop_signals.release()

        asyncio.run(main())
    err.print("registry stopped")


def _keys() -> RedactionKeys:
    """Pseudonym key from LIAISON_PSEUDONYM_KEY (hex) or the file LIAISON_PSEUDONYM_KEY_FILE
    names, else a random one for this run."""
    import secrets

    from pydantic import SecretBytes

    from bus.policy import RedactionKeys

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


def _compiled(
    path: Path, schemas: Path | None, keys: RedactionKeys | None = None
) -> tuple[BulletinSchema, CompiledPolicy]:
    """The policy compiled; ``keys`` only matter to a command that shows pseudonyms (dry
    run): without them, a throwaway key, and no warning (checking, diffing or publishing a
    policy makes no pseudonym)."""
    import secrets

    from pydantic import SecretBytes

    from bus.bulletin import BulletinSchema
    from bus.policy import RedactionKeys, compile_policy, load_policy
    from bus.schemas import SchemaCatalog

    schema = BulletinSchema(SchemaCatalog.load(schemas))
    keys = keys or RedactionKeys(master=SecretBytes(secrets.token_bytes(32)))
    return schema, compile_policy(load_policy(path), schema, keys)


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
    import json

    from bus.bulletin import BulletinGenerator
    from bus.policy import dry_run

    try:
        schema, compiled = _compiled(path, schemas, _keys())
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
    import json

    from bus.policy import diff

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
    from bus.credentials import save_credentials

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
    partitions: Annotated[
        int,
        typer.Option(
            envvar="LIAISON_AGENCY_PARTITIONS",
            min=1,
            help="Partitions of each of the agency's two topics, if they are created "
            "(existing topics keep theirs: see `liaison agency partitions`). Routers split an "
            "agency's traffic by partition, so give it at least as many as routers.",
        ),
    ] = 1,
    prefix: Annotated[
        str, typer.Option(help="Topic prefix of the bus.", envvar="LIAISON_TOPIC_PREFIX")
    ] = "liaison",
    data_dir: DataDir = _DEFAULT_DATA_DIR,
    credentials_dir: CredentialsDir = _DEFAULT_CREDENTIALS,
) -> None:
    """Create the agency's topics, credentials and ACLs (idempotent)."""
    import asyncio

    connection = _connection(data_dir)
    try:
        result = asyncio.run(
            _provisioned(
                connection,
                lambda p: p.add(agency, name=name, partitions=partitions),
                TopicNames(prefix=prefix),
            )
        )
    except LiaisonError as exc:
        raise _fail(exc) from exc
    _report(result, credentials_dir, connection.bootstrap_servers)


@agency_app.command("partitions")
def agency_partitions(
    agency: Annotated[str, typer.Argument(help="Agency id.")],
    partitions: Annotated[
        int, typer.Argument(min=1, help="The new total for each of its two topics.")
    ],
    prefix: Annotated[
        str, typer.Option(help="Topic prefix of the bus.", envvar="LIAISON_TOPIC_PREFIX")
    ] = "liaison",
    data_dir: DataDir = _DEFAULT_DATA_DIR,
) -> None:
    """Grow the agency's two topics to PARTITIONS partitions (Kafka cannot shrink them).

    Running routers and sink adapters pick the new partitions up; a bulletin id's later
    records may land on another partition than its earlier ones (docs/edge.md, Partitions).
    """
    import asyncio

    from bus.provision import Provisioner

    connection = _connection(data_dir)
    try:
        provisioner = Provisioner(connection, names=TopicNames(prefix=prefix))
        result = asyncio.run(provisioner.grow_partitions(agency, partitions))
    except LiaisonError as exc:
        raise _fail(exc) from exc
    for change in result.changes or ["nothing to change"]:
        out.print(f"  {change}", highlight=False)


@agency_app.command("rotate")
def agency_rotate(
    agency: Annotated[str, typer.Argument(help="Agency id.")],
    data_dir: DataDir = _DEFAULT_DATA_DIR,
    credentials_dir: CredentialsDir = _DEFAULT_CREDENTIALS,
) -> None:
    """Replace the agency's password; the old one stops working."""
    import asyncio

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
    import asyncio

    connection = _connection(data_dir)
    try:
        result = asyncio.run(_provisioned(connection, lambda p: p.revoke(agency)))
    except LiaisonError as exc:
        raise _fail(exc) from exc
    _report(result, _DEFAULT_CREDENTIALS, connection.bootstrap_servers)


@agency_app.command("list")
def agency_list(data_dir: DataDir = _DEFAULT_DATA_DIR) -> None:
    """Agencies recorded in the agencies topic."""
    import asyncio

    from bus.provision import Provisioner

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
    connection: KafkaConnection,
    action: Callable[[Provisioner], Awaitable[ProvisionResult]],
    names: TopicNames | None = None,
) -> ProvisionResult:
    from bus.provision import Provisioner

    provisioner = Provisioner(connection, names=names)
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
    import asyncio
    import secrets

    from bus.provision import Provisioner, admin_service_acls, edge_acls

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
    import asyncio
    import json

    from bus.edge import publish_policy

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
    dedup_window_s: Annotated[
        float,
        typer.Option(
            help="Seconds an accepted bulletin's (source, id) is remembered: a re-send within "
            "them is not routed again. Keep below the retention of liaison.edge.seen (8 days)."
        ),
    ] = DEFAULT_WINDOW_S,
    dedup_max_entries: Annotated[
        int, typer.Option(help="(source, id) pairs remembered at most; the oldest go first.")
    ] = DEFAULT_MAX_ENTRIES,
    # Fault-injection seams for the crash and chaos tests (tests/chaos), off by default.
    announce_commits: Annotated[bool, typer.Option(hidden=True)] = False,
    pause_at: Annotated[str | None, typer.Option(hidden=True)] = None,
    pause_ms: Annotated[int, typer.Option(hidden=True)] = 0,
    schemas: SchemaDir = None,
    allow_super_user: AllowSuperUser = False,
) -> None:
    """Route bulletins until SIGTERM or Ctrl-C (the open batch commits first; exit 0 at
    whatever moment the signal comes).

    Credentials: LIAISON_KAFKA_CREDENTIALS (file) or LIAISON_KAFKA_BOOTSTRAP/USERNAME/PASSWORD
    of the edge principal (`liaison agency service edge`), never a super user unless
    --allow-super-user. Pseudonym key: LIAISON_PSEUDONYM_KEY (hex) or
    LIAISON_PSEUDONYM_KEY_FILE, required so tokens survive restarts. Audit signing key:
    --audit-key-file / LIAISON_AUDIT_KEY_FILE (or LIAISON_AUDIT_KEY, hex), required.
    """
    import asyncio
    import logging

    from prometheus_client import start_http_server

    from bus.audit import load_signer
    from bus.bulletin import BulletinSchema
    from bus.edge import EdgeConfig, EdgeRouter
    from bus.schemas import SchemaCatalog
    from bus.service import stop_signals

    command = ("edge", "run")
    with stop_signals.handling():
        if not (
            os.environ.get("LIAISON_PSEUDONYM_KEY") or os.environ.get("LIAISON_PSEUDONYM_KEY_FILE")
        ):
            err.print(
                "LIAISON_PSEUDONYM_KEY (hex) or LIAISON_PSEUDONYM_KEY_FILE is required: "
                "pseudonyms must survive restarts"
            )
            raise typer.Exit(code=2)
        connection = _service_connection(command, allow_super_user)
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s"
        )
        try:
            config = EdgeConfig(
                instance=instance,
                instances=of,
                batch_max=batch_max,
                commit_interval_ms=commit_interval_ms,
                dedup_window_s=dedup_window_s,
                dedup_max_entries=dedup_max_entries,
                announce_commits=announce_commits,
                pause_at=pause_at,
                pause_ms=pause_ms,
                names=TopicNames(prefix=prefix),
            )
            router = EdgeRouter(
                connection,
                BulletinSchema(SchemaCatalog.load(schemas)),
                _keys(),
                config,
                signer=load_signer(audit_key_file),
            )
        except (LiaisonError, ValueError) as exc:
            err.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(code=2) from exc

        async def main() -> None:
            stop = stop_signals.event()
            try:
                if stop.is_set():
                    return
                await _vetted(command, connection, allow_super_user)
                if stop.is_set():
                    return
                if metrics_port is not None:
                    start_http_server(
                        metrics_port, addr=metrics_host, registry=router.metrics.registry
                    )
                await router.run(stop)
            finally:
                stop_signals.release()

        try:
            asyncio.run(main())
        except LiaisonError as exc:
            raise _fail(exc) from exc
    err.print(f"edge {instance}/{of} stopped: {router.stats}")


@adapter_app.command("list")
def adapter_list() -> None:
    """List the installed adapter types (entry-point group liaison.adapters)."""
    from bus.adapters import Direction, discover_adapters

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
    from pydantic import SecretStr

    from bus.adapters import AdapterRunner, load_runner_config
    from bus.bulletin import BulletinSchema
    from bus.kafka import KafkaConnection
    from bus.schemas import SchemaCatalog

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
    schemas: SchemaDir = None,
    allow_super_user: AllowSuperUser = False,
) -> None:
    """Run the configured adapter instances for one agency until SIGTERM or Ctrl-C.

    Credentials: LIAISON_KAFKA_CREDENTIALS (file) or LIAISON_KAFKA_BOOTSTRAP/USERNAME/PASSWORD
    of the agency's own principal (`liaison agency add` writes them), never a super user
    unless --allow-super-user.
    Exit codes: 0 stopped cleanly (at whatever moment the signal comes), 2 bad
    configuration or a failure.
    """
    import asyncio
    import logging

    from bus.adapters import AdapterRunner, load_runner_config
    from bus.bulletin import BulletinSchema
    from bus.schemas import SchemaCatalog
    from bus.service import stop_signals

    command = ("adapter", "run")
    with stop_signals.handling():
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s"
        )
        try:
            loaded = load_runner_config(config)
            if health_port is not None:
                loaded = loaded.model_copy(update={"health_port": health_port})
            connection = _service_connection(command, allow_super_user)
            runner = AdapterRunner(
                connection, loaded, schema=BulletinSchema(SchemaCatalog.load(schemas))
            )
        except LiaisonError as exc:
            raise _fail(exc) from exc

        async def main() -> None:
            stop = stop_signals.event()
            try:
                if stop.is_set():
                    return
                await _vetted(command, connection, allow_super_user)
                if stop.is_set():
                    return
                await runner.run(stop)
            finally:
                stop_signals.release()

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
