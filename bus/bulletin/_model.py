"""The bulletin envelope as typed pydantic models.

The envelope is fixed and typed here; the body is kind-specific, defined only by the
kind's Avro schema, and stays a ``dict`` so that adding a kind needs a schema file
and no code. :mod:`bus.bulletin._rules` checks the semantic rules Avro cannot express.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

__all__ = [
    "AGENCY_ID_PATTERN",
    "BULLETIN_ID_PATTERN",
    "Area",
    "Bulletin",
    "Marking",
    "MsgType",
    "Point",
    "Priority",
    "Reference",
    "Status",
]

BULLETIN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
AGENCY_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{1,62}$"
"""Agency ids appear in topic names (``liaison.from.<id>``), hence the narrow alphabet."""


class Status(StrEnum):
    """Real event, exercise or test (CAP 1.2 status)."""

    ACTUAL = "ACTUAL"
    """A real event."""
    EXERCISE = "EXERCISE"
    """A drill; recipients act as if real, within the exercise."""
    TEST = "TEST"
    """A technical test; recipients discard it."""


class MsgType(StrEnum):
    """What the bulletin does to earlier ones (CAP 1.2 msgType)."""

    NEW = "NEW"
    """A first bulletin; it references nothing."""
    UPDATE = "UPDATE"
    """Replaces the referenced bulletins."""
    CANCEL = "CANCEL"
    """Withdraws the referenced bulletins."""


class Priority(StrEnum):
    """How fast recipients should act."""

    LOW = "LOW"
    NORMAL = "NORMAL"
    HIGH = "HIGH"
    URGENT = "URGENT"


class Marking(StrEnum):
    """TLP 2.0. Markings restrict sharing; no rule can widen them."""

    CLEAR = "CLEAR"
    """No limit on disclosure."""
    GREEN = "GREEN"
    """The recipient's community, not public channels."""
    AMBER = "AMBER"
    """The recipient organisation and its clients, need to know."""
    AMBER_STRICT = "AMBER_STRICT"
    """The recipient organisation only (TLP:AMBER+STRICT); never forwarded."""
    RED = "RED"
    """Only the named recipients (``releasable_to``)."""

    @property
    def label(self) -> str:
        """The TLP 2.0 label, e.g. ``TLP:AMBER+STRICT``."""
        return "TLP:" + self.value.replace("_", "+")


class Reference(BaseModel):
    """An earlier bulletin that this one updates or cancels."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bulletin_id: str = Field(pattern=BULLETIN_ID_PATTERN)
    issued_at: AwareDatetime


class Point(BaseModel):
    """A WGS 84 position."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    lat: float
    """Latitude; the rule ``coordinate_range`` checks [-90, 90]."""
    lon: float
    """Longitude; the rule ``coordinate_range`` checks [-180, 180]."""


class Area(BaseModel):
    """Named places and a point or a polygon."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    place_names: list[str] | None = None
    point: Point | None = None
    polygon: list[Point] | None = None


class Bulletin(BaseModel):
    """A bulletin: the typed envelope and its kind-specific ``body``.

    ``body`` is the record of the kind's Avro type, in fastavro's Python form.
    Timestamps are timezone-aware and kept to the millisecond (Avro timestamp-millis).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    bulletin_id: str = Field(pattern=BULLETIN_ID_PATTERN)
    source_agency: str = Field(pattern=AGENCY_ID_PATTERN)
    kind: str = Field(min_length=1)
    issued_at: AwareDatetime
    expires_at: AwareDatetime | None = None
    status: Status
    msg_type: MsgType
    references: list[Reference] = Field(default_factory=list)
    priority: Priority = Priority.NORMAL
    marking: Marking
    releasable_to: list[str] = Field(default_factory=list)
    area: Area | None = None
    body: dict[str, Any]

    def envelope_avro(self) -> dict[str, Any]:
        """Envelope fields in fastavro's form (``body`` excluded)."""
        data = self.model_dump(mode="python", exclude={"body"})
        for key in ("status", "msg_type", "priority", "marking"):
            data[key] = str(data[key])
        return data

    @staticmethod
    def millis(moment: datetime) -> datetime:
        """``moment`` truncated to the millisecond, as Avro timestamp-millis stores it."""
        return moment.replace(microsecond=moment.microsecond // 1000 * 1000)
