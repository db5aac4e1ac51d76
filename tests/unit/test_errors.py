"""bus.errors: one tree, honest retriable flags, messages that say what to do."""

from __future__ import annotations

import pytest

import bus.errors
from bus.errors import (
    BrokerError,
    BrokerStartTimeoutError,
    JarResolutionError,
    KafkaAccessError,
    KafkaUnavailableError,
    LiaisonError,
    PortInUseError,
)

EXPORTED: list[type[Exception]] = [getattr(bus.errors, name) for name in bus.errors.__all__]


@pytest.mark.parametrize("cls", EXPORTED, ids=lambda c: c.__name__)
def test_every_exported_error_derives_from_liaison_error(cls: type[Exception]) -> None:
    assert issubclass(cls, LiaisonError)


@pytest.mark.parametrize("cls", EXPORTED, ids=lambda c: c.__name__)
def test_every_exported_error_is_documented(cls: type[Exception]) -> None:
    assert cls.__doc__ is not None
    assert "__doc__" in vars(cls), f"{cls.__name__} inherits its docstring"


def test_retriable_is_true_exactly_for_transient_failures() -> None:
    retriable = {c for c in EXPORTED if issubclass(c, LiaisonError) and c.retriable}
    assert retriable == {JarResolutionError, BrokerStartTimeoutError, KafkaUnavailableError}


@pytest.mark.parametrize(
    "cls", [JarResolutionError, BrokerStartTimeoutError, KafkaUnavailableError]
)
def test_retriable_is_visible_on_instances(cls: type[LiaisonError]) -> None:
    assert cls("x").retriable is True
    assert LiaisonError("x").retriable is False


def test_broker_and_kafka_errors_are_separate_branches() -> None:
    assert issubclass(PortInUseError, BrokerError)
    assert issubclass(KafkaUnavailableError, KafkaAccessError)
    assert not issubclass(KafkaAccessError, BrokerError)
    assert not issubclass(BrokerError, KafkaAccessError)


def test_port_in_use_error_names_the_port_and_listener() -> None:
    err = PortInUseError(19092, "client")
    message = str(err)
    assert "port 19092 on 127.0.0.1" in message
    assert "client listener" in message
    assert (err.port, err.purpose) == (19092, "client")


def test_port_in_use_error_says_how_to_find_the_holder_and_what_to_change() -> None:
    message = str(PortInUseError(19093, "controller"))
    assert "ss -ltnp 'sport = :19093'" in message
    assert "--controller-port" in message


def test_port_in_use_error_is_not_retriable() -> None:
    assert PortInUseError(1, "client").retriable is False
