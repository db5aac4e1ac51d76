"""Static ownership of inbound partitions (bus.edge.owner_of) and the partition settings:
pure, no broker."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from pydantic import SecretStr

from bus.api import ApiSettings
from bus.edge import owner_of
from bus.errors import ConfigError
from bus.kafka import KafkaConnection
from bus.provision import MAX_PARTITIONS, PARTITIONS_ENV, Provisioner, default_partitions

TOPICS = [f"liaison.from.agency-{i}" for i in range(200)]


@pytest.mark.parametrize("instances", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("partitions", [1, 2, 3, 4, 8, 13])
def test_a_topics_partitions_are_split_evenly_over_the_instances(
    instances: int, partitions: int
) -> None:
    """Each instance owns P // N or P // N + 1 of every topic's P partitions: an agency
    given as many partitions as routers keeps every router busy (a hash per partition
    left one router all four of an agency's partitions for 1 topic in 8)."""
    for topic in TOPICS:
        owned = [0] * instances
        for p in range(partitions):
            owned[owner_of(topic, p, instances)] += 1
        assert max(owned) - min(owned) <= 1, (topic, owned)


def test_growing_a_topic_never_moves_an_existing_partition() -> None:
    # Ownership depends on (topic, partition, instances) only, never on the partition count;
    # this pins that the formula has no hidden dependence on state.
    for topic in TOPICS[:20]:
        first = [owner_of(topic, p, 3) for p in range(4)]
        assert [owner_of(topic, p, 3) for p in range(16)][:4] == first


def test_one_partition_topics_spread_over_the_instances() -> None:
    owners = {owner_of(topic, 0, 4) for topic in TOPICS}
    assert owners == {0, 1, 2, 3}


# Never contacted: the count is checked before any call.
CONNECTION = KafkaConnection(
    bootstrap_servers="127.0.0.1:1", username="nobody", password=SecretStr(secrets.token_hex(8))
)


@pytest.mark.parametrize("partitions", [0, -1, MAX_PARTITIONS + 1])
def test_a_partition_count_out_of_range_is_refused_with_the_value(partitions: int) -> None:
    with pytest.raises(ConfigError, match=rf"between 1 and {MAX_PARTITIONS}, not {partitions}"):
        Provisioner(CONNECTION, partitions=partitions)


@pytest.mark.parametrize("partitions", [0, MAX_PARTITIONS + 1])
async def test_growing_to_a_count_out_of_range_is_refused_before_any_call(partitions: int) -> None:
    with pytest.raises(ConfigError, match=rf"not {partitions}"):
        await Provisioner(CONNECTION).grow_partitions("north-river", partitions)


def test_the_bus_default_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PARTITIONS_ENV, raising=False)
    assert default_partitions() == 1
    assert ApiSettings(tokens_path=Path("tokens.json")).agency_partitions == 1
    monkeypatch.setenv(PARTITIONS_ENV, "4")
    assert default_partitions() == 4
    assert ApiSettings(tokens_path=Path("tokens.json")).agency_partitions == 4


@pytest.mark.parametrize("raw", ["0", "four", "-2", str(MAX_PARTITIONS + 1)])
def test_a_bad_bus_default_is_refused_naming_the_variable_and_value(
    monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    monkeypatch.setenv(PARTITIONS_ENV, raw)
    with pytest.raises(ConfigError, match=rf"{PARTITIONS_ENV}='{raw}' must be a whole number"):
        ApiSettings(tokens_path=Path("tokens.json"))
