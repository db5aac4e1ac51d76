"""The admin API's authorization matrix: every route x every role x own/foreign object.

``SPEC`` below is the specification, written from the API's documented rules and not
from its code. It is keyed by (method, path template) exactly as FastAPI registers the
routes; the first test compares it with the app's own route table, so a route added
without a row, or a row left behind for a route that is gone, fails the suite.

Roles: no token, a garbage token, a well-formed but unknown token, a revoked token,
admin, auditor and an agency token. On paths that name an agency the agency token is
tried twice: naming itself (own) and naming another agency that exists (foreign).
Allowed calls are made with valid inputs and must answer their exact success status.

One API serves the whole module (each case is a single HTTP call). Calls that change
things act on objects no other case depends on: throwaway agencies, tokens, policy
versions and registry subjects made for the purpose, or idempotent repeats.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from bus.api import ApiSettings, create_app
from bus.sandbox import Bus, running_edge
from bus.schemas import BULLETIN, canonical_json
from tests.support.api import ApiHarness, until

pytestmark = pytest.mark.integration

ANONYMOUS = ("no token", "garbage token", "unknown token", "revoked token")
"""Callers the API must not recognise: every non-public route answers them 401."""


@dataclass(frozen=True)
class Call:
    """The concrete request a role makes on a route."""

    path: str
    json: Any = None
    params: dict[str, str] | None = None


@dataclass
class World:
    """The module's API, a client per role, and the objects the cases act on."""

    api: ApiHarness
    clients: dict[str, httpx.Client]
    own: str
    foreign: str
    letters: dict[str, str]
    """A dead letter id per source agency (a and b)."""
    spare_token: str
    global_mode: str
    serial: Iterator[int] = field(default_factory=itertools.count)

    @property
    def bus(self) -> Bus:
        return self.api.bus

    @property
    def admin(self) -> httpx.Client:
        return self.clients["admin"]

    def client(self, role: str) -> httpx.Client:
        return self.clients["agency" if role in ("own", "foreign") else role]

    def fresh(self, stem: str) -> str:
        """A name no other case uses (a valid agency id, subject or label)."""
        return f"{stem}{next(self.serial)}-{self.bus.names.prefix}"

    def agency_for(self, role: str) -> str:
        """The agency a path names: the caller's own for ``own``, else another one."""
        return self.own if role == "own" else self.foreign

    def new_agency(self) -> str:
        """A throwaway agency, provisioned through the API (teardown removes its user)."""
        agency = self.fresh("t")
        self.bus.principals.append(agency)
        answer = self.admin.post("/agencies", json={"id": agency, "name": "Fictional throwaway"})
        assert answer.status_code == 201, answer.text
        return agency

    def new_token(self) -> str:
        answer = self.admin.post("/tokens", json={"role": "auditor", "label": "throwaway"})
        assert answer.status_code == 201, answer.text
        token_id: str = answer.json()["info"]["id"]
        return token_id

    def new_subject_with_mode(self) -> str:
        subject = self.fresh("probe-")
        answer = self.admin.put(f"/registry/config/{subject}", json={"compatibility": "FULL"})
        assert answer.status_code == 200, answer.text
        return subject


Build = Callable[[World, str], Call]
Check = Callable[[World, str, httpx.Response], None]


@dataclass(frozen=True)
class Row:
    """What each authenticated role gets on one route; anonymous callers get 401 unless
    the route is public (then everyone gets 200)."""

    expect: dict[str, int]
    build: Build
    check: Check | None = None
    public: bool = False


# -- who may call what ---------------------------------------------------------------

PUBLIC = {"admin": 200, "auditor": 200, "agency": 200}
EVERYONE = {"admin": 200, "auditor": 200, "agency": 200}
ADMIN_OR_AUDITOR = {"admin": 200, "auditor": 200, "agency": 403}
ADMIN_OR_AGENCY = {"admin": 200, "auditor": 403, "agency": 200}
OWN_AGENCY = {"admin": 200, "auditor": 403, "own": 200, "foreign": 404}
ADMIN_ON_AGENCY = {"admin": 200, "auditor": 403, "own": 403, "foreign": 404}


def admin_only(status: int = 200) -> dict[str, int]:
    return {"admin": status, "auditor": 403, "agency": 403}


def at(path: str) -> Build:
    return lambda world, role: Call(path)


# -- what the cases send, and what allowed answers must hold --------------------------


def policy_document(bus: Bus, version: int) -> dict[str, Any]:
    rules = [
        {
            "id": "a-to-b",
            "source": {"agencies": [bus.agency("a")]},
            "recipients": {"agencies": [bus.agency("b")]},
            "kinds": ["*"],
            "max_marking": "AMBER",
            "redact": [{"tag": "pii", "action": "drop"}],
        }
    ]
    if version >= 2:
        rules.append(
            {
                "id": "b-to-c",
                "source": {"agencies": [bus.agency("b")]},
                "recipients": {"agencies": [bus.agency("c")]},
                "kinds": ["alert"],
                "max_marking": "GREEN",
            }
        )
    return bus.policy(rules, version=version)


def bulletin_schema(world: World) -> dict[str, str]:
    return {"schema": canonical_json(world.bus.schema.composed)}


def agency_path(suffix: str = "") -> Build:
    return lambda world, role: Call(f"/agencies/{world.agency_for(role)}{suffix}")


def delete_agency(world: World, role: str) -> Call:
    agency = world.new_agency() if role == "admin" else world.agency_for(role)
    return Call(f"/agencies/{agency}")


def provision(world: World, role: str) -> Call:
    agency = world.fresh("p")
    world.bus.principals.append(agency)  # teardown removes its user and ACLs, if made
    return Call("/agencies", json={"id": agency, "name": "Fictional provisioned"})


def provisioned_once_then_unchanged(world: World, role: str, answer: httpx.Response) -> None:
    body = answer.json()
    assert body["changes"]
    assert body["credentials"]["password"]
    again = world.admin.post("/agencies", json={"id": body["agency"]["id"]})
    assert again.status_code == 200, again.text
    assert again.json()["changes"] == []
    assert again.json()["credentials"] is None


def lists_agencies(world: World, role: str, answer: httpx.Response) -> None:
    listed = {agency["id"] for agency in answer.json()}
    if role == "admin":
        assert {world.own, world.foreign, world.bus.agency("b")} <= listed
    else:
        assert listed == {world.own}


def shows_the_agency(world: World, role: str, answer: httpx.Response) -> None:
    assert answer.json()["id"] == world.agency_for(role)


def new_credentials(world: World, role: str, answer: httpx.Response) -> None:
    body = answer.json()
    assert body["agency"]["id"] == world.agency_for(role)
    assert body["credentials"]["username"] == world.agency_for(role)


def revoked(world: World, role: str, answer: httpx.Response) -> None:
    assert answer.json()["agency"]["state"] == "revoked"


def grow_partitions(world: World, role: str) -> Call:
    agency = world.new_agency() if role == "admin" else world.agency_for(role)
    return Call(f"/agencies/{agency}/partitions", json={"partitions": 2})


def grown(world: World, role: str, answer: httpx.Response) -> None:
    assert len(answer.json()["changes"]) == 2


def lists_dead_letters(world: World, role: str, answer: httpx.Response) -> None:
    sources = {letter["source_agency"] for letter in answer.json()["dead_letters"]}
    if role == "admin":
        assert {world.own, world.bus.agency("b")} <= sources
    else:
        assert sources == {world.own}


def new_policy_version(world: World, role: str) -> Call:
    version = 100 + next(world.serial)
    return Call(f"/policies/{version}", json=policy_document(world.bus, version))


def delete_token(world: World, role: str) -> Call:
    return Call(f"/tokens/{world.new_token() if role == 'admin' else world.spare_token}")


def delete_subject_mode(world: World, role: str) -> Call:
    return Call(f"/registry/config/{world.new_subject_with_mode()}")


def valid_json(world: World, role: str, answer: httpx.Response) -> None:
    assert answer.json() is not None


def lists_the_signing_key(world: World, role: str, answer: httpx.Response) -> None:
    public = world.bus.signer.public
    keys = {key["key_id"]: (key["public_key"], key["fingerprint"]) for key in answer.json()}
    assert keys == {public.key_id: (base64.b64encode(public.raw).decode(), public.fingerprint)}


def lists_checkpoints(world: World, role: str, answer: httpx.Response) -> None:
    """The latest checkpoint of each chain: the router's final one at least (the world's)."""
    checkpoints = answer.json()
    assert all(c["type"] == "audit.checkpoint" for c in checkpoints)
    chains = [c["chain"] for c in checkpoints]
    assert "edge.0" in chains
    assert len(set(chains)) == len(chains)


SPEC: dict[tuple[str, str], Row] = {
    # -- public ----------------------------------------------------------------------
    ("GET", "/healthz"): Row(
        PUBLIC, at("/healthz"), lambda w, r, a: assert_json(a, {"status": "ok"}), public=True
    ),
    ("GET", "/readyz"): Row(
        PUBLIC,
        at("/readyz"),
        lambda w, r, a: assert_equal(a.json()["status"], "ready"),
        public=True,
    ),
    ("GET", "/dashboard"): Row(
        PUBLIC, at("/dashboard"), lambda w, r, a: assert_media(a, "text/html"), public=True
    ),
    # FastAPI's own: the OpenAPI document and its viewers hold no data.
    ("GET", "/openapi.json"): Row(PUBLIC, at("/openapi.json"), valid_json, public=True),
    ("GET", "/docs"): Row(PUBLIC, at("/docs"), public=True),
    ("GET", "/docs/oauth2-redirect"): Row(PUBLIC, at("/docs/oauth2-redirect"), public=True),
    ("GET", "/redoc"): Row(PUBLIC, at("/redoc"), public=True),
    # -- operations ------------------------------------------------------------------
    ("GET", "/metrics"): Row(
        ADMIN_OR_AUDITOR, at("/metrics"), lambda w, r, a: assert_media(a, "text/plain")
    ),
    ("GET", "/dashboard/summary"): Row(ADMIN_OR_AUDITOR, at("/dashboard/summary"), valid_json),
    # -- agencies --------------------------------------------------------------------
    ("GET", "/agencies"): Row(ADMIN_OR_AGENCY, at("/agencies"), lists_agencies),
    ("POST", "/agencies"): Row(admin_only(201), provision, provisioned_once_then_unchanged),
    ("GET", "/agencies/{agency}"): Row(OWN_AGENCY, agency_path(), shows_the_agency),
    ("POST", "/agencies/{agency}/rotate"): Row(OWN_AGENCY, agency_path("/rotate"), new_credentials),
    ("DELETE", "/agencies/{agency}"): Row(ADMIN_ON_AGENCY, delete_agency, revoked),
    ("POST", "/agencies/{agency}/partitions"): Row(ADMIN_ON_AGENCY, grow_partitions, grown),
    # -- policies --------------------------------------------------------------------
    ("GET", "/policies"): Row(ADMIN_OR_AUDITOR, at("/policies")),
    ("GET", "/policies/active"): Row(ADMIN_OR_AUDITOR, at("/policies/active")),
    ("GET", "/policies/{version}"): Row(
        ADMIN_OR_AUDITOR, at("/policies/1"), lambda w, r, a: assert_equal(a.json()["version"], 1)
    ),
    ("POST", "/policies/validate"): Row(
        ADMIN_OR_AUDITOR,
        lambda world, role: Call("/policies/validate", json=policy_document(world.bus, 3)),
        lambda w, r, a: assert_equal(a.json()["valid"], True),
    ),
    ("GET", "/policies/diff"): Row(
        ADMIN_OR_AUDITOR,
        lambda world, role: Call("/policies/diff", params={"from": "1", "to": "2"}),
    ),
    ("POST", "/policies/{version}/dry-run"): Row(
        ADMIN_OR_AUDITOR,
        lambda world, role: Call("/policies/2/dry-run", json={"sample": {"kind": "alert"}}),
    ),
    ("PUT", "/policies/{version}"): Row(admin_only(201), new_policy_version),
    ("POST", "/policies/{version}/activate"): Row(admin_only(), at("/policies/2/activate")),
    ("POST", "/policies/rollback"): Row(admin_only(), at("/policies/rollback")),
    # -- dead letters ----------------------------------------------------------------
    ("GET", "/deadletters"): Row(ADMIN_OR_AGENCY, at("/deadletters"), lists_dead_letters),
    ("POST", "/deadletters/replay"): Row(
        admin_only(),
        lambda world, role: Call(
            "/deadletters/replay", json={"ids": [world.letters["a"]], "force": True}
        ),
        lambda w, r, a: assert_equal(len(a.json()["replayed"]), 1),
    ),
    ("GET", "/deadletters/{letter_id}"): Row(
        admin_only(),
        lambda world, role: Call(f"/deadletters/{world.letters['a']}"),
        lambda w, r, a: assert_equal(a.json()["value_base64"], "Z2FyYmFnZQ=="),
    ),
    # -- audit -----------------------------------------------------------------------
    ("GET", "/audit"): Row(EVERYONE, at("/audit")),
    ("GET", "/audit/keys"): Row(EVERYONE, at("/audit/keys"), lists_the_signing_key),
    ("GET", "/audit/checkpoints"): Row(
        ADMIN_OR_AUDITOR, at("/audit/checkpoints"), lists_checkpoints
    ),
    ("GET", "/audit/report"): Row(
        ADMIN_OR_AUDITOR,
        lambda world, role: Call("/audit/report", params={"agency": world.own}),
        lambda w, r, a: assert_equal(a.json()["agency"], w.own),
    ),
    # -- tokens ----------------------------------------------------------------------
    ("GET", "/tokens"): Row(admin_only(), at("/tokens")),
    ("POST", "/tokens"): Row(
        admin_only(201), lambda world, role: Call("/tokens", json={"role": "auditor"})
    ),
    ("DELETE", "/tokens/{token_id}"): Row(admin_only(), delete_token),
    # -- schema registry: any token reads, looks up and checks; only an admin changes --
    ("GET", "/registry/subjects"): Row(
        EVERYONE, at("/registry/subjects"), lambda w, r, a: assert_in(BULLETIN, a.json())
    ),
    ("GET", "/registry/subjects/{subject}/versions"): Row(
        EVERYONE, at(f"/registry/subjects/{BULLETIN}/versions")
    ),
    ("GET", "/registry/subjects/{subject}/versions/{version}"): Row(
        EVERYONE, at(f"/registry/subjects/{BULLETIN}/versions/latest")
    ),
    ("GET", "/registry/subjects/{subject}/versions/{version}/schema"): Row(
        EVERYONE, at(f"/registry/subjects/{BULLETIN}/versions/1/schema")
    ),
    ("POST", "/registry/subjects/{subject}/versions"): Row(
        admin_only(),
        lambda world, role: Call(
            f"/registry/subjects/{BULLETIN}/versions", json=bulletin_schema(world)
        ),
        lambda w, r, a: assert_equal(a.json(), {"id": w.bus.bulletin_schema_id}),
    ),
    ("POST", "/registry/subjects/{subject}"): Row(
        EVERYONE,
        lambda world, role: Call(f"/registry/subjects/{BULLETIN}", json=bulletin_schema(world)),
        lambda w, r, a: assert_equal(a.json()["id"], w.bus.bulletin_schema_id),
    ),
    ("GET", "/registry/schemas/ids/{schema_id}"): Row(
        EVERYONE, lambda world, role: Call(f"/registry/schemas/ids/{world.bus.view_schema_id}")
    ),
    ("GET", "/registry/schemas/ids/{schema_id}/schema"): Row(
        EVERYONE,
        lambda world, role: Call(f"/registry/schemas/ids/{world.bus.view_schema_id}/schema"),
    ),
    ("POST", "/registry/compatibility/subjects/{subject}/versions/{version}"): Row(
        EVERYONE,
        lambda world, role: Call(
            f"/registry/compatibility/subjects/{BULLETIN}/versions/latest",
            json=bulletin_schema(world),
        ),
        lambda w, r, a: assert_equal(a.json()["is_compatible"], True),
    ),
    ("GET", "/registry/config"): Row(EVERYONE, at("/registry/config")),
    ("PUT", "/registry/config"): Row(
        admin_only(),
        lambda world, role: Call("/registry/config", json={"compatibility": world.global_mode}),
    ),
    ("GET", "/registry/config/{subject}"): Row(
        EVERYONE,
        lambda world, role: Call(
            f"/registry/config/{BULLETIN}", params={"defaultToGlobal": "true"}
        ),
    ),
    ("PUT", "/registry/config/{subject}"): Row(
        admin_only(),
        lambda world, role: Call(
            f"/registry/config/{world.fresh('probe-')}", json={"compatibility": "FULL"}
        ),
    ),
    ("DELETE", "/registry/config/{subject}"): Row(admin_only(), delete_subject_mode),
}


def assert_equal(actual: object, expected: object) -> None:
    assert actual == expected


def assert_in(item: object, collection: Any) -> None:
    assert item in collection


def assert_json(answer: httpx.Response, expected: object) -> None:
    assert answer.json() == expected


def assert_media(answer: httpx.Response, media_type: str) -> None:
    assert answer.headers["content-type"].split(";")[0].strip() == media_type


CASES = [
    pytest.param(method, path, role, id=f"{method} {path} as {role}")
    for (method, path), row in SPEC.items()
    for role in (*ANONYMOUS, *row.expect)
]

AGENCY_ROUTES = [key for key in SPEC if "{agency}" in key[1]]
AGENCY_ROUTE_BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/agencies/{agency}/partitions"): {"partitions": 2},
}
"""A valid body where a route needs one: an admin's answer must come from the agency check."""


# -- the module's world --------------------------------------------------------------


async def dead_letter_from_a_and_b(bus: Bus) -> None:
    """Malformed bytes from agencies a and b, dead-lettered by a real router."""
    async with running_edge(bus) as router:
        await router.wait_for_policy(2)
        await bus.send_raw("a", b"garbage")
        await bus.send_raw("b", b"garbage")
        await bus.read_as_admin(bus.names.deadletter, lambda records: len(records) >= 2)


def bearer(api: ApiHarness, token: str) -> httpx.Client:
    return httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {token}"}, timeout=60)


@pytest.fixture(scope="module")
def world(module_api: ApiHarness) -> Iterator[World]:
    api, bus = module_api, module_api.bus
    admin = api.client("admin")
    clients = {
        "admin": admin,
        "auditor": api.client("auditor"),
        "agency": api.client("a"),
        "no token": api.client(None),
        "garbage token": bearer(api, "garbage"),
        "unknown token": bearer(api, f"lsn_{'0' * 12}_{'A' * 43}"),
    }
    created = admin.post("/tokens", json={"role": "admin", "label": "revoked in setup"}).json()
    clients["revoked token"] = bearer(api, created["token"])
    assert clients["revoked token"].get("/tokens").status_code == 200  # it worked, once
    assert admin.delete(f"/tokens/{created['info']['id']}").status_code == 200

    for version in (1, 2):
        stored = admin.put(f"/policies/{version}", json=policy_document(bus, version))
        assert stored.status_code == 201, stored.text
        activated = admin.post(f"/policies/{version}/activate")
        assert activated.status_code == 200, activated.text
    asyncio.run(dead_letter_from_a_and_b(bus))

    def letters_of_a_and_b() -> dict[str, str]:
        listed = admin.get("/deadletters").json()["dead_letters"]
        ids = {
            short: letter["id"]
            for letter in listed
            for short in ("a", "b")
            if letter["source_agency"] == bus.agency(short)
        }
        return ids if len(ids) == 2 else {}

    letters = until(letters_of_a_and_b, "the API lists the dead letters of a and b")
    until(
        lambda: "edge.0" in {c["chain"] for c in admin.get("/audit/checkpoints").json()},
        "the API holds the router's final audit checkpoint",
    )
    spare = admin.post("/tokens", json={"role": "auditor", "label": "spare"}).json()
    world = World(
        api=api,
        clients=clients,
        own=bus.agency("a"),
        foreign=bus.agency("c"),
        letters=letters,
        spare_token=spare["info"]["id"],
        global_mode=admin.get("/registry/config").json()["compatibilityLevel"],
    )
    try:
        yield world
    finally:
        for client in clients.values():
            client.close()


@pytest.fixture(scope="module")
def app(module_api: ApiHarness) -> FastAPI:
    """An app made as the harness makes its own (creating it starts nothing)."""
    return create_app(
        module_api.admin_service,
        ApiSettings(prefix=module_api.bus.names.prefix, tokens_path=module_api.store.path),
        schema=module_api.bus.schema,
    )


def registered_routes(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path template) of every route, included routers flattened."""
    found: set[tuple[str, str]] = set()
    for route in iter_route_contexts(app.routes):
        methods = set(route.methods or ("*",))  # a mount or websocket still needs a row
        if "GET" in methods:
            methods.discard("HEAD")  # Starlette answers HEAD wherever it answers GET
        found |= {(method, str(route.path)) for method in methods}
    return found


# -- the tests -----------------------------------------------------------------------


def test_the_specification_has_a_row_for_every_route_of_the_app_and_no_other(
    app: FastAPI,
) -> None:
    routes = registered_routes(app)
    assert sorted(routes - SPEC.keys()) == [], "routes the specification does not cover"
    assert sorted(SPEC.keys() - routes) == [], "rows for routes the app does not have"


@pytest.mark.parametrize(("method", "path", "role"), CASES)
def test_each_role_gets_exactly_the_specified_answer_on_each_route(
    world: World, method: str, path: str, role: str
) -> None:
    row = SPEC[(method, path)]
    call = row.build(world, role)
    answer = world.client(role).request(method, call.path, json=call.json, params=call.params)
    said = f"{method} {call.path} as {role}: {answer.status_code} {answer.text[:500]}"
    registry = path.startswith("/registry/")
    if role in ANONYMOUS and not row.public:
        assert answer.status_code == 401, said
        if registry:  # Confluent's shape, and both schemes it takes (RFC 9110 11.6.1)
            assert answer.json()["error_code"] == 40101, said
            assert answer.headers.get_list("www-authenticate") == [
                'Basic realm="liaison registry", charset="UTF-8"',
                'Bearer realm="liaison"',
            ], said
        else:
            assert answer.headers.get("www-authenticate") == "Bearer", said
            assert answer.json()["error"]["code"] == "unauthenticated", said
        return
    expected = PUBLIC["admin"] if role in ANONYMOUS else row.expect[role]
    assert answer.status_code == expected, said
    if expected == 403 and registry:
        assert answer.json()["error_code"] == 40301, said
    elif expected == 403:
        assert answer.json()["error"]["code"] == "forbidden", said
    elif expected == 404:
        assert answer.json()["error"]["code"] == "not_found", said
    elif row.check is not None:
        row.check(world, role, answer)


@pytest.mark.parametrize(("method", "path"), AGENCY_ROUTES)
def test_an_agency_gets_the_same_404_for_a_foreign_agency_as_for_one_that_does_not_exist(
    world: World, method: str, path: str
) -> None:
    missing = world.fresh("never")
    agency = world.clients["agency"]

    def ask(client: httpx.Client, named: str) -> tuple[int, str, dict[str, Any]]:
        payload = AGENCY_ROUTE_BODIES.get((method, path))
        answer = client.request(method, path.replace("{agency}", named), json=payload)
        body = answer.json()
        body["error"]["message"] = body["error"]["message"].replace(named, "<agency>")
        return answer.status_code, answer.headers["content-type"], body

    foreign = ask(agency, world.foreign)
    assert foreign[0] == 404
    assert foreign == ask(agency, missing)
    assert foreign == ask(world.admin, missing)
