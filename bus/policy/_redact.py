"""Redaction steps: what happens to one field, how steps combine, and how they apply.

Pure functions over fastavro-form records. Every action keeps the value's Avro type:
text stays text, a position stays a position, a time stays a time, and ``drop``
only touches optional fields (null is in their type).
"""

from __future__ import annotations

import hashlib
import hmac
import math
from base64 import b32encode
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, SecretBytes

from bus.policy._document import Action

__all__ = ["ACTION_FITS", "AppliedRedaction", "OpTree", "RedactionKeys", "Step", "apply_steps"]

_KM_PER_DEGREE = 111.32

ACTION_FITS: dict[Action, frozenset[str]] = {
    Action.DROP: frozenset(),  # any optional field
    Action.MASK: frozenset({"string", "array<string>"}),
    Action.PSEUDONYMIZE: frozenset({"string", "array<string>"}),
    Action.TRUNCATE: frozenset({"string", "array<string>"}),
    Action.GENERALIZE: frozenset(
        {"point", "array<point>", "timestamp", "int", "long", "float", "double"}
    ),
}
"""Field shapes each action can transform and keep schema-valid (drop: every optional)."""

_ORDER = list(Action)  # least to most restrictive


class RedactionKeys(BaseModel):
    """Keys for ``pseudonymize``: from configuration or the environment, never the policy.

    Each recipient gets its own key derived from ``master`` (HMAC-SHA256 over the agency
    id), so the same value yields the same token for one recipient and unlinkable
    tokens for two.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    master: SecretBytes

    def for_recipient(self, agency: str) -> bytes:
        return _derive(self.master.get_secret_value(), agency)


@lru_cache(maxsize=4096)
def _derive(master: bytes, agency: str) -> bytes:
    return hmac.new(master, b"liaison-pseudonym\x00" + agency.encode(), hashlib.sha256).digest()


@dataclass(frozen=True)
class Step:
    """The combined redaction of one field for one recipient."""

    action: Action
    rules: tuple[str, ...]
    token: str | None = None
    grid_km: float | None = None
    time_unit: str | None = None
    bucket: float | None = None
    max_chars: int | None = None

    @property
    def detail(self) -> str:
        params = {
            "grid_km": self.grid_km,
            "time_unit": self.time_unit,
            "bucket": self.bucket,
            "max_chars": self.max_chars,
        }
        return ",".join(
            f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in params.items()
            if v is not None
        )

    def combine(self, other: Step) -> Step:
        """The more restrictive of two steps on the same field; rule ids merge.

        Different actions: the later in :class:`Action` wins (drop > mask >
        pseudonymize > generalize > truncate). The same action: the coarser
        parameter wins (larger grid or bucket, day over hour, fewer characters);
        two mask tokens: the lexically smaller, so the result is deterministic.
        """
        rules = tuple(sorted(set(self.rules) | set(other.rules)))
        a, b = _ORDER.index(self.action), _ORDER.index(other.action)
        if a != b:
            winner = self if a > b else other
            return Step(**{**winner.__dict__, "rules": rules})
        return Step(
            action=self.action,
            rules=rules,
            token=_min_opt(self.token, other.token),
            grid_km=_max_opt(self.grid_km, other.grid_km),
            time_unit=(
                "day"
                if "day" in (self.time_unit, other.time_unit)
                else self.time_unit or other.time_unit
            ),
            bucket=_max_opt(self.bucket, other.bucket),
            max_chars=_min_opt(self.max_chars, other.max_chars),
        )


_T = TypeVar("_T", int, float, str)


def _max_opt(a: _T | None, b: _T | None) -> _T | None:
    return b if a is None else a if b is None else max(a, b)


def _min_opt(a: _T | None, b: _T | None) -> _T | None:
    return b if a is None else a if b is None else min(a, b)


@dataclass(frozen=True)
class AppliedRedaction:
    """A manifest entry: which field, which action (and its parameters), which rules."""

    path: str
    action: Action
    detail: str
    rules: tuple[str, ...]

    def avro(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "action": self.action.value.upper(),
            "detail": self.detail,
            "rules": list(self.rules),
        }


@dataclass
class OpTree:
    """Steps arranged by path, so one walk applies them all."""

    step: Step | None = None
    path: str = ""
    children: dict[str, OpTree] = field(default_factory=dict)

    @classmethod
    def build(cls, steps: Mapping[str, Step]) -> OpTree:
        root = cls()
        for path, step in sorted(steps.items()):
            node = root
            walked = []
            for part in path.split("."):
                walked.append(part)
                node = node.children.setdefault(part, OpTree(path=".".join(walked)))
            node.step = step
        return root


def apply_steps(
    record: Mapping[str, Any], tree: OpTree, recipient_key: bytes
) -> tuple[dict[str, Any], list[AppliedRedaction]]:
    """Apply ``tree`` to a copy of ``record`` (copy-on-write along redacted paths).

    Returns the redacted record and the manifest of redactions that changed a value.
    """
    manifest: dict[str, AppliedRedaction] = {}
    result = _apply(record, tree, recipient_key, manifest)
    return result, list(manifest.values())


def _apply(value: Any, node: OpTree, key: bytes, manifest: dict[str, AppliedRedaction]) -> Any:
    if value is None:
        return None
    if node.step is not None:
        redacted = _transform(value, node.step, key)
        if redacted != value:  # a short text under truncate, say, lost nothing
            manifest.setdefault(
                node.path,
                AppliedRedaction(node.path, node.step.action, node.step.detail, node.step.rules),
            )
        return redacted
    if isinstance(value, list):
        return [_apply(item, node, key, manifest) for item in value]
    if isinstance(value, dict):
        out = dict(value)
        for name, child in node.children.items():
            if name in out:
                out[name] = _apply(out[name], child, key, manifest)
        return out
    return value


def _transform(value: Any, step: Step, key: bytes) -> Any:
    if step.action is Action.DROP:
        return None
    if isinstance(value, list):
        return [_transform(item, step, key) for item in value]
    if step.action is Action.MASK:
        return step.token
    if step.action is Action.PSEUDONYMIZE:
        digest = hmac.new(key, str(value).encode(), hashlib.sha256).digest()
        return "pseudonym:" + b32encode(digest[:10]).decode().lower()
    if step.action is Action.TRUNCATE:
        return str(value)[: step.max_chars]
    return _generalize(value, step)


def _generalize(value: Any, step: Step) -> Any:
    if step.grid_km is not None and isinstance(value, dict):
        return _snap(value, step.grid_km)
    if step.time_unit is not None and isinstance(value, datetime):
        if step.time_unit == "day":
            return value.replace(hour=0, minute=0, second=0, microsecond=0)
        return value.replace(minute=0, second=0, microsecond=0)
    if step.bucket is not None and isinstance(value, int | float) and not isinstance(value, bool):
        bucketed = math.floor(value / step.bucket) * step.bucket
        return int(bucketed) if isinstance(value, int) else float(bucketed)
    raise ValueError(f"generalize with {step.detail} does not apply to a {type(value).__name__}")


def _snap(point: Mapping[str, Any], grid_km: float) -> dict[str, Any]:
    """The centre of the grid cell holding the point: cells are grid_km tall, and
    grid_km wide at the cell's own latitude (so they stay roughly square)."""
    lat_step = grid_km / _KM_PER_DEGREE
    lat = (math.floor((point["lat"] + 90) / lat_step) + 0.5) * lat_step - 90
    lat = min(max(lat, -90.0), 90.0)
    width = max(math.cos(math.radians(lat)), 1e-6) * _KM_PER_DEGREE
    lon_step = min(grid_km / width, 360.0)
    lon = (math.floor((point["lon"] + 180) / lon_step) + 0.5) * lon_step - 180
    lon = min(max(lon, -180.0), 180.0)
    return {**point, "lat": round(lat, 6), "lon": round(lon, 6)}
