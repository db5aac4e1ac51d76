"""Third-party Kafka tooling works with our registry and our wire format, on the real broker.

confluent-kafka's ``SchemaRegistryClient``, ``AvroSerializer`` and ``AvroDeserializer``
talk to our registry served by uvicorn; records cross a real topic both ways.
"""

from __future__ import annotations

import asyncio
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
from confluent_kafka.schema_registry import SchemaRegistryClient, record_subject_name_strategy
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from bus.bulletin import BulletinGenerator, BulletinSchema
from bus.codec import WireCodec
from bus.kafka import Consumer, KafkaConnection, Producer
from bus.registry import KafkaRegistryStore, SchemaRegistry, create_kafka_registry_app
from bus.schemas import BULLETIN, SchemaCatalog, canonical_json
from tests.conftest import TopicFactory
from tests.support import read_count

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
    """Our registry on a fresh topic, served by uvicorn on 127.0.0.1 in a thread."""
    app = create_kafka_registry_app(admin_connection, topic=registry_topic)
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
