"""Where verification's trust comes from: keys the auditor pins, never keys the evidence names.

A log (or a bundle) that names its own verification keys proves nothing: whoever rewrites
the events can re-sign every checkpoint with a key of their own and publish that key beside
them. So :func:`trusted_keys` builds the trusted set only from what the auditor brings:

* public keys (base64 of the 32 raw bytes), as ``liaison audit keygen`` prints them;
* a pinned key file: a JSON object or list of objects with ``public_key`` (and optionally
  ``key_id`` and ``fingerprint``, which must then match it);
* fingerprints: the full SHA-256 of a raw public key (64 hex digits), received out of band.
  The key itself is then taken from the keys the evidence publishes, and trusted only if
  its SHA-256 is that fingerprint. The 16-digit key id is refused as an anchor: 64 bits name
  a key, they do not authenticate one (a second preimage costs about 2^64 hashes).

Without any of these, verification refuses to run (fail closed) rather than fall back on
the evidence's keys. Rotations: every key that signed a checkpoint must be pinned; a
checkpoint signed by any other key is an ``unknown_key`` problem. See ``docs/audit.md``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from bus.audit._keys import PublicKey
from bus.errors import ConfigError

__all__ = ["HOW_TO_TRUST", "refuse_evidence_key_file", "trusted_keys"]

_FINGERPRINT = re.compile(r"[0-9a-f]{64}")
_KEY_ID = re.compile(r"[0-9a-f]{16}")

HOW_TO_TRUST = (
    "give the key you trust, received out of band from the bus's operator (never from the "
    "log or the bundle you are checking): --public-key BASE64 (as `liaison audit keygen` "
    'prints it), --keys FILE (a JSON list of {"public_key": BASE64}), or --fingerprint HEX '
    "(the key's full SHA-256, 64 hex digits); pin every key the log was signed with since "
    "its start (each rotation adds one)"
)


def _published(published: Mapping[str, PublicKey]) -> str:
    listed = ", ".join(f"{k.key_id} (fingerprint {k.fingerprint})" for k in published.values())
    return listed or "none"


_LOG_FIELDS = frozenset({"published_at", "previous"})
"""Fields of the log's own key list (``GET /audit/keys``), never of a pinned key file."""


class _FromTheLogError(ConfigError):
    """A key file that is a copy of what the evidence publishes."""


def refuse_evidence_key_file(keys_file: Path | None, bundle: Path | None) -> None:
    """A key file inside the bundle being verified is the evidence's own (its ``keys.json``
    is written by whoever wrote the bundle): refuse it as a trust anchor."""
    if keys_file is None or bundle is None:
        return
    if keys_file.resolve().is_relative_to(bundle.resolve()):
        raise ConfigError(
            f"the key file {keys_file} is inside the bundle {bundle} being verified: the "
            f"bundle's own keys prove nothing about it; {HOW_TO_TRUST}"
        )


def trusted_keys(
    public_keys: Iterable[str] = (),
    keys_file: Path | None = None,
    fingerprints: Iterable[str] = (),
    *,
    published: Mapping[str, PublicKey],
) -> dict[str, PublicKey]:
    """The keys checkpoints may be signed with, by key id; a :class:`ConfigError` saying how
    to give one when the auditor gave none, or when what was given is unusable."""
    trusted: dict[str, PublicKey] = {}
    for text in public_keys:
        try:
            key = PublicKey.from_json({"public_key": text.strip()})
        except ConfigError as exc:
            raise ConfigError(f"--public-key {text!r} is not usable: {exc}") from exc
        trusted[key.key_id] = key
    if keys_file is not None:
        try:
            loaded = json.loads(keys_file.read_text())
            entries = loaded if isinstance(loaded, list) else [loaded]
            for entry in entries:
                if not isinstance(entry, dict):
                    raise ConfigError("each entry must be an object with 'public_key'")
                if _LOG_FIELDS & entry.keys():
                    raise _FromTheLogError(
                        f"the key file {keys_file} is the log's own key list (GET "
                        "/audit/keys: its entries carry published_at or previous), which "
                        "the log's writer controls; compare each fingerprint with the one "
                        "the bus's operator gave you out of band, then pin it"
                    )
                key = PublicKey.from_json(entry)
                trusted[key.key_id] = key
        except _FromTheLogError as exc:
            raise ConfigError(f"{exc}; {HOW_TO_TRUST}") from None
        except OSError as exc:
            raise ConfigError(f"cannot read the key file {keys_file}: {exc.strerror}") from exc
        except (ValueError, ConfigError) as exc:
            raise ConfigError(
                f'the key file {keys_file} is not a JSON list of {{"public_key": BASE64}}: {exc}'
            ) from exc
    for text in fingerprints:
        wanted = text.strip().lower()
        if _KEY_ID.fullmatch(wanted):
            raise ConfigError(
                f"--fingerprint {text} is a 16-digit key id: it names a key but is too short "
                "to authenticate one; give the full 64-digit fingerprint "
                "(`liaison audit keygen` prints it) or the public key"
            )
        if not _FINGERPRINT.fullmatch(wanted):
            raise ConfigError(
                f"--fingerprint {text!r} is not a SHA-256 fingerprint (64 hex digits)"
            )
        match = [k for k in published.values() if k.fingerprint == wanted]
        if not match:
            raise ConfigError(
                f"no key with fingerprint {wanted} is published in the log (published: "
                f"{_published(published)}); give that key itself with --public-key"
            )
        trusted[match[0].key_id] = match[0]
    if not trusted:
        raise ConfigError(
            "no trust anchor: verify checks checkpoint signatures only against keys you "
            f"trust; {HOW_TO_TRUST}. Keys this log publishes (not trusted until you compare "
            f"their fingerprints with yours): {_published(published)}"
        )
    return trusted
