"""The demo: a whole bus on one machine, with fictional agencies exchanging bulletins.

* :func:`setup` provisions a bus on a broker, idempotently: the shared topics, the
  edge and admin-service principals, every agency of the example policy, the schemas,
  the policy (stored and activated through the admin service, so it is audited), an
  admin API token, the pseudonym key, and adapter configurations for three agencies.
  Everything secret goes to 0600 files in the state directory, never to the screen.
* :func:`run_agencies` runs those agencies' adapters (their own credentials) and a
  generator that drops fictional bulletins into their inboxes; every 40th file holds a
  broken line (the adapter's rejects show it), and every 25th bulletin is followed by a
  malformed record written straight onto a topic (the router's dead letters show it).
* ``liaison demo`` (:mod:`bus.cli_demo`) starts a broker and runs all of it with the edge
  router and the admin API in one process; docker-compose runs the same parts apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import uvicorn
import yaml
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import SecretBytes

from bus.adapters import AdapterRunner, load_runner_config
from bus.api import AdminService, ApiSettings, Principal, TokenStore
from bus.audit import load_signer, new_key_hex
from bus.bulletin import BulletinGenerator, BulletinSchema
from bus.credentials import connection_from_file, save_credentials, write_private
from bus.errors import ConfigError, LiaisonError
from bus.kafka import KafkaAdmin, KafkaConnection, Producer, wait_until_authenticates
from bus.policy import RedactionKeys, load_policy
from bus.provision import Provisioner, admin_service_acls, edge_acls
from bus.registry import KafkaRegistryStore, SchemaRegistry
from bus.schemas import SchemaCatalog
from bus.topics import TopicNames

__all__ = [
    "ADAPTER_AGENCIES",
    "ADMIN_PRINCIPAL",
    "EDGE_PRINCIPAL",
    "DemoPaths",
    "pseudonym_keys",
    "run_agencies",
    "setup",
]

log = logging.getLogger("liaison.demo")

ADMIN_PRINCIPAL = "liaison.admin"
EDGE_PRINCIPAL = "liaison.edge"
ADAPTER_AGENCIES = ("north-river", "harbour-watch", "vale-fire")
"""The agencies whose systems the demo plays: each publishes from a jsonl inbox and
receives its views through a different sink."""
_SINKS = {
    "north-river": ("jsonl", "views"),
    "harbour-watch": ("stix", "stix-out"),
    "vale-fire": ("cap", "cap-out"),
}
_SETUP_ACTOR = Principal(token_id="demo-setup", role="admin")  # noqa: S106 - a name, no secret


@dataclass(frozen=True)
class DemoPaths:
    """Where the demo keeps its state; secrets are 0600 files."""

    root: Path

    @property
    def credentials(self) -> Path:
        return self.root / "credentials"

    def credentials_of(self, principal: str) -> Path:
        return self.credentials / f"{principal}.json"

    @property
    def tokens(self) -> Path:
        return self.root / "tokens.json"

    @property
    def admin_token(self) -> Path:
        return self.root / "admin-token"

    @property
    def pseudonym_key(self) -> Path:
        return self.root / "pseudonym.key"

    @property
    def audit_key(self) -> Path:
        """The audit log's Ed25519 signing key (hex seed): the router and the API sign with it."""
        return self.root / "audit.key"

    def agency_dir(self, agency: str) -> Path:
        return self.root / "agencies" / agency

    def adapter_config(self, agency: str) -> Path:
        return self.agency_dir(agency) / "adapters.yaml"

    def inbox(self, agency: str) -> Path:
        return self.agency_dir(agency) / "inbox"


def pseudonym_keys(paths: DemoPaths) -> RedactionKeys:
    return RedactionKeys(master=SecretBytes(bytes.fromhex(paths.pseudonym_key.read_text().strip())))


Report = Callable[[str], None]


async def _ensure_service(
    admin: KafkaConnection, paths: DemoPaths, name: str, acls: Any, report: Report
) -> KafkaConnection:
    """The service principal's ACLs, and credentials in its file (new ones if lost)."""
    provisioner = Provisioner(admin)
    await provisioner.grant(name, acls)
    path = paths.credentials_of(name)
    if not path.exists():
        password = secrets.token_urlsafe(24)

        def upsert() -> None:
            with KafkaAdmin(admin) as client:
                client.upsert_scram_user(name, password)

        await asyncio.to_thread(upsert)
        save_credentials(paths.credentials, name, admin.bootstrap_servers, password)
        report(f"credentials of {name} written to {path}")
    return connection_from_file(path)


async def _ensure_agency(
    admin: KafkaConnection, paths: DemoPaths, agency: str, name: str, report: Report
) -> None:
    provisioner = Provisioner(admin)
    result = await provisioner.add(agency, name=name)
    path = paths.credentials_of(agency)
    if result.password is None and not path.exists():
        result = await provisioner.rotate(agency)  # the file was lost: new credentials
    if result.password is not None:
        save_credentials(paths.credentials, agency, admin.bootstrap_servers, result.password)
        report(f"agency {agency} provisioned; credentials in {path}")


def _adapter_config(paths: DemoPaths, agency: str) -> dict[str, Any]:
    """The agency's adapters.yaml; it lives in the agency's directory, and every relative
    path in it resolves against that directory (see docs/adapters.md)."""
    sink_type, sink_dir = _SINKS[agency]
    base = paths.agency_dir(agency)
    return {
        "agency": agency,
        "rejects_dir": "rejects",
        "state_dir": "state",
        "status_interval_s": 60,
        "instances": [
            {
                "name": "inbox",
                "type": "jsonl",
                "direction": "source",
                "config": {
                    "directory": str(paths.inbox(agency).relative_to(base)),
                    "poll_interval_s": 0.5,
                },
            },
            {
                "name": f"{sink_type}-out",
                "type": sink_type,
                "direction": "sink",
                "config": {"directory": sink_dir},
            },
        ],
    }


async def setup(
    admin: KafkaConnection,
    state_dir: Path,
    *,
    policy_path: Path,
    schema: BulletinSchema,
    report: Report = log.info,
) -> DemoPaths:
    """Provision the demo bus (idempotent: a second run changes nothing it need not)."""
    paths = DemoPaths(state_dir)
    names = TopicNames()
    await asyncio.to_thread(state_dir.mkdir, parents=True, exist_ok=True)
    policy = load_policy(policy_path)
    await Provisioner(admin).ensure_bus_topics()
    service = await _ensure_service(
        admin, paths, ADMIN_PRINCIPAL, admin_service_acls(f"User:{ADMIN_PRINCIPAL}", names), report
    )
    await _ensure_service(
        admin, paths, EDGE_PRINCIPAL, edge_acls(f"User:{EDGE_PRINCIPAL}", names), report
    )
    for agency, details in policy.agencies.items():
        await _ensure_agency(admin, paths, agency, details.name, report)
    for principal in [ADMIN_PRINCIPAL, EDGE_PRINCIPAL, *policy.agencies]:
        await asyncio.to_thread(
            wait_until_authenticates, connection_from_file(paths.credentials_of(principal))
        )
    if not paths.pseudonym_key.exists():
        write_private(paths.pseudonym_key, secrets.token_hex(32) + "\n")
        report(f"pseudonym key written to {paths.pseudonym_key}")
    if not paths.audit_key.exists():
        write_private(paths.audit_key, new_key_hex() + "\n")
        report(f"audit signing key written to {paths.audit_key}")
    async with KafkaRegistryStore(service, topic=names.schemas) as store:
        # Every release in order: the subject's latest version is the current release.
        await SchemaRegistry(store).register_releases(schema.catalog)
    admin_service = AdminService(
        service, ApiSettings(tokens_path=paths.tokens), schema, signer=load_signer(paths.audit_key)
    )
    await admin_service.start()
    try:
        document = policy.model_dump(mode="json")
        await admin_service.put_policy(policy.version, document, _SETUP_ACTOR)
        if admin_service.policies.active_version != policy.version:
            await admin_service.activate(policy.version, _SETUP_ACTOR)
            report(f"policy v{policy.version} from {policy_path} in force")
    finally:
        await admin_service.stop()
    if not paths.admin_token.exists():
        token, info = TokenStore(paths.tokens).create("admin", "demo administrator")
        write_private(paths.admin_token, token + "\n")
        report(f"admin API token {info.id} written to {paths.admin_token}")
    for agency in ADAPTER_AGENCIES:
        if agency not in policy.agencies:
            raise ConfigError(f"the demo plays {agency}, which {policy_path} does not name")
        paths.inbox(agency).mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump(_adapter_config(paths, agency), sort_keys=False)
        paths.adapter_config(agency).write_text(text)
    return paths


# -- the agencies at work ------------------------------------------------------------


class _Generator:
    """Drops fictional bulletins into the agencies' inboxes; now and then, bad input."""

    def __init__(self, paths: DemoPaths, schema: BulletinSchema, seed: int) -> None:
        self.paths = paths
        self.schema = schema
        self.rng = random.Random(seed)  # noqa: S311 - fictional traffic, not security
        self.generators = {
            agency: BulletinGenerator(schema, seed=seed + i, agencies=[agency])
            for i, agency in enumerate(ADAPTER_AGENCIES)
        }
        self.count = 0

    def drop_one(self) -> tuple[str, bool]:
        """One file into one inbox; returns (agency, whether it holds a bad line)."""
        agency = self.rng.choice(ADAPTER_AGENCIES)
        bulletin = self.generators[agency].bulletin()
        lines = [json.dumps(self.schema.to_json(bulletin))]
        bad = self.count % 40 == 39
        if bad:  # an integrator's typo: the adapter reports it with file and line
            lines.append('{"bulletin_id": "truncated')
        self.count += 1
        inbox = self.paths.inbox(agency)
        staged = inbox / f".{self.count:08d}.tmp"
        staged.write_text("\n".join(lines) + "\n")
        staged.rename(inbox / f"{self.count:08d}.jsonl")
        return agency, bad


async def _misbehave(connection: KafkaConnection, topic: str) -> None:
    """A client that skips the adapter and writes junk: the router dead-letters it."""
    async with Producer(connection, linger_ms=0) as producer:
        await producer.send(topic, b"not a bulletin at all", key=b"junk")


def _health_app(runners: dict[str, AdapterRunner]) -> FastAPI:
    app = FastAPI(title="Liaison demo agencies", docs_url=None, redoc_url=None)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        statuses = {agency: r.status() for agency, r in runners.items()}
        ready = all(
            s.ready and all(i["state"] != "failed" for i in s.instances.values())
            for s in statuses.values()
        )
        body = {"ready": ready, "agencies": {a: asdict(s) for a, s in statuses.items()}}
        return JSONResponse(body, status_code=200 if ready else 503)

    return app


async def run_agencies(
    paths: DemoPaths,
    schema: BulletinSchema,
    stop: asyncio.Event,
    *,
    rate_per_s: float = 2.0,
    seed: int | None = None,
    health_port: int | None = None,
) -> None:
    """Run the adapters and the generator until ``stop`` is set."""
    runners = {
        agency: AdapterRunner(
            connection_from_file(paths.credentials_of(agency)),
            load_runner_config(paths.adapter_config(agency)),
            schema=schema,
        )
        for agency in ADAPTER_AGENCIES
    }
    tasks = [asyncio.create_task(r.run(stop), name=f"adapters {a}") for a, r in runners.items()]
    server: uvicorn.Server | None = None
    if health_port is not None:
        config = uvicorn.Config(
            _health_app(runners), host="127.0.0.1", port=health_port, log_level="warning"
        )
        server = uvicorn.Server(config)
        tasks.append(asyncio.create_task(server.serve(), name="agencies health"))
    generator = _Generator(paths, schema, seed if seed is not None else secrets.randbelow(10**6))
    names = TopicNames()
    try:
        await asyncio.wait_for(
            asyncio.gather(*(r.ready.wait() for r in runners.values())), timeout=120
        )
        log.info("the demo agencies are at work: %s", ", ".join(ADAPTER_AGENCIES))
        while not stop.is_set():
            agency, _ = generator.drop_one()
            if generator.count % 25 == 10:
                await _misbehave(runners[agency].connection, names.inbound(agency))
            if rate_per_s > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1 / rate_per_s)
            else:
                await stop.wait()
    finally:
        stop.set()
        if server is not None:
            server.should_exit = True
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, LiaisonError):
                log.error("a demo agency failed: %r", result)


def demo_schema(schemas: Path | None = None) -> BulletinSchema:
    return BulletinSchema(SchemaCatalog.load(schemas))
