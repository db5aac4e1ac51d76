"""The adapter contract: what an adapter implements and what the runtime guarantees."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ConfigDict

from bus.bulletin import Bulletin, BulletinSchema

__all__ = [
    "AdapterContext",
    "AdapterType",
    "DeliveredView",
    "Outlet",
    "PublishOutcome",
    "Redaction",
    "Sink",
    "SinkFactory",
    "Source",
    "SourceFactory",
]

C = TypeVar("C", bound=BaseModel)


class Redaction(BaseModel):
    """One field the sharing policy changed or withheld in a view. Never the value."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    """Dotted path in the bulletin, e.g. ``body.sender_contact.name``."""
    action: str
    """``DROP``, ``MASK``, ``PSEUDONYMIZE``, ``GENERALIZE`` or ``TRUNCATE``."""
    detail: str = ""
    """The action's parameters, e.g. ``grid_km=10``."""
    rules: tuple[str, ...] = ()
    """The sharing rules that asked for it."""


class DeliveredView(BaseModel):
    """What a sink is handed: one bulletin as the policy lets this agency see it.

    ``bulletin`` is the redacted bulletin: dropped fields are ``None`` (or absent
    from ``body``), other redacted fields hold the redacted value. It is typed but
    not re-validated against the semantic rules, which a redaction may legitimately
    break (a masked e-mail address is no e-mail address). ``bulletin.bulletin_id``
    is the deduplication key: the bus never delivers two views of one bulletin
    to one agency unless the same view is redelivered.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    recipient: str
    policy_version: int
    rules: tuple[str, ...] = ()
    not_for_forwarding: bool = False
    redactions: tuple[Redaction, ...] = ()
    bulletin: Bulletin

    @property
    def dedup_key(self) -> str:
        """``<source agency>/<bulletin id>``: what a sink remembers to recognise a redelivery.

        Bulletin ids are chosen by their source agency, so only the pair is unique: a
        sink keyed by the bare id would let one agency suppress another's bulletins by
        reusing its ids. Neither part can contain ``/``.
        """
        return f"{self.bulletin.source_agency}/{self.bulletin.bulletin_id}"

    def withheld(self, path: str) -> Redaction | None:
        """The redaction applied at ``path`` or to one of its parents, if any."""
        for redaction in self.redactions:
            if path == redaction.path or path.startswith(redaction.path + "."):
                return redaction
        return None

    def to_json(self, schema: BulletinSchema) -> dict[str, Any]:
        """The view as plain JSON data: the bulletin in :meth:`BulletinSchema.to_json` form."""
        data = self.model_dump(mode="json", exclude={"bulletin"})
        data["bulletin"] = schema.to_json(self.bulletin)
        return data

    @classmethod
    def from_avro(cls, record: Mapping[str, Any]) -> DeliveredView:
        """A decoded ``liaison.bulletin.View`` record (as :class:`bus.codec.WireCodec` gives it)."""
        data = dict(record)
        bulletin = dict(data["bulletin"])
        body = bulletin.get("body")
        if isinstance(body, tuple):
            bulletin["body"] = body[1]
        data["bulletin"] = Bulletin.model_validate(bulletin)
        data["rules"] = tuple(data.get("rules") or ())
        data["redactions"] = tuple(
            Redaction(
                path=r["path"],
                action=str(r["action"]),
                detail=r.get("detail", ""),
                rules=tuple(r.get("rules") or ()),
            )
            for r in data.get("redactions") or ()
        )
        return cls.model_validate(data)


@dataclass(frozen=True)
class PublishOutcome:
    """What :meth:`Outlet.publish` did with one bulletin."""

    accepted: bool
    """True once the bulletin is durably on the agency's from-topic (acks=all)."""
    bulletin_id: str | None = None
    reason: str = ""
    """Why it was rejected (``invalid_bulletin``, ``wrong_source``...); empty if accepted."""
    detail: str = ""
    """What is wrong, naming each broken rule and its path; empty if accepted."""


@runtime_checkable
class Outlet(Protocol):
    """Where a :class:`Source` hands its bulletins; given by the runtime.

    Guarantees:

    * :meth:`publish` returns only when the outcome is final: an accepted bulletin
      is on the agency's from-topic (replicated, acks=all); a rejected one is
      written to the agency's rejects with the reason. A source may therefore mark
      a native record as done (move a file aside, answer 202) once it returns.
    * :meth:`publish` applies backpressure: it waits while too many bulletins are
      in flight.
    * Calls may come from several tasks at once.
    """

    agency: str
    """The agency this runtime publishes for; a bulletin naming another source is rejected."""
    schema: BulletinSchema

    async def publish(
        self, bulletin: Bulletin | Mapping[str, Any], *, origin: str
    ) -> PublishOutcome:
        """Validate and publish one bulletin (a :class:`Bulletin` or its JSON form).

        ``origin`` says where it came from (``inbox/a.jsonl:12``), for the rejects.
        """
        ...

    async def reject(self, *, origin: str, reason: str, detail: str) -> None:
        """Record a native record the source cannot turn into a bulletin (never drop it)."""
        ...


@runtime_checkable
class Source(Protocol):
    """Turns an agency system's native records into bulletins.

    The runtime's guarantees and demands:

    * :meth:`start` is called once, before :meth:`run`; it acquires resources
      (opens a port, checks a directory) and raises :class:`bus.errors.ConfigError`
      or :class:`bus.errors.AdapterError` if it cannot.
    * :meth:`stop` is called if and only if :meth:`start` returned normally, once,
      after :meth:`run` has returned or been cancelled.
    * :meth:`run` hands every native record to the outlet, either
      :meth:`Outlet.publish` or :meth:`Outlet.reject`, and marks it done only after
      that call returns (so a crash loses nothing; a record may be published again
      after a crash, and the bulletin id lets recipients recognise it). It returns
      promptly once ``stop`` is set.
    * Everything runs on the runtime's event loop: never block it (use
      ``asyncio.to_thread`` for blocking I/O).
    """

    async def start(self) -> None: ...

    async def run(self, outlet: Outlet, stop: asyncio.Event) -> None: ...

    async def stop(self) -> None: ...


@runtime_checkable
class Sink(Protocol):
    """Turns delivered views into an agency system's native records.

    The runtime's guarantees and demands:

    * :meth:`start` is called once, before the first :meth:`deliver`;
      :meth:`stop` if and only if :meth:`start` returned normally, once, after the
      last :meth:`deliver` has returned.
    * :meth:`deliver` is called with one view at a time, in the order of the
      agency's to-topic, and the runtime commits the view's offset only after it
      returns normally: a view is handed over again after a crash or restart, so
      a sink must be idempotent by :attr:`DeliveredView.dedup_key` (or document
      that it is at-least-once and give the receiver that key).
    * Raise :class:`bus.errors.DeliveryError` (retriable) for a transient failure:
      the runtime retries with exponential backoff, without committing, until it
      succeeds or the runner stops. Raise :class:`bus.errors.RecordRejected` (or a
      ``DeliveryError(retriable=False)``) for a view that can never be delivered:
      it goes to the agency's rejects with the message, and the stream moves on.
      Any other exception is treated as non-retriable too, and logged as a bug.
    * Everything runs on the runtime's event loop: never block it.
    """

    async def start(self) -> None: ...

    async def deliver(self, view: DeliveredView) -> None: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True)
class AdapterContext:
    """What the runtime tells an adapter instance when building it."""

    agency: str
    """The agency the instance works for."""
    instance: str
    """The instance's name from the configuration file."""
    schema: BulletinSchema
    state_dir: Path
    """A directory of the instance's own, kept across restarts (e.g. for dedup state)."""
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("liaison.adapter"))


@dataclass(frozen=True)
class SourceFactory(Generic[C]):
    """Builds a :class:`Source` from its validated configuration."""

    config: type[C]
    """The pydantic model of the instance's ``config`` mapping (use ``extra="forbid"``)."""
    build: Callable[[C, AdapterContext], Source]


@dataclass(frozen=True)
class SinkFactory(Generic[C]):
    """Builds a :class:`Sink` from its validated configuration."""

    config: type[C]
    build: Callable[[C, AdapterContext], Sink]


@dataclass(frozen=True)
class AdapterType:
    """An adapter type: what the entry point in the group ``liaison.adapters`` names.

    In ``pyproject.toml``::

        [project.entry-points."liaison.adapters"]
        myformat = "my_package.adapter:ADAPTER"
    """

    name: str
    summary: str
    source: SourceFactory[Any] | None = None
    sink: SinkFactory[Any] | None = None
