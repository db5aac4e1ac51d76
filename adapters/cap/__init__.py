"""The ``cap`` adapter: OASIS CAP 1.2 alert files in a directory, in and out.

Source (``direction: source``): watches ``directory`` for ``*.xml`` files, one CAP
``<alert>`` each (write elsewhere or under a hidden name, then rename into the inbox;
see :mod:`adapters._files`). Each file is parsed with entity declarations and all
external access refused, validated against the OASIS CAP 1.2 XSD, mapped to an
``alert`` bulletin and published for the runner's agency; or rejected with the file
name as origin and one of these reasons:

- ``unreadable``: the file cannot be read, or is a symbolic link, which is never
  followed (it moves to ``failed/``);
- ``too_large``: larger than ``max_bytes`` (not parsed);
- ``unsafe_xml``: a DTD declaring entities, an external entity or DTD (XML bombs, XXE),
  or a document nested beyond xmlschema's limits;
- ``invalid_cap``: not well-formed XML, or not valid against the CAP 1.2 XSD (the
  detail gives each problem's path and the validator's reason);
- ``cap_rule``: valid against the XSD but breaking a rule of the CAP 1.2 specification
  that the XSD cannot check (UTC written ``+00:00`` instead of ``-00:00``, an open
  polygon or one of fewer than 4 points, a malformed circle or ``references``...); the
  detail names each rule broken and where (the rules: :mod:`adapters.cap.rules`);
- ``bad_identifier``: ``<identifier>`` (or one in ``<references>``) cannot be a
  bulletin id;
- ``unmapped_status``: ``System`` or ``Draft``; ``unmapped_msg_type``: ``Ack`` or
  ``Error``;
- ``no_info``: no ``<info>`` block;
- ``unknown_tlp``: a ``<code>`` starting with ``TLP:`` that is no TLP 2.0 label
  (refused rather than guessing how widely the alert may be shared);
- ``bad_references``, ``bad_time``, ``bad_area``, ``bad_parameter``: malformed values;
- ``invalid_bulletin``: the mapped bulletin breaks a bulletin rule (from the outlet).

Every handled file, published or rejected, then moves to ``processed/``.

Sink (``direction: sink``): writes each delivered ``alert`` view as one CAP 1.2
file ``<directory>/<source agency>/<bulletin id>.xml`` (``:`` is written ``%3A``),
atomically, and never twice (see :class:`adapters._files.Outbox`;
``<directory>/.delivered`` lists the files, relative to ``directory``, in delivery
order). Every file is checked against the XSD and the CAP 1.2 rules of
:mod:`adapters.cap.rules` before it is written; one that fails is never written (the
view goes to the rejects as ``cap_invalid_output``). Views of other kinds are rejected
(``unmapped_kind``).

Mapping (CAP element ↔ bulletin field)
--------------------------------------

=========================== ============================================================
``identifier``              ``bulletin_id`` (must fit its pattern, else ``bad_identifier``)
``sender``                  in: not carried (``source_agency`` is the runner's agency);
                            out: the ``sender`` setting, else ``source_agency``
``sent``                    ``issued_at`` (out: UTC written ``-00:00`` as CAP 1.2 requires,
                            whole seconds; so are ``onset``, ``expires`` and ``references``)
``status``                  Actual/Exercise/Test ↔ ACTUAL/EXERCISE/TEST
``msgType``                 Alert/Update/Cancel ↔ NEW/UPDATE/CANCEL
``scope``, ``restriction``  out: ``Restricted``, naming the TLP label, plus "not for
                            forwarding" for views marked so; in: not read
``addresses``               out: the view's recipient; in: ``releasable_to`` when the
                            marking is RED (ignored otherwise)
``code``                    ``marking`` as its TLP 2.0 label (``TLP:AMBER+STRICT``). In:
                            the most restrictive TLP code (``TLP:WHITE`` reads as CLEAR);
                            no TLP code (CAP has no TLP): ``default_marking``
``references``              ``references``: ``sender,identifier,sent`` triples (in: the
                            sender is not carried; out: this alert's sender)
``info`` (the first)        the body; other ``info`` blocks are not carried
``info/category`` (first)   ``body.category``
``info/event``              ``body.event``
``info/responseType``       ``body.response_types``
``info/urgency``            ``body.urgency`` (``severity``, ``certainty`` alike)
``info/onset``              ``body.onset``
``info/expires``            ``expires_at``
``info/senderName``         ``body.sender_contact.organisation``
``info/headline``           ``body.headline`` (in: the event when there is no headline)
``info/description``        ``body.description`` (``instruction``, ``web`` alike)
``info/contact``            out: the contact's fields joined by commas. In, without
                            ``liaison:contact.*`` parameters: an e-mail address alone
                            becomes ``sender_contact.email``; any other text (a number, a
                            name and a number, a desk...) ``sender_contact.phone``. Both
                            are tagged ``contact`` and ``pii``, so a rule redacting either
                            tag withholds the whole free text (never ``.name``, tagged
                            ``pii`` only, which a ``contact`` rule would let through)
``info/parameter``          Liaison's own, read back by the source:
                            ``liaison:priority`` (``priority``),
                            ``liaison:contact.<field>`` (each ``sender_contact`` field),
                            ``liaison:policy_version`` (out only),
                            ``liaison:redaction`` (out only: ``"<path> <action> <detail>"``
                            per redaction in the view's manifest)
priority (no element)       in, without ``liaison:priority``: from urgency: Immediate
                            URGENT, Expected HIGH, Future NORMAL, Past LOW, Unknown NORMAL
``info/area``               ``area``: one ``<area>`` per place name (``areaDesc``), the
                            shape in the first; ``polygon`` ↔ ``area.polygon``;
                            ``circle`` ↔ ``area.point`` (out: radius 0; in: the radius
                            is not carried)
=========================== ============================================================

Redacted fields (null in the view) are left out of the CAP document. Where CAP
requires an element whose source the policy withheld, a placeholder that holds no
data stands in: ``areaDesc`` is ``(withheld by sharing policy)`` when the place names
were withheld, ``(unnamed area)`` when there were none; the source reads both as no
place name.

Not carried into bulletins: ``sender``, ``source``, ``scope``, ``restriction``,
``note``, ``incidents``, non-TLP ``code`` values, ``addresses`` unless RED, every
``info`` block but the first, ``language``, categories but the first, ``audience``,
``eventCode``, ``effective``, other ``parameter`` values, ``resource``, ``geocode``,
``altitude``, ``ceiling``, polygons and circles but the first, circle radii, XML
signatures.

Not carried into CAP: ``releasable_to`` (``addresses`` names only the view's
recipient), sub-second precision of timestamps, the view's ``rules``, the
distinction between no area and an empty one (or no contact and an empty one);
characters XML 1.0 cannot hold become U+FFFD, and carriage returns come back as
line feeds (XML end-of-line handling).
"""

from __future__ import annotations

import asyncio
import errno
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from adapters._files import Inbox, Outbox
from adapters.cap.mapping import (
    CapRefusal,
    bulletin_from_cap,
    cap_from_view,
    cap_schema,
    parse_cap,
)
from bus.adapters import (
    AdapterContext,
    AdapterType,
    DeliveredView,
    Outlet,
    SinkFactory,
    SourceFactory,
)
from bus.bulletin import Marking
from bus.errors import RecordRejected

__all__ = ["ADAPTER", "CapSink", "CapSinkConfig", "CapSource", "CapSourceConfig"]

_MIB = 1024 * 1024


class CapSourceConfig(BaseModel):
    """Settings of a CAP source."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    directory: Path = Field(description="The inbox: CAP *.xml files are renamed into it.")
    poll_interval_s: float = Field(
        default=1.0, gt=0, le=3600, description="How often the inbox is polled, in seconds."
    )
    default_marking: Marking = Field(
        default=Marking.AMBER,
        description="The TLP marking of alerts that carry no TLP <code> (CAP itself has no "
        "TLP): AMBER unless the agency decides its CAP feed may be shared more widely.",
    )
    marking_from_code: bool = Field(
        default=True,
        description="Read the marking from a <code> holding a TLP 2.0 label (TLP:GREEN...); "
        "when false, every alert gets default_marking.",
    )
    max_bytes: int = Field(
        default=_MIB,
        gt=0,
        le=64 * _MIB,
        description="Larger files are rejected (too_large) without being parsed.",
    )


class CapSinkConfig(BaseModel):
    """Settings of a CAP sink."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    directory: Path = Field(description="The outbox: one CAP file per alert is written here.")
    sender: str | None = Field(
        default=None,
        pattern=r"^[^\s,<&]+$",
        max_length=256,
        description="The CAP <sender> of every alert written (no spaces, commas, < or &); "
        "by default the bulletin's source agency.",
    )


class CapSource:
    """Publishes the alert in each CAP file renamed into the inbox."""

    def __init__(self, config: CapSourceConfig, context: AdapterContext) -> None:
        self.config = config
        self.context = context
        self.inbox = Inbox(config.directory, "*.xml", config.poll_interval_s)

    async def start(self) -> None:
        await asyncio.to_thread(self.inbox.prepare)
        await asyncio.to_thread(cap_schema)  # build the XSD once, off the event loop

    async def stop(self) -> None:
        return None

    async def run(self, outlet: Outlet, stop: asyncio.Event) -> None:
        async for path in self.inbox.files(stop):
            try:
                data = await asyncio.to_thread(self._read, path)
            except FileNotFoundError:
                continue  # taken away since the listing: nothing left to hand over
            except OSError as exc:
                why = (
                    "it is a symbolic link, which the inbox never follows"
                    if exc.errno == errno.ELOOP
                    else exc.strerror or str(exc)
                )
                await outlet.reject(
                    origin=path.name,
                    reason="unreadable",
                    detail=f"cannot read {path.name}: {why}; it was moved to {self.inbox.failed}",
                )
                await asyncio.to_thread(self.inbox.fail, path)
                continue
            await self._handle(path.name, data, outlet)
            await asyncio.to_thread(self.inbox.done, path)

    def _read(self, path: Path) -> bytes | None:
        """The file's bytes, or ``None`` when it is larger than ``max_bytes``.

        A symbolic link is not followed (``ELOOP``): whoever may drop files into the
        inbox must not make the adapter publish a file they cannot read themselves.
        """
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(descriptor, "rb") as handle:
            data = handle.read(self.config.max_bytes + 1)
        return None if len(data) > self.config.max_bytes else data

    async def _handle(self, origin: str, data: bytes | None, outlet: Outlet) -> None:
        if data is None:
            await outlet.reject(
                origin=origin,
                reason="too_large",
                detail=f"{origin} is larger than max_bytes={self.config.max_bytes}; "
                "a CAP alert is rarely more than a few kilobytes",
            )
            return
        try:
            bulletin = await asyncio.to_thread(self._map, data, outlet.agency)
        except CapRefusal as refusal:
            await outlet.reject(origin=origin, reason=refusal.reason, detail=refusal.detail)
            return
        except Exception as exc:
            # A bug must not crash the source: the same file would crash it again on
            # every restart. The record goes to the rejects, the traceback to the log.
            self.context.log.exception("mapping %s failed unexpectedly", origin)
            await outlet.reject(
                origin=origin,
                reason="cap_mapping_error",
                detail=f"{type(exc).__name__}: {exc} (a bug in the CAP adapter; please report it)",
            )
            return
        await outlet.publish(bulletin, origin=origin)  # a rejection is recorded by the outlet

    def _map(self, data: bytes, agency: str) -> dict[str, object]:
        return bulletin_from_cap(
            parse_cap(data),
            agency=agency,
            default_marking=self.config.default_marking,
            marking_from_code=self.config.marking_from_code,
        )


class CapSink:
    """Writes each alert view as one CAP 1.2 file, each bulletin at most once."""

    def __init__(self, config: CapSinkConfig, context: AdapterContext) -> None:
        self.config = config
        self.context = context
        self.outbox = Outbox(config.directory, ".xml")

    async def start(self) -> None:
        await asyncio.to_thread(self.outbox.prepare)
        await asyncio.to_thread(cap_schema)

    async def stop(self) -> None:
        return None

    async def deliver(self, view: DeliveredView) -> None:
        try:
            data = await asyncio.to_thread(cap_from_view, view, sender=self.config.sender)
        except CapRefusal as refusal:
            raise RecordRejected(refusal.detail, reason=refusal.reason) from refusal
        await self.outbox.write(view.dedup_key, data)  # False: a redelivery, already written


ADAPTER = AdapterType(
    name="cap",
    summary="OASIS CAP 1.2 alert files: a directory inbox in, one XSD-valid file per alert out.",
    source=SourceFactory(config=CapSourceConfig, build=CapSource),
    sink=SinkFactory(config=CapSinkConfig, build=CapSink),
)
