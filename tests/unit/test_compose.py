"""The committed docker-compose.yml agrees with the launcher's configuration.

Both are rendered from bus/broker/_properties.py. These tests fail when one side
is edited by hand, or when the file was not regenerated after a settings change.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from bus.broker import KAFKA_VERSION
from bus.broker._compose import (
    COMPOSE_CLIENT_PORT,
    COMPOSE_LOG_DIR,
    compose_cluster_id,
    render_compose,
)
from bus.broker._properties import (
    env_to_property,
    security_and_sizing,
    server_properties,
)

COMPOSE_FILE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
PASSWORD_PLACEHOLDER = "${LIAISON_BROKER_PASSWORD:?set it}"

# KAFKA_* variables the apache/kafka image passes to the JVM, not to server.properties.
_IMAGE_RUNTIME_VARS = frozenset({"KAFKA_HEAP_OPTS", "KAFKA_OPTS"})
# The settings that depend on where the broker runs, not on how it behaves.
_LOCATION_KEYS = frozenset(
    {"listeners", "advertised.listeners", "controller.quorum.voters", "log.dirs"}
)
_JAAS_KEYS = frozenset(
    {
        "listener.name.client.scram-sha-512.sasl.jaas.config",
        "listener.name.controller.plain.sasl.jaas.config",
    }
)


@pytest.fixture(scope="module")
def committed_text() -> str:
    return COMPOSE_FILE.read_text()


@pytest.fixture(scope="module")
def document(committed_text: str) -> dict[str, Any]:
    loaded = yaml.safe_load(committed_text)
    assert isinstance(loaded, dict)
    return cast(dict[str, Any], loaded)


@pytest.fixture(scope="module")
def services(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return cast(dict[str, dict[str, Any]], document["services"])


@pytest.fixture(scope="module")
def kafka_env(services: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return cast(dict[str, Any], services["kafka"]["environment"])


@pytest.fixture(scope="module")
def decoded(kafka_env: dict[str, Any]) -> dict[str, str]:
    """The kafka service's server.properties, decoded as the image decodes it."""
    return {
        env_to_property(name): value
        for name, value in kafka_env.items()
        if name.startswith("KAFKA_") and name not in _IMAGE_RUNTIME_VARS
    }


def _strings(node: object) -> Iterator[str]:
    """Every string key and value in a parsed YAML tree."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)


# -- (a) the committed file is what the code renders ----------------------------------


def test_committed_compose_file_is_exactly_what_render_compose_produces(
    committed_text: str,
) -> None:
    assert committed_text == render_compose(), (
        "docker-compose.yml does not match bus/broker/_compose.py: "
        "run `liaison broker compose` to regenerate it, and commit the result"
    )


# -- (b) the compose broker has the launcher's security and sizing --------------------


def test_every_security_and_sizing_setting_is_in_compose_with_the_same_value(
    decoded: dict[str, str],
) -> None:
    expected = security_and_sizing(broker_password=PASSWORD_PLACEHOLDER)
    missing = sorted(set(expected) - set(decoded))
    assert not missing, f"docker-compose.yml lacks {missing}"
    different = {k: (decoded[k], v) for k, v in expected.items() if decoded[k] != v}
    assert not different, f"docker-compose.yml disagrees (compose, launcher): {different}"


def test_compose_sets_nothing_beyond_security_sizing_and_location(
    decoded: dict[str, str],
) -> None:
    expected = set(security_and_sizing(broker_password=PASSWORD_PLACEHOLDER)) | _LOCATION_KEYS
    assert set(decoded) == expected


def test_compose_and_launcher_differ_only_in_location_and_password(
    decoded: dict[str, str],
) -> None:
    launcher = server_properties(
        host="127.0.0.1",
        client_port=19092,
        controller_port=19093,
        log_dir="/srv/liaison/kraft-logs",
        broker_password="literal-pw",
    )
    assert set(launcher) == set(decoded)
    differing = {k for k in launcher if launcher[k] != decoded[k]}
    assert differing == _LOCATION_KEYS | _JAAS_KEYS
    for key in _JAAS_KEYS:
        assert decoded[key] == launcher[key].replace("literal-pw", PASSWORD_PLACEHOLDER)


def test_compose_environment_values_are_all_strings(
    services: dict[str, dict[str, Any]],
) -> None:
    # An unquoted `false` or `1` would reach compose as a YAML bool or int.
    for name, service in services.items():
        for var, value in service["environment"].items():
            assert isinstance(value, str), f"{name}: {var}={value!r} is not a string"


def test_broker_advertises_the_published_client_port(decoded: dict[str, str]) -> None:
    assert decoded["advertised.listeners"] == f"CLIENT://localhost:{COMPOSE_CLIENT_PORT}"


# -- (c) no secrets, loopback only, pinned image, ordered start, healthcheck -------------


def test_compose_file_holds_no_literal_password(
    committed_text: str, document: dict[str, Any]
) -> None:
    assert "${LIAISON_BROKER_PASSWORD:?set it}" in committed_text
    # `password=...`, `user_broker=...`: each must be a ${...} placeholder, or $$VAR (a
    # compose-escaped `$` that the shell inside the container expands).
    credential = re.compile(r'(?:password|user_[a-z]+)=\\?"?(?P<value>[^"\\\],;\s]*)')
    values = [m["value"] for s in _strings(document) for m in credential.finditer(s)]
    assert len(values) >= 5  # two JAAS entries, user_broker, two --add-scram, health
    for value in values:
        assert value.startswith(("${", "$$")), f"literal credential {value!r}"


def test_password_variables_are_required_placeholders(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        for var, value in service["environment"].items():
            if "PASSWORD" in var:
                assert value == f"${{{var}:?set it}}", f"{name}: {var}"


def test_published_ports_bind_loopback_only(services: dict[str, dict[str, Any]]) -> None:
    published = [p for s in services.values() for p in s.get("ports", [])]
    assert published == [f"127.0.0.1:{COMPOSE_CLIENT_PORT}:{COMPOSE_CLIENT_PORT}"]


def test_every_service_runs_the_kafka_version_the_launcher_uses(
    services: dict[str, dict[str, Any]],
) -> None:
    assert {s["image"] for s in services.values()} == {f"apache/kafka:{KAFKA_VERSION}"}


def test_broker_waits_for_the_format_job_to_complete(
    services: dict[str, dict[str, Any]],
) -> None:
    assert services["kafka"]["depends_on"] == {
        "kafka-format": {"condition": "service_completed_successfully"}
    }
    assert services["kafka-format"]["restart"] == "no"


def test_broker_has_an_authenticated_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    health = services["kafka"]["healthcheck"]
    kind, script = health["test"]
    assert kind == "CMD-SHELL"
    assert f"localhost:{COMPOSE_CLIENT_PORT}" in script
    assert "SASL_PLAINTEXT" in script
    assert "SCRAM-SHA-512" in script
    assert health["retries"] > 0


def _format_job_properties(services: dict[str, dict[str, Any]]) -> dict[str, str]:
    """The properties the kafka-format job writes before `kafka-storage.sh format`."""
    (script,) = services["kafka-format"]["command"]
    match = re.search(r"printf '(?P<body>[^']*)' > /tmp/format\.properties", script)
    assert match is not None, f"no format.properties in the format job: {script!r}"
    lines = [line for line in match["body"].split("\\n") if line]
    return dict(line.split("=", 1) for line in lines)


def test_format_job_formats_the_volume_and_log_dir_the_broker_uses(
    services: dict[str, dict[str, Any]], decoded: dict[str, str]
) -> None:
    assert services["kafka-format"]["volumes"] == services["kafka"]["volumes"]
    assert services["kafka"]["volumes"] == [f"kafka-data:{COMPOSE_LOG_DIR}"]
    fmt = _format_job_properties(services)
    assert fmt["log.dirs"] == decoded["log.dirs"] == COMPOSE_LOG_DIR
    assert fmt["controller.quorum.voters"] == decoded["controller.quorum.voters"]
    assert fmt["node.id"] == decoded["node.id"]
    assert fmt["process.roles"] == decoded["process.roles"]


def test_format_job_bootstraps_both_scram_users(services: dict[str, dict[str, Any]]) -> None:
    (script,) = services["kafka-format"]["command"]
    assert "name=admin,password=$$LIAISON_ADMIN_PASSWORD" in script
    assert "name=broker,password=$$LIAISON_BROKER_PASSWORD" in script


def test_both_services_share_one_valid_cluster_id(services: dict[str, dict[str, Any]]) -> None:
    ids = {s["environment"]["CLUSTER_ID"] for s in services.values()}
    assert ids == {compose_cluster_id()}
    cid = compose_cluster_id()
    assert len(cid) == 22
    assert not cid.startswith("-")
    assert len(base64.urlsafe_b64decode(cid + "==")) == 16
