"""Third-party Kafka tooling works with our registry and our wire format, on the real broker.

confluent-kafka's ``SchemaRegistryClient``, ``AvroSerializer`` and ``AvroDeserializer``
talk to our registry served by uvicorn; records cross a real topic both ways. The admin
API's registry is reached as Confluent clients configure it: HTTP Basic
(``basic.auth.user.info``) under any role, a serializer that does not register.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from confluent_kafka.schema_registry import (
    Schema,
    SchemaRegistryClient,
    SchemaRegistryError,
    record_subject_name_strategy,
)
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from bus.bulletin import BulletinGenerator, BulletinSchema
from bus.codec import WireCodec
from bus.kafka import Consumer, KafkaConnection, Producer, Record
from bus.registry import KafkaRegistryStore, SchemaRegistry, create_kafka_registry_app
from bus.sandbox import Bus, build_bus, read_until, running_edge, teardown_bus
from bus.schemas import BULLETIN, SchemaCatalog, canonical_json
from tests.conftest import TopicFactory
from tests.support import read_count
from tests.support.api import ApiHarness, provision_admin_service, running_api

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def schema() -> BulletinSchema:
    return BulletinSchema(SchemaCatalog.load())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def registry_topic(unique_name: Callable[[str], str]) -> str:
    return unique_name("schemas")


@pytest.fixture
def registry_url(admin_connection: KafkaConnection, registry_topic: str) -> Iterator[str]:
    """Our registry on a fresh topic, served by uvicorn on 127.0.0.1 in a thread, with
    writes allowed (``liaison registry serve --allow-writes``)."""
    yield from _serve(
        create_kafka_registry_app(admin_connection, topic=registry_topic, allow_writes=True)
    )


@pytest.fixture
def read_only_registry_url(admin_connection: KafkaConnection, registry_topic: str) -> Iterator[str]:
    """The same registry topic served as ``liaison registry serve`` does by default."""
    yield from _serve(create_kafka_registry_app(admin_connection, topic=registry_topic))


def _serve(app: Any) -> Iterator[str]:
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="registry", daemon=True)
    thread.start()
    ready = threading.Event()
    deadline = 60.0
    while not server.started and thread.is_alive() and deadline > 0:
        ready.wait(0.05)  # poll uvicorn's flag: it exposes no event to wait on
        deadline -= 0.05
    assert server.started, "the registry did not start within 60 s"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


def test_the_standalone_registry_serves_lookups_and_refuses_writes_by_default(
    registry_url: str, read_only_registry_url: str, schema: BulletinSchema
) -> None:
    """It authenticates no one, so what would register or change a mode is a 403 in
    Confluent's shape; lookups and compatibility checks still work."""
    text = canonical_json(schema.composed)
    registered = httpx.post(f"{registry_url}/subjects/{BULLETIN}/versions", json={"schema": text})
    assert registered.status_code == 200, registered.text

    url = read_only_registry_url
    writes = [
        httpx.post(f"{url}/subjects/{BULLETIN}/versions", json={"schema": text}),
        httpx.put(f"{url}/config", json={"compatibility": "NONE"}),
        httpx.put(f"{url}/config/{BULLETIN}", json={"compatibility": "NONE"}),
        httpx.delete(f"{url}/config/{BULLETIN}"),
    ]
    looked_up = httpx.post(f"{url}/subjects/{BULLETIN}", json={"schema": text})
    compatible = httpx.post(
        f"{url}/compatibility/subjects/{BULLETIN}/versions/latest", json={"schema": text}
    )

    assert [(w.status_code, w.json()["error_code"]) for w in writes] == [(403, 40301)] * 4
    assert looked_up.status_code == 200
    assert looked_up.json()["id"] == registered.json()["id"]
    assert compatible.status_code == 200
    assert httpx.get(f"{url}/config").json()["compatibilityLevel"] != "NONE"


def _serializer_conf() -> dict[str, Any]:
    return {"auto.register.schemas": True, "subject.name.strategy": record_subject_name_strategy}


async def _roundtrip_topic(connection: KafkaConnection, topic: str, value: bytes) -> bytes:
    async with Producer(connection) as producer:
        await producer.send(topic, value, key=b"k")
    async with Consumer(connection, topic) as consumer:
        records = await read_count(consumer, 1)
    assert records[0].value is not None
    return records[0].value


def _http_lookup(url: str) -> Callable[[int], str]:
    def lookup(schema_id: int) -> str:
        answer = httpx.get(f"{url}/schemas/ids/{schema_id}", timeout=10)
        answer.raise_for_status()
        return str(answer.json()["schema"])

    return lookup


def test_bytes_from_confluents_avro_serializer_decode_with_our_codec(
    registry_url: str,
    schema: BulletinSchema,
    new_topic: TopicFactory,
    admin_connection: KafkaConnection,
) -> None:
    bulletin = BulletinGenerator(schema, seed=7).bulletin("situation_report")
    topic = new_topic()
    with SchemaRegistryClient({"url": registry_url}) as client:
        serializer = AvroSerializer(
            client, canonical_json(schema.composed), conf=_serializer_conf()
        )
        context = SerializationContext(topic, MessageField.VALUE)
        framed = serializer(schema.to_avro(bulletin), context)
        registered = client.get_latest_version(BULLETIN)
    assert framed is not None

    delivered = asyncio.run(_roundtrip_topic(admin_connection, topic, framed))
    decoded = WireCodec(_http_lookup(registry_url)).decode(delivered)

    assert schema.from_avro(decoded.record) == bulletin
    assert decoded.schema_id == registered.schema_id


def test_bytes_from_our_codec_decode_with_confluents_avro_deserializer(
    registry_url: str,
    schema: BulletinSchema,
    new_topic: TopicFactory,
    admin_connection: KafkaConnection,
) -> None:
    bulletin = BulletinGenerator(schema, seed=11).bulletin("alert")
    text = canonical_json(schema.composed)
    registered = httpx.post(
        f"{registry_url}/subjects/{BULLETIN}/versions",
        json={"schema": text},
        headers={"Content-Type": "application/vnd.schemaregistry.v1+json"},
        timeout=10,
    )
    assert registered.status_code == 200, registered.text
    schema_id = int(registered.json()["id"])
    topic = new_topic()
    framed = WireCodec(_http_lookup(registry_url)).encode(schema_id, schema.to_avro(bulletin))

    delivered = asyncio.run(_roundtrip_topic(admin_connection, topic, framed))
    with SchemaRegistryClient({"url": registry_url}) as client:
        deserializer = AvroDeserializer(client)
        theirs = deserializer(delivered, SerializationContext(topic, MessageField.VALUE))

    assert isinstance(theirs, dict)
    ours = schema.to_avro(bulletin)
    _, body = ours.pop("body")
    assert theirs.pop("body") == body
    assert theirs == ours


async def test_a_restarted_registry_rebuilds_its_state_from_the_topic(
    admin_connection: KafkaConnection, registry_topic: str, schema: BulletinSchema
) -> None:
    text = canonical_json(schema.composed)
    async with KafkaRegistryStore(admin_connection, topic=registry_topic) as first_store:
        first = SchemaRegistry(first_store)
        registered = await first.register(BULLETIN, text)
        await first.register("other-subject", text)

    async with KafkaRegistryStore(admin_connection, topic=registry_topic) as second_store:
        rebuilt = second_store.state
        again = await SchemaRegistry(second_store).register(BULLETIN, text)

    assert sorted(rebuilt.subjects) == [BULLETIN, "other-subject"]
    assert rebuilt.version(BULLETIN, "latest") == registered
    assert rebuilt.version("other-subject", 1).schema_id == registered.schema_id
    assert again == registered, "registering an identical schema returns its existing id"


def test_cli_registers_the_released_schemas_idempotently(
    admin_connection: KafkaConnection, registry_topic: str
) -> None:
    env = {
        **os.environ,
        "LIAISON_KAFKA_BOOTSTRAP": admin_connection.bootstrap_servers,
        "LIAISON_KAFKA_USERNAME": admin_connection.username,
        "LIAISON_KAFKA_PASSWORD": admin_connection.password.get_secret_value(),
        "COLUMNS": "200",
    }
    cli = [str(Path(sys.executable).parent / "liaison"), "schemas", "register"]

    first = subprocess.run(
        [*cli, "--topic", registry_topic],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    second = subprocess.run(
        [*cli, "--topic", registry_topic],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    # Every release in order, each root's versions together (v2: issue 15.3's contact tags).
    assert first.stdout.splitlines() == [
        "liaison.bulletin.Bulletin release v1: subject version 1, id 1",
        "liaison.bulletin.Bulletin release v2: subject version 2, id 2",
        "liaison.bulletin.View release v1: subject version 1, id 3",
        "liaison.bulletin.View release v2: subject version 2, id 4",
    ]
    assert first.stdout == second.stdout
    assert admin_connection.password.get_secret_value() not in first.stdout + first.stderr


# -- the admin API's registry, as Confluent clients reach it: HTTP Basic, any role --------


@pytest.fixture(scope="module")
def api(
    admin_connection: KafkaConnection, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiHarness]:
    """The admin API over a bus of its own (agencies a, b, c), with a token per role."""
    bus = asyncio.run(build_bus(admin_connection))
    try:
        service = asyncio.run(provision_admin_service(bus))
        with running_api(bus, service, tmp_path_factory.mktemp("api")) as harness:
            yield harness
    finally:
        teardown_bus(bus)


def _basic(api: ApiHarness, role: str) -> dict[str, str]:
    """A Confluent client's configuration for the API's registry as ``role``: the token's
    id and secret as ``basic.auth.user.info``."""
    token_id, secret = api.tokens[role].removeprefix("lsn_").split("_", 1)
    return {
        "url": f"{api.url}/registry",
        "basic.auth.user.info": f"{token_id}:{secret}",
    }


def test_an_agency_publishes_with_confluents_serializer_over_basic_auth_without_registering(
    api: ApiHarness,
) -> None:
    """A stock AvroSerializer, as agency a with ``auto.register.schemas`` off, frames a
    bulletin the router accepts; agency b reads its view with a stock AvroDeserializer."""
    bus = api.bus
    bulletin = bus.generator("a", seed=5).bulletin("situation_report")
    framed: dict[str, bytes] = {}
    for mode, latest in (("use.latest.version", True), ("lookup", False)):
        with SchemaRegistryClient(_basic(api, "a")) as client:
            serializer = AvroSerializer(
                client,
                canonical_json(bus.schema.composed),
                conf={
                    "auto.register.schemas": False,
                    "use.latest.version": latest,
                    "subject.name.strategy": record_subject_name_strategy,
                },
            )
            context = SerializationContext(bus.names.inbound(bus.agency("a")), MessageField.VALUE)
            out = serializer(bus.schema.to_avro(bulletin), context)
        assert out is not None
        framed[mode] = out
    assert framed["lookup"] == framed["use.latest.version"]
    assert int.from_bytes(framed["lookup"][1:5], "big") == bus.bulletin_schema_id

    async def route() -> list[Record]:
        await bus.publish_policy(bus.policy([share_all(bus, "a", "b")]))
        async with running_edge(bus) as router:
            await router.wait_for_policy(1)
            await bus.send_raw("a", framed["lookup"], key=bulletin.bulletin_id.encode())
            agency = bus.agency("b")
            async with Consumer(bus.agencies[agency], bus.names.outbound(agency)) as consumer:
                return await read_until(consumer, lambda records: len(records) >= 1)

    (view,) = asyncio.run(route())
    with SchemaRegistryClient(_basic(api, "b")) as client:
        decoded = AvroDeserializer(client)(
            view.value,
            SerializationContext(bus.names.outbound(bus.agency("b")), MessageField.VALUE),
        )
    assert isinstance(decoded, dict)
    assert decoded["recipient"] == bus.agency("b")
    assert decoded["bulletin"]["bulletin_id"] == bulletin.bulletin_id


def share_all(bus: Bus, source: str, recipient: str) -> dict[str, Any]:
    return {
        "id": f"{source}-to-{recipient}",
        "source": {"agencies": [bus.agency(source)]},
        "recipients": {"agencies": [bus.agency(recipient)]},
        "kinds": ["*"],
        "max_marking": "RED",
    }


@pytest.mark.parametrize("role", ["auditor", "a"])
def test_every_role_may_look_up_and_check_compatibility_but_not_register(
    api: ApiHarness, role: str
) -> None:
    text = canonical_json(api.bus.schema.composed)
    with SchemaRegistryClient(_basic(api, role)) as client:
        found = client.lookup_schema(BULLETIN, Schema(text, "AVRO"))
        assert found.schema_id == api.bus.bulletin_schema_id
        assert client.test_compatibility(BULLETIN, Schema(text, "AVRO")) is True
        with pytest.raises(SchemaRegistryError) as refused:
            client.register_schema("a-new-subject", Schema(text, "AVRO"))
    assert (refused.value.http_status_code, refused.value.error_code) == (403, 40301)


def test_bad_basic_credentials_get_confluents_401_with_both_challenges_and_no_echo(
    api: ApiHarness,
) -> None:
    token_id = api.tokens["a"].removeprefix("lsn_").split("_", 1)[0]
    wrong = f"{token_id}:{'Zq' * 21}Q"  # the right id, a well-formed but wrong secret
    client = SchemaRegistryClient({**_basic(api, "a"), "basic.auth.user.info": wrong})
    with client, pytest.raises(SchemaRegistryError) as refused:
        client.get_subjects()
    assert (refused.value.http_status_code, refused.value.error_code) == (401, 40101)

    for credentials in (wrong, "not-a-token:zqsecret", "zqnocolon"):
        encoded = base64.b64encode(credentials.encode()).decode()
        answer = httpx.get(
            f"{api.url}/registry/subjects",
            headers={"Authorization": f"Basic {encoded}"},
            timeout=10,
        )
        assert answer.status_code == 401
        assert answer.headers["content-type"] == "application/vnd.schemaregistry.v1+json"
        assert answer.json()["error_code"] == 40101
        assert answer.headers.get_list("www-authenticate") == [
            'Basic realm="liaison registry", charset="UTF-8"',
            'Bearer realm="liaison"',
        ]
        said = (answer.text + str(answer.headers)).lower()
        assert "zq" not in said
        assert encoded.lower() not in said

    # Basic is for the registry only: the rest of the API takes bearer tokens
    user, password = _basic(api, "admin")["basic.auth.user.info"].split(":")
    elsewhere = httpx.get(f"{api.url}/agencies", auth=(user, password), timeout=10)
    assert elsewhere.status_code == 401
    assert elsewhere.headers["www-authenticate"] == "Bearer"
