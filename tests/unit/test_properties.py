"""bus.broker._properties: the broker's one source of configuration.

The security invariants here are the ones a mistaken edit would silently break:
default deny, exactly two super users, SCRAM-only clients, PLAIN-only controller
(KAFKA-15513) and loopback-only listeners.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bus.broker._properties import (
    ADMIN_USER,
    BROKER_USER,
    NODE_ID,
    SCRAM_MECHANISM,
    _quote_jaas,
    env_to_property,
    property_to_env,
    render_properties,
    security_and_sizing,
    server_properties,
)

HOST = "127.0.0.1"
CLIENT_PORT = 19092
CONTROLLER_PORT = 19093
LOG_DIR = "/srv/liaison/kraft-logs"
PASSWORD = "broker-pw-Zq8"


def _server_props(host: str = HOST, password: str = PASSWORD) -> dict[str, str]:
    return server_properties(
        host=host,
        client_port=CLIENT_PORT,
        controller_port=CONTROLLER_PORT,
        log_dir=LOG_DIR,
        broker_password=password,
    )


def _listeners(value: str) -> dict[str, tuple[str, int]]:
    """``NAME://host:port,...`` as ``{NAME: (host, port)}``."""
    out: dict[str, tuple[str, int]] = {}
    for entry in value.split(","):
        match = re.fullmatch(r"(?P<name>[A-Z_]+)://(?P<host>[^:]+):(?P<port>\d+)", entry)
        assert match is not None, f"listener entry {entry!r} is not NAME://host:port"
        out[match["name"]] = (match["host"], int(match["port"]))
    return out


ALL_KEYS = sorted(set(_server_props()) | set(security_and_sizing(broker_password=PASSWORD)))


# -- property <-> environment variable encoding ---------------------------------------


@pytest.mark.parametrize("key", ALL_KEYS)
def test_every_broker_property_survives_the_env_round_trip(key: str) -> None:
    assert env_to_property(property_to_env(key)) == key


@pytest.mark.parametrize("key", ALL_KEYS)
def test_every_broker_property_encodes_to_a_valid_env_name(key: str) -> None:
    assert re.fullmatch(r"KAFKA_[A-Z0-9_]+", property_to_env(key))


@pytest.mark.parametrize(
    ("prop", "env"),
    [
        ("auto.create.topics.enable", "KAFKA_AUTO_CREATE_TOPICS_ENABLE"),
        (
            "listener.name.client.scram-sha-512.sasl.jaas.config",
            "KAFKA_LISTENER_NAME_CLIENT_SCRAM___SHA___512_SASL_JAAS_CONFIG",
        ),
        ("some_setting.name", "KAFKA_SOME__SETTING_NAME"),
    ],
)
def test_property_to_env_follows_the_apache_kafka_image_convention(prop: str, env: str) -> None:
    # The image maps `___` to `-`, `__` to `_` and `_` to `.` after lower-casing.
    assert property_to_env(prop) == env
    assert env_to_property(env) == prop


@pytest.mark.parametrize("name", ["LIAISON_BROKER_PASSWORD", "kafka_node_id", "CLUSTER_ID"])
def test_env_to_property_refuses_names_without_the_kafka_prefix(name: str) -> None:
    with pytest.raises(ValueError, match="not a KAFKA_ variable"):
        env_to_property(name)


# Property-like names: [a-z0-9]+ segments joined by exactly one of '.', '-', '_'.
# Segments are never empty, so no two separators touch. That restriction is needed:
# the image's encoding is ambiguous when they do. 'a_.b' and 'a-b' both encode as
# 'A___B'; 'a.-b' and 'a-.b' both as 'A____B'; 'a..b' and 'a_b' both as 'A__B'.
# Real Kafka property names never have adjacent separators. They are lower case,
# and the image lower-cases names, so the names generated here are lower case too.
_SEGMENT = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)
_PROPERTY_NAME = st.builds(
    lambda first, rest: first + "".join(sep + seg for sep, seg in rest),
    _SEGMENT,
    st.lists(st.tuples(st.sampled_from(".-_"), _SEGMENT), max_size=8),
)


@given(_PROPERTY_NAME)
def test_env_round_trip_holds_for_property_like_names(name: str) -> None:
    assert env_to_property(property_to_env(name)) == name


@given(_PROPERTY_NAME, _PROPERTY_NAME)
def test_distinct_property_like_names_get_distinct_env_names(a: str, b: str) -> None:
    assert (property_to_env(a) == property_to_env(b)) == (a == b)


# -- security invariants of server_properties -----------------------------------------


def test_no_acl_means_denied() -> None:
    assert _server_props()["allow.everyone.if.no.acl.found"] == "false"


def test_super_users_are_exactly_admin_and_broker() -> None:
    supers = _server_props()["super.users"].split(";")
    assert sorted(supers) == ["User:admin", "User:broker"]
    assert (ADMIN_USER, BROKER_USER) == ("admin", "broker")


def test_authorizer_is_the_kraft_standard_authorizer() -> None:
    assert (
        _server_props()["authorizer.class.name"]
        == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    )


def test_topics_are_never_auto_created() -> None:
    assert _server_props()["auto.create.topics.enable"] == "false"


def test_client_listener_enables_only_scram_sha_512() -> None:
    props = _server_props()
    assert SCRAM_MECHANISM == "SCRAM-SHA-512"
    assert props["listener.name.client.sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["sasl.mechanism.inter.broker.protocol"] == "SCRAM-SHA-512"
    assert props["listener.name.client.scram-sha-512.sasl.jaas.config"].startswith(
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
    )


def test_controller_listener_uses_plain_and_never_scram() -> None:
    props = _server_props()
    assert props["sasl.mechanism.controller.protocol"] == "PLAIN"
    assert props["listener.name.controller.sasl.enabled.mechanisms"] == "PLAIN"
    assert props["listener.name.controller.plain.sasl.jaas.config"].startswith(
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
    )
    controller_settings = {
        k: v
        for k, v in props.items()
        if k.startswith("listener.name.controller.") or k == "sasl.mechanism.controller.protocol"
    }
    for key, value in controller_settings.items():
        assert "scram" not in key.lower(), key
        assert "scram" not in value.lower(), key


def test_every_listener_is_sasl_and_none_is_plaintext() -> None:
    protocol_map = dict(
        entry.split(":") for entry in _server_props()["listener.security.protocol.map"].split(",")
    )
    assert protocol_map == {"CLIENT": "SASL_PLAINTEXT", "CONTROLLER": "SASL_PLAINTEXT"}


def test_listeners_bind_loopback_on_the_requested_ports() -> None:
    props = _server_props()
    assert _listeners(props["listeners"]) == {
        "CLIENT": (HOST, CLIENT_PORT),
        "CONTROLLER": (HOST, CONTROLLER_PORT),
    }


def test_only_the_client_listener_is_advertised_on_loopback() -> None:
    assert _listeners(_server_props()["advertised.listeners"]) == {"CLIENT": (HOST, CLIENT_PORT)}


def test_quorum_voter_is_this_node_on_loopback() -> None:
    assert _server_props()["controller.quorum.voters"] == f"{NODE_ID}@{HOST}:{CONTROLLER_PORT}"


def test_listener_names_match_the_security_protocol_map() -> None:
    props = _server_props()
    mapped = {entry.split(":")[0] for entry in props["listener.security.protocol.map"].split(",")}
    assert set(_listeners(props["listeners"])) == mapped
    assert props["controller.listener.names"] in mapped
    assert props["inter.broker.listener.name"] in mapped


def test_host_is_used_for_every_listener_address() -> None:
    props = _server_props(host="192.0.2.7")
    for key in ("listeners", "advertised.listeners"):
        assert {host for host, _ in _listeners(props[key]).values()} == {"192.0.2.7"}
    assert "127.0.0.1" not in props["listeners"]


def test_log_dir_is_the_one_given() -> None:
    assert _server_props()["log.dirs"] == LOG_DIR


def test_server_properties_extend_security_and_sizing_without_changing_it() -> None:
    base = security_and_sizing(broker_password=PASSWORD)
    props = _server_props()
    assert {k: props[k] for k in base} == base
    assert set(props) - set(base) == {
        "listeners",
        "advertised.listeners",
        "controller.quorum.voters",
        "log.dirs",
    }


def test_broker_password_reaches_both_listeners_quoted() -> None:
    props = _server_props()
    client = props["listener.name.client.scram-sha-512.sasl.jaas.config"]
    controller = props["listener.name.controller.plain.sasl.jaas.config"]
    assert f'username="broker" password="{PASSWORD}";' in client
    assert f'username="broker" password="{PASSWORD}" user_broker="{PASSWORD}";' in controller


def test_password_appears_only_in_jaas_settings() -> None:
    holding = {k for k, v in _server_props().items() if PASSWORD in v}
    assert holding == {
        "listener.name.client.scram-sha-512.sasl.jaas.config",
        "listener.name.controller.plain.sasl.jaas.config",
    }


@pytest.mark.parametrize("bad", ['pw"; evil=true', "pw\\", 'a"b'])
def test_server_properties_refuse_a_password_that_could_break_out_of_jaas(bad: str) -> None:
    with pytest.raises(ValueError, match="quotes or backslashes"):
        _server_props(password=bad)


# -- _quote_jaas ------------------------------------------------------------------------


def test_quote_jaas_wraps_a_plain_value_in_double_quotes() -> None:
    assert _quote_jaas("abc-123_XYZ") == '"abc-123_XYZ"'


@pytest.mark.parametrize("bad", ['"', 'a"b', "a\\b", "\\"])
def test_quote_jaas_refuses_quotes_and_backslashes(bad: str) -> None:
    with pytest.raises(ValueError, match="may not contain quotes or backslashes"):
        _quote_jaas(bad)


# -- render_properties ------------------------------------------------------------------


def _java_unescape(value: str) -> str:
    """Undo ``java.util.Properties`` escapes for one value."""
    out: list[str] = []
    chars = iter(value)
    for c in chars:
        if c != "\\":
            out.append(c)
            continue
        nxt = next(chars)
        if nxt == "u":
            out.append(chr(int("".join(next(chars) for _ in range(4)), 16)))
            continue
        out.append({"n": "\n", "t": "\t", "r": "\r", "f": "\f"}.get(nxt, nxt))
    # \\uXXXX escapes are UTF-16 code units: join surrogate pairs as Java does.
    return "".join(out).encode("utf-16-be", "surrogatepass").decode("utf-16-be")


def test_render_properties_starts_with_a_do_not_edit_header() -> None:
    first = render_properties({"a": "b"}).splitlines()[0]
    assert first.startswith("#")
    assert "Do not edit" in first


def test_render_properties_writes_one_line_per_key_in_order() -> None:
    text = render_properties({"b.key": "2", "a.key": "1", "c.key": ""})
    assert text.endswith("\n")
    assert text.splitlines()[1:] == ["b.key=2", "a.key=1", "c.key="]


def test_render_properties_escapes_backslashes() -> None:
    line = render_properties({"log.dirs": "C:\\kafka\\logs"}).splitlines()[1]
    assert line == "log.dirs=C:\\\\kafka\\\\logs"


def test_render_properties_escapes_newlines() -> None:
    text = render_properties({"k": "one\ntwo", "next": "x"})
    assert text.splitlines()[1:] == ["k=one\\ntwo", "next=x"]


def test_render_properties_value_ending_in_backslash_does_not_continue_the_line() -> None:
    # An odd number of trailing backslashes is a line continuation in Java.
    text = render_properties({"k": "ends\\", "next": "x"})
    assert text.splitlines()[1:] == ["k=ends\\\\", "next=x"]


# Any value a Java reader must get back unchanged: control characters Java treats as
# line breaks or whitespace, backslashes, leading spaces (Java strips unescaped ones) and
# non-ASCII including astral characters (Kafka reads the file as ISO-8859-1, so they
# must arrive as \\uXXXX escapes, surrogate pairs for the astral ones).
_VALUE = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E)
    | st.sampled_from("\n\r\t\f\\ ")
    | st.characters(min_codepoint=0xA0, exclude_categories=["Cs"]),
    max_size=40,
)


def test_render_properties_writes_only_ascii() -> None:
    text = render_properties({"log.dirs": "/data/Agence-Été/\U0001f4e6", "k": " lead"})
    assert text.isascii()
    assert "log.dirs=/data/Agence-\\u00c9t\\u00e9/\\ud83d\\udce6" in text
    assert "k=\\ lead" in text


@given(st.dictionaries(_PROPERTY_NAME, _VALUE, max_size=6))
def test_render_properties_reads_back_as_the_same_mapping(props: dict[str, str]) -> None:
    lines = render_properties(props).split("\n")
    assert lines[-1] == ""  # the text ends with a newline
    body = lines[1:-1]
    assert len(body) == len(props)
    parsed: dict[str, str] = {}
    for line in body:
        trailing = len(line) - len(line.rstrip("\\"))
        assert trailing % 2 == 0, f"{line!r} would continue onto the next line"
        key, _, value = line.partition("=")
        parsed[key] = _java_unescape(value)
    assert parsed == props
