"""How to reach a broker, and as whom."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

__all__ = ["KafkaConnection"]


class KafkaConnection(BaseModel):
    """Bootstrap address and SASL/SCRAM credentials for one principal.

    The password is a :class:`~pydantic.SecretStr`: it prints as ``**********`` in
    reprs, logs and validation errors, and is revealed only when a client is built.
    """

    # hide_input_in_errors: a validation error must never echo a plain-string password.
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    bootstrap_servers: str = Field(
        description="Comma-separated host:port list of the broker's SASL listener."
    )
    username: str = Field(min_length=1, description="SCRAM user; the principal is User:<name>.")
    password: SecretStr = Field(description="SCRAM password. Never logged.")
    mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256"] = "SCRAM-SHA-512"
    security_protocol: Literal["SASL_PLAINTEXT", "SASL_SSL"] = "SASL_PLAINTEXT"
    client_id: str = Field(default="liaison", min_length=1)

    @field_validator("bootstrap_servers")
    @classmethod
    def _host_port_list(cls, value: str) -> str:
        for entry in value.split(","):
            host, sep, port = entry.strip().rpartition(":")
            if (
                not sep
                or not host
                or not (port.isascii() and port.isdigit())
                or not 0 < int(port) < 65536
            ):
                raise ValueError(
                    f"bootstrap_servers entry {entry.strip()!r} is not host:port "
                    "(for example 127.0.0.1:9092)"
                )
        return value

    @property
    def principal(self) -> str:
        """The Kafka principal these credentials authenticate as."""
        return f"User:{self.username}"

    def with_credentials(self, username: str, password: str) -> KafkaConnection:
        """The same broker, another principal."""
        # model_validate, not model_copy: the new values must pass the same checks.
        return KafkaConnection.model_validate(
            {**self.model_dump(), "username": username, "password": SecretStr(password)}
        )

    def confluent_config(self) -> dict[str, str | int]:
        """Settings for a confluent-kafka (librdkafka) client."""
        return {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
            "sasl.mechanism": self.mechanism,
            "sasl.username": self.username,
            "sasl.password": self.password.get_secret_value(),
            "client.id": self.client_id,
        }

    def aiokafka_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for an aiokafka producer or consumer."""
        return {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol,
            "sasl_mechanism": self.mechanism,
            "sasl_plain_username": self.username,
            "sasl_plain_password": self.password.get_secret_value(),
            "client_id": self.client_id,
        }
