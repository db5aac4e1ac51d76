"""Adapter instances as configured in YAML, and adapter types found by entry point."""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import StrEnum
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from bus.adapters._contract import AdapterContext, AdapterType, Sink, Source
from bus.bulletin import AGENCY_ID_PATTERN
from bus.errors import ConfigError

__all__ = [
    "ENTRY_POINT_GROUP",
    "Direction",
    "InstanceSpec",
    "RunnerConfig",
    "build_instance",
    "discover_adapters",
    "load_runner_config",
]

ENTRY_POINT_GROUP = "liaison.adapters"
_INSTANCE_NAME = r"^[a-z0-9][a-z0-9_-]{0,62}$"


class Direction(StrEnum):
    """Which way an instance moves records."""

    SOURCE = "source"
    """Native records in, bulletins onto the agency's from-topic."""
    SINK = "sink"
    """Views from the agency's to-topic out, as native records."""


class InstanceSpec(BaseModel):
    """One adapter instance: ``name`` / ``type`` / ``direction`` / ``config``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=_INSTANCE_NAME, description="Unique in the file; names the group.")
    type: str = Field(min_length=1, description="An adapter type, e.g. jsonl, webhook, cap, stix.")
    direction: Direction
    config: dict[str, Any] = Field(default_factory=dict)


class RunnerConfig(BaseModel):
    """The file ``liaison adapter run`` reads; Kafka credentials come from the environment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    agency: str = Field(pattern=AGENCY_ID_PATTERN)
    prefix: str = Field(default="liaison", pattern=r"^[a-z0-9][a-z0-9-]*$")
    rejects_dir: Path = Field(
        default=Path("rejects"), description="Each instance writes <name>.jsonl here."
    )
    state_dir: Path = Field(default=Path("state"), description="Each instance gets <name>/ here.")
    health_port: int | None = Field(default=None, ge=0, le=65535)
    status_interval_s: float = Field(default=30.0, gt=0)
    max_in_flight: int = Field(default=100, ge=1, description="Unacknowledged bulletins at most.")
    retry_initial_ms: int = Field(default=200, ge=1)
    retry_max_ms: int = Field(default=30_000, ge=1)
    schema_wait_s: float = Field(
        default=30.0,
        ge=0,
        description="How long a sink waits for the registry to learn a view's schema id "
        "before it sends the view to the rejects as unknown_schema_id.",
    )
    instances: list[InstanceSpec] = Field(min_length=1)

    @field_validator("instances")
    @classmethod
    def _unique_names(cls, instances: list[InstanceSpec]) -> list[InstanceSpec]:
        seen: set[str] = set()
        for spec in instances:
            if spec.name in seen:
                raise ValueError(f"instance name {spec.name!r} is used twice; names must be unique")
            seen.add(spec.name)
        return instances

    _base_dir: Path | None = PrivateAttr(default=None)

    @property
    def base_dir(self) -> Path | None:
        """The directory relative paths resolve against (the file's), once resolved."""
        return self._base_dir

    def resolve(self, base: Path) -> RunnerConfig:
        """Every relative path taken from ``base`` (the configuration file's directory).

        ``rejects_dir`` and ``state_dir`` here; the instances' path settings (every
        ``pathlib.Path`` setting of their config models) when they are built, through
        :attr:`base_dir`.
        """
        resolved = self.model_copy(
            update={
                "rejects_dir": base / self.rejects_dir,
                "state_dir": base / self.state_dir,
            }
        )
        resolved._base_dir = base
        return resolved


def _explain(exc: ValidationError, where: str) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"{where}{loc}: {err['msg']}")
    return "; ".join(lines)


def load_runner_config(path: Path) -> RunnerConfig:
    """Read and validate a runner file; :class:`ConfigError` names each bad setting."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the adapter configuration {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping with agency and instances")
    try:
        config = RunnerConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_explain(exc, '')}") from exc
    return config.resolve(path.parent)


def discover_adapters(names: Iterable[str] | None = None) -> dict[str, AdapterType]:
    """Adapter types installed under the entry-point group ``liaison.adapters``.

    With ``names``, only those are loaded (a broken plugin that is not used cannot
    stop the others); a name not installed is simply absent from the result.
    """
    wanted = set(names) if names is not None else None
    found: dict[str, AdapterType] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if wanted is not None and ep.name not in wanted:
            continue
        try:
            adapter = ep.load()
        except Exception as exc:
            raise ConfigError(
                f"adapter type {ep.name} ({ep.value}) failed to load: "
                f"{type(exc).__name__}: {exc}; reinstall or fix the package that provides it"
            ) from exc
        if not isinstance(adapter, AdapterType):
            raise ConfigError(
                f"entry point {ep.name} = {ep.value} is a {type(adapter).__name__}, "
                "not a bus.adapters.AdapterType"
            )
        if ep.name in found:
            raise ConfigError(
                f"two installed packages provide the adapter type {ep.name!r}; "
                "uninstall one, or rename its entry point"
            )
        if adapter.name != ep.name:
            raise ConfigError(
                f"entry point {ep.name} names an AdapterType called {adapter.name!r}; "
                "make the two equal"
            )
        found[ep.name] = adapter
    return found


def build_instance(
    spec: InstanceSpec,
    adapters: dict[str, AdapterType],
    context: AdapterContext,
    *,
    base: Path | None = None,
) -> Source | Sink:
    """Validate the instance's config against its type's model and build it.

    With ``base`` (the configuration file's directory), every setting the config model
    declares as a :class:`pathlib.Path` (or ``Path | None``) that is relative is taken
    from ``base``, as ``rejects_dir`` and ``state_dir`` are: a configuration file means
    the same files whatever directory the runner is started from.
    """
    where = f"instance {spec.name!r}"
    adapter = adapters.get(spec.type)
    if adapter is None:
        known = ", ".join(sorted(adapters)) or "(none installed)"
        raise ConfigError(f"{where}: unknown adapter type {spec.type!r}; installed: {known}")
    factory = adapter.source if spec.direction is Direction.SOURCE else adapter.sink
    if factory is None:
        raise ConfigError(
            f"{where}: adapter type {spec.type!r} has no {spec.direction.value} direction"
        )
    try:
        config = factory.config.model_validate(spec.config)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, f"{where} config.")) from exc
    if base is not None:
        config = _paths_resolved(config, base)
    return factory.build(config, context)


def _paths_resolved(config: BaseModel, base: Path) -> Any:
    """``config`` with each relative :class:`~pathlib.Path` setting taken from ``base``."""
    update = {
        name: base / value
        for name in type(config).model_fields
        if isinstance(value := getattr(config, name), Path) and not value.is_absolute()
    }
    return config.model_copy(update=update) if update else config


def safe_file_name(name: str) -> str:
    """``name`` reduced to characters safe in a file name."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)
