"""A seeded generator of fictional bulletins, for tests, the demo and benchmarks.

Everything it produces is invented: agencies, people, places and prose come from
made-up syllables and vocabularies, phone numbers are ``+00 555 01xx`` and e-mail
addresses end in ``.example``; positions fall in an empty stretch of open ocean.

Bodies are built from each kind's Avro schema, never from per-kind code, so a kind
added as a schema file is generated like the others. A field's ``liaison.tags``
(``pii``, ``contact``, ``location``, ``free_text``, ``count``) and its name choose
realistic values; ``liaison.bulletin.Point`` records land inside the fictional
region wherever they appear.

The same seed gives the same sequence: all randomness comes from one
:class:`random.Random`, and time from ``start``, never from the clock.
"""

from __future__ import annotations

import math
import random
import re
import struct
import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bus.bulletin._model import (
    AGENCY_ID_PATTERN,
    Area,
    Bulletin,
    Marking,
    MsgType,
    Point,
    Priority,
    Reference,
    Status,
)
from bus.bulletin._rules import BulletinSchema
from bus.schemas._catalog import PRIMITIVES

__all__ = ["DEFAULT_AGENCIES", "DEFAULT_START", "FICTIONAL_REGION", "BulletinGenerator"]

DEFAULT_AGENCIES: tuple[str, ...] = (
    "north-river",
    "harbour-watch",
    "vale-fire",
    "saltmarsh-health",
    "upland-transit",
)
"""Invented agency ids."""

DEFAULT_START = datetime(2031, 3, 14, 6, 0, tzinfo=UTC)
"""When the first generated bulletin is issued, unless told otherwise."""

FICTIONAL_REGION = (-48.5, -46.5, -32.0, -28.0)
"""The fictional region (south, north, west, east in decimal degrees): open South
Atlantic, where no real town lies."""

_POINT = "liaison.bulletin.Point"
_MAX_DEPTH = 6
_HISTORY = 1000
_AGENCY = re.compile(AGENCY_ID_PATTERN)

_FIRST = ("Ka", "Lio", "Mer", "Tav", "Quo", "Zel", "Ori", "Bre", "Vani", "Esk", "Ulo", "Fen")
_FIRST_END = ("ra", "vel", "mo", "sin", "tha", "del", "rix", "wen", "lor", "bi")
_LAST = ("Quin", "Vosk", "Tamber", "Orrel", "Kessel", "Marrow", "Thistle", "Wend", "Yarl", "Brisk")
_LAST_END = ("aro", "ley", "ington", "holm", "wick", "over", "mede", "stone", "ith", "ard")

_PLACE = ("Brindle", "Harrow", "Quell", "Tarn", "Ember", "Gloam", "Wyrm", "Ash", "Corrie", "Lune")
_PLACE_END = ("moor", "fen", "stead", "haven", "wick", "ford", "reach", "mouth", "combe", "garth")

_ROLES = (
    "duty officer",
    "watch commander",
    "liaison officer",
    "field coordinator",
    "shift supervisor",
    "analyst",
)
_ORG_WORDS = ("Rescue Service", "Watch", "Coast Guard", "Health Board", "Transit Authority")

_ADJECTIVES = ("rising", "scattered", "severe", "minor", "sustained", "localised", "sudden")
_NOUNS = (
    "flooding",
    "road closure",
    "power outage",
    "landslip",
    "gas leak",
    "grass fire",
    "water contamination",
    "bridge damage",
    "signal failure",
)
_TEAMS = ("swiftwater team", "field unit", "pump crew", "survey drone", "medical team", "tanker")
_SUBJECTS = (
    "Crews",
    "Residents",
    "Patrols",
    "Survey teams",
    "Volunteers",
    "Engineers",
    "Observers",
)
_VERBS = (
    "report",
    "are monitoring",
    "have cleared",
    "are assessing",
    "expect",
    "have contained",
    "confirm",
)
_SEQUELS = (
    "Access routes remain open.",
    "Further updates will follow.",
    "No further action is needed at this time.",
    "Avoid the area until the all-clear.",
    "Expect delays on local roads.",
    "Keep to higher ground.",
)


@dataclass(frozen=True)
class _Issued:
    """What a later UPDATE or CANCEL needs to know about an earlier bulletin."""

    bulletin_id: str
    source_agency: str
    kind: str
    issued_at: datetime


@dataclass(frozen=True)
class _Hint:
    """The field a value is generated for: its name and tags choose the value."""

    name: str
    tags: frozenset[str]


class BulletinGenerator:
    """Fictional, valid bulletins of every kind the schema files define, reproducibly.

    ``null_probability`` is the chance an optional field is left null;
    ``follow_up_probability`` the chance a bulletin UPDATEs or CANCELs an earlier one.
    """

    def __init__(
        self,
        schema: BulletinSchema,
        *,
        seed: int = 0,
        agencies: Sequence[str] = DEFAULT_AGENCIES,
        start: datetime = DEFAULT_START,
        null_probability: float = 0.2,
        follow_up_probability: float = 0.2,
    ) -> None:
        if not agencies:
            raise ValueError("agencies is empty; name at least one agency id")
        for agency in agencies:
            if not _AGENCY.fullmatch(agency):
                raise ValueError(f"agency {agency!r} does not match {AGENCY_ID_PATTERN}")
        if start.tzinfo is None or start.utcoffset() is None:
            raise ValueError(f"start {start.isoformat()} must be timezone-aware")
        for label, p in (
            ("null_probability", null_probability),
            ("follow_up_probability", follow_up_probability),
        ):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{label}={p} is not a probability between 0 and 1")
        self.schema = schema
        self.agencies = tuple(agencies)
        self.null_probability = null_probability
        self.follow_up_probability = follow_up_probability
        self._rng = random.Random(seed)  # noqa: S311 - reproducible fiction, not secrets
        self._clock = Bulletin.millis(start.astimezone(UTC))
        self._seq = 0
        # Ids name the seed: two generators with different seeds never reuse an id for
        # different content, which the router dead-letters (id_reused, docs/edge.md).
        self._id_seed = seed
        self._history: deque[_Issued] = deque(maxlen=_HISTORY)
        self._kinds = sorted(schema.kinds)
        self._named: dict[str, dict[str, Any]] = {}
        _index_named(schema.composed, None, self._named)

    # -- public ----------------------------------------------------------------------

    def bulletin(self, kind: str | None = None) -> Bulletin:
        """The next bulletin, of ``kind`` or of a kind picked at random."""
        if kind is not None and kind not in self.schema.kinds:
            raise ValueError(f"unknown kind {kind!r}; known kinds: {', '.join(self._kinds)}")
        rng = self._rng
        self._seq += 1
        self._clock += timedelta(seconds=rng.randint(1, 900), milliseconds=rng.randint(0, 999))
        issued_at = self._clock

        msg_type, references, agency, kind = self._lineage(kind)
        bulletin_id = f"{agency}:{self._id_seed}-{self._seq:06d}"
        marking = rng.choices(list(Marking), weights=(2, 3, 3, 1, 1))[0]
        body = self._value(self._named[self.schema.kinds[kind]], _Hint("body", frozenset()), 0)
        bulletin = Bulletin(
            bulletin_id=bulletin_id,
            source_agency=agency,
            kind=kind,
            issued_at=issued_at,
            expires_at=(
                None
                if rng.random() < 0.25
                else issued_at + timedelta(minutes=rng.randint(30, 72 * 60))
            ),
            status=rng.choices(list(Status), weights=(6, 3, 1))[0],
            msg_type=msg_type,
            references=references,
            priority=rng.choices(list(Priority), weights=(2, 5, 2, 1))[0],
            marking=marking,
            releasable_to=self._recipients(agency, marking),
            area=self._area(),
            body=body,
        )
        self._history.append(_Issued(bulletin_id, agency, kind, issued_at))
        return bulletin

    def stream(self, n: int, kind: str | None = None) -> Iterator[Bulletin]:
        """The next ``n`` bulletins, generated as they are consumed."""
        if n < 0:
            raise ValueError(f"n={n} is negative")
        if kind is not None and kind not in self.schema.kinds:
            raise ValueError(f"unknown kind {kind!r}; known kinds: {', '.join(self._kinds)}")
        return (self.bulletin(kind) for _ in range(n))

    # -- envelope --------------------------------------------------------------------

    def _lineage(self, kind: str | None) -> tuple[MsgType, list[Reference], str, str]:
        """NEW from a random agency, or an UPDATE/CANCEL of an earlier bulletin by its source."""
        rng = self._rng
        if self._history and rng.random() < self.follow_up_probability:
            earlier = [h for h in self._history if kind is None or h.kind == kind]
            if earlier:
                target = rng.choice(earlier)
                msg_type = MsgType.UPDATE if rng.random() < 0.75 else MsgType.CANCEL
                targets = [target]
                if rng.random() < 0.2:
                    siblings = [
                        h
                        for h in earlier
                        if h.source_agency == target.source_agency
                        and h.kind == target.kind
                        and h.bulletin_id != target.bulletin_id
                    ]
                    if siblings:
                        targets.append(rng.choice(siblings))
                references = [
                    Reference(bulletin_id=t.bulletin_id, issued_at=t.issued_at) for t in targets
                ]
                return msg_type, references, target.source_agency, target.kind
        chosen = kind if kind is not None else rng.choice(self._kinds)
        return MsgType.NEW, [], rng.choice(self.agencies), chosen

    def _recipients(self, source: str, marking: Marking) -> list[str]:
        rng = self._rng
        others = [a for a in self.agencies if a != source] or [source]
        if marking is not Marking.RED and rng.random() < 0.5:
            return []
        return rng.sample(others, rng.randint(1, min(3, len(others))))

    def _area(self) -> Area | None:
        rng = self._rng
        if rng.random() < 0.15:
            return None
        place_names = (
            [self._place() for _ in range(rng.randint(1, 3))] if rng.random() < 0.7 else None
        )
        shape = rng.choice(("none", "point", "polygon"))
        if shape == "none" and place_names is None:
            shape = "point"
        point = self._point() if shape == "point" else None
        polygon = self._polygon() if shape == "polygon" else None
        return Area(place_names=place_names, point=point, polygon=polygon)

    def _point(self) -> Point:
        lat, lon = self._coordinates()
        return Point(lat=lat, lon=lon)

    def _coordinates(self) -> tuple[float, float]:
        south, north, west, east = FICTIONAL_REGION
        return (
            round(self._rng.uniform(south, north), 5),
            round(self._rng.uniform(west, east), 5),
        )

    def _polygon(self) -> list[Point]:
        """A closed ring around a centre: 3 to 6 corners, then the first corner again."""
        rng = self._rng
        lat, lon = self._coordinates()
        corners = rng.randint(3, 6)
        ring = []
        for i in range(corners):
            angle = 2 * math.pi * i / corners
            radius = rng.uniform(0.01, 0.2)
            ring.append(
                Point(
                    lat=round(lat + radius * math.cos(angle), 5),
                    lon=round(lon + radius * math.sin(angle), 5),
                )
            )
        return [*ring, ring[0]]

    # -- body ------------------------------------------------------------------------

    def _value(self, schema: Any, hint: _Hint, depth: int, ns: str | None = None) -> Any:
        """A value of Avro type ``schema`` in fastavro's Python form (as the codec decodes it)."""
        if isinstance(schema, list):
            return self._union(schema, hint, depth, ns)
        if isinstance(schema, str):
            if schema in PRIMITIVES:
                return self._primitive(schema, None, hint)
            return self._value(self._resolve(schema, ns), hint, depth, ns)
        kind = schema["type"]
        if kind in ("record", "error"):
            return self._record(schema, depth)
        if kind == "enum":
            return self._rng.choice(schema["symbols"])
        if kind == "fixed":
            return self._rng.randbytes(int(schema["size"]))
        if kind == "array":
            return [
                self._value(schema["items"], hint, depth + 1, ns)
                for _ in range(self._rng.randint(0, 4) if depth < _MAX_DEPTH else 0)
            ]
        if kind == "map":
            return {
                f"{self._phrase().lower()} {i}": self._value(schema["values"], hint, depth + 1, ns)
                for i in range(self._rng.randint(0, 3) if depth < _MAX_DEPTH else 0)
            }
        if isinstance(kind, str) and kind in PRIMITIVES:
            return self._primitive(kind, schema.get("logicalType"), hint)
        return self._value(kind, hint, depth, ns)

    def _resolve(self, name: str, ns: str | None) -> dict[str, Any]:
        if name in self._named:
            return self._named[name]
        qualified = f"{ns}.{name}" if ns else name
        if qualified in self._named:
            return self._named[qualified]
        raise ValueError(f"the composed bulletin schema defines no type {name!r}")

    def _union(self, branches: list[Any], hint: _Hint, depth: int, ns: str | None) -> Any:
        choices = [b for b in branches if b != "null"]
        nullable = len(choices) < len(branches)
        if nullable and (
            not choices or depth >= _MAX_DEPTH or self._rng.random() < self.null_probability
        ):
            return None
        branch = self._rng.choice(choices)
        value = self._value(branch, hint, depth, ns)
        # fastavro reads a branch that is a record (or a named reference) as a
        # (name, value) tuple when the union holds more than one such branch.
        named = [b for b in branches if _is_record_like(b)]
        if len(named) > 1 and _is_record_like(branch):
            full = branch["name"] if isinstance(branch, dict) else self._resolve(branch, ns)["name"]
            return (full, value)
        return value

    def _record(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        full = str(schema["name"])
        if full == _POINT:
            lat, lon = self._coordinates()
            return {"lat": lat, "lon": lon}
        ns = full.rpartition(".")[0] or None
        return {
            f["name"]: self._value(
                f["type"],
                _Hint(str(f["name"]), frozenset(f.get("liaison.tags", ()))),
                depth + 1,
                ns,
            )
            for f in schema["fields"]
        }

    def _primitive(self, kind: str, logical: Any, hint: _Hint) -> Any:
        rng = self._rng
        if logical in ("timestamp-millis", "timestamp-micros") and kind == "long":
            return self._clock + timedelta(milliseconds=rng.randint(60_000, 3 * 86_400_000))
        if logical == "date" and kind == "int":
            return (self._clock + timedelta(days=rng.randint(0, 30))).date()
        if logical == "uuid" and kind == "string":
            return uuid.UUID(int=rng.getrandbits(128), version=4)
        if kind == "null":
            return None
        if kind == "boolean":
            return rng.random() < 0.5
        if kind in ("int", "long"):
            return rng.randint(0, 40) if "count" in hint.tags else rng.randint(0, 1000)
        if kind == "double":
            return round(rng.uniform(0, 100), 3)
        if kind == "float":
            # a value a 32-bit float holds exactly, so it survives the round trip
            return float(struct.unpack("<f", struct.pack("<f", rng.uniform(0, 100)))[0])
        if kind == "bytes":
            return rng.randbytes(rng.randint(0, 16))
        return self._text(hint)

    def _text(self, hint: _Hint) -> str:
        """A string for the field, chosen by its name and its liaison.tags."""
        name, tags = hint.name.lower(), hint.tags
        if "email" in name:
            return self._email()
        if "phone" in name:
            return self._phone()
        if "pii" in tags:
            return self._person()
        if "location" in tags:
            return self._place()
        if "free_text" in tags:
            return " ".join(self._sentence() for _ in range(self._rng.randint(1, 3)))
        if name in ("web", "url", "link", "website") or name.endswith("_url"):
            agency = self._rng.choice(self.agencies)
            return f"https://{agency}.example/bulletins/{self._rng.randint(1, 9999)}"
        if name == "role" or name.endswith("_role"):
            return self._rng.choice(_ROLES)
        if name in ("organisation", "organization", "agency") or name.endswith("_agency"):
            return f"{self._place()} {self._rng.choice(_ORG_WORDS)}"
        if name.endswith("_id") or "reply_to" in name:
            return self._earlier_id()
        if "question" in name:
            return f"What is the status of the {self._rng.choice(_NOUNS)} near {self._place()}?"
        # ``contact`` alone does not choose: it marks phone and e-mail (chosen by name
        # above) and every text that may hold them, whose other tags and names decide.
        return self._phrase()

    # -- vocabulary ------------------------------------------------------------------

    def _person(self) -> str:
        rng = self._rng
        first = rng.choice(_FIRST) + rng.choice(_FIRST_END)
        last = rng.choice(_LAST) + rng.choice(_LAST_END)
        return f"{first} {last}"

    def _phone(self) -> str:
        return f"+00 555 01{self._rng.randint(0, 99):02d}"

    def _email(self) -> str:
        rng = self._rng
        first = (rng.choice(_FIRST) + rng.choice(_FIRST_END)).lower()
        last = (rng.choice(_LAST) + rng.choice(_LAST_END)).lower()
        return f"{first}.{last}@{rng.choice(self.agencies)}.example"

    def _place(self) -> str:
        return self._rng.choice(_PLACE) + self._rng.choice(_PLACE_END)

    def _phrase(self) -> str:
        rng = self._rng
        words = [rng.choice(_ADJECTIVES), rng.choice(_NOUNS)]
        if rng.random() < 0.5:
            words.append(f"at {self._place()}")
        if rng.random() < 0.3:
            words = [rng.choice(_TEAMS), str(rng.randint(1, 9))]
        text = " ".join(words)
        return text[0].upper() + text[1:]

    def _sentence(self) -> str:
        rng = self._rng
        if rng.random() < 0.3:
            return rng.choice(_SEQUELS)
        return (
            f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_ADJECTIVES)} "
            f"{rng.choice(_NOUNS)} near {self._place()}."
        )

    def _earlier_id(self) -> str:
        if self._history:
            return self._rng.choice(self._history).bulletin_id
        return f"{self._rng.choice(self.agencies)}:{self._rng.randint(0, 999_999):06d}"


def _is_record_like(schema: Any) -> bool:
    """A union branch fastavro counts as a record: an inline record or any named reference."""
    if isinstance(schema, dict):
        return schema.get("type") in ("record", "error")
    return isinstance(schema, str) and schema not in PRIMITIVES


def _index_named(schema: Any, ns: str | None, out: dict[str, dict[str, Any]]) -> None:
    """Every named type defined anywhere in ``schema``, by full name."""
    if isinstance(schema, list):
        for branch in schema:
            _index_named(branch, ns, out)
        return
    if not isinstance(schema, dict):
        return
    kind = schema.get("type")
    if kind in ("record", "error", "enum", "fixed"):
        name = str(schema["name"])
        space = schema.get("namespace", ns)
        full = name if "." in name or not space else f"{space}.{name}"
        out[full] = {**schema, "name": full}
        inner = full.rpartition(".")[0] or None
        for f in schema.get("fields", ()):
            _index_named(f["type"], inner, out)
    elif kind == "array":
        _index_named(schema["items"], ns, out)
    elif kind == "map":
        _index_named(schema["values"], ns, out)
    elif isinstance(kind, dict | list):
        _index_named(kind, ns, out)
