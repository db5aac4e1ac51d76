"""Frozen history of the composed bulletin schema.

Every released version of ``liaison.bulletin.Bulletin`` is kept as
``schemas/released/<full name>/v<N>.avsc`` and its SHA-256 in
``schemas/released/LOCK.json``. Released bytes never change; a change to the schema
files becomes version N+1 through :func:`release`, which first proves it is
BACKWARD_TRANSITIVE compatible with every earlier release.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from bus.errors import IncompatibleSchemaError, SchemaHistoryError
from bus.schemas._catalog import BULLETIN, SchemaCatalog, canonical_json
from bus.schemas._compat import DEFAULT_MODE, incompatibilities

__all__ = ["Release", "check_history", "release", "releases"]

_LOCK = "LOCK.json"


@dataclass(frozen=True)
class Release:
    """One frozen version of a composed schema."""

    name: str
    version: int
    text: str


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _released_dir(catalog: SchemaCatalog) -> Path:
    return catalog.directory / "released"


def _lock(catalog: SchemaCatalog) -> dict[str, dict[str, str]]:
    path = _released_dir(catalog) / _LOCK
    if not path.exists():
        return {}
    loaded: dict[str, dict[str, str]] = json.loads(path.read_text())
    return loaded


def releases(catalog: SchemaCatalog, name: str = BULLETIN) -> list[Release]:
    """Released versions, oldest first, each verified against the lock file."""
    lock = _lock(catalog).get(name, {})
    folder = _released_dir(catalog) / name
    on_disk = (
        sorted(folder.glob("v*.avsc"), key=lambda p: int(p.stem[1:])) if folder.exists() else []
    )
    if sorted(p.stem for p in on_disk) != sorted(lock):
        raise SchemaHistoryError(
            f"{folder} holds {sorted(p.stem for p in on_disk)} but {_LOCK} records "
            f"{sorted(lock)}; released versions are never added or removed by hand"
        )
    out: list[Release] = []
    for expected_version, path in enumerate(on_disk, start=1):
        version = int(path.stem[1:])
        if version != expected_version:
            raise SchemaHistoryError(
                f"{name} releases skip from v{expected_version - 1} to v{version}"
            )
        raw = path.read_bytes()
        digest = hashlib.sha256(raw).hexdigest()  # the bytes, not decoded text: CRLF counts
        text = raw.decode()
        if digest != lock[path.stem]:
            raise SchemaHistoryError(
                f"released schema {name} v{version} ({path}) changed: sha256 {digest} but "
                f"{_LOCK} records {lock[path.stem]}. Released versions are frozen; restore the "
                "file from git and change the schema files instead"
            )
        out.append(Release(name=name, version=version, text=text))
    return out


def check_history(catalog: SchemaCatalog, name: str = BULLETIN) -> Release:
    """The current release; raises if history was altered or the schema files moved on."""
    history = releases(catalog, name)
    current = canonical_json(catalog.composed(name))
    if not history or history[-1].text != current:
        raise SchemaHistoryError(
            f"the schema files describe a {name} that is not released yet; run "
            "`liaison schemas release` to check compatibility and freeze it as the next version"
        )
    return history[-1]


def release(catalog: SchemaCatalog, name: str = BULLETIN) -> Release:
    """Freeze the current composed schema as the next version (idempotent)."""
    history = releases(catalog, name)
    current = canonical_json(catalog.composed(name))
    if history and history[-1].text == current:
        return history[-1]
    problems = incompatibilities(current, [r.text for r in history], DEFAULT_MODE)
    if problems:
        raise IncompatibleSchemaError(
            f"the changed {name} is not {DEFAULT_MODE.value} compatible with its releases: "
            + "; ".join(problems)
            + ". Make new fields optional with a default, and never remove or rename a field"
        )
    version = len(history) + 1
    folder = _released_dir(catalog) / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"v{version}.avsc").write_text(current)
    lock = _lock(catalog)
    lock.setdefault(name, {})[f"v{version}"] = _sha256(current)
    (_released_dir(catalog) / _LOCK).write_text(json.dumps(lock, indent=2, sort_keys=True) + "\n")
    return Release(name=name, version=version, text=current)
