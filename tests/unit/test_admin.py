"""bus.kafka._admin without a broker: error translation and ACL conversion.

confluent-kafka's ``KafkaError`` and ``KafkaException`` are plain value objects
that can be built without a broker, so librdkafka's errors can be translated
here exactly as ``KafkaAdmin`` receives them from its futures.
"""

from __future__ import annotations

import concurrent.futures

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka import admin as ck
from hypothesis import given
from hypothesis import strategies as st

from bus.errors import (
    KafkaAccessError,
    KafkaAuthenticationError,
    KafkaAuthorizationError,
    KafkaOperationError,
    KafkaUnavailableError,
    TopicExistsError,
)
from bus.kafka import Acl, AclFilter, AclOperation, AclPermission, PatternType, ResourceType
from bus.kafka._admin import _from_binding, _op, _to_binding, _to_filter, translate_kafka_error

PRINCIPAL = "User:agency-north"
ACTION = "create topic"
RESOURCE = "topic bulletins.north"


def _translate(code: int, *, retriable: bool = False) -> KafkaAccessError:
    exc = KafkaException(KafkaError(code, retriable=retriable))
    return translate_kafka_error(exc, action=ACTION, principal=PRINCIPAL, resource=RESOURCE)


# -- translate_kafka_error -----------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    ],
)
def test_authorization_failures_become_kafka_authorization_error(code: int) -> None:
    err = _translate(code)
    assert type(err) is KafkaAuthorizationError
    message = str(err)
    assert f"{PRINCIPAL} is not authorized to {ACTION} on {RESOURCE}" in message
    assert KafkaError(code).name() in message
    assert "grant an ACL" in message
    assert err.retriable is False


@pytest.mark.parametrize(
    "code", [KafkaError.SASL_AUTHENTICATION_FAILED, KafkaError._AUTHENTICATION]
)
def test_authentication_failures_become_kafka_authentication_error(code: int) -> None:
    err = _translate(code)
    assert type(err) is KafkaAuthenticationError
    message = str(err)
    assert f"rejected the credentials of {PRINCIPAL}" in message
    assert ACTION in message
    assert "check the username and password" in message
    assert err.retriable is False


def test_topic_already_exists_becomes_topic_exists_error_naming_the_topic() -> None:
    err = _translate(KafkaError.TOPIC_ALREADY_EXISTS)
    assert type(err) is TopicExistsError
    assert "bulletins.north already exists" in str(err)
    assert ACTION in str(err)


def test_topic_exists_message_names_the_principal_and_says_topic_once() -> None:
    message = str(_translate(KafkaError.TOPIC_ALREADY_EXISTS))
    assert "topic topic" not in message
    assert PRINCIPAL in message


@pytest.mark.parametrize(
    "code",
    [
        KafkaError._TIMED_OUT,
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NOT_CONTROLLER,
        KafkaError.LEADER_NOT_AVAILABLE,
    ],
)
def test_unreachable_broker_becomes_retriable_kafka_unavailable_error(code: int) -> None:
    err = _translate(code)
    assert type(err) is KafkaUnavailableError
    assert err.retriable is True
    message = str(err)
    assert f"{PRINCIPAL}'s request to {ACTION} on {RESOURCE}" in message
    assert KafkaError(code).name() in message
    assert "retry" in message


def test_any_error_librdkafka_marks_retriable_becomes_kafka_unavailable_error() -> None:
    err = _translate(KafkaError.NOT_ENOUGH_REPLICAS, retriable=True)
    assert type(err) is KafkaUnavailableError


@pytest.mark.parametrize(
    "code",
    [
        KafkaError.INVALID_REPLICATION_FACTOR,
        KafkaError.INVALID_PARTITIONS,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError.POLICY_VIOLATION,
    ],
)
def test_other_broker_refusals_become_kafka_operation_error_with_the_kafka_name(
    code: int,
) -> None:
    err = _translate(code)
    assert type(err) is KafkaOperationError
    kafka_error = KafkaError(code)
    assert str(err) == (
        f"{PRINCIPAL} could not {ACTION} on {RESOURCE}: {kafka_error.name()}: {kafka_error.str()}"
    )
    assert err.retriable is False


@pytest.mark.parametrize(
    "timeout", [TimeoutError("slow"), concurrent.futures.TimeoutError()], ids=["builtin", "futures"]
)
def test_timeout_becomes_kafka_unavailable_error(timeout: BaseException) -> None:
    err = translate_kafka_error(timeout, action=ACTION, principal=PRINCIPAL, resource=RESOURCE)
    assert type(err) is KafkaUnavailableError
    assert err.retriable is True
    assert f"timed out waiting for the broker to {ACTION} on {RESOURCE} for {PRINCIPAL}" in str(err)


def test_unknown_exception_becomes_kafka_operation_error_keeping_its_text() -> None:
    err = translate_kafka_error(RuntimeError("boom"), action="list topics", principal=PRINCIPAL)
    assert type(err) is KafkaOperationError
    assert str(err) == f"{PRINCIPAL} could not list topics: boom"


def test_kafka_exception_without_an_error_becomes_kafka_operation_error() -> None:
    err = translate_kafka_error(KafkaException(), action="list topics", principal=PRINCIPAL)
    assert type(err) is KafkaOperationError
    assert PRINCIPAL in str(err)


def test_resource_is_left_out_of_the_message_when_not_given() -> None:
    exc = KafkaException(KafkaError(KafkaError.CLUSTER_AUTHORIZATION_FAILED))
    err = translate_kafka_error(exc, action="list topics", principal=PRINCIPAL)
    assert f"{PRINCIPAL} is not authorized to list topics (" in str(err)
    assert " on " not in str(err)


# -- ACL conversion to and from librdkafka ----------------------------------------------------


@pytest.mark.parametrize("operation", list(AclOperation))
def test_every_acl_operation_has_a_librdkafka_counterpart(operation: AclOperation) -> None:
    assert _op(operation).name == operation.value


def test_cluster_resource_is_librdkafkas_broker_resource_type() -> None:
    acl = Acl(
        principal=PRINCIPAL,
        resource_type=ResourceType.CLUSTER,
        resource_name="kafka-cluster",
        operation=AclOperation.IDEMPOTENT_WRITE,
    )
    assert _to_binding(acl).restype == ck.ResourceType.BROKER


_ACLS = st.builds(
    Acl,
    principal=st.from_regex(r"User:[a-z][a-z0-9.-]{0,15}", fullmatch=True),
    resource_type=st.sampled_from(ResourceType),
    resource_name=st.from_regex(r"[a-zA-Z0-9._-]{1,20}", fullmatch=True),
    operation=st.sampled_from(AclOperation),
    pattern=st.sampled_from(PatternType),
    permission=st.sampled_from(AclPermission),
    host=st.sampled_from(["*", "127.0.0.1", "10.0.0.7"]),
)


@given(_ACLS)
def test_acl_survives_conversion_to_a_librdkafka_binding_and_back(acl: Acl) -> None:
    assert _from_binding(_to_binding(acl)) == acl


def test_empty_acl_filter_matches_any_resource_pattern_operation_and_permission() -> None:
    f = _to_filter(AclFilter())
    assert f.restype == ck.ResourceType.ANY
    assert f.resource_pattern_type == ck.ResourcePatternType.ANY
    assert f.operation == ck.AclOperation.ANY
    assert f.permission_type == ck.AclPermissionType.ANY
    # librdkafka reads None as "any"; its stubs type these as str, hence getattr.
    assert [getattr(f, field) for field in ("name", "principal", "host")] == [None, None, None]


def test_acl_filter_fields_carry_over_to_librdkafka() -> None:
    f = _to_filter(
        AclFilter(
            principal=PRINCIPAL,
            resource_type=ResourceType.TOPIC,
            resource_name="bulletins.",
            pattern=PatternType.PREFIXED,
            operation=AclOperation.WRITE,
            permission=AclPermission.DENY,
        )
    )
    assert f.restype == ck.ResourceType.TOPIC
    assert f.name == "bulletins."
    assert f.resource_pattern_type == ck.ResourcePatternType.PREFIXED
    assert f.principal == PRINCIPAL
    assert f.operation == ck.AclOperation.WRITE
    assert f.permission_type == ck.AclPermissionType.DENY
