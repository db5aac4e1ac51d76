"""``liaison agency add --partitions`` and ``liaison agency partitions`` on the real broker,
in-process (typer's CliRunner), on a bus prefix of the test's own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from bus.cli import app
from bus.kafka import AclFilter, KafkaAdmin, KafkaConnection
from bus.topics import TopicNames

pytestmark = pytest.mark.integration

runner = CliRunner()


@pytest.fixture
def names(admin_connection: KafkaConnection) -> Iterator[TopicNames]:
    names = TopicNames(prefix=f"cli{uuid.uuid4().hex[:8]}")
    yield names
    with KafkaAdmin(admin_connection) as admin:
        admin.delete_topics(t for t in admin.list_topics() if t.startswith(f"{names.prefix}."))


@pytest.fixture
def agency(admin_connection: KafkaConnection) -> Iterator[str]:
    agency = f"agency-{uuid.uuid4().hex[:8]}"
    yield agency
    with KafkaAdmin(admin_connection) as admin:
        admin.delete_acls([AclFilter(principal=f"User:{agency}")])
        admin.delete_scram_user(agency, missing_ok=True)


def liaison(admin: KafkaConnection, names: TopicNames, *args: str, **env: str) -> Result:
    environment = {
        "LIAISON_KAFKA_BOOTSTRAP": admin.bootstrap_servers,
        "LIAISON_KAFKA_USERNAME": admin.username,
        "LIAISON_KAFKA_PASSWORD": admin.password.get_secret_value(),
        "LIAISON_TOPIC_PREFIX": names.prefix,
        "COLUMNS": "250",
        **env,
    }
    return runner.invoke(app, ["agency", *args], env=environment)


def counts(admin: KafkaConnection, names: TopicNames, agency: str) -> dict[str, int]:
    with KafkaAdmin(admin) as client:
        return client.partition_counts([names.inbound(agency), names.outbound(agency)])


def test_the_bus_default_and_growth_through_the_cli(
    admin_connection: KafkaConnection, names: TopicNames, agency: str, tmp_path: Path
) -> None:
    credentials = str(tmp_path / "credentials")
    added = liaison(
        admin_connection,
        names,
        "add",
        agency,
        "--credentials-dir",
        credentials,
        LIAISON_AGENCY_PARTITIONS="2",
    )
    assert added.exit_code == 0, added.output
    assert counts(admin_connection, names, agency) == {
        names.inbound(agency): 2,
        names.outbound(agency): 2,
    }

    grown = liaison(admin_connection, names, "partitions", agency, "5")
    assert grown.exit_code == 0, grown.output
    assert f"grew topic {names.inbound(agency)} from 2 to 5 partitions" in grown.output
    assert set(counts(admin_connection, names, agency).values()) == {5}

    again = liaison(admin_connection, names, "partitions", agency, "5")
    assert again.exit_code == 0, again.output
    assert "nothing to change" in again.output

    shrink = liaison(admin_connection, names, "partitions", agency, "3")
    assert shrink.exit_code == 2
    assert f"cannot shrink {names.inbound(agency)} from 5 to 3" in shrink.output
    assert set(counts(admin_connection, names, agency).values()) == {5}


def test_an_explicit_partitions_option_wins_over_the_bus_default(
    admin_connection: KafkaConnection, names: TopicNames, agency: str, tmp_path: Path
) -> None:
    added = liaison(
        admin_connection,
        names,
        "add",
        agency,
        "--partitions",
        "3",
        "--credentials-dir",
        str(tmp_path),
        LIAISON_AGENCY_PARTITIONS="2",
    )
    assert added.exit_code == 0, added.output
    assert set(counts(admin_connection, names, agency).values()) == {3}
