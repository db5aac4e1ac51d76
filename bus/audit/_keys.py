"""The audit log's Ed25519 signing key: loaded from a file or the environment, never printed.

A key file holds the 32-byte private seed as hex (``liaison audit keygen`` writes one, mode
0600). A key is named by its id: the first 16 hex digits of the SHA-256 of the raw public key
(the 32 bytes of RFC 8032's encoding). Its *fingerprint* is that whole SHA-256 (64 hex digits):
what an auditor pins out of band (the 64-bit id names a key, it does not authenticate one).
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from bus.errors import ConfigError

__all__ = ["PublicKey", "Signer", "fingerprint_of", "key_id_of", "load_signer", "new_key_hex"]

KEY_FILE_ENV = "LIAISON_AUDIT_KEY_FILE"
KEY_ENV = "LIAISON_AUDIT_KEY"


def fingerprint_of(raw_public: bytes) -> str:
    """The SHA-256 of the raw 32-byte public key, as 64 lowercase hex digits."""
    return hashlib.sha256(raw_public).hexdigest()


def key_id_of(raw_public: bytes) -> str:
    """The first 16 hex digits of the key's fingerprint."""
    return fingerprint_of(raw_public)[:16]


@dataclass(frozen=True)
class PublicKey:
    """A verification key: its id and the raw 32 bytes (base64 in JSON)."""

    key_id: str
    raw: bytes

    def verify(self, signature: bytes, message: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.raw).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(self.raw)

    def to_json(self) -> dict[str, str]:
        return {"key_id": self.key_id, "public_key": base64.b64encode(self.raw).decode()}

    @classmethod
    def from_json(cls, data: dict[str, str]) -> PublicKey:
        try:
            raw = base64.b64decode(data["public_key"], validate=True)
        except (KeyError, ValueError) as exc:
            raise ConfigError("a public key needs base64 'public_key' (32 bytes)") from exc
        if len(raw) != 32:
            raise ConfigError(f"an Ed25519 public key is 32 bytes, not {len(raw)}")
        key = cls(key_id_of(raw), raw)
        if data.get("key_id", key.key_id) != key.key_id:
            raise ConfigError(f"key id {data.get('key_id')!r} does not match its public key")
        if data.get("fingerprint", key.fingerprint) != key.fingerprint:
            raise ConfigError(
                f"fingerprint {data.get('fingerprint')!r} does not match its public key"
            )
        return key


class Signer:
    """Signs checkpoints; ``repr`` never shows the key."""

    def __init__(self, seed: bytes) -> None:
        if len(seed) != 32:
            raise ConfigError(f"an Ed25519 private key seed is 32 bytes, not {len(seed)}")
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        raw = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.public = PublicKey(key_id_of(raw), raw)

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def __repr__(self) -> str:
        return f"Signer(key_id={self.public.key_id!r})"


def new_key_hex() -> str:
    return secrets.token_bytes(32).hex()


def load_signer(path: Path | None = None) -> Signer:
    """From ``path``, else LIAISON_AUDIT_KEY_FILE, else LIAISON_AUDIT_KEY (hex seed)."""
    text: str | None = None
    source = "LIAISON_AUDIT_KEY"
    path = path or (Path(os.environ[KEY_FILE_ENV]) if os.environ.get(KEY_FILE_ENV) else None)
    if path is not None:
        source = str(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read the audit key file {path}: {exc.strerror}") from exc
    else:
        text = os.environ.get(KEY_ENV)
    if not text:
        raise ConfigError(
            "no audit signing key: set LIAISON_AUDIT_KEY_FILE to a key file "
            "(`liaison audit keygen FILE` writes one)"
        )
    try:
        seed = bytes.fromhex(text.strip())
    except ValueError as exc:
        raise ConfigError(f"the audit key in {source} is not hex") from exc
    return Signer(seed)
