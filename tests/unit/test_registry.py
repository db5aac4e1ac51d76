"""Registry logic and its Confluent-compatible HTTP API, on the in-memory store (no broker).

The same fold runs over the Kafka topic in tests/integration/test_registry_interop.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bus.errors import IncompatibleSchemaError, InvalidSchemaError, RegistryLookupError
from bus.registry import (
    CONTENT_TYPE,
    MemoryRegistryStore,
    RegistryRecord,
    RegistryState,
    SchemaRegistry,
    SchemaVersion,
    create_registry_app,
)
from bus.schemas import ROOTS, CompatibilityMode, SchemaCatalog, canonical_json, releases
from tests.strategies import SCHEMA_DIR


def record(*fields: dict[str, Any]) -> str:
    return json.dumps(
        {"type": "record", "name": "Sighting", "namespace": "t", "fields": list(fields)}
    )


V1 = record({"name": "id", "type": "string"})
V2_OPTIONAL = record(
    {"name": "id", "type": "string"}, {"name": "note", "type": ["null", "string"], "default": None}
)
V2_REQUIRED = record({"name": "id", "type": "string"}, {"name": "count", "type": "int"})


def registry() -> SchemaRegistry:
    return SchemaRegistry(MemoryRegistryStore())


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_first_schema_gets_id_1_version_1() -> None:
    reg = registry()
    v = run(reg.register("s", V1))
    assert v == SchemaVersion("s", 1, 1, V1)


def test_registering_an_identical_schema_returns_the_existing_version() -> None:
    reg = registry()
    first = run(reg.register("s", V1))
    reformatted = json.dumps(json.loads(V1), indent=4)
    assert run(reg.register("s", reformatted)) == first
    assert len(reg.state.subjects["s"]) == 1


def test_the_same_schema_under_another_subject_keeps_its_global_id() -> None:
    reg = registry()
    run(reg.register("a", V1))
    run(reg.register("a", V2_OPTIONAL))
    v = run(reg.register("b", V2_OPTIONAL))
    assert (v.version, v.schema_id) == (1, 2)


def test_default_mode_refuses_a_new_required_field() -> None:
    reg = registry()
    run(reg.register("s", V1))
    with pytest.raises(IncompatibleSchemaError, match="reader field missing default value"):
        run(reg.register("s", V2_REQUIRED))
    assert [v.version for v in reg.state.subjects["s"]] == [1]


def test_mode_none_accepts_anything_valid() -> None:
    reg = registry()
    run(reg.register("s", V1))
    run(reg.set_mode("s", CompatibilityMode.NONE))
    assert run(reg.register("s", V2_REQUIRED)).version == 2


def test_transitive_mode_checks_every_earlier_version() -> None:
    v1 = record({"name": "id", "type": "string"}, {"name": "n", "type": "int", "default": 0})
    v2 = record({"name": "id", "type": "string"})  # drops n: fine for BACKWARD readers
    v3 = record({"name": "id", "type": "string"}, {"name": "n", "type": "string", "default": ""})
    lax, strict = registry(), registry()
    run(lax.set_mode(None, CompatibilityMode.BACKWARD))
    for reg in (lax, strict):
        run(reg.register("s", v1))
        run(reg.register("s", v2))

    assert run(lax.register("s", v3)).version == 3  # v3 reads v2's data
    with pytest.raises(IncompatibleSchemaError, match="version 1"):
        run(strict.register("s", v3))  # but not v1's int n


def test_invalid_schema_text_is_refused() -> None:
    with pytest.raises(InvalidSchemaError):
        run(registry().register("s", '{"type": "record", "name": "x"}'))


def test_the_fold_keeps_the_first_record_for_an_id_or_a_version() -> None:
    state = RegistryState()
    state.apply(RegistryRecord.schema(SchemaVersion("s", 1, 1, V1)))
    state.apply(RegistryRecord.schema(SchemaVersion("s", 1, 2, V2_OPTIONAL)))  # version taken
    state.apply(RegistryRecord.schema(SchemaVersion("t", 1, 1, V2_OPTIONAL)))  # id taken
    assert state.subjects["s"] == [SchemaVersion("s", 1, 1, V1)]
    assert "t" not in state.subjects
    assert state.schema_text(1) == V1


def test_records_survive_a_round_trip_through_bytes() -> None:
    original = RegistryRecord.schema(SchemaVersion("s", 3, 9, V1))
    assert RegistryRecord.from_bytes(original.key_bytes(), original.value_bytes()) == original
    tombstone = RegistryRecord.config("s", None)
    assert RegistryRecord.from_bytes(tombstone.key_bytes(), None) == tombstone


def test_config_records_set_and_clear_subject_modes() -> None:
    state = RegistryState()
    state.apply(RegistryRecord.config(None, CompatibilityMode.FULL))
    state.apply(RegistryRecord.config("s", CompatibilityMode.NONE))
    assert state.mode_for("s") is CompatibilityMode.NONE
    state.apply(RegistryRecord.config("s", None))
    assert state.mode_for("s") is CompatibilityMode.FULL


@pytest.mark.parametrize(
    ("call", "code"),
    [
        (lambda s: s.versions("missing"), 40401),
        (lambda s: s.version("s", 7), 40402),
        (lambda s: s.schema_text(99), 40403),
        (lambda s: s.lookup("s", V2_OPTIONAL), 40403),
    ],
)
def test_lookups_fail_with_confluents_error_codes(call: Any, code: int) -> None:
    state = RegistryState()
    state.apply(RegistryRecord.schema(SchemaVersion("s", 1, 1, V1)))
    with pytest.raises(RegistryLookupError) as caught:
        call(state)
    assert caught.value.error_code == code


# -- HTTP -------------------------------------------------------------------------------


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(create_registry_app(registry())) as c:
        yield c


def post(client: TestClient, path: str, body: dict[str, Any]) -> Any:
    return client.post(path, content=json.dumps(body), headers={"Content-Type": CONTENT_TYPE})


def test_http_register_then_fetch_by_subject_version_and_id(client: TestClient) -> None:
    created = post(client, "/subjects/s/versions", {"schema": V1})
    latest = client.get("/subjects/s/versions/latest")
    by_id = client.get("/schemas/ids/1")

    assert created.status_code == 200
    assert created.headers["content-type"] == CONTENT_TYPE
    assert created.json() == {"id": 1}
    assert latest.json() == {"subject": "s", "id": 1, "version": 1, "schema": V1}
    assert by_id.json() == {"schema": V1}
    assert client.get("/subjects").json() == ["s"]
    assert client.get("/subjects/s/versions").json() == [1]


def test_http_lookup_finds_the_version_holding_a_schema(client: TestClient) -> None:
    post(client, "/subjects/s/versions", {"schema": V1})
    found = post(client, "/subjects/s", {"schema": V1})
    missing = post(client, "/subjects/s", {"schema": V2_OPTIONAL})
    assert found.json()["version"] == 1
    assert (missing.status_code, missing.json()["error_code"]) == (404, 40403)


def test_http_incompatible_schema_is_409_with_a_reason(client: TestClient) -> None:
    post(client, "/subjects/s/versions", {"schema": V1})
    answer = post(client, "/subjects/s/versions", {"schema": V2_REQUIRED})
    assert answer.status_code == 409
    assert answer.json()["error_code"] == 409
    assert "count" in answer.json()["message"]


def test_http_compatibility_check_answers_without_registering(client: TestClient) -> None:
    post(client, "/subjects/s/versions", {"schema": V1})
    ok = post(client, "/compatibility/subjects/s/versions/latest", {"schema": V2_OPTIONAL})
    bad = post(client, "/compatibility/subjects/s/versions/1?verbose=true", {"schema": V2_REQUIRED})
    assert ok.json() == {"is_compatible": True}
    assert bad.json()["is_compatible"] is False
    assert bad.json()["messages"]
    assert client.get("/subjects/s/versions").json() == [1]


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/subjects/none/versions", 404, 40401),
        ("/subjects/s/versions/5", 404, 40402),
        ("/subjects/s/versions/five", 422, 42202),
        ("/schemas/ids/42", 404, 40403),
        ("/config/s", 404, 40408),
    ],
)
def test_http_errors_use_confluents_codes(
    client: TestClient, path: str, status: int, code: int
) -> None:
    post(client, "/subjects/s/versions", {"schema": V1})
    answer = client.get(path)
    assert (answer.status_code, answer.json()["error_code"]) == (status, code)
    assert answer.headers["content-type"] == CONTENT_TYPE


def test_http_invalid_schema_is_422_42201(client: TestClient) -> None:
    answer = post(client, "/subjects/s/versions", {"schema": "{not json"})
    assert (answer.status_code, answer.json()["error_code"]) == (422, 42201)


def test_http_non_avro_schema_types_are_refused(client: TestClient) -> None:
    answer = post(client, "/subjects/s/versions", {"schema": "{}", "schemaType": "PROTOBUF"})
    assert (answer.status_code, answer.json()["error_code"]) == (422, 42201)


def test_http_config_global_and_per_subject(client: TestClient) -> None:
    assert client.get("/config").json() == {"compatibilityLevel": "BACKWARD_TRANSITIVE"}
    put = client.put("/config/s", json={"compatibility": "FULL"})
    bad = client.put("/config", json={"compatibility": "SOMETIMES"})

    assert put.json() == {"compatibility": "FULL"}
    assert client.get("/config/s").json() == {"compatibilityLevel": "FULL"}
    assert client.get("/config/other?defaultToGlobal=true").json() == {
        "compatibilityLevel": "BACKWARD_TRANSITIVE"
    }
    assert (bad.status_code, bad.json()["error_code"]) == (422, 42203)
    assert client.delete("/config/s").status_code == 200
    assert client.get("/config/s").status_code == 404


# -- the released schemas ---------------------------------------------------------------


def test_registering_the_releases_puts_every_version_in_order_with_the_current_latest() -> None:
    catalog = SchemaCatalog.load(SCHEMA_DIR)
    reg = registry()

    done = run(reg.register_releases(catalog))
    again = run(reg.register_releases(catalog))

    assert again == done
    for root in ROOTS:
        history = releases(catalog, root)
        assert len(history) >= 2
        assert [v.schema for v in reg.state.versions(root)] == [r.text for r in history]
        assert [(rel.version, v.version) for r, rel, v in done if r == root] == [
            (n, n) for n in range(1, len(history) + 1)
        ]
        assert reg.state.version(root, "latest").schema == canonical_json(catalog.composed(root))


def test_a_release_older_than_one_the_subject_holds_is_not_registered_after_it() -> None:
    """A registry that got the current release first (as the demo and the sandboxes did
    before they registered every release) must not be handed v1 as its latest version."""
    catalog = SchemaCatalog.load(SCHEMA_DIR)
    reg = registry()
    for root in ROOTS:
        run(reg.register(root, canonical_json(catalog.composed(root))))

    done = run(reg.register_releases(catalog))

    for root in ROOTS:
        current = canonical_json(catalog.composed(root))
        assert [v.schema for v in reg.state.versions(root)] == [current]
        assert reg.state.version(root, "latest").schema == current
        assert [(rel.text, v.version) for r, rel, v in done if r == root] == [(current, 1)]
