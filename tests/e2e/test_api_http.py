"""The admin API's HTTP hygiene, against the real server (uvicorn with Liaison's limits).

* every route of the OpenAPI document answers each method it does not take with 405 and
  an ``Allow`` header naming exactly the methods it does take (RFC 9110 15.5.6);
* no answer repeats a value sent in a path parameter or a query parameter;
* oversized header sections get 431 and oversized bodies 413, as real HTTP answers, at
  once, with the limits docs/api.md states;
* date-time query parameters are RFC 3339 date-times, nothing else.
"""

from __future__ import annotations

import re
import socket
import time
from typing import Any

import pytest

from tests.support.api import ApiHarness

pytestmark = pytest.mark.integration

MAX_HEADER_BYTES = 16 * 1024
"""The request line and header fields, as docs/api.md states (bus.serving)."""

MAX_BODY_BYTES = 1024 * 1024
"""A request body, as docs/api.md states (bus.api._http)."""

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def concrete(path: str, values: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


def openapi(api: ApiHarness) -> dict[str, Any]:
    with api.client() as admin:
        answer = admin.get("/openapi.json")
    assert answer.status_code == 200
    document: dict[str, Any] = answer.json()
    return document


# -- 405 and Allow -------------------------------------------------------------------

VALID = {
    "agency": "north-river",
    "version": "1",
    "letter_id": "0-1",
    "token_id": "0123456789ab",
    "subject": "some-subject",
    "schema_id": "1",
}


def test_every_route_answers_405_with_its_exact_allow_header_to_the_methods_it_does_not_take(
    module_api: ApiHarness,
) -> None:
    document = openapi(module_api)
    wrong: list[str] = []
    checked = 0
    with module_api.client() as admin:
        for template, operations in document["paths"].items():
            allowed = {method.upper() for method in operations}
            if "GET" in allowed:
                allowed.add("HEAD")  # RFC 9110 9.3.2: a server supports HEAD with GET
            path = concrete(template, VALID)
            for method in METHODS:
                if method in allowed:
                    continue
                checked += 1
                answer = admin.request(method, path)
                allow = {m.strip() for m in answer.headers.get("allow", "").split(",") if m}
                if answer.status_code != 405 or allow != allowed:
                    wrong.append(
                        f"{method} {path}: {answer.status_code}, Allow {sorted(allow)} "
                        f"(expected 405, Allow {sorted(allowed)})"
                    )
    assert checked > 150  # every path of the document, each with the methods it lacks
    assert wrong == []


def test_a_405_on_a_registry_path_is_in_confluents_shape_and_elsewhere_in_the_apis(
    module_api: ApiHarness,
) -> None:
    with module_api.client() as admin:
        registry = admin.post("/registry/config")
        policies = admin.put("/policies/validate", json={})

    assert registry.status_code == 405
    assert registry.json()["error_code"] == 405
    assert registry.headers["allow"] == "GET, HEAD, PUT"
    assert policies.status_code == 405
    assert policies.json()["error"]["code"] == "method_not_allowed"
    assert policies.headers["allow"] == "POST"


def test_head_answers_what_get_would_without_content(module_api: ApiHarness) -> None:
    with module_api.client() as admin:
        for path in ("/agencies", "/policies/active", "/registry/subjects", "/openapi.json"):
            get = admin.get(path)
            head = admin.head(path)
            assert (path, head.status_code) == (path, get.status_code)
            assert head.content == b""
            assert head.headers.get("content-type") == get.headers.get("content-type")
            assert head.headers.get("content-length") == get.headers.get("content-length")
        missing = admin.head("/agencies/no-such-agency")
    assert missing.status_code == 404
    assert missing.content == b""


# -- no echo -------------------------------------------------------------------------

MARKS = {
    "agency": "zqmark-agency",
    "version": "2147483001",
    "letter_id": "7-987654321987",
    "token_id": "feedfacecafe",
    "subject": "zqmark-subject",
    "schema_id": "987654321",
}
"""A distinctive value for each path parameter, valid for its pattern (so that the
request reaches the code that looks the object up)."""

ODD = {name: value + "%00" for name, value in MARKS.items()}
"""The same, made invalid (a NUL byte), for the validation errors' turn."""

QUERY_MARKS = {
    "agency": "zqmark-query-agency",
    "source": "zqmark-source",
    "reason": "zqmark-reason",
    "bulletin_id": "zqmark-bulletin",
    "type": "zqmark-type",
    "since": "1234.5678",
    "until": "8765.4321",
    "from": "2147483002",
    "to": "2147483003",
    "limit": "999999991",
    "replayed": "zqmark-bool",
    "format": "zqmark-format",
    "subject": "zqmark-query-subject",
    "normalize": "zqmark-bool",
    "verbose": "zqmark-bool",
    "defaultToGlobal": "zqmark-bool",
}

BODIES = {
    ("POST", "/policies/{version}/dry-run"): {"sample": {"kind": "alert"}},
    ("POST", "/registry/subjects/{subject}"): {"schema": '"string"'},
    ("POST", "/registry/subjects/{subject}/versions"): {"schema": '"zqmark"'},
    ("POST", "/registry/compatibility/subjects/{subject}/versions/{version}"): {
        "schema": '"string"'
    },
    ("PUT", "/registry/config/{subject}"): {"compatibility": "zqmark-mode"},
    ("PUT", "/policies/{version}"): {"version": 5, "zqmark": True},
}

MARKERS = (
    "zqmark",
    "2147483001",
    "987654321",
    "feedfacecafe",
    "1234.5678",
    "8765.4321",
    "2147483002",
    "2147483003",
    "999999991",
)


def test_no_answer_repeats_a_value_sent_in_a_path_or_query_parameter(
    module_api: ApiHarness,
) -> None:
    document = openapi(module_api)
    echoed: list[str] = []
    statuses: set[int] = set()
    calls = 0
    for role in ("admin", "auditor", "a"):
        with module_api.client(role) as client:
            for template, operations in document["paths"].items():
                for method, operation in operations.items():
                    names = [
                        p["name"] for p in operation.get("parameters", []) if p["in"] == "query"
                    ]
                    params = {name: QUERY_MARKS[name] for name in names}
                    body = BODIES.get((method.upper(), template))
                    for values in (MARKS, ODD):
                        calls += 1
                        answer = client.request(
                            method.upper(), concrete(template, values), params=params, json=body
                        )
                        statuses.add(answer.status_code)
                        said = (answer.text + " " + str(answer.headers.raw)).lower()
                        found = [m for m in MARKERS if m in said]
                        if found:
                            echoed.append(
                                f"{method.upper()} {template} as {role}: "
                                f"{answer.status_code} repeats {found}: {answer.text[:300]}"
                            )
    assert calls > 100
    assert {403, 404, 422} <= statuses  # the lookups, the role checks and the validation ran
    assert echoed == []


def test_the_reviewers_example_a_missing_agency_is_not_named_back(module_api: ApiHarness) -> None:
    with module_api.client() as admin:
        missing = admin.get("/agencies/zqmark-river")
        odd = admin.get("/agencies/north-river%00")

    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert "zqmark" not in missing.text
    assert odd.status_code == 422
    assert "north-river" not in odd.text


# -- header and body limits ----------------------------------------------------------


def exchange(api: ApiHarness, request: bytes, *, timeout_s: float = 10.0) -> tuple[bytes, float]:
    """Send ``request`` on a raw socket and read the answer until the server closes."""
    host, port = api.url.removeprefix("http://").rsplit(":", 1)
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=timeout_s) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer, time.monotonic() - started


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def test_a_one_mebibyte_authorization_header_gets_a_431_answer_not_a_reset(
    module_api: ApiHarness,
) -> None:
    request = (
        b"GET /agencies HTTP/1.1\r\nHost: liaison\r\nAuthorization: Bearer "
        + b"a" * (1 << 20)
        + b"\r\n\r\n"
    )
    answer, _ = exchange(module_api, request)

    assert status_of(answer) == 431
    assert b'"code": "headers_too_large"' in answer
    assert b"16 KiB" in answer


def test_a_header_section_just_over_the_limit_gets_431_and_one_under_it_is_served(
    module_api: ApiHarness,
) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: liaison\r\nConnection: close\r\nX-Pad: "
    fits = MAX_HEADER_BYTES - len(head) - 4 - 64
    served, _ = exchange(module_api, head + b"p" * fits + b"\r\n\r\n")
    refused, _ = exchange(module_api, head + b"p" * (MAX_HEADER_BYTES + 1) + b"\r\n\r\n")

    assert status_of(served) == 200
    assert status_of(refused) == 431


def test_a_claimed_content_length_over_the_limit_gets_413_at_once_before_any_body(
    module_api: ApiHarness,
) -> None:
    request = (
        b"POST /policies/validate HTTP/1.1\r\nHost: liaison\r\n"
        + f"Authorization: Bearer {module_api.tokens['admin']}\r\n".encode()
        + b"Content-Type: application/json\r\nContent-Length: 10000000\r\n\r\n"
    )
    answer, took = exchange(module_api, request)

    assert status_of(answer) == 413
    assert b'"code":"body_too_large"' in answer
    assert took < 2.0


def test_a_chunked_body_over_the_limit_gets_413_as_soon_as_it_goes_beyond(
    module_api: ApiHarness,
) -> None:
    chunk = b"10000\r\n" + b" " * 0x10000 + b"\r\n"  # 64 KiB per chunk
    request = (
        b"POST /policies/validate HTTP/1.1\r\nHost: liaison\r\n"
        + f"Authorization: Bearer {module_api.tokens['admin']}\r\n".encode()
        + b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunk * (2 * MAX_BODY_BYTES // 0x10000)
        + b"0\r\n\r\n"
    )
    answer, _ = exchange(module_api, request)

    assert status_of(answer) == 413
    assert b"body_too_large" in answer


def test_a_client_sending_a_large_body_whole_still_reads_the_413(module_api: ApiHarness) -> None:
    with module_api.client() as admin:
        answer = admin.post(
            "/policies/validate",
            content=b" " * (8 * MAX_BODY_BYTES),
            headers={"Content-Type": "application/json"},
        )

    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "body_too_large"


def test_a_chunked_body_under_the_limit_is_served(module_api: ApiHarness) -> None:
    def chunks() -> Any:
        yield b'{"version": 1, '
        yield b'"agencies": {}, "rules": []}'

    with module_api.client() as admin:
        answer = admin.post(
            "/policies/validate", content=chunks(), headers={"Content-Type": "application/json"}
        )

    assert answer.status_code == 200, answer.text
    assert "valid" in answer.json()


def test_a_413_on_a_registry_path_is_in_confluents_shape(module_api: ApiHarness) -> None:
    with module_api.client() as admin:
        answer = admin.post(
            "/registry/subjects/any/versions",
            content=b" " * (MAX_BODY_BYTES + 1),
            headers={"Content-Type": "application/vnd.schemaregistry.v1+json"},
        )

    assert answer.status_code == 413
    assert answer.json()["error_code"] == 413


# -- date-times ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["0.5", "1767225600", "2026-01-01", "2026-01-01T00:00:00", "2026-01-01 00:00:00Z", "today"],
)
@pytest.mark.parametrize("path", ["/audit", "/audit/report"])
def test_a_date_time_query_parameter_takes_only_rfc_3339_date_times(
    module_api: ApiHarness, path: str, value: str
) -> None:
    params = {"until": value}
    if path == "/audit/report":
        params["agency"] = module_api.bus.agency("a")
    with module_api.client() as admin:
        answer = admin.get(path, params=params)

    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "invalid_request"
    assert "RFC 3339" in answer.json()["error"]["message"]
    assert value not in answer.text


@pytest.mark.parametrize(
    "value", ["2026-01-01T00:00:00Z", "2026-01-01t00:00:00.25z", "2026-01-01T01:00:00+01:00"]
)
def test_rfc_3339_date_times_are_taken(module_api: ApiHarness, value: str) -> None:
    with module_api.client() as admin:
        answer = admin.get("/audit", params={"until": value})

    assert answer.status_code == 200, answer.text
