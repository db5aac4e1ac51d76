"""An isolated bus on a running broker: for tests, benchmarks and the demo.

:func:`build_bus` provisions, under one fresh topic prefix, the shared topics, agencies
with their own least-privilege credentials, an edge principal, and the registered
schemas; :func:`running_edge` runs a router in the current event loop. The bootstrap
``admin`` only provisions: agencies and the edge act as themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretBytes

from bus.audit import Signer, new_key_hex
from bus.bulletin import Bulletin, BulletinGenerator, BulletinSchema
from bus.codec import WireCodec
from bus.edge import EdgeConfig, EdgeRouter, publish_policy
from bus.kafka import (
    AclFilter,
    Consumer,
    KafkaAdmin,
    KafkaConnection,
    Producer,
    Record,
    wait_until_authenticates,
)
from bus.policy import RedactionKeys
from bus.provision import Provisioner, edge_acls
from bus.registry import KafkaRegistryStore, SchemaRegistry
from bus.schemas import BULLETIN, VIEW, SchemaCatalog
from bus.topics import TopicNames

__all__ = ["Bus", "build_bus", "read_until", "running_edge", "teardown_bus"]


async def read_until(
    consumer: Consumer,
    done: Callable[[list[Record]], bool],
    *,
    timeout_s: float = 30.0,
) -> list[Record]:
    """Read records until ``done(records)`` holds; raise ``TimeoutError`` at the deadline."""
    records: list[Record] = []
    deadline = time.monotonic() + timeout_s
    while not done(records):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(
                f"condition not met within {timeout_s}s; read {len(records)} record(s): "
                f"{[r.value for r in records][:20]}"
            )
        records.extend(await consumer.getmany(timeout_ms=int(min(remaining, 1.0) * 1000)))
    return records


@dataclass
class Bus:
    """One isolated bus on the shared broker."""

    admin: KafkaConnection
    names: TopicNames
    schema: BulletinSchema
    agencies: dict[str, KafkaConnection]
    edge: KafkaConnection
    keys: RedactionKeys
    bulletin_schema_id: int
    view_schema_id: int
    codec: WireCodec
    principals: list[str] = field(default_factory=list)
    audit_key: str = field(default_factory=new_key_hex, repr=False)
    """The audit signing key's seed (hex), generated per bus."""

    @property
    def signer(self) -> Signer:
        return Signer(bytes.fromhex(self.audit_key))

    def edge_env(self) -> dict[str, str]:
        """This process's environment plus what ``liaison edge run`` needs to route this
        bus as its edge principal (credentials, keys, topic prefix)."""
        return {
            **os.environ,
            "LIAISON_KAFKA_BOOTSTRAP": self.edge.bootstrap_servers,
            "LIAISON_KAFKA_USERNAME": self.edge.username,
            "LIAISON_KAFKA_PASSWORD": self.edge.password.get_secret_value(),
            "LIAISON_PSEUDONYM_KEY": self.keys.master.get_secret_value().hex(),
            "LIAISON_AUDIT_KEY": self.audit_key,
            "LIAISON_TOPIC_PREFIX": self.names.prefix,
        }

    def agency(self, short: str) -> str:
        """The real agency id for a short name used in a test (``"a"`` -> ``"a-1f2e..."``)."""
        return next(a for a in self.agencies if a.startswith(f"{short}-"))

    def policy(
        self,
        rules: list[dict[str, Any]],
        *,
        version: int = 1,
        extra: dict[str, dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """A policy over this bus's agencies; ``extra`` adds per-agency settings
        (e.g. ``{agency_id: {"accepts": ["ACTUAL"]}}``)."""
        extra = extra or {}
        return {
            "version": version,
            "agencies": {
                a: {
                    "name": f"Fictional {a}",
                    "accepts": ["ACTUAL", "EXERCISE", "TEST"],
                    **extra.get(a, {}),
                }
                for a in self.agencies
            },
            "rules": rules,
        }

    async def publish_policy(self, policy: dict[str, Any]) -> None:
        await publish_policy(self.admin, json.dumps(policy).encode(), self.names)

    def generator(self, short: str, seed: int = 0) -> BulletinGenerator:
        return BulletinGenerator(self.schema, seed=seed, agencies=[self.agency(short)])

    async def send(self, short: str, bulletin: Bulletin) -> None:
        """Publish as the agency itself, under its own credentials."""
        await self.send_raw(
            short,
            self.codec.encode(self.bulletin_schema_id, self.schema.to_avro(bulletin)),
            key=bulletin.bulletin_id.encode(),
        )

    async def send_raw(self, short: str, value: bytes, *, key: bytes | None = None) -> None:
        agency = self.agency(short)
        async with Producer(self.agencies[agency]) as producer:
            await producer.send(self.names.inbound(agency), value, key=key)

    async def views(
        self, short: str, count: int, *, timeout_s: float = 60.0
    ) -> list[dict[str, Any]]:
        """Read ``count`` views from the agency's outbound topic, as the agency."""
        agency = self.agency(short)
        async with Consumer(self.agencies[agency], self.names.outbound(agency)) as consumer:
            records = await read_until(consumer, lambda rs: len(rs) >= count, timeout_s=timeout_s)
        return [self.codec.decode(r.value or b"").record for r in records]

    async def read_as_admin(
        self, topic: str, done: Callable[[list[Record]], bool], timeout_s: float = 60.0
    ) -> list[Record]:
        async with Consumer(self.admin, topic) as consumer:
            return await read_until(consumer, done, timeout_s=timeout_s)


async def build_bus(
    admin: KafkaConnection, shorts: tuple[str, ...] = ("a", "b", "c"), *, partitions: int = 1
) -> Bus:
    """An isolated bus: its own topic prefix, agencies (``partitions`` per inbound and
    outbound topic), edge principal and registered schemas."""
    tag = uuid.uuid4().hex[:8]
    names = TopicNames(prefix=f"bus{tag}")
    provisioner = Provisioner(admin, names=names, partitions=partitions)
    await provisioner.ensure_bus_topics()
    agencies: dict[str, KafkaConnection] = {}
    for short in shorts:
        agency = f"{short}-{tag}"
        result = await provisioner.add(agency)
        assert result.password is not None
        agencies[agency] = admin.with_credentials(agency, result.password)
    edge_name = f"edge.{tag}"
    edge_password = secrets.token_urlsafe(18)
    await provisioner.grant(edge_name, edge_acls(f"User:{edge_name}", names), edge_password)
    edge = admin.with_credentials(edge_name, edge_password)
    for connection in [*agencies.values(), edge]:
        await asyncio.to_thread(wait_until_authenticates, connection)
    schema = BulletinSchema(SchemaCatalog.load())
    async with KafkaRegistryStore(admin, topic=names.schemas) as store:
        # Every release in order, as `liaison schemas register` does: the current one last.
        registered = await SchemaRegistry(store).register_releases(schema.catalog)
        texts = {v.schema_id: rel.text for _, rel, v in registered}
        current = {root: v.schema_id for root, _, v in registered}
        bulletin_id, view_id = current[BULLETIN], current[VIEW]
    return Bus(
        admin=admin,
        names=names,
        schema=schema,
        agencies=agencies,
        edge=edge,
        keys=RedactionKeys(master=SecretBytes(secrets.token_bytes(32))),
        bulletin_schema_id=bulletin_id,
        view_schema_id=view_id,
        codec=WireCodec(texts.__getitem__),
        principals=[*agencies, edge_name],
    )


def teardown_bus(bus: Bus) -> None:
    with KafkaAdmin(bus.admin) as admin:
        for principal in bus.principals:
            admin.delete_acls([AclFilter(principal=f"User:{principal}")])
            with contextlib.suppress(Exception):
                admin.delete_scram_user(principal)
        ours = [t for t in admin.list_topics() if t.startswith(f"{bus.names.prefix}.")]
        admin.delete_topics(ours)


@contextlib.asynccontextmanager
async def running_edge(bus: Bus, **config: Any) -> AsyncIterator[EdgeRouter]:
    """The router in this event loop, as the edge principal; stopped (committing) on exit."""
    router = EdgeRouter(
        bus.edge,
        bus.schema,
        bus.keys,
        EdgeConfig(names=bus.names, topic_refresh_ms=500, **config),
        signer=bus.signer,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(router.run(stop))
    try:
        yield router
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
