"""The committed docker-compose.yml agrees with the launcher, the CLI and the Dockerfile.

The broker settings are rendered from bus/broker/_properties.py for both the launcher
and compose. These tests fail when one side is edited by hand, when the file was not
regenerated after a settings change, or when the system it describes could not start:
a dependency that waits on nothing, a service without a healthcheck, a `liaison ...`
command or option the CLI does not have, a probe on the wrong port. No Docker engine
is needed: they read the files.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
from collections.abc import Iterator, Sequence
from graphlib import TopologicalSorter
from pathlib import Path
from typing import Any, cast

import pytest
import typer
import typer.core
import typer.main
import yaml

from bus.broker import KAFKA_VERSION
from bus.broker._compose import (
    COMPOSE_CLIENT_PORT,
    COMPOSE_IMAGE,
    COMPOSE_LOG_DIR,
    COMPOSE_STATE_DIR,
    compose_cluster_id,
    render_compose,
)
from bus.broker._properties import (
    env_to_property,
    security_and_sizing,
    server_properties,
)

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
PASSWORD_PLACEHOLDER = "${LIAISON_BROKER_PASSWORD:?set it}"
ADMIN_PASSWORD_PLACEHOLDER = "${LIAISON_ADMIN_PASSWORD:?set it}"
_SECRET_VARIABLES = frozenset({"LIAISON_ADMIN_PASSWORD", "LIAISON_BROKER_PASSWORD"})

_BROKER_SERVICES = ("kafka-format", "kafka")
_LIAISON_SERVICES = ("setup", "edge", "api", "demo-agencies")
_ONE_SHOT_SERVICES = frozenset({"kafka-format", "setup"})
_LONG_RUNNING_SERVICES = frozenset({"kafka", "edge", "api", "demo-agencies"})
_CONDITIONS = frozenset({"service_healthy", "service_completed_successfully"})
_HEALTHCHECK_KEYS = ("test", "interval", "timeout", "retries", "start_period")
# The HTTP endpoint each long-running Liaison service is probed on: the option that sets
# its port, the port, and the path.
_HTTP_PROBES = {
    "edge": ("--metrics-port", 9102, "/metrics"),
    "api": ("--port", 8000, "/readyz"),
    "demo-agencies": ("--health-port", 8081, "/healthz"),
}
_PORT_OPTIONS = frozenset(option for option, _, _ in _HTTP_PROBES.values())

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
        for var, value in service.get("environment", {}).items():
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
    required = {f"${{{var}:?set it}}" for var in _SECRET_VARIABLES}
    for name, service in services.items():
        for var, value in service.get("environment", {}).items():
            if var in _SECRET_VARIABLES:
                assert value == f"${{{var}:?set it}}", f"{name}: {var}"
            elif "PASSWORD" in var:
                assert value in required, f"{name}: {var}={value!r} is not a required placeholder"


def test_every_interpolation_is_a_required_variable_the_header_tells_you_to_export(
    committed_text: str, document: dict[str, Any]
) -> None:
    # `$${...}` would be compose's escape for a literal `${`: not an interpolation.
    used = [u for s in _strings(document) for u in re.findall(r"(?<!\$)\$\{([^}]*)\}", s)]
    assert used
    not_required = sorted({u for u in used if not re.fullmatch(r"[A-Z_]+:\?set it", u)})
    assert not not_required, f"optional or defaulted variables: {not_required}"
    export = re.search(r"^#\s+export\s+(?P<vars>(?:[A-Z_]+=\.\.\.\s+)+)", committed_text, re.M)
    assert export is not None, "the header has no `export ...` line"
    exported = {v.removesuffix("=...") for v in export["vars"].split()}
    assert {u.split(":")[0] for u in used} == exported == _SECRET_VARIABLES


def test_liaison_services_hold_secrets_only_as_paths_into_the_state_volume(
    services: dict[str, dict[str, Any]],
) -> None:
    secretive = re.compile(r"TOKEN|KEY|CREDENTIAL|SECRET")
    for name in _LIAISON_SERVICES:
        service = services[name]
        for var, value in service.get("environment", {}).items():
            if secretive.search(var):
                assert value.startswith(f"{COMPOSE_STATE_DIR}/"), (
                    f"{name}: {var}={value!r} is not a file in the state volume"
                )
        flags = [w for w in service["command"] if re.search(r"password|token|secret|key", w)]
        assert not flags, f"{name} passes a secret on its command line: {flags}"


def test_published_ports_bind_loopback_only(services: dict[str, dict[str, Any]]) -> None:
    published = [p for s in services.values() for p in s.get("ports", [])]
    assert published
    for port in published:
        assert port.startswith("127.0.0.1:"), f"{port} is published beyond loopback"
    api_port = _HTTP_PROBES["api"][1]
    assert sorted(published) == sorted(
        f"127.0.0.1:{p}:{p}" for p in (COMPOSE_CLIENT_PORT, api_port)
    )


def test_broker_services_run_the_kafka_version_the_launcher_uses(
    services: dict[str, dict[str, Any]],
) -> None:
    assert {services[s]["image"] for s in _BROKER_SERVICES} == {f"apache/kafka:{KAFKA_VERSION}"}
    assert {services[s]["image"] for s in _LIAISON_SERVICES} == {COMPOSE_IMAGE}
    assert set(services) == {*_BROKER_SERVICES, *_LIAISON_SERVICES}


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


def test_both_broker_services_share_one_valid_cluster_id(
    services: dict[str, dict[str, Any]],
) -> None:
    ids = {services[s]["environment"]["CLUSTER_ID"] for s in _BROKER_SERVICES}
    assert ids == {compose_cluster_id()}
    cid = compose_cluster_id()
    assert len(cid) == 22
    assert not cid.startswith("-")
    assert len(base64.urlsafe_b64decode(cid + "==")) == 16


# -- (d) the whole system: start order, healthchecks, one network, one state volume -------


def _dependencies(service: dict[str, Any]) -> dict[str, Any]:
    depends_on = service.get("depends_on", {})
    assert isinstance(depends_on, dict), f"depends_on as a list waits for nothing: {depends_on}"
    return cast(dict[str, Any], depends_on)


def _option_value(command: Sequence[str], option: str) -> str:
    assert option in command, f"`{' '.join(command)}` does not pass {option}"
    index = command.index(option)
    assert index + 1 < len(command), f"`{' '.join(command)}` gives {option} no value"
    return command[index + 1]


def test_one_shot_jobs_run_once_and_everything_else_is_kept_running(
    services: dict[str, dict[str, Any]],
) -> None:
    # Compose's default is restart: "no", so a long-running service must ask to be restarted.
    one_shot = {name for name, s in services.items() if s.get("restart", "no") == "no"}
    assert one_shot == _ONE_SHOT_SERVICES, f"one-shot: {sorted(one_shot)}"
    assert set(services) - one_shot == _LONG_RUNNING_SERVICES
    for name in _ONE_SHOT_SERVICES:
        assert services[name].get("restart") == "no", f"{name} must say restart: 'no' itself"
        assert "healthcheck" not in services[name], f"{name} is a job: others wait for its exit"


@pytest.mark.parametrize("name", sorted(_LONG_RUNNING_SERVICES))
def test_every_long_running_service_has_a_complete_healthcheck(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    health = services[name].get("healthcheck")
    assert isinstance(health, dict), f"{name} has no healthcheck"
    missing = [key for key in _HEALTHCHECK_KEYS if key not in health]
    assert not missing, f"{name}'s healthcheck lacks {missing}"
    kind, *probe = health["test"]
    assert kind in {"CMD", "CMD-SHELL"}, f"{name}: healthcheck test starts with {kind!r}"
    assert probe, f"{name}: the healthcheck runs nothing"
    for key in ("interval", "timeout", "start_period"):
        assert re.fullmatch(r"[1-9][0-9]*(ms|s|m)", health[key]), f"{name}: {key}={health[key]!r}"
    assert isinstance(health["retries"], int), f"{name}: retries={health['retries']!r}"
    assert health["retries"] > 0


def test_every_dependency_waits_on_a_condition_of_an_existing_service(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        for dependency, spec in _dependencies(service).items():
            where = f"{name} depends on {dependency}"
            assert dependency in services, f"{where}, which is not a service"
            condition = spec.get("condition") if isinstance(spec, dict) else None
            assert condition in _CONDITIONS, f"{where} with condition {condition!r}"
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency], f"{where}: it has no healthcheck"
            else:
                assert dependency in _ONE_SHOT_SERVICES, f"{where} to exit, but it runs on"


def test_services_start_in_an_order_without_cycles(services: dict[str, dict[str, Any]]) -> None:
    graph: dict[str, set[str]] = {}
    for name, service in services.items():
        graph[name] = set(_dependencies(service))
        mode = service.get("network_mode", "")
        if mode.startswith("service:"):  # a namespace exists only once its owner has started
            graph[name].add(mode.removeprefix("service:"))
    order = list(TopologicalSorter(graph).static_order())  # raises CycleError on a cycle
    assert order.index("kafka-format") < order.index("kafka") < order.index("setup")
    assert order.index("setup") < order.index("edge") < order.index("api")
    assert order.index("api") < order.index("demo-agencies")


def test_system_comes_up_as_a_chain_each_step_waiting_for_the_one_before(
    services: dict[str, dict[str, Any]],
) -> None:
    def waits(name: str) -> dict[str, str]:
        return {d: s["condition"] for d, s in _dependencies(services[name]).items()}

    assert waits("setup") == {"kafka": "service_healthy"}
    assert waits("edge") == {"setup": "service_completed_successfully"}
    assert waits("api") == {"setup": "service_completed_successfully", "edge": "service_healthy"}
    assert waits("demo-agencies") == {"api": "service_healthy"}


def test_liaison_services_run_the_image_built_from_the_repository_dockerfile(
    services: dict[str, dict[str, Any]],
) -> None:
    builders = [name for name in _LIAISON_SERVICES if "build" in services[name]]
    assert builders, f"no service builds {COMPOSE_IMAGE}"
    for name in builders:
        assert services[name]["build"] == ".", f"{name} builds from {services[name]['build']!r}"
    for name in set(_LIAISON_SERVICES) - set(builders):
        # Built by another service; never pulled from a registry under the same name.
        assert services[name].get("pull_policy") == "never", f"{name} may pull {COMPOSE_IMAGE}"
    assert DOCKERFILE.is_file(), "build: . needs a Dockerfile at the repository root"


def test_liaison_services_share_the_brokers_network_and_reach_it_where_it_advertises(
    services: dict[str, dict[str, Any]], decoded: dict[str, str]
) -> None:
    for name in _LIAISON_SERVICES:
        assert services[name].get("network_mode") == "service:kafka", (
            f"{name} is not in kafka's network namespace, where localhost:9092 is the broker"
        )
        assert "ports" not in services[name], f"{name}: publish ports on kafka, it owns the net"
    advertised = decoded["advertised.listeners"].removeprefix("CLIENT://")
    assert services["setup"]["environment"]["LIAISON_KAFKA_BOOTSTRAP"] == advertised


def test_ports_inside_the_shared_network_namespace_are_distinct(
    services: dict[str, dict[str, Any]], decoded: dict[str, str]
) -> None:
    ports = [int(p) for p in re.findall(r":(\d+)", decoded["listeners"])]
    for name in _LIAISON_SERVICES:
        command = services[name]["command"]
        ports += [int(_option_value(command, o)) for o in _PORT_OPTIONS if o in command]
    assert len(ports) == len(set(ports)), f"ports collide in kafka's namespace: {sorted(ports)}"


def test_setup_provisions_the_bus_as_admin_with_the_admin_password(
    services: dict[str, dict[str, Any]],
) -> None:
    env = services["setup"]["environment"]
    assert env["LIAISON_KAFKA_USERNAME"] == "admin"
    assert env["LIAISON_KAFKA_PASSWORD"] == ADMIN_PASSWORD_PLACEHOLDER


def test_liaison_services_keep_their_state_in_the_state_volume(
    services: dict[str, dict[str, Any]], document: dict[str, Any]
) -> None:
    assert "liaison-state" in document["volumes"]
    mount = f"liaison-state:{COMPOSE_STATE_DIR}"
    assert services["setup"]["volumes"] == [mount], "setup writes the state: read-write"
    for name in _LIAISON_SERVICES:
        service = services[name]
        assert service["volumes"] in ([mount], [f"{mount}:ro"]), name
        if "--state-dir" in service["command"]:
            assert _option_value(service["command"], "--state-dir") == COMPOSE_STATE_DIR, name
        for var, value in service.get("environment", {}).items():
            if value.startswith("/"):
                assert value.startswith(f"{COMPOSE_STATE_DIR}/"), f"{name}: {var}={value}"


@pytest.mark.parametrize(
    ("name", "option", "port", "path"), [(n, *p) for n, p in _HTTP_PROBES.items()]
)
def test_healthcheck_probes_the_port_the_command_serves_on(
    services: dict[str, dict[str, Any]], name: str, option: str, port: int, path: str
) -> None:
    service = services[name]
    assert int(_option_value(service["command"], option)) == port
    probe = service["healthcheck"]["test"][1:]
    urls = re.findall(r"https?://([^:/'\"\s]+):(\d+)(/[^'\"\s]*)", " ".join(probe))
    assert urls == [("localhost", str(port), path)], f"{name} probes {urls}"


@pytest.mark.parametrize("name", sorted(_HTTP_PROBES))
def test_healthchecks_in_the_liaison_image_are_python_programs(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    # python:3.12-slim has no curl or wget.
    test = services[name]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"], f"{name}: {test}"
    (program,) = test[3:]
    assert "urllib.request" in program
    compile(program, f"<{name} healthcheck>", "exec")  # raises SyntaxError if it is not Python


def test_admin_api_is_published_where_the_header_sends_you(
    services: dict[str, dict[str, Any]], committed_text: str
) -> None:
    command = services["api"]["command"]
    port = int(_option_value(command, "--port"))
    # A published port reaches the namespace's interface, not its loopback.
    assert _option_value(command, "--host") == "0.0.0.0"  # noqa: S104
    assert f"127.0.0.1:{port}:{port}" in services["kafka"]["ports"]
    header = committed_text.split("\nname:", 1)[0]
    assert f"http://localhost:{port}/dashboard" in header
    assert f"docker compose exec api cat {COMPOSE_STATE_DIR}/admin-token" in header


# -- (e) every `liaison ...` command is one the CLI has -----------------------------------


@pytest.fixture(scope="module")
def cli() -> typer.core.TyperGroup:
    # Imported here, not at the top: a CLI that fails to import fails these tests only.
    from bus.cli import app

    root = typer.main.get_command(app)
    assert isinstance(root, typer.core.TyperGroup)
    return root


def _cli_problems(root: typer.core.TyperGroup, argv: Sequence[str]) -> list[str]:
    """What a `liaison ...` command line uses that the CLI does not have."""
    assert argv[0] == "liaison", argv
    command: Any = root
    path = ["liaison"]
    words = list(argv[1:])
    while isinstance(command, typer.core.TyperGroup):
        ctx = typer.Context(command, info_name=path[-1])
        known = ", ".join(command.list_commands(ctx))
        if not words or words[0].startswith("-"):
            return [f"`{' '.join(path)}` needs a sub-command (one of: {known})"]
        name = words.pop(0)
        sub = command.get_command(ctx, name)
        if sub is None:
            return [f"`{' '.join(path)}` has no command {name!r} (it has: {known})"]
        command, path = sub, [*path, name]
    options = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    used = [word.split("=", 1)[0] for word in words if word.startswith("-")]
    missing = [option for option in used if option not in options]
    if missing:
        has = ", ".join(sorted(o for o in options if o.startswith("--")))
        return [f"`{' '.join(path)}` has no option {', '.join(missing)} (it has: {has})"]
    return []


def test_every_service_running_liaison_is_checked_against_the_cli(
    services: dict[str, dict[str, Any]],
) -> None:
    running = {n for n, s in services.items() if s.get("command", [None])[0] == "liaison"}
    assert running == set(_LIAISON_SERVICES)


@pytest.mark.parametrize("name", _LIAISON_SERVICES)
def test_service_command_is_a_real_liaison_command_with_real_options(
    services: dict[str, dict[str, Any]], cli: typer.core.TyperGroup, name: str
) -> None:
    command = services[name]["command"]
    problems = _cli_problems(cli, command)
    assert not problems, f"service {name!r} runs `{' '.join(command)}`, but " + "; ".join(problems)


# -- (f) the Dockerfile the Liaison services are built from --------------------------------


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, comments dropped and continuation lines joined."""
    lines = [ln for ln in DOCKERFILE.read_text().splitlines() if not ln.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    instructions = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, arguments = line.strip().partition(" ")
            instructions.append((keyword.upper(), " ".join(arguments.split())))
    return instructions


def _arguments(keyword: str) -> list[str]:
    return [arguments for kw, arguments in _dockerfile() if kw == keyword]


def test_dockerfile_builds_one_stage_on_python_slim() -> None:
    assert _arguments("FROM") == ["python:3.12-slim"]


def test_dockerfile_installs_the_repository_as_a_package() -> None:
    (copied,) = _arguments("COPY")
    source, destination = copied.split()
    assert source == "."
    installs = [
        r for r in _arguments("RUN") if re.search(r"\bpip install --no-cache-dir \.(\s|$)", r)
    ]
    assert installs, "no `pip install --no-cache-dir .` in the Dockerfile"
    # Not an editable install: the schemas beside the source are found through the variable.
    env = dict(
        pair.split("=", 1) for arguments in _arguments("ENV") for pair in shlex.split(arguments)
    )
    schemas = f"{destination.rstrip('/')}/schemas"
    assert env.get("LIAISON_SCHEMAS_DIR") == schemas, f"LIAISON_SCHEMAS_DIR is not {schemas}"
    assert (REPO / "schemas").is_dir()


def test_dockerfile_runs_as_a_non_root_user_who_owns_the_state_directory() -> None:
    users = _arguments("USER")
    assert users, "the image runs as root"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}, f"the image runs as {users[-1]}"
    run = " && ".join(_arguments("RUN"))
    assert re.search(rf"\b(useradd|adduser)\b[^&;]*\b{user}\b", run), f"{user} is never created"
    # A named volume starts as a copy of the image's directory, owner included.
    assert re.search(rf"\bchown\s+(-R\s+)?{user}(:\S+)?\s+{COMPOSE_STATE_DIR}\b", run), (
        f"{COMPOSE_STATE_DIR} is not owned by {user}: the state volume would be read-only to it"
    )
    keywords = [keyword for keyword, _ in _dockerfile()]
    assert "RUN" not in keywords[keywords.index("USER") :], "RUN after USER"


def test_dockerfile_leaves_the_whole_command_to_compose() -> None:
    assert not _arguments("ENTRYPOINT"), "compose commands already start with `liaison`"
    (cmd,) = _arguments("CMD")
    assert json.loads(cmd)[0] == "liaison"


def test_build_context_leaves_out_local_environments_and_history() -> None:
    ignored = {
        line.strip().rstrip("/")
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    missing = {".git", ".venv", ".liaison"} - ignored
    assert not missing, f".dockerignore does not exclude {sorted(missing)}"
    for needed in ("pyproject.toml", "README.md", "schemas", "bus"):
        assert needed not in ignored, f"the build needs {needed}"
