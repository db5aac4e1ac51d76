"""bus.kafka._clients without a broker: aiokafka errors become bus.errors."""

from __future__ import annotations

import aiokafka.errors as ak
import pytest

from bus.errors import (
    KafkaAccessError,
    KafkaAuthenticationError,
    KafkaAuthorizationError,
    KafkaOperationError,
    KafkaUnavailableError,
    ProducerFencedError,
)
from bus.kafka._clients import translate_aiokafka_error

PRINCIPAL = "User:agency-north"
ACTION = "send to bulletins.north"


def _translate(exc: BaseException) -> KafkaAccessError:
    err = translate_aiokafka_error(exc, action=ACTION, principal=PRINCIPAL)
    assert isinstance(err, KafkaAccessError)
    return err


def test_a_group_authorization_failure_names_the_group_as_the_cause() -> None:
    err = _translate(ak.GroupAuthorizationFailedError())
    assert type(err) is KafkaAuthorizationError
    assert "not authorized to use its consumer group" in str(err)
    assert "grant READ on the group" in str(err)


@pytest.mark.parametrize(
    "exc_type",
    [
        ak.TopicAuthorizationFailedError,
        ak.ClusterAuthorizationFailedError,
        ak.TransactionalIdAuthorizationFailed,
    ],
)
def test_authorization_failures_become_kafka_authorization_error(
    exc_type: type[ak.KafkaError],
) -> None:
    err = _translate(exc_type())
    assert type(err) is KafkaAuthorizationError
    message = str(err)
    assert f"{PRINCIPAL} is not authorized to {ACTION}" in message
    assert exc_type.__name__ in message
    assert "grant an ACL" in message


@pytest.mark.parametrize(
    "exc_type",
    [ak.SaslAuthenticationFailed, ak.AuthenticationFailedError, ak.IllegalSaslStateError],
)
def test_authentication_failures_become_kafka_authentication_error(
    exc_type: type[ak.KafkaError],
) -> None:
    err = _translate(exc_type())
    assert type(err) is KafkaAuthenticationError
    assert f"rejected the credentials of {PRINCIPAL} while trying to {ACTION}" in str(err)


def test_authentication_error_never_repeats_what_the_broker_said() -> None:
    # The broker's text is not ours to vouch for; the message is fixed.
    err = _translate(ak.SaslAuthenticationFailed("secret-ish broker detail"))
    assert "secret-ish broker detail" not in str(err)


@pytest.mark.parametrize("exc_type", [ak.ProducerFenced, ak.InvalidProducerEpoch])
def test_fenced_producer_becomes_producer_fenced_error(exc_type: type[ak.KafkaError]) -> None:
    err = _translate(exc_type())
    assert type(err) is ProducerFencedError
    message = str(err)
    assert f"{PRINCIPAL}'s producer was fenced while trying to {ACTION}" in message
    assert "close this one" in message
    assert err.retriable is False


@pytest.mark.parametrize(
    "exc_type",
    [
        ak.KafkaConnectionError,
        ak.KafkaTimeoutError,
        ak.RequestTimedOutError,
        ak.NodeNotReadyError,
    ],
)
def test_unreachable_broker_becomes_retriable_kafka_unavailable_error(
    exc_type: type[ak.KafkaError],
) -> None:
    err = _translate(exc_type())
    assert type(err) is KafkaUnavailableError
    assert err.retriable is True
    message = str(err)
    assert f"broker did not answer {PRINCIPAL} while trying to {ACTION}" in message
    assert exc_type.__name__ in message


@pytest.mark.parametrize(
    "exc",
    [
        ak.InvalidReplicationFactorError(),
        ak.RecordTooLargeError("1 MiB is too big"),
        ak.KafkaError("something else"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_other_aiokafka_errors_become_kafka_operation_error_naming_the_class(
    exc: ak.KafkaError,
) -> None:
    err = _translate(exc)
    assert type(err) is KafkaOperationError
    assert str(err) == f"{PRINCIPAL} could not {ACTION}: {type(exc).__name__}: {exc}"
    assert err.retriable is False


def test_unknown_topic_is_not_retriable_and_says_to_create_the_topic() -> None:
    # aiokafka marks it retriable, but auto-creation is off: retrying cannot help.
    err = _translate(ak.UnknownTopicOrPartitionError())
    assert type(err) is KafkaOperationError
    assert err.retriable is False
    assert "the topic does not exist; create it first" in str(err)


def test_non_kafka_exception_becomes_kafka_operation_error() -> None:
    err = _translate(ValueError("bad value"))
    assert type(err) is KafkaOperationError
    assert "ValueError: bad value" in str(err)


_RETRIABLE_IN_AIOKAFKA = [
    ak.LeaderNotAvailableError,
    ak.NotControllerError,
    ak.NotEnoughReplicasError,
]


@pytest.mark.parametrize("exc_type", _RETRIABLE_IN_AIOKAFKA)
def test_aiokafka_marks_transient_broker_states_retriable(exc_type: type[ak.KafkaError]) -> None:
    assert exc_type.retriable is True


@pytest.mark.parametrize("exc_type", _RETRIABLE_IN_AIOKAFKA)
def test_errors_aiokafka_marks_retriable_become_kafka_unavailable_error(
    exc_type: type[ak.KafkaError],
) -> None:
    assert type(_translate(exc_type())) is KafkaUnavailableError
