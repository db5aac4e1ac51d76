"""What each admin API operation does, on the real broker.

Agencies (provision, rotate, revoke), policies (put, validate, dry-run, diff, activate,
rollback), dead letters (list, inspect, replay), metrics, readiness and error answers.
Each operation is checked for its effect on Kafka, not only for its answer, and for the
audit event (with the actor) every change writes.

Tests that only add objects of their own (a fresh agency, a fresh policy version) share
one bus and API per module (``module_api``); tests that depend on which policy is in
force, or on every decision the bus has made, get a bus of their own (``api``).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bus.bulletin import Bulletin, Marking, Status
from bus.errors import KafkaAuthenticationError
from bus.kafka import (
    AclFilter,
    KafkaAdmin,
    KafkaConnection,
    Producer,
    read_to_end,
    wait_until_authenticates,
)
from bus.sandbox import Bus, running_edge
from tests.support.api import ApiHarness, until

pytestmark = pytest.mark.integration

# -- helpers -------------------------------------------------------------------------


def actor(api: ApiHarness, role: str = "admin") -> str:
    """How audit events name the caller holding ``api.tokens[role]``."""
    token_id = api.tokens[role].split("_")[1]
    named = role if role in ("admin", "auditor") else f"agency:{api.bus.agency(role)}"
    return f"token:{token_id} ({named})"


def audit_events(client: httpx.Client, event_type: str) -> list[dict[str, Any]]:
    """Every audit event of ``event_type``, newest first."""
    answer = client.get("/audit", params={"type": event_type, "limit": 1000})
    assert answer.status_code == 200, answer.text
    events: list[dict[str, Any]] = answer.json()["events"]
    return events


async def call(
    api: ApiHarness, method: str, path: str, role: str = "admin", **kwargs: Any
) -> httpx.Response:
    """One request from a worker thread: a router running in this loop keeps routing."""

    def request() -> httpx.Response:
        with api.client(role) as client:
            return client.request(method, path, **kwargs)

    return await asyncio.to_thread(request)


def shareable(bus: Bus, short: str, seed: int, kind: str = "situation_report") -> Bulletin:
    """A GREEN, ACTUAL bulletin from agency ``short``: every rule below may share it."""
    return (
        bus.generator(short, seed=seed)
        .bulletin(kind)
        .model_copy(update={"marking": Marking.GREEN, "status": Status.ACTUAL})
    )


def refused(connection: KafkaConnection) -> bool:
    """Whether the broker refuses ``connection``'s credentials (any other failure raises)."""
    try:
        with KafkaAdmin(connection, timeout_s=5) as kafka:
            kafka.list_topics()
    except KafkaAuthenticationError:
        return True
    return False


def share(
    bus: Bus, rule_id: str, source: str, recipients: list[str], **extra: Any
) -> dict[str, Any]:
    return {
        "id": rule_id,
        "source": {"agencies": [bus.agency(source)]},
        "recipients": {"agencies": [bus.agency(r) for r in recipients]},
        "kinds": ["*"],
        "max_marking": "AMBER",
        **extra,
    }


def metric_samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Prometheus text as {(sample name, labels): value}."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def labelled(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, label: str
) -> dict[str, float]:
    """One metric's values by one label."""
    return {dict(labels)[label]: value for (n, labels), value in samples.items() if n == name}


# -- module fixtures -----------------------------------------------------------------


@pytest.fixture(scope="module")
def versions() -> Iterator[int]:
    """Policy version numbers no other test of the module uses (1 is the dead letters')."""
    return itertools.count(10)


@pytest.fixture
def fresh_agency(module_api: ApiHarness) -> str:
    """An agency id nobody has provisioned; its principal is removed with the bus."""
    agency = f"n{secrets.token_hex(3)}-{module_api.bus.names.prefix}"
    module_api.bus.principals.append(agency)
    return agency


@pytest.fixture(scope="module")
def junk(module_api: ApiHarness) -> list[str]:
    """Four junk records agency a wrote, dead-lettered by a router: their ids, oldest first.

    The router runs only here: later tests see the dead letters, and no new ones.
    """
    bus = module_api.bus
    with module_api.client() as admin:
        assert admin.put("/policies/1", json=bus.policy([share(bus, "ab", "a", ["b"])])).is_success
        assert admin.post("/policies/1/activate").is_success

    async def route_junk() -> None:
        async with running_edge(bus) as router:
            await router.wait_for_policy(1)
            for n in range(4):
                await bus.send_raw("a", f"junk-{n}".encode())
            await bus.read_as_admin(bus.names.deadletter, lambda rs: len(rs) >= 4)

    asyncio.run(route_junk())

    def listed() -> list[dict[str, Any]]:
        with module_api.client() as admin:
            page = admin.get("/deadletters", params={"source": bus.agency("a")}).json()
        letters: list[dict[str, Any]] = page["dead_letters"]
        return letters if len(letters) == 4 else []

    letters = until(listed, "the API lists the four dead letters")
    return [d["id"] for d in sorted(letters, key=lambda d: d["source_offset"])]


# -- agencies ------------------------------------------------------------------------


async def test_provisioning_answers_201_with_a_password_that_authenticates_to_kafka(
    module_api: ApiHarness, fresh_agency: str
) -> None:
    bus = module_api.bus

    with module_api.client() as admin:
        answer = admin.post("/agencies", json={"id": fresh_agency, "name": "Fictional Fresh"})
        provisioned = audit_events(admin, "agency.provisioned")

    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["agency"]["id"] == fresh_agency
    assert body["agency"]["state"] == "active"
    assert any(fresh_agency in change for change in body["changes"])
    credentials = body["credentials"]
    assert credentials["username"] == fresh_agency
    connection = bus.admin.with_credentials(fresh_agency, credentials["password"])
    await asyncio.to_thread(wait_until_authenticates, connection)
    async with Producer(connection) as producer:  # its ACLs let it write to its from-topic
        written = await producer.send(bus.names.inbound(fresh_agency), b"hello")
    assert written.topic == bus.names.inbound(fresh_agency)
    (event,) = [e for e in provisioned if e["agency"] == fresh_agency]
    assert event["actor"] == actor(module_api)
    assert event["changes"] == body["changes"]


def test_provisioning_an_agency_again_answers_200_without_credentials(
    module_api: ApiHarness, fresh_agency: str
) -> None:
    with module_api.client() as admin:
        first = admin.post("/agencies", json={"id": fresh_agency, "name": "Fictional Fresh"})
        assert first.status_code == 201

        again = admin.post("/agencies", json={"id": fresh_agency, "name": "Fictional Fresh"})
        provisioned = audit_events(admin, "agency.provisioned")

    assert again.status_code == 200, again.text
    assert again.json()["changes"] == []
    assert again.json()["credentials"] is None
    assert [e["agency"] for e in provisioned].count(fresh_agency) == 1


def test_rotating_gives_a_working_password_and_the_old_one_stops_working(
    module_api: ApiHarness, fresh_agency: str
) -> None:
    bus = module_api.bus
    with module_api.client() as admin:
        added = admin.post("/agencies", json={"id": fresh_agency}).json()["credentials"]
    old = bus.admin.with_credentials(fresh_agency, added["password"])
    wait_until_authenticates(old)

    with module_api.client() as admin:
        answer = admin.post(f"/agencies/{fresh_agency}/rotate")
        rotated = audit_events(admin, "agency.rotated")

    assert answer.status_code == 200, answer.text
    password = answer.json()["credentials"]["password"]
    assert password != added["password"]
    new = bus.admin.with_credentials(fresh_agency, password)
    wait_until_authenticates(new)
    until(lambda: refused(old), "the broker refuses the old password")
    (event,) = [e for e in rotated if e["agency"] == fresh_agency]
    assert event["actor"] == actor(module_api)


def test_revoking_an_agency_removes_its_access_and_tokens_and_keeps_its_topics(
    module_api: ApiHarness, fresh_agency: str
) -> None:
    bus = module_api.bus
    with module_api.client() as admin:
        added = admin.post("/agencies", json={"id": fresh_agency}).json()["credentials"]
        created = admin.post("/tokens", json={"role": f"agency:{fresh_agency}"}).json()
    connection = bus.admin.with_credentials(fresh_agency, added["password"])
    wait_until_authenticates(connection)
    own = {"Authorization": f"Bearer {created['token']}"}
    with httpx.Client(base_url=module_api.url, headers=own) as as_agency:
        assert as_agency.get(f"/agencies/{fresh_agency}").status_code == 200

    with module_api.client() as admin:
        answer = admin.delete(f"/agencies/{fresh_agency}")
        revoked = audit_events(admin, "agency.revoked")

    assert answer.status_code == 200, answer.text
    assert answer.json()["agency"]["state"] == "revoked"
    assert answer.json()["tokens_revoked"] == [created["info"]["id"]]
    with KafkaAdmin(bus.admin) as kafka:
        assert kafka.describe_acls(AclFilter(principal=f"User:{fresh_agency}")) == []
        assert fresh_agency not in kafka.scram_users()
        topics = kafka.list_topics()
    assert {bus.names.inbound(fresh_agency), bus.names.outbound(fresh_agency)} <= topics
    until(lambda: refused(connection), "the broker refuses the revoked credentials")
    with httpx.Client(base_url=module_api.url, headers=own) as as_agency:
        unknown = as_agency.get(f"/agencies/{fresh_agency}")
    assert unknown.status_code == 401
    assert unknown.json()["error"]["code"] == "unauthenticated"
    (event,) = [e for e in revoked if e["agency"] == fresh_agency]
    assert event["actor"] == actor(module_api)
    assert event["tokens"] == [created["info"]["id"]]


async def test_a_password_appears_in_the_answer_that_made_it_and_nowhere_else(
    module_api: ApiHarness, fresh_agency: str
) -> None:
    bus = module_api.bus

    with module_api.client() as admin:
        provisioned = admin.post("/agencies", json={"id": fresh_agency})
        rotated = admin.post(f"/agencies/{fresh_agency}/rotate")
        revoked = admin.delete(f"/agencies/{fresh_agency}")
        others = [
            revoked,
            admin.get("/agencies"),
            admin.get(f"/agencies/{fresh_agency}"),
            admin.get("/audit", params={"limit": 1000}),
            admin.get("/audit", params={"agency": fresh_agency}),
            admin.get("/tokens"),
            admin.get("/dashboard/summary"),
            admin.get("/metrics"),
        ]

    passwords = [
        provisioned.json()["credentials"]["password"],
        rotated.json()["credentials"]["password"],
    ]
    assert all(len(p) >= 16 for p in passwords)
    for answer in others:
        assert answer.is_success, answer.text
        assert not any(p in answer.text for p in passwords), answer.request.url
    kept = [
        record.value or b""
        for topic in (bus.names.audit, bus.names.agencies)
        for record in await read_to_end(bus.admin, topic)
    ]
    assert not any(p.encode() in value for p in passwords for value in kept)


# -- policies ------------------------------------------------------------------------


def test_putting_a_new_policy_version_stores_it_and_answers_201(
    module_api: ApiHarness, versions: Iterator[int]
) -> None:
    bus = module_api.bus
    version = next(versions)
    document = bus.policy([share(bus, "ab", "a", ["b"])], version=version)

    with module_api.client() as admin:
        answer = admin.put(f"/policies/{version}", json=document)
        stored = admin.get(f"/policies/{version}")
        events = audit_events(admin, "policy.stored")

    assert answer.status_code == 201, answer.text
    assert answer.json() == {"version": version, "created": True}
    assert stored.status_code == 200
    assert stored.json()["active"] is False
    assert stored.json()["stored_by"] == actor(module_api)
    assert stored.json()["policy"]["rules"][0]["id"] == "ab"
    (event,) = [e for e in events if e["version"] == version]
    assert event["actor"] == actor(module_api)


def test_putting_the_same_policy_again_answers_200_and_stores_nothing_new(
    module_api: ApiHarness, versions: Iterator[int]
) -> None:
    bus = module_api.bus
    version = next(versions)
    document = bus.policy([share(bus, "ab", "a", ["b"])], version=version)
    with module_api.client() as admin:
        assert admin.put(f"/policies/{version}", json=document).status_code == 201

        again = admin.put(f"/policies/{version}", json=document)
        events = audit_events(admin, "policy.stored")

    assert again.status_code == 200, again.text
    assert again.json() == {"version": version, "created": False}
    assert [e["version"] for e in events].count(version) == 1


def test_putting_other_content_under_a_stored_version_answers_409_version_exists(
    module_api: ApiHarness, versions: Iterator[int]
) -> None:
    bus = module_api.bus
    version = next(versions)
    original = bus.policy([share(bus, "ab", "a", ["b"])], version=version)
    with module_api.client() as admin:
        assert admin.put(f"/policies/{version}", json=original).status_code == 201

        answer = admin.put(
            f"/policies/{version}", json=bus.policy([share(bus, "ac", "a", ["c"])], version=version)
        )
        stored = admin.get(f"/policies/{version}").json()

    assert answer.status_code == 409, answer.text
    assert answer.json()["error"]["code"] == "version_exists"
    assert [r["id"] for r in stored["policy"]["rules"]] == ["ab"]


def test_a_path_version_other_than_the_documents_answers_422_invalid_policy(
    module_api: ApiHarness, versions: Iterator[int]
) -> None:
    bus = module_api.bus
    version, other = next(versions), next(versions)

    with module_api.client() as admin:
        answer = admin.put(f"/policies/{version}", json=bus.policy([], version=other))
        stored = [admin.get(f"/policies/{v}").status_code for v in (version, other)]

    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "invalid_policy"
    assert "version" in answer.json()["error"]["message"]
    assert stored == [404, 404]


def test_validating_a_broken_policy_lists_its_problems_and_stores_nothing(
    module_api: ApiHarness, versions: Iterator[int]
) -> None:
    bus = module_api.bus
    version = next(versions)
    broken = bus.policy(
        [share(bus, "ab", "a", ["b"], redact=[{"field": "body.no_such_field", "action": "drop"}])],
        version=version,
    )

    with module_api.client("auditor") as auditor:
        answer = auditor.post("/policies/validate", json=broken)
        stored = auditor.get(f"/policies/{version}")

    assert answer.status_code == 200, answer.text
    assert answer.json()["valid"] is False
    assert any("body.no_such_field" in p for p in answer.json()["problems"])
    assert stored.status_code == 404


def test_validating_a_sound_policy_answers_valid_with_its_plans(
    module_api: ApiHarness, versions: Iterator[int]
) -> None:
    bus = module_api.bus
    version = next(versions)

    with module_api.client("auditor") as auditor:
        answer = auditor.post(
            "/policies/validate", json=bus.policy([share(bus, "ab", "a", ["b"])], version=version)
        )

    assert answer.json()["valid"] is True
    assert answer.json()["version"] == version
    assert answer.json()["problems"] == []
    assert answer.json()["plans"] > 0


def test_a_dry_run_of_a_generated_sample_explains_each_agencys_outcome(
    module_api: ApiHarness, versions: Iterator[int]
) -> None:
    bus = module_api.bus
    version = next(versions)
    document = bus.policy(
        [share(bus, "ab", "a", ["b"], redact=[{"tag": "pii", "action": "drop"}])], version=version
    )
    expected = bus.generator("a", seed=1).bulletin("situation_report")  # GREEN, ACTUAL
    with module_api.client() as admin:
        assert admin.put(f"/policies/{version}", json=document).status_code == 201

    with module_api.client("auditor") as auditor:
        answer = auditor.post(
            f"/policies/{version}/dry-run",
            json={"sample": {"kind": "situation_report", "source": bus.agency("a"), "seed": 1}},
        )

    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert (result["policy_version"], result["bulletin_id"]) == (version, expected.bulletin_id)
    outcomes = {t["agency"]: t for t in result["agencies"]}
    assert set(outcomes) == {bus.agency("b"), bus.agency("c")}
    for_b, for_c = outcomes[bus.agency("b")], outcomes[bus.agency("c")]
    assert (for_b["delivered"], for_b["reason"]) == (True, "delivered")
    assert [r["rule"] for r in for_b["rules"] if r["matched"]] == ["ab"]
    decisions = {f["path"]: f["decision"] for f in for_b["fields"]}
    assert decisions["body.reporting_officer"] == "drop"
    assert decisions["body.summary"] == "kept"
    assert (for_c["delivered"], for_c["reason"]) == (False, "no_rule")


def test_a_dry_run_of_a_given_bulletin_shows_each_recipients_view(
    module_api: ApiHarness, versions: Iterator[int]
) -> None:
    bus = module_api.bus
    version = next(versions)
    document = bus.policy(
        [share(bus, "ab", "a", ["b"], redact=[{"tag": "pii", "action": "drop"}])], version=version
    )
    bulletin = shareable(bus, "a", seed=3)
    assert bulletin.body["reporting_officer"] is not None
    with module_api.client() as admin:
        assert admin.put(f"/policies/{version}", json=document).status_code == 201

    with module_api.client() as admin:
        answer = admin.post(
            f"/policies/{version}/dry-run", json={"bulletin": bus.schema.to_json(bulletin)}
        )

    assert answer.status_code == 200, answer.text
    outcomes = {t["agency"]: t for t in answer.json()["agencies"]}
    view = outcomes[bus.agency("b")]["view"]  # the redacted bulletin
    assert view["bulletin_id"] == bulletin.bulletin_id
    assert view["body"]["reporting_officer"] is None
    assert view["body"]["summary"] == bulletin.body["summary"]
    assert outcomes[bus.agency("c")]["view"] is None


@pytest.mark.parametrize(
    ("before", "after", "change", "sign"),
    [(["b"], ["b", "c"], "gained", "+"), (["b", "c"], ["b"], "lost", "-")],
)
def test_a_diff_between_two_versions_names_the_access_an_agency_gains_or_loses(
    module_api: ApiHarness,
    versions: Iterator[int],
    before: list[str],
    after: list[str],
    change: str,
    sign: str,
) -> None:
    bus = module_api.bus
    old, new = next(versions), next(versions)
    with module_api.client() as admin:
        for version, recipients in ((old, before), (new, after)):
            document = bus.policy([share(bus, "a-out", "a", recipients)], version=version)
            assert admin.put(f"/policies/{version}", json=document).status_code == 201

    with module_api.client("auditor") as auditor:
        answer = auditor.get("/policies/diff", params={"from": old, "to": new})

    assert answer.status_code == 200, answer.text
    access = answer.json()["diff"]["access"]
    assert {(c["recipient"], c["change"]) for c in access} == {(bus.agency("c"), change)}
    assert {c["kind"] for c in access} == set(bus.schema.kinds)
    lines = answer.json()["lines"]
    assert lines[0] == f"policy v{old} -> v{new}"
    markings = "TLP:CLEAR, TLP:GREEN, TLP:AMBER"
    assert f"{sign} {bus.agency('c')} {change} alert from {bus.agency('a')} ({markings})" in lines


async def test_activating_a_version_puts_it_in_force_for_a_running_router(
    api: ApiHarness,
) -> None:
    bus = api.bus
    with api.client() as admin:
        assert admin.put("/policies/1", json=bus.policy([share(bus, "ab", "a", ["b"])])).is_success
    bulletin = shareable(bus, "a", seed=1)

    async with running_edge(bus) as router:
        answer = await call(api, "POST", "/policies/1/activate")
        await router.wait_for_policy(1)
        await bus.send("a", bulletin)
        views = await bus.views("b", 1)

    assert answer.status_code == 200, answer.text
    activation = answer.json()
    assert (activation["version"], activation["previous"]) == (1, None)
    assert (activation["action"], activation["actor"]) == ("activate", actor(api))
    assert views[0]["policy_version"] == 1
    assert views[0]["bulletin"]["bulletin_id"] == bulletin.bulletin_id
    with api.client("auditor") as auditor:
        assert auditor.get("/policies/active").json()["version"] == 1
        (event,) = audit_events(auditor, "policy.activated")
    assert (event["version"], event["previous"], event["actor"]) == (1, None, actor(api))


async def test_rolling_back_puts_the_previous_version_back_in_force_for_the_router(
    api: ApiHarness,
) -> None:
    bus = api.bus
    with api.client() as admin:
        for version, recipient in ((1, "b"), (2, "c")):
            document = bus.policy([share(bus, f"a-{recipient}", "a", [recipient])], version=version)
            assert admin.put(f"/policies/{version}", json=document).is_success
            assert admin.post(f"/policies/{version}/activate").is_success
    bulletin = shareable(bus, "a", seed=1)

    async with running_edge(bus) as router:
        await router.wait_for_policy(2)
        answer = await call(api, "POST", "/policies/rollback")
        await asyncio.to_thread(
            until, lambda: router.policy_version == 1, "the router follows the rollback"
        )
        await bus.send("a", bulletin)
        views = await bus.views("b", 1)

    assert answer.status_code == 200, answer.text
    activation = answer.json()
    assert (activation["version"], activation["previous"]) == (1, 2)
    assert (activation["action"], activation["actor"]) == ("rollback", actor(api))
    assert views[0]["policy_version"] == 1
    assert views[0]["bulletin"]["bulletin_id"] == bulletin.bulletin_id
    with api.client("auditor") as auditor:
        assert auditor.get("/policies/active").json()["version"] == 1
        (event,) = audit_events(auditor, "policy.rolled_back")
    assert (event["version"], event["previous"], event["actor"]) == (1, 2, actor(api))


async def test_rolling_back_with_no_earlier_version_answers_409_and_changes_nothing(
    api: ApiHarness,
) -> None:
    bus = api.bus
    with api.client() as admin:
        assert admin.put("/policies/1", json=bus.policy([])).is_success
        assert admin.post("/policies/1/activate").is_success

        answer = admin.post("/policies/rollback")
        active = admin.get("/policies/active").json()
        events = audit_events(admin, "policy.rolled_back")

    assert answer.status_code == 409, answer.text
    assert answer.json()["error"]["code"] == "nothing_to_roll_back"
    assert active["version"] == 1
    assert events == []


# -- dead letters --------------------------------------------------------------------


def test_junk_is_listed_as_a_bad_magic_dead_letter_with_its_source(
    module_api: ApiHarness, junk: list[str]
) -> None:
    bus = module_api.bus

    with module_api.client() as admin:
        answer = admin.get("/deadletters", params={"reason": "bad_magic"})

    assert answer.status_code == 200, answer.text
    letters = {d["id"]: d for d in answer.json()["dead_letters"]}
    assert set(junk) <= set(letters)
    assert [letters[i]["source_offset"] for i in junk] == [0, 1, 2, 3]
    for letter_id in junk:
        letter = letters[letter_id]
        assert letter["reason"] == "bad_magic"
        assert letter["source_agency"] == bus.agency("a")
        assert letter["source_topic"] == bus.names.inbound(bus.agency("a"))
        assert letter["source_partition"] == 0
        assert letter["size"] == len(b"junk-0")


def test_inspecting_a_dead_letter_returns_its_original_bytes_and_headers(
    module_api: ApiHarness, junk: list[str]
) -> None:
    bus = module_api.bus

    with module_api.client() as admin:
        answer = admin.get(f"/deadletters/{junk[0]}")

    assert answer.status_code == 200, answer.text
    letter = answer.json()
    assert base64.b64decode(letter["value_base64"]) == b"junk-0"
    assert letter["headers"]["liaison.reason"] == "bad_magic"
    assert letter["headers"]["liaison.source.topic"] == bus.names.inbound(bus.agency("a"))
    assert letter["headers"]["liaison.source.offset"] == "0"


async def test_replaying_a_dead_letter_sends_its_bytes_back_to_the_source_topic(
    module_api: ApiHarness, junk: list[str]
) -> None:
    bus = module_api.bus
    letter_id = junk[1]

    with module_api.client() as admin:
        answer = admin.post("/deadletters/replay", json={"ids": [letter_id]})
        replayed = admin.get("/deadletters", params={"replayed": "true"}).json()
        events = audit_events(admin, "deadletter.replayed")

    assert answer.status_code == 200, answer.text
    ((written,), skipped) = answer.json()["replayed"], answer.json()["skipped"]
    assert skipped == []
    inbound = bus.names.inbound(bus.agency("a"))
    assert (written["id"], written["topic"]) == (letter_id, inbound)
    (record,) = [r for r in await read_to_end(bus.admin, inbound) if r.offset == written["offset"]]
    assert record.value == b"junk-1"
    assert dict(record.headers)["liaison.replay-of"] == f"deadletter {letter_id}".encode()
    assert letter_id in {d["id"] for d in replayed["dead_letters"]}
    (event,) = [e for e in events if e["deadletter"] == letter_id]
    assert event["actor"] == actor(module_api)
    assert (event["agency"], event["reason"]) == (bus.agency("a"), "bad_magic")
    assert event["to"] == {"topic": inbound, "partition": 0, "offset": written["offset"]}


def test_a_second_replay_without_force_is_skipped_with_a_reason(
    module_api: ApiHarness, junk: list[str]
) -> None:
    letter_id = junk[2]
    with module_api.client() as admin:
        assert len(admin.post("/deadletters/replay", json={"ids": [letter_id]}).json()["replayed"])

        answer = admin.post("/deadletters/replay", json={"ids": [letter_id]})
        events = audit_events(admin, "deadletter.replayed")

    assert answer.status_code == 200, answer.text
    assert answer.json()["replayed"] == []
    assert answer.json()["skipped"] == [
        {"id": letter_id, "why": "already replayed (force to repeat)"}
    ]
    assert [e["deadletter"] for e in events].count(letter_id) == 1


def test_a_second_replay_with_force_replays_again(module_api: ApiHarness, junk: list[str]) -> None:
    letter_id = junk[3]
    with module_api.client() as admin:
        first = admin.post("/deadletters/replay", json={"ids": [letter_id]}).json()["replayed"]

        answer = admin.post("/deadletters/replay", json={"ids": [letter_id], "force": True})
        events = audit_events(admin, "deadletter.replayed")

    assert answer.status_code == 200, answer.text
    (again,) = answer.json()["replayed"]
    assert again["id"] == letter_id
    assert again["offset"] > first[0]["offset"]
    assert answer.json()["skipped"] == []
    assert [e["deadletter"] for e in events].count(letter_id) == 2


# -- metrics and readiness -----------------------------------------------------------


async def test_metrics_after_traffic_agree_with_the_audit_log(api: ApiHarness) -> None:
    bus = api.bus
    rules = [
        share(bus, "ab", "a", ["b"], redact=[{"tag": "pii", "action": "drop"}]),
        share(bus, "ac", "a", ["c"], redact=[{"tag": "free_text", "action": "mask"}]),
    ]
    with api.client() as admin:
        assert admin.put("/policies/1", json=bus.policy(rules)).is_success
        assert admin.post("/policies/1/activate").is_success
    async with running_edge(bus) as router:
        await router.wait_for_policy(1)
        for seed in (1, 2, 3):
            await bus.send("a", shareable(bus, "a", seed))
        await bus.send_raw("a", b"junk")
        await bus.views("b", 3)
        await bus.views("c", 3)
        await bus.read_as_admin(bus.names.deadletter, lambda rs: len(rs) >= 1)

    def caught_up() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        with api.client("auditor") as auditor:
            samples = metric_samples(auditor.get("/metrics").text)
        lag = labelled(samples, "liaison_router_lag", "topic")
        decided = labelled(samples, "liaison_decisions_total", "outcome")
        done = decided == {"accepted": 3, "rejected": 1} and len(lag) == 3 and not any(lag.values())
        return samples if done else {}

    samples = await asyncio.to_thread(until, caught_up, "metrics count all traffic, lag 0")
    with api.client("auditor") as auditor:
        decisions = audit_events(auditor, "bulletin.decided")

    accepted = [e for e in decisions if e["outcome"] == "accepted"]
    assert labelled(samples, "liaison_decisions_total", "outcome")["accepted"] == len(accepted)
    assert labelled(samples, "liaison_dead_letters", "reason") == {"bad_magic": 1}
    delivered = [r for e in accepted for r in e["recipients"] if r["delivered"]]
    assert labelled(samples, "liaison_views_out_total", "agency") == {
        bus.agency("b"): 3,
        bus.agency("c"): 3,
    }
    assert len(delivered) == 6
    actions: dict[str, float] = {}
    for recipient in delivered:
        for redaction in recipient["redactions"]:
            actions[redaction["action"]] = actions.get(redaction["action"], 0) + 1
    assert labelled(samples, "liaison_redactions_total", "action") == actions
    assert set(actions) == {"drop", "mask"}
    assert set(labelled(samples, "liaison_router_lag", "topic")) == {
        bus.names.inbound(a) for a in bus.agencies
    }


def test_readiness_is_200_with_every_check_true_while_the_broker_runs(
    module_api: ApiHarness,
) -> None:
    with module_api.client(None) as anonymous:
        answer = anonymous.get("/readyz")

    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "status": "ready",
        "checks": {"topics_loaded": True, "broker_reachable": True},
    }


# -- errors --------------------------------------------------------------------------


def test_an_invalid_body_answers_422_naming_the_field_without_echoing_the_value(
    module_api: ApiHarness,
) -> None:
    with module_api.client() as admin:
        answer = admin.post("/agencies", json={"id": "Not Valid!", "name": "Fictional"})

    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "invalid_request"
    assert "body.id" in error["message"]
    assert "Not Valid!" not in answer.text


def test_an_unknown_path_answers_404_with_the_json_error_body(module_api: ApiHarness) -> None:
    with module_api.client() as admin:
        answer = admin.get("/no/such/path")

    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == {
        "error": {"code": "not_found", "message": "no such resource; check the path"}
    }
