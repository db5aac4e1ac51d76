"""Trust anchors of ``liaison audit verify``, offline: no broker.

Verification trusts only keys the auditor brings (a public key, a pinned key file, or a full
fingerprint); the keys a bundle or log publishes are never an anchor by themselves. A bundle
forged as issue 15.1 describes (an event edited, every checkpoint re-signed with a new key,
``keys.json`` replaced) must fail; the genuine bundle with the right anchor must pass. (The
same attack on a bundle exported from a real broker is in tests/e2e/test_audit.py.)
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from bus.audit import AuditRecord, ChainState, PublicKey, Signer
from bus.audit._io import Evidence, write_bundle
from bus.audit._trust import trusted_keys
from bus.cli import app
from bus.errors import ConfigError
from tests.support.audit_forgery import forge_bundle

GENUINE = Signer(bytes(range(32)))
FORGER = Signer(bytes(range(1, 33)))
NOW = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
POLICE = "liaison.in.police"

runner = CliRunner()


def decision(n: int) -> dict[str, Any]:
    return {
        "type": "bulletin.decided",
        "outcome": "accepted",
        "bulletin_id": f"police:{n:06d}",
        "source": "police",
        "input": {"topic": POLICE, "partition": 0, "offset": n},
        "time": NOW.isoformat(),
    }


def genuine_bundle(directory: Path) -> Path:
    """Two chains (the admin one publishing the key), checkpoints of both, all sealed."""
    edge, admin = ChainState("edge.0"), ChainState("admin")
    values = [admin.seal({"type": "audit.key", **GENUINE.public.to_json(), "previous": []})]
    for n in range(7):
        values.append(edge.seal(decision(n)))
        if n == 3:
            values.append(edge.checkpoint(GENUINE, now=NOW))
    values += [edge.checkpoint(GENUINE, now=NOW), admin.checkpoint(GENUINE, now=NOW)]
    records = [AuditRecord(i, v) for i, v in enumerate(values)]
    keys = {GENUINE.public.key_id: GENUINE.public}
    write_bundle(Evidence(records, {(POLICE, 0): (0, 7)}, keys), directory)
    return directory


def b64(key: PublicKey) -> str:
    return base64.b64encode(key.raw).decode()


def liaison(*args: str) -> Result:
    env = {"LIAISON_KAFKA_CREDENTIALS": None, "LIAISON_KAFKA_BOOTSTRAP": None, "COLUMNS": "250"}
    result = runner.invoke(app, list(args), env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


# ---------------------------------------------------------------------------------------------
# The forged bundle through the CLI


def test_the_forged_bundle_is_consistent_with_itself(tmp_path: Path) -> None:
    """The forgery is complete: trusting the forger's key, it verifies. So only the anchor
    tells it from the genuine bundle (else the tests below could pass for another reason)."""
    bundle = genuine_bundle(tmp_path / "b")
    forge_bundle(bundle, FORGER)

    result = liaison("audit", "verify", "--bundle", str(bundle), "--public-key", b64(FORGER.public))

    assert result.exit_code == 0, result.output


def test_a_forged_bundle_is_refused_without_a_trust_anchor(tmp_path: Path) -> None:
    bundle = genuine_bundle(tmp_path / "b")
    forge_bundle(bundle, FORGER)

    result = liaison("audit", "verify", "--bundle", str(bundle))

    assert result.exit_code == 2, result.output
    said = " ".join(result.stderr.split())
    assert "no trust anchor" in said
    for way in ("--public-key", "--keys", "--fingerprint", "out of band"):
        assert way in said
    assert "using the keys published" not in result.output


@pytest.mark.parametrize("anchor", ["--public-key", "--fingerprint", "--keys"])
def test_a_forged_bundle_fails_against_the_genuine_key_however_it_is_pinned(
    tmp_path: Path, anchor: str
) -> None:
    bundle = genuine_bundle(tmp_path / "b")
    forge_bundle(bundle, FORGER, also_publish=[GENUINE.public])  # the true key listed too
    pinned = tmp_path / "pinned.json"
    pinned.write_text(json.dumps([GENUINE.public.to_json()]))
    value = {
        "--public-key": b64(GENUINE.public),
        "--fingerprint": GENUINE.public.fingerprint,
        "--keys": str(pinned),
    }[anchor]

    result = liaison("audit", "verify", "--bundle", str(bundle), anchor, value, "--json")

    assert result.exit_code == 1, result.output
    problems = json.loads(result.stdout)["problems"]
    assert problems
    assert {p["kind"] for p in problems} == {"unknown_key"}


def test_the_bundles_own_key_file_is_refused_as_the_anchor(tmp_path: Path) -> None:
    """keys.json is written by whoever wrote the bundle: given as --keys, it would make
    the forgery verify."""
    bundle = genuine_bundle(tmp_path / "b")
    forge_bundle(bundle, FORGER)

    result = liaison(
        "audit", "verify", "--bundle", str(bundle), "--keys", str(bundle / "keys.json")
    )

    assert result.exit_code == 2, result.output
    said = " ".join(result.stderr.split())
    assert "inside the bundle" in said
    assert "verified" not in result.stdout


def test_the_logs_own_key_list_is_refused_as_the_anchor(tmp_path: Path) -> None:
    """GET /audit/keys lists what the log publishes (with published_at and previous):
    saved as a key file, it is the evidence's word about itself."""
    bundle = genuine_bundle(tmp_path / "b")
    forge_bundle(bundle, FORGER)
    listed = tmp_path / "audit-keys.json"
    listed.write_text(
        json.dumps([{**FORGER.public.to_json(), "published_at": NOW.isoformat(), "previous": []}])
    )

    result = liaison("audit", "verify", "--bundle", str(bundle), "--keys", str(listed))

    assert result.exit_code == 2, result.output
    assert "the log's own key list" in " ".join(result.stderr.split())


@pytest.mark.parametrize("anchor", ["--public-key", "--fingerprint", "--keys"])
def test_the_genuine_bundle_passes_with_the_right_anchor(tmp_path: Path, anchor: str) -> None:
    bundle = genuine_bundle(tmp_path / "b")
    pinned = tmp_path / "pinned.json"
    pinned.write_text(json.dumps([GENUINE.public.to_json()]))
    value = {
        "--public-key": b64(GENUINE.public),
        "--fingerprint": GENUINE.public.fingerprint,
        "--keys": str(pinned),
    }[anchor]

    result = liaison("audit", "verify", "--bundle", str(bundle), anchor, value, "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["problems"] == []


def test_a_fingerprint_absent_from_a_forged_bundle_is_an_error_naming_it(tmp_path: Path) -> None:
    bundle = genuine_bundle(tmp_path / "b")
    forge_bundle(bundle, FORGER)

    result = liaison(
        "audit", "verify", "--bundle", str(bundle), "--fingerprint", GENUINE.public.fingerprint
    )

    assert result.exit_code == 2, result.output
    said = "".join(result.stderr.split())
    assert f"nokeywithfingerprint{GENUINE.public.fingerprint}" in said
    assert "--public-key" in said


def test_keygen_prints_the_fingerprint_an_auditor_pins(tmp_path: Path) -> None:
    result = liaison("audit", "keygen", str(tmp_path / "k"))

    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    key = PublicKey.from_json(printed)
    assert printed["fingerprint"] == key.fingerprint
    assert key.fingerprint.startswith(key.key_id)
    assert len(key.fingerprint) == 64


# ---------------------------------------------------------------------------------------------
# trusted_keys


def test_no_anchor_is_refused_even_when_the_evidence_publishes_keys() -> None:
    with pytest.raises(ConfigError, match="no trust anchor"):
        trusted_keys(published={GENUINE.public.key_id: GENUINE.public})


def test_a_fingerprint_trusts_only_the_published_key_it_hashes_to() -> None:
    published = {k.key_id: k for k in (GENUINE.public, FORGER.public)}

    trusted = trusted_keys(fingerprints=[GENUINE.public.fingerprint.upper()], published=published)

    assert trusted == {GENUINE.public.key_id: GENUINE.public}


def test_a_16_digit_key_id_is_refused_as_an_anchor() -> None:
    published = {GENUINE.public.key_id: GENUINE.public}
    with pytest.raises(ConfigError, match="too short to authenticate"):
        trusted_keys(fingerprints=[GENUINE.public.key_id], published=published)


@pytest.mark.parametrize("text", ["xyz", "0" * 63, "g" * 64])
def test_a_malformed_fingerprint_is_named(text: str) -> None:
    with pytest.raises(ConfigError, match=f"--fingerprint '{text}' is not a SHA-256"):
        trusted_keys(fingerprints=[text], published={})


def test_a_key_file_may_be_keygens_output_or_a_list(tmp_path: Path) -> None:
    one, many = tmp_path / "one.json", tmp_path / "many.json"
    one.write_text(
        json.dumps({**GENUINE.public.to_json(), "fingerprint": GENUINE.public.fingerprint})
    )
    many.write_text(json.dumps([GENUINE.public.to_json(), FORGER.public.to_json()]))

    assert set(trusted_keys(keys_file=one, published={})) == {GENUINE.public.key_id}
    assert set(trusted_keys(keys_file=many, published={})) == {
        GENUINE.public.key_id,
        FORGER.public.key_id,
    }


def test_a_key_file_whose_fingerprint_does_not_match_its_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    path.write_text(json.dumps({**GENUINE.public.to_json(), "fingerprint": "0" * 64}))
    with pytest.raises(ConfigError, match="does not match its public key"):
        trusted_keys(keys_file=path, published={})


def test_an_empty_key_file_is_no_anchor(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    path.write_text("[]")
    with pytest.raises(ConfigError, match="no trust anchor"):
        trusted_keys(keys_file=path, published={})


def test_a_bad_public_key_is_named() -> None:
    with pytest.raises(ConfigError, match="--public-key 'AAAA' is not usable"):
        trusted_keys(["AAAA"], published={})
