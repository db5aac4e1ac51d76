"""bus.kafka._connection: where a broker is, as whom, and never leaking the password."""

from __future__ import annotations

import inspect
from typing import Any

import aiokafka
import pytest
from pydantic import SecretStr, ValidationError

from bus.kafka import KafkaConnection

PASSWORD = "Pw-never-printed-7f3a"


def _connection(**overrides: Any) -> KafkaConnection:
    fields: dict[str, Any] = {
        "bootstrap_servers": "127.0.0.1:9092",
        "username": "agency-north",
        "password": SecretStr(PASSWORD),
    }
    fields.update(overrides)
    return KafkaConnection.model_validate(fields)


# -- the password stays secret ----------------------------------------------------------


def test_password_never_appears_in_repr() -> None:
    assert PASSWORD not in repr(_connection())
    assert "**********" in repr(_connection())


def test_password_never_appears_in_str() -> None:
    assert PASSWORD not in str(_connection())


def test_password_never_appears_in_format_or_fstring() -> None:
    conn = _connection()
    assert PASSWORD not in f"{conn}"
    assert PASSWORD not in f"{conn!r}"


def test_password_never_appears_in_model_dump_json() -> None:
    assert PASSWORD not in _connection().model_dump_json()


def test_password_is_masked_in_model_dump() -> None:
    dumped = _connection().model_dump()
    assert isinstance(dumped["password"], SecretStr)
    assert PASSWORD not in repr(dumped)


@pytest.mark.parametrize("password", [SecretStr(PASSWORD), PASSWORD])
@pytest.mark.parametrize(
    "bad",
    [
        {"bootstrap_servers": "no-port-here"},
        {"username": ""},
        {"mechanism": "PLAIN"},
        {"security_protocol": "PLAINTEXT"},
        {"unexpected": 1},
    ],
    ids=["bootstrap", "username", "mechanism", "protocol", "extra"],
)
def test_password_never_appears_in_a_field_validation_error(
    bad: dict[str, Any], password: SecretStr | str
) -> None:
    with pytest.raises(ValidationError) as caught:
        _connection(password=password, **bad)
    assert PASSWORD not in str(caught.value)
    assert PASSWORD not in caught.value.json()


def test_password_given_as_secret_never_appears_in_a_missing_field_error() -> None:
    with pytest.raises(ValidationError) as caught:
        KafkaConnection.model_validate({"username": "u", "password": SecretStr(PASSWORD)})
    assert "bootstrap_servers" in str(caught.value)
    assert PASSWORD not in str(caught.value)


def test_password_given_as_plain_string_never_appears_in_a_missing_field_error() -> None:
    with pytest.raises(ValidationError) as caught:
        KafkaConnection.model_validate({"username": "u", "password": PASSWORD})
    assert PASSWORD not in str(caught.value)


def test_password_is_revealed_only_to_client_settings() -> None:
    conn = _connection()
    assert conn.password.get_secret_value() == PASSWORD
    assert conn.confluent_config()["sasl.password"] == PASSWORD
    assert conn.aiokafka_kwargs()["sasl_plain_password"] == PASSWORD


# -- bootstrap_servers -------------------------------------------------------------------


@pytest.mark.parametrize(
    "servers",
    [
        "127.0.0.1:9092",
        "localhost:1",
        "broker-a:9092,broker-b:65535",
        "a:9092, b:9093",
        "[::1]:9092",
    ],
)
def test_valid_bootstrap_servers_are_kept_as_given(servers: str) -> None:
    assert _connection(bootstrap_servers=servers).bootstrap_servers == servers


@pytest.mark.parametrize(
    ("servers", "bad_entry"),
    [
        ("localhost", "localhost"),
        (":9092", ":9092"),
        ("broker:", "broker:"),
        ("broker:http", "broker:http"),
        ("broker:0", "broker:0"),
        ("broker:65536", "broker:65536"),
        ("broker:-1", "broker:-1"),
        ("good:9092,oops", "oops"),
        ("good:9092, bad:port ", "bad:port"),
        ("good:9092,", ""),
        ("", ""),
    ],
)
def test_bootstrap_servers_error_names_the_bad_entry(servers: str, bad_entry: str) -> None:
    with pytest.raises(ValidationError) as caught:
        _connection(bootstrap_servers=servers)
    message = str(caught.value)
    assert f"bootstrap_servers entry {bad_entry!r} is not host:port" in message
    assert "127.0.0.1:9092" in message  # shows an example of the right form


# -- client settings ---------------------------------------------------------------------


def test_confluent_config_carries_exactly_the_librdkafka_settings() -> None:
    conn = _connection(
        bootstrap_servers="a:1,b:2",
        mechanism="SCRAM-SHA-256",
        security_protocol="SASL_SSL",
        client_id="north-gateway",
    )
    assert conn.confluent_config() == {
        "bootstrap.servers": "a:1,b:2",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-256",
        "sasl.username": "agency-north",
        "sasl.password": PASSWORD,
        "client.id": "north-gateway",
    }


def test_aiokafka_kwargs_carry_exactly_the_sasl_settings() -> None:
    assert _connection().aiokafka_kwargs() == {
        "bootstrap_servers": "127.0.0.1:9092",
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "agency-north",
        "sasl_plain_password": PASSWORD,
        "client_id": "liaison",
    }


@pytest.mark.parametrize("client", [aiokafka.AIOKafkaProducer, aiokafka.AIOKafkaConsumer])
def test_aiokafka_kwargs_are_all_accepted_by_aiokafka_clients(client: type[Any]) -> None:
    accepted = set(inspect.signature(client).parameters)
    assert set(_connection().aiokafka_kwargs()) <= accepted


def test_defaults_are_scram_sha_512_over_sasl_plaintext() -> None:
    conn = _connection()
    assert conn.mechanism == "SCRAM-SHA-512"
    assert conn.security_protocol == "SASL_PLAINTEXT"
    assert conn.client_id == "liaison"


def test_principal_is_user_colon_username() -> None:
    assert _connection(username="agency-north").principal == "User:agency-north"


# -- with_credentials and immutability ---------------------------------------------------


def test_with_credentials_changes_only_the_principal_and_password() -> None:
    original = _connection(mechanism="SCRAM-SHA-256", client_id="svc")
    other = original.with_credentials("agency-south", "south-pw")
    assert other.username == "agency-south"
    assert other.principal == "User:agency-south"
    assert isinstance(other.password, SecretStr)
    assert other.password.get_secret_value() == "south-pw"
    assert other.model_dump(exclude={"username", "password"}) == original.model_dump(
        exclude={"username", "password"}
    )


def test_with_credentials_leaves_the_original_untouched() -> None:
    original = _connection()
    original.with_credentials("agency-south", "south-pw")
    assert original.username == "agency-north"
    assert original.password.get_secret_value() == PASSWORD


def test_with_credentials_keeps_the_new_password_secret() -> None:
    other = _connection().with_credentials("agency-south", "south-pw")
    assert "south-pw" not in repr(other)
    assert "south-pw" not in other.model_dump_json()


def test_with_credentials_validates_the_new_username() -> None:
    with pytest.raises(ValidationError):
        _connection().with_credentials("", "pw")


def test_connection_is_frozen() -> None:
    conn = _connection()
    with pytest.raises(ValidationError, match="frozen"):
        conn.username = "someone-else"  # type: ignore[misc]


def test_connection_refuses_unknown_settings() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        _connection(sasl_password="x")
