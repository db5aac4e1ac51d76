"""``liaison api ...`` through a real admin API, in-process (typer's CliRunner).

Every command group, with and without ``--json``, and the documented exit codes: 0
success, 1 the API refused (its status and error code on stderr), 2 bad usage, 3 the API
could not be reached. What the API does with each request is tests/e2e/
test_api_operations.py's subject; here it is what the CLI sends, prints and writes.

One bus and API serve the module. Tests that change things act on objects of their own
(fresh agencies, tokens and policy versions); ``routed`` puts a policy in force and has a
router dead-letter junk once, for the dead-letter commands.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import secrets
import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from typer.testing import CliRunner, Result

from bus.cli import app
from bus.credentials import connection_from_file
from bus.kafka import wait_until_authenticates
from bus.sandbox import Bus, running_edge
from bus.schemas import ROOTS
from tests.support.api import ApiHarness, until

pytestmark = pytest.mark.integration

runner = CliRunner()

ADMIN = "admin"
"""The ``role`` argument of :func:`liaison` meaning the harness's admin token."""


def liaison(
    api: ApiHarness, *args: str, role: str | None = ADMIN, url: str | None = None
) -> Result:
    """Run ``liaison api <args>`` with LIAISON_API_URL and LIAISON_API_TOKEN set.

    ``role`` picks one of the harness's tokens, or is a token itself (``lsn_...``);
    ``None`` leaves LIAISON_API_TOKEN unset. A crash (not an exit) fails the test.
    """
    token = None if role is None else api.tokens.get(role, role)
    env = {"LIAISON_API_URL": url or api.url, "LIAISON_API_TOKEN": token, "COLUMNS": "250"}
    result = runner.invoke(app, ["api", *args], env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def ok(result: Result) -> Result:
    assert result.exit_code == 0, f"exit {result.exit_code}\n{result.output}"
    return result


def as_json(result: Result) -> Any:
    return json.loads(ok(result).stdout)


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


def table_rows(text: str) -> list[list[str]]:
    """The cells of each body row of the rich tables in ``text``."""
    return [
        [cell.strip() for cell in line.strip("│").split("│")]
        for line in text.splitlines()
        if line.startswith("│")
    ]


def closed_port_url() -> str:
    """The URL of a local port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# -- module fixtures -----------------------------------------------------------------


@pytest.fixture(scope="module")
def versions() -> Iterator[int]:
    """Policy version numbers no other test of the module uses (1 is ``routed``'s)."""
    return itertools.count(10)


@pytest.fixture
def fresh_agency(module_api: ApiHarness) -> Iterator[str]:
    """Agency ids nobody has provisioned; their principals are removed with the bus."""

    def make() -> str:
        agency = f"n{secrets.token_hex(3)}-{module_api.bus.names.prefix}"
        module_api.bus.principals.append(agency)
        return agency

    return iter(make, None)


@pytest.fixture(scope="module")
def routed(module_api: ApiHarness) -> list[str]:
    """Policy 1 in force, and three junk records from agency a dead-lettered by a
    router: their dead-letter ids, oldest first."""
    bus = module_api.bus
    with module_api.client() as admin:
        assert admin.put("/policies/1", json=bus.policy([share(bus, "ab", "a", ["b"])])).is_success
        assert admin.post("/policies/1/activate").is_success

    async def route_junk() -> None:
        async with running_edge(bus) as router:
            await router.wait_for_policy(1)
            for n in range(3):
                await bus.send_raw("a", f"junk-{n}".encode())
            await bus.read_as_admin(bus.names.deadletter, lambda rs: len(rs) >= 3)

    asyncio.run(route_junk())

    def listed() -> list[dict[str, Any]]:
        with module_api.client() as admin:
            letters: list[dict[str, Any]] = admin.get("/deadletters").json()["dead_letters"]
        return letters if len(letters) == 3 else []

    letters = until(listed, "the API lists the three dead letters")
    return [d["id"] for d in sorted(letters, key=lambda d: d["source_offset"])]


def write_policy(path: Path, document: dict[str, Any]) -> Path:
    """``document`` as YAML, or as JSON when ``path`` ends in .json."""
    text = json.dumps(document) if path.suffix == ".json" else yaml.safe_dump(document)
    path.write_text(text)
    return path


# -- agencies ------------------------------------------------------------------------


def test_agencies_add_provisions_in_bulk_writing_each_password_to_a_private_file(
    module_api: ApiHarness, fresh_agency: Iterator[str], tmp_path: Path
) -> None:
    first, second = next(fresh_agency), next(fresh_agency)

    result = liaison(
        module_api, "agencies", "add", first, second, "--credentials-dir", str(tmp_path)
    )

    ok(result)
    assert "provisioning" in result.stderr
    assert "2/2" in result.stderr
    for agency in (first, second):
        path = tmp_path / f"{agency}.json"
        assert f"credentials written to {path}" in result.stdout
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        password = json.loads(path.read_text())["password"]
        assert password not in result.output
        wait_until_authenticates(connection_from_file(path))


def test_agencies_add_json_names_the_credentials_file_and_never_the_password(
    module_api: ApiHarness, fresh_agency: Iterator[str], tmp_path: Path
) -> None:
    agency = next(fresh_agency)

    result = liaison(
        module_api,
        "agencies",
        "add",
        agency,
        "--name",
        "Fictional",
        "--credentials-dir",
        str(tmp_path),
        "--json",
    )

    (answer,) = as_json(result)
    assert (answer["agency"]["id"], answer["agency"]["name"]) == (agency, "Fictional")
    assert "credentials" not in answer
    assert answer["credentials_file"] == str(tmp_path / f"{agency}.json")
    password = json.loads((tmp_path / f"{agency}.json").read_text())["password"]
    assert password not in result.output


def test_agencies_add_with_name_for_several_agencies_is_a_usage_error(
    module_api: ApiHarness, fresh_agency: Iterator[str]
) -> None:
    result = liaison(module_api, "agencies", "add", next(fresh_agency), "x2", "--name", "One")

    assert result.exit_code == 2
    assert "--name applies to one agency" in result.stderr


@pytest.mark.parametrize("json_output", [False, True], ids=["table", "json"])
def test_agencies_list_shows_every_agency(module_api: ApiHarness, json_output: bool) -> None:
    bus = module_api.bus

    result = liaison(module_api, "agencies", "list", *(["--json"] if json_output else []))

    ok(result)
    if json_output:
        assert {a["id"] for a in json.loads(result.stdout)} >= set(bus.agencies)
    else:
        assert all(agency in result.stdout for agency in bus.agencies)
        assert "active" in result.stdout


def test_agencies_list_shows_a_name_with_brackets_as_it_is(
    module_api: ApiHarness, fresh_agency: Iterator[str]
) -> None:
    agency = next(fresh_agency)
    name = "Fictional [red] Agency [/ops]"
    with module_api.client() as admin:
        assert admin.post("/agencies", json={"id": agency, "name": name}).status_code == 201

    result = liaison(module_api, "agencies", "list")

    assert name in ok(result).stdout


@pytest.mark.parametrize("json_output", [False, True], ids=["table", "json"])
def test_agencies_show_prints_one_agency(module_api: ApiHarness, json_output: bool) -> None:
    agency = module_api.bus.agency("b")

    result = liaison(module_api, "agencies", "show", agency, *(["--json"] if json_output else []))

    ok(result)
    if json_output:
        assert json.loads(result.stdout)["id"] == agency
    else:
        assert agency in result.stdout


def test_agencies_show_of_an_unknown_agency_exits_1_with_not_found(
    module_api: ApiHarness,
) -> None:
    result = liaison(module_api, "agencies", "show", "unknown-agency")

    assert result.exit_code == 1
    assert "404 not_found" in result.stderr
    assert result.stdout == ""


def test_agencies_rotate_writes_the_new_password_to_the_file(
    module_api: ApiHarness, fresh_agency: Iterator[str], tmp_path: Path
) -> None:
    agency = next(fresh_agency)
    ok(liaison(module_api, "agencies", "add", agency, "--credentials-dir", str(tmp_path)))
    path = tmp_path / f"{agency}.json"
    old = json.loads(path.read_text())["password"]

    result = liaison(module_api, "agencies", "rotate", agency, "--credentials-dir", str(tmp_path))

    assert f"credentials written to {path}" in ok(result).stdout
    new = json.loads(path.read_text())["password"]
    assert new != old
    assert new not in result.output
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    wait_until_authenticates(connection_from_file(path))


@pytest.mark.parametrize("json_output", [False, True], ids=["text", "json"])
def test_agencies_revoke_reports_the_api_tokens_it_revoked(
    module_api: ApiHarness, fresh_agency: Iterator[str], json_output: bool
) -> None:
    agency = next(fresh_agency)
    with module_api.client() as admin:
        assert admin.post("/agencies", json={"id": agency}).status_code == 201
        token = admin.post("/tokens", json={"role": f"agency:{agency}"}).json()["info"]["id"]

    result = liaison(module_api, "agencies", "revoke", agency, *(["--json"] if json_output else []))

    ok(result)
    if json_output:
        answer = json.loads(result.stdout)
        assert (answer["agency"]["state"], answer["tokens_revoked"]) == ("revoked", [token])
    else:
        assert f"revoked API token {token}" in result.stdout
        assert "deleted the SCRAM credentials" in result.stdout


# -- policies ------------------------------------------------------------------------


def test_policies_put_of_a_yaml_file_with_activate_puts_it_in_force(
    module_api: ApiHarness, routed: list[str], versions: Iterator[int], tmp_path: Path
) -> None:
    bus = module_api.bus
    version = next(versions)
    path = write_policy(tmp_path / "policy.yaml", bus.policy([], version=version))

    result = liaison(module_api, "policies", "put", str(path), "--activate")

    assert f"policy v{version} stored" in ok(result).stdout
    assert f"policy v{version} in force" in result.stdout
    with module_api.client() as admin:
        assert admin.get("/policies/active").json()["version"] == version


def test_policies_put_of_a_json_file_prints_the_answer_as_json(
    module_api: ApiHarness, versions: Iterator[int], tmp_path: Path
) -> None:
    bus = module_api.bus
    version = next(versions)
    path = write_policy(tmp_path / "policy.json", bus.policy([], version=version))

    answer = as_json(liaison(module_api, "policies", "put", str(path), "--json"))

    assert answer == {"put": {"version": version, "created": True}}


@pytest.mark.parametrize("version", ["", "version: true\n", "version: '2'\n"])
def test_policies_put_of_a_file_without_an_integer_version_is_a_usage_error(
    module_api: ApiHarness, tmp_path: Path, version: str
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(f"{version}agencies: {{}}\nrules: []\n")

    result = liaison(module_api, "policies", "put", str(path))

    assert result.exit_code == 2
    assert "no integer 'version'" in result.stderr


@pytest.mark.parametrize("json_output", [False, True], ids=["table", "json"])
def test_policies_list_marks_the_version_in_force(
    module_api: ApiHarness, routed: list[str], json_output: bool
) -> None:
    with module_api.client() as admin:
        active = admin.get("/policies/active").json()["version"]

    result = liaison(module_api, "policies", "list", *(["--json"] if json_output else []))

    ok(result)
    if json_output:
        listed = json.loads(result.stdout)
        assert [p["version"] for p in listed if p["active"]] == [active]
    else:
        marked = [row[0] for row in table_rows(result.stdout) if row[1] == "*"]
        assert marked == [str(active)]


@pytest.mark.parametrize("version", ["1", "active"])
def test_policies_show_prints_a_stored_document_as_json(
    module_api: ApiHarness, routed: list[str], version: str
) -> None:
    answer = as_json(liaison(module_api, "policies", "show", version, "--json"))

    assert answer["policy"]["version"] == answer["version"]
    if version == "1":
        assert [r["id"] for r in answer["policy"]["rules"]] == ["ab"]


def test_policies_validate_of_a_broken_file_exits_1_listing_each_problem(
    module_api: ApiHarness, tmp_path: Path
) -> None:
    bus = module_api.bus
    broken = bus.policy(
        [share(bus, "ab", "a", ["b"], redact=[{"field": "body.no_such_field", "action": "drop"}])]
    )
    path = write_policy(tmp_path / "broken.yaml", broken)

    result = liaison(module_api, "policies", "validate", str(path), role="auditor")

    assert result.exit_code == 1
    assert "body.no_such_field" in result.stderr


def test_policies_validate_json_of_a_sound_file_exits_0(
    module_api: ApiHarness, tmp_path: Path
) -> None:
    bus = module_api.bus
    path = write_policy(tmp_path / "sound.json", bus.policy([share(bus, "ab", "a", ["b"])]))

    answer = as_json(liaison(module_api, "policies", "validate", str(path), "--json"))

    assert (answer["valid"], answer["problems"]) == (True, [])


def test_policies_dry_run_of_a_sample_prints_each_agencys_outcome(
    module_api: ApiHarness, routed: list[str]
) -> None:
    bus = module_api.bus

    result = liaison(
        module_api,
        "policies",
        "dry-run",
        "1",
        "--kind",
        "situation_report",
        "--source",
        bus.agency("a"),
        "--seed",
        "1",
        role="auditor",
    )

    lines = ok(result).stdout.splitlines()
    assert lines[0].startswith(f"bulletin {bus.agency('a')}:")
    assert f"situation_report from {bus.agency('a')}" in lines[0]
    assert f"  {bus.agency('b')}: delivered; rules: ab" in lines
    assert f"  {bus.agency('c')}: withheld (no_rule); rules: none" in lines


def test_policies_dry_run_of_a_bulletin_file_prints_the_views_as_json(
    module_api: ApiHarness, routed: list[str], tmp_path: Path
) -> None:
    bus = module_api.bus
    bulletin = bus.generator("a", seed=1).bulletin("situation_report")  # GREEN, ACTUAL
    path = tmp_path / "bulletin.json"
    path.write_text(json.dumps(bus.schema.to_json(bulletin)))

    answer = as_json(
        liaison(module_api, "policies", "dry-run", "1", "--bulletin", str(path), "--json")
    )

    outcomes = {t["agency"]: t for t in answer["agencies"]}
    assert outcomes[bus.agency("b")]["view"]["bulletin_id"] == bulletin.bulletin_id
    assert outcomes[bus.agency("c")]["view"] is None


def test_policies_dry_run_of_an_unreadable_bulletin_file_is_a_usage_error(
    module_api: ApiHarness, routed: list[str], tmp_path: Path
) -> None:
    path = tmp_path / "bulletin.json"
    path.write_text("{not json")

    result = liaison(module_api, "policies", "dry-run", "1", "--bulletin", str(path))

    assert result.exit_code == 2
    assert str(path) in result.stderr


@pytest.mark.parametrize("json_output", [False, True], ids=["text", "json"])
def test_policies_diff_prints_who_gains_what(
    module_api: ApiHarness, versions: Iterator[int], json_output: bool
) -> None:
    bus = module_api.bus
    old, new = next(versions), next(versions)
    with module_api.client() as admin:
        for version, recipients in ((old, ["b"]), (new, ["b", "c"])):
            document = bus.policy([share(bus, "a-out", "a", recipients)], version=version)
            assert admin.put(f"/policies/{version}", json=document).status_code == 201

    result = liaison(
        module_api, "policies", "diff", str(old), str(new), *(["--json"] if json_output else [])
    )

    gained = f"+ {bus.agency('c')} gained alert from {bus.agency('a')}"
    if json_output:
        answer = json.loads(ok(result).stdout)
        assert {c["change"] for c in answer["diff"]["access"]} == {"gained"}
        assert any(line.startswith(gained) for line in answer["lines"])
    else:
        assert ok(result).stdout.startswith(f"policy v{old} -> v{new}\n")
        assert gained in result.stdout


def test_policies_activate_json_prints_the_activation(
    module_api: ApiHarness, routed: list[str], versions: Iterator[int]
) -> None:
    bus = module_api.bus
    version = next(versions)
    with module_api.client() as admin:
        previous = admin.get("/policies/active").json()["version"]
        assert admin.put(f"/policies/{version}", json=bus.policy([], version=version)).is_success

    answer = as_json(liaison(module_api, "policies", "activate", str(version), "--json"))

    assert (answer["version"], answer["previous"], answer["action"]) == (
        version,
        previous,
        "activate",
    )


def test_policies_rollback_puts_the_previous_version_back(
    module_api: ApiHarness, routed: list[str], versions: Iterator[int]
) -> None:
    bus = module_api.bus
    version = next(versions)
    with module_api.client() as admin:
        previous = admin.get("/policies/active").json()["version"]
        assert admin.put(f"/policies/{version}", json=bus.policy([], version=version)).is_success
        assert admin.post(f"/policies/{version}/activate").is_success

    result = liaison(module_api, "policies", "rollback")

    assert f"policy v{previous} in force (rollback; was v{version})" in ok(result).stdout
    with module_api.client() as admin:
        assert admin.get("/policies/active").json()["version"] == previous


def test_an_agency_token_asking_for_the_policies_exits_1_with_forbidden(
    module_api: ApiHarness,
) -> None:
    result = liaison(module_api, "policies", "list", role="a")

    assert result.exit_code == 1
    assert "403 forbidden" in result.stderr


# -- dead letters --------------------------------------------------------------------


@pytest.mark.parametrize("json_output", [False, True], ids=["table", "json"])
def test_deadletters_list_shows_the_junk_with_its_reason_and_source(
    module_api: ApiHarness, routed: list[str], json_output: bool
) -> None:
    agency = module_api.bus.agency("a")

    result = liaison(
        module_api,
        "deadletters",
        "list",
        "--reason",
        "bad_magic",
        *(["--json"] if json_output else []),
    )

    ok(result)
    if json_output:
        page = json.loads(result.stdout)
        assert sorted(d["id"] for d in page["dead_letters"]) == sorted(routed)
        assert {(d["reason"], d["source_agency"]) for d in page["dead_letters"]} == {
            ("bad_magic", agency)
        }
    else:
        rows = {row[0]: row for row in table_rows(result.stdout)}
        assert sorted(rows) == sorted(routed)
        assert all(rows[i][1:3] == ["bad_magic", agency] for i in routed)


def test_deadletters_show_out_writes_the_original_bytes(
    module_api: ApiHarness, routed: list[str], tmp_path: Path
) -> None:
    saved = tmp_path / "letter.bin"

    result = liaison(module_api, "deadletters", "show", routed[0], "--out", str(saved), "--json")

    assert saved.read_bytes() == b"junk-0"
    answer = json.loads(ok(result).stdout)
    assert answer["value_base64"] == f"<6 bytes written to {saved}>"
    assert answer["headers"]["liaison.reason"] == "bad_magic"


def test_deadletters_show_prints_the_original_bytes_in_base64(
    module_api: ApiHarness, routed: list[str]
) -> None:
    result = liaison(module_api, "deadletters", "show", routed[1])

    assert base64.b64decode(json.loads(ok(result).stdout)["value_base64"]) == b"junk-1"


def test_deadletters_replay_by_reason_replays_each_one_not_yet_replayed(
    module_api: ApiHarness, routed: list[str]
) -> None:
    result = liaison(
        module_api,
        "deadletters",
        "replay",
        "--reason",
        "bad_magic",
        "--source",
        module_api.bus.agency("a"),
        "--json",
    )

    answer = json.loads(ok(result).stdout)
    assert sorted(r["id"] for r in answer["replayed"]) == sorted(routed)
    assert answer["skipped"] == []
    assert "replaying" in result.stderr
    with module_api.client() as admin:
        left = admin.get("/deadletters", params={"reason": "bad_magic", "replayed": "false"})
    assert left.json()["dead_letters"] == []


def test_deadletters_replay_of_a_replayed_one_reports_it_skipped(
    module_api: ApiHarness, routed: list[str]
) -> None:
    with module_api.client() as admin:
        admin.post("/deadletters/replay", json={"ids": [routed[2]]}).raise_for_status()

    result = liaison(module_api, "deadletters", "replay", routed[2])

    assert "replayed 0, skipped 1" in ok(result).stdout
    assert f"{routed[2]}: already replayed (force to repeat)" in result.stdout


def test_deadletters_replay_without_ids_or_filters_is_a_usage_error(
    module_api: ApiHarness,
) -> None:
    result = liaison(module_api, "deadletters", "replay")

    assert result.exit_code == 2


# -- audit ---------------------------------------------------------------------------


@pytest.mark.parametrize("json_output", [False, True], ids=["table", "json"])
def test_audit_query_by_type_shows_only_that_type(
    module_api: ApiHarness, routed: list[str], json_output: bool
) -> None:
    result = liaison(
        module_api,
        "audit",
        "query",
        "--type",
        "policy.activated",
        *(["--json"] if json_output else []),
        role="auditor",
    )

    ok(result)
    if json_output:
        answer = json.loads(result.stdout)
        assert answer["matched"] >= 1
        assert {e["type"] for e in answer["events"]} == {"policy.activated"}
    else:
        assert "policy.activated" in result.stdout
        assert "(admin)" in result.stdout  # the actor column
        assert "bulletin.decided" not in result.stdout


# -- schemas -------------------------------------------------------------------------


@pytest.mark.parametrize("json_output", [False, True], ids=["text", "json"])
def test_schemas_subjects_lists_the_bulletin_and_view_subjects(
    module_api: ApiHarness, json_output: bool
) -> None:
    result = liaison(
        module_api, "schemas", "subjects", *(["--json"] if json_output else []), role="a"
    )

    ok(result)
    listed = json.loads(result.stdout) if json_output else result.stdout.split()
    assert set(ROOTS) <= set(listed)


def test_schemas_show_prints_the_latest_version_as_json(module_api: ApiHarness) -> None:
    answer = as_json(liaison(module_api, "schemas", "show", ROOTS[0], "--json", role="auditor"))

    assert answer["subject"] == ROOTS[0]
    assert json.loads(answer["schema"])["type"] == "record"


def test_schemas_register_again_registers_nothing_new(module_api: ApiHarness) -> None:
    first = as_json(liaison(module_api, "schemas", "register", "--json"))

    again = liaison(module_api, "schemas", "register", "--json")

    assert as_json(again) == first
    assert {r["subject"] for r in first} == set(ROOTS)
    assert "registering" in again.stderr


def test_schemas_register_prints_each_release_and_its_id(module_api: ApiHarness) -> None:
    result = liaison(module_api, "schemas", "register")

    for root in ROOTS:
        assert f"{root} release v1: id " in ok(result).stdout


# -- tokens --------------------------------------------------------------------------


def test_tokens_create_prints_a_token_that_authenticates(module_api: ApiHarness) -> None:
    result = liaison(module_api, "tokens", "create", "auditor", "--label", "quarterly audit")

    token = ok(result).stdout.strip()
    assert token.startswith("lsn_")
    assert "(auditor); shown once" in result.stderr
    with httpx.Client(base_url=module_api.url) as client:
        answer = client.get("/policies", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200


def test_tokens_create_with_file_offline_makes_a_token_the_running_api_accepts(
    module_api: ApiHarness,
) -> None:
    result = liaison(
        module_api,
        "tokens",
        "create",
        "admin",
        "--file",
        str(module_api.store.path),
        "--json",
        role=None,
        url=closed_port_url(),
    )

    answer = as_json(result)
    assert answer["info"]["role"] == "admin"
    with httpx.Client(base_url=module_api.url) as client:
        listed = client.get("/tokens", headers={"Authorization": f"Bearer {answer['token']}"})
    assert listed.status_code == 200
    assert answer["info"]["id"] in {t["id"] for t in listed.json()}


def test_tokens_create_of_an_invalid_role_shows_the_apis_message_as_it_is(
    module_api: ApiHarness,
) -> None:
    result = liaison(module_api, "tokens", "create", "agency:Not-Valid")

    assert result.exit_code == 1
    assert "422 invalid_value" in result.stderr
    assert "^[a-z0-9][a-z0-9-]{1,62}$" in result.stderr


@pytest.mark.parametrize("json_output", [False, True], ids=["table", "json"])
def test_tokens_list_shows_ids_and_roles_but_never_a_token(
    module_api: ApiHarness, json_output: bool
) -> None:
    result = liaison(module_api, "tokens", "list", *(["--json"] if json_output else []))

    ok(result)
    ids = {token.split("_")[1] for token in module_api.tokens.values()}
    if json_output:
        assert ids <= {t["id"] for t in json.loads(result.stdout)}
    else:
        assert all(token_id in result.stdout for token_id in ids)
    assert "lsn_" not in result.output


def test_tokens_revoke_makes_the_token_unknown(module_api: ApiHarness) -> None:
    with module_api.client() as admin:
        created = admin.post("/tokens", json={"role": "auditor"}).json()

    result = liaison(module_api, "tokens", "revoke", created["info"]["id"])

    assert f"revoked token {created['info']['id']} (auditor)" in ok(result).stdout
    with httpx.Client(base_url=module_api.url) as client:
        answer = client.get("/policies", headers={"Authorization": f"Bearer {created['token']}"})
    assert answer.status_code == 401


@pytest.mark.parametrize(
    ("token_id", "exit_code"), [("..", 2), ("../agencies/{agency}", 1)], ids=["dots", "slashes"]
)
def test_tokens_revoke_sends_the_id_as_one_path_segment(
    module_api: ApiHarness, fresh_agency: Iterator[str], token_id: str, exit_code: int
) -> None:
    agency = next(fresh_agency)
    with module_api.client() as admin:
        assert admin.post("/agencies", json={"id": agency}).status_code == 201

    result = liaison(module_api, "tokens", "revoke", token_id.format(agency=agency))

    assert result.exit_code == exit_code
    assert result.stdout == ""
    with module_api.client() as admin:
        assert admin.get(f"/agencies/{agency}").json()["state"] == "active"


# -- operations ----------------------------------------------------------------------


@pytest.mark.parametrize("json_output", [False, True], ids=["text", "json"])
def test_health_reports_ready_without_a_token(module_api: ApiHarness, json_output: bool) -> None:
    result = liaison(module_api, "health", *(["--json"] if json_output else []), role=None)

    ok(result)
    if json_output:
        assert json.loads(result.stdout) == {
            "live": True,
            "status": "ready",
            "checks": {"topics_loaded": True, "broker_reachable": True},
        }
    else:
        assert result.stdout == "ready: topics_loaded=ok, broker_reachable=ok\n"


def test_health_of_an_unreachable_api_exits_3(module_api: ApiHarness) -> None:
    result = liaison(module_api, "health", url=closed_port_url())

    assert result.exit_code == 3
    assert "cannot reach the admin API" in result.stderr


def test_metrics_prints_the_prometheus_exposition(
    module_api: ApiHarness, routed: list[str]
) -> None:
    result = liaison(module_api, "metrics", role="auditor")

    assert 'liaison_dead_letters{reason="bad_magic"} 3.0' in ok(result).stdout.splitlines()


def test_metrics_json_prints_each_sample(module_api: ApiHarness, routed: list[str]) -> None:
    answer = as_json(liaison(module_api, "metrics", "--json", role="auditor"))

    dead = [s for s in answer if s["name"] == "liaison_dead_letters"]
    assert dead == [{"name": "liaison_dead_letters", "labels": {"reason": "bad_magic"}, "value": 3}]


@pytest.mark.parametrize("json_output", [False, True], ids=["text", "json"])
def test_status_summarises_agencies_decisions_and_dead_letters(
    module_api: ApiHarness, routed: list[str], json_output: bool
) -> None:
    result = liaison(module_api, "status", *(["--json"] if json_output else []), role="auditor")

    ok(result)
    if json_output:
        answer = json.loads(result.stdout)
        assert answer["dead_letters"]["by_reason"] == {"bad_magic": 3}
        assert answer["decisions"]["rejected"] == 3
    else:
        assert "decisions: 0 accepted, 3 rejected; dead letters: 3" in result.stdout


# -- exit codes ----------------------------------------------------------------------


def test_a_client_command_without_a_token_exits_2(module_api: ApiHarness) -> None:
    result = liaison(module_api, "agencies", "list", role=None)

    assert result.exit_code == 2
    assert "no token" in result.stderr


def test_a_client_command_against_an_unreachable_api_exits_3(module_api: ApiHarness) -> None:
    result = liaison(module_api, "policies", "list", url=closed_port_url())

    assert result.exit_code == 3
    assert "cannot reach the admin API" in result.stderr


def test_an_unknown_option_exits_2(module_api: ApiHarness) -> None:
    result = liaison(module_api, "agencies", "list", "--no-such-option")

    assert result.exit_code == 2
