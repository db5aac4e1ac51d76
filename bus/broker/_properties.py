"""The broker's configuration, written once and rendered twice.

:func:`security_and_sizing` is the single source of every setting that decides how
the broker behaves: listeners' security, the authorizer, super users, and the
small-machine sizing. :func:`server_properties` renders it for the launcher,
:func:`compose_environment` for the official ``apache/kafka`` image, and a test
decodes the committed ``docker-compose.yml`` back into properties to prove both
agree.

Listeners:

* ``CLIENT``: SASL_PLAINTEXT with SCRAM-SHA-512 only. Agencies, services and the
  broker's own inter-broker traffic (transaction markers, KIP-890 verification)
  arrive here.
* ``CONTROLLER``: SASL_PLAINTEXT with PLAIN. SCRAM on the controller listener is
  an open bug (KAFKA-15513), so it is never used there.

Principals: ``User:admin`` (bus administration) and ``User:broker`` (inter-broker
and controller) are the only super users. Everything else is default deny.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "ADMIN_USER",
    "BROKER_USER",
    "COMPOSE_BROKER_PASSWORD",
    "NODE_ID",
    "SCRAM_MECHANISM",
    "compose_environment",
    "env_to_property",
    "property_to_env",
    "security_and_sizing",
    "server_properties",
]

ADMIN_USER = "admin"
BROKER_USER = "broker"
SCRAM_MECHANISM = "SCRAM-SHA-512"
NODE_ID = 1
COMPOSE_BROKER_PASSWORD = "${LIAISON_BROKER_PASSWORD:?set it}"  # noqa: S105 - a placeholder
"""Not a password: docker compose substitutes the caller's environment variable here."""

_SCRAM_SERVER_JAAS = "org.apache.kafka.common.security.scram.ScramLoginModule required"
_PLAIN_JAAS = "org.apache.kafka.common.security.plain.PlainLoginModule required"


def _quote_jaas(value: str) -> str:
    if '"' in value or "\\" in value:
        raise ValueError("JAAS values may not contain quotes or backslashes")
    return f'"{value}"'


def security_and_sizing(*, broker_password: str) -> dict[str, str]:
    """Every setting that does not depend on where the broker runs.

    ``broker_password`` may be a literal or a placeholder such as
    ``${LIAISON_BROKER_PASSWORD}`` that docker compose substitutes.
    """
    pw = _quote_jaas(broker_password)
    scram = SCRAM_MECHANISM.lower()
    return {
        # KRaft combined mode, one node.
        "process.roles": "broker,controller",
        "node.id": str(NODE_ID),
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "CLIENT",
        "listener.security.protocol.map": "CLIENT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
        # Client listener: SCRAM only. The username/password are what the broker
        # itself uses when it connects to this listener as a client.
        "sasl.enabled.mechanisms": SCRAM_MECHANISM,
        "sasl.mechanism.inter.broker.protocol": SCRAM_MECHANISM,
        "listener.name.client.sasl.enabled.mechanisms": SCRAM_MECHANISM,
        f"listener.name.client.{scram}.sasl.jaas.config": (
            f"{_SCRAM_SERVER_JAAS} username={_quote_jaas(BROKER_USER)} password={pw};"
        ),
        # Controller listener: PLAIN, never SCRAM (KAFKA-15513). The same entry both
        # checks incoming logins (user_<name>) and is what the broker logs in with.
        "sasl.mechanism.controller.protocol": "PLAIN",
        "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.controller.plain.sasl.jaas.config": (
            f"{_PLAIN_JAAS} username={_quote_jaas(BROKER_USER)} password={pw} "
            f"user_{BROKER_USER}={pw};"
        ),
        # Authorization: default deny, two super users.
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found": "false",
        "super.users": f"User:{ADMIN_USER};User:{BROKER_USER}",
        # Small machine: one replica, one partition for internal topics, no waits.
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "share.coordinator.state.topic.num.partitions": "1",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "num.partitions": "1",
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "false",
        "num.network.threads": "2",
        "num.io.threads": "2",
        # The cleaner's dedupe buffer lives on the heap (128 MiB by default).
        "log.cleaner.dedupe.buffer.size": str(32 * 1024 * 1024),
    }


def server_properties(
    *,
    host: str,
    client_port: int,
    controller_port: int,
    log_dir: str,
    broker_password: str,
) -> dict[str, str]:
    """The launcher's ``server.properties`` as an ordered mapping."""
    props = security_and_sizing(broker_password=broker_password)
    props.update(
        {
            "listeners": f"CLIENT://{host}:{client_port},CONTROLLER://{host}:{controller_port}",
            "advertised.listeners": f"CLIENT://{host}:{client_port}",
            "controller.quorum.voters": f"{NODE_ID}@{host}:{controller_port}",
            "log.dirs": log_dir,
        }
    )
    return props


_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\f": "\\f"}


def _escape_value(value: str) -> str:
    """Escape a value the way ``java.util.Properties.load`` reads it back.

    Kafka loads properties as ISO-8859-1, so non-ASCII becomes ``\\uXXXX``; a leading
    space would be stripped, so it is escaped too.
    """
    out = []
    for i, ch in enumerate(value):
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ch == " " and i == 0:
            out.append("\\ ")
        elif not ch.isascii():
            out.extend(f"\\u{unit:04x}" for unit in _utf16_units(ch))
        else:
            out.append(ch)
    return "".join(out)


def _utf16_units(ch: str) -> list[int]:
    data = ch.encode("utf-16-be")
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def render_properties(props: Mapping[str, str]) -> str:
    """Render a mapping in Java ``.properties`` syntax (values are escaped)."""
    lines = ["# Generated by liaison: bus/broker/_properties.py. Do not edit."]
    lines.extend(f"{key}={_escape_value(value)}" for key, value in props.items())
    return "\n".join(lines) + "\n"


def property_to_env(name: str) -> str:
    """The ``apache/kafka`` image's variable name for a property.

    The image lower-cases the name after ``KAFKA_`` and maps ``___`` to ``-``,
    ``__`` to ``_`` and ``_`` to ``.``; this is its inverse.
    """
    out = name.replace("_", "__").replace("-", "___").replace(".", "_")
    return "KAFKA_" + out.upper()


def env_to_property(name: str) -> str:
    """Decode an image variable name into its property, as the image does."""
    if not name.startswith("KAFKA_"):
        raise ValueError(f"{name!r} is not a KAFKA_ variable")
    body = name.removeprefix("KAFKA_").lower()
    # Placeholders keep the three rules from stepping on each other.
    body = body.replace("___", "\x00").replace("__", "\x01").replace("_", ".")
    return body.replace("\x00", "-").replace("\x01", "_")


def compose_environment(
    *, service_host: str, client_port: int, controller_port: int, log_dir: str
) -> dict[str, str]:
    """Environment for the broker service in ``docker-compose.yml``.

    Secrets are compose placeholders, substituted from the caller's environment.
    """
    props = security_and_sizing(broker_password=COMPOSE_BROKER_PASSWORD)
    props.update(
        {
            "listeners": f"CLIENT://0.0.0.0:{client_port},CONTROLLER://0.0.0.0:{controller_port}",
            "advertised.listeners": f"CLIENT://{service_host}:{client_port}",
            "controller.quorum.voters": f"{NODE_ID}@{service_host}:{controller_port}",
            "log.dirs": log_dir,
        }
    )
    return {property_to_env(k): v for k, v in props.items()}
