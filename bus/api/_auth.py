"""Bearer tokens and roles; object-level authorization for every route.

Roles:

* ``admin``: everything;
* ``auditor``: read-only on audit and policies;
* ``agency:<id>``: its own agency only. Asking about another agency answers 404, the
  same as an agency that does not exist, so a token never learns who else is on the bus.

Tokens look like ``lsn_<id>_<secret>``; the store keeps only their SHA-256 (the secret
is 256 random bits, so a plain hash is enough: there is nothing to brute-force) and
compares in constant time. A token is shown once, when it is created.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bus.bulletin import AGENCY_ID_PATTERN
from bus.errors import ConfigError

__all__ = ["Principal", "Role", "TokenInfo", "TokenStore", "parse_role"]

_TOKEN = re.compile(r"lsn_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
_TOKEN_ID = re.compile(r"[0-9a-f]{12}")
_SECRET = re.compile(r"[A-Za-z0-9_-]{43}")
_ROLE = re.compile(rf"admin|auditor|agency:{AGENCY_ID_PATTERN.strip('^$')}")

Role = str
"""``admin``, ``auditor`` or ``agency:<id>``."""


def parse_role(role: str) -> str:
    if not _ROLE.fullmatch(role):
        raise ConfigError(
            f"role {role!r} is not one of admin, auditor or agency:<agency id> "
            f"(agency ids match {AGENCY_ID_PATTERN})"
        )
    return role


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's id and role."""

    token_id: str
    role: str

    @property
    def kind(self) -> Literal["admin", "auditor", "agency"]:
        if self.role in ("admin", "auditor"):
            return self.role  # type: ignore[return-value]
        return "agency"

    @property
    def agency(self) -> str | None:
        """The agency id of an ``agency:<id>`` token."""
        return self.role.split(":", 1)[1] if self.role.startswith("agency:") else None

    @property
    def actor(self) -> str:
        """How audit events name this caller."""
        return f"token:{self.token_id} ({self.role})"


class TokenInfo(BaseModel):
    """A token as stored: never the token itself."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[0-9a-f]{12}$", examples=["3f9a0c1be24d"])
    role: str = Field(examples=["auditor"])
    label: str = Field(default="", max_length=200, examples=["quarterly audit"])
    created_at: datetime
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", exclude=True, repr=False)

    @field_validator("role")
    @classmethod
    def _role(cls, value: str) -> str:
        return parse_role(value)


class _TokenFile(BaseModel):
    tokens: list[TokenInfo] = Field(default_factory=list)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """Hashed tokens in a JSON file (mode 0600), re-read when it changes on disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._mtime_ns: int | None = None
        self._tokens: dict[str, TokenInfo] = {}

    def _load(self) -> dict[str, TokenInfo]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._tokens, self._mtime_ns = {}, None
            return self._tokens
        if stat.st_mtime_ns != self._mtime_ns:
            try:
                raw = json.loads(self.path.read_text())
                stored = {t.id: t for t in _TokenFile.model_validate(raw).tokens}
            except ValueError as exc:
                raise ConfigError(
                    f"token file {self.path} is not valid ({type(exc).__name__}); "
                    "fix or remove it and create tokens again"
                ) from exc
            self._tokens, self._mtime_ns = stored, stat.st_mtime_ns
        return self._tokens

    def _save(self, tokens: dict[str, TokenInfo]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "tokens": [
                {**t.model_dump(mode="json"), "sha256": t.sha256}
                for t in sorted(tokens.values(), key=lambda t: t.created_at)
            ]
        }
        staged = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}")
        fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(data, out, indent=1)
            out.flush()
            os.fsync(out.fileno())
        staged.replace(self.path)
        self._tokens, self._mtime_ns = tokens, self.path.stat().st_mtime_ns

    def create(self, role: str, label: str = "") -> tuple[str, TokenInfo]:
        """A new token for ``role``: returns the token (shown once) and what is stored."""
        parse_role(role)
        token_id = secrets.token_hex(6)
        token = f"lsn_{token_id}_{secrets.token_urlsafe(32)}"
        info = TokenInfo(
            id=token_id,
            role=role,
            label=label,
            created_at=datetime.now(UTC),
            sha256=_digest(token),
        )
        with self._lock:
            tokens = dict(self._load())
            tokens[token_id] = info
            self._save(tokens)
        return token, info

    def entries(self) -> list[TokenInfo]:
        with self._lock:
            return sorted(self._load().values(), key=lambda t: t.created_at)

    def revoke(self, token_id: str) -> bool:
        with self._lock:
            tokens = dict(self._load())
            if tokens.pop(token_id, None) is None:
                return False
            self._save(tokens)
            return True

    def revoke_role(self, role: str) -> list[str]:
        """Revoke every token of ``role`` (an agency's, when the agency is revoked)."""
        with self._lock:
            tokens = dict(self._load())
            gone = [t.id for t in tokens.values() if t.role == role]
            for token_id in gone:
                del tokens[token_id]
            if gone:
                self._save(tokens)
            return gone

    def authenticate_basic(self, user: str, password: str) -> Principal | None:
        """The principal of HTTP Basic credentials: the token's id and its secret."""
        if not (_TOKEN_ID.fullmatch(user) and _SECRET.fullmatch(password)):
            return None
        return self.authenticate(f"lsn_{user}_{password}")

    def authenticate(self, token: str) -> Principal | None:
        """The principal of a valid token, else ``None`` (constant time per candidate)."""
        match = _TOKEN.fullmatch(token)
        if match is None:
            return None
        with self._lock:
            info = self._load().get(match.group(1))
        expected = info.sha256 if info is not None else "0" * 64
        if not hmac.compare_digest(_digest(token), expected) or info is None:
            return None
        return Principal(token_id=info.id, role=info.role)
