"""Re-sent bulletins: which (source agency, bulletin id) pairs the router has routed, and when.

The rule (``docs/edge.md``, "Re-sent bulletins"): a bulletin is identified by its source
agency and its id. A record whose pair was accepted within the window is not routed again:

* with the same content (the SHA-256 of the record value as published: schema id and Avro
  body), it is a ``duplicate``: one audit decision, no view, no dead letter;
* with different content, it is ``id_reused``: a dead letter and a rejected decision; the
  first bulletin stays the one delivered. An update or a cancel has an id of its own.

Pure: no Kafka. The router keeps one :class:`SeenSet`; like the audit chain it works on a
tentative layer for the open transaction (:meth:`SeenSet.begin`, :meth:`SeenSet.commit`,
:meth:`SeenSet.discard`), and the entries a transaction adds travel in that same
transaction as records of at most :data:`MAX_RECORD_BYTES` (:meth:`SeenSet.pending_records`)
on ``liaison.edge.seen``, keyed by the writing instance (``edge.<i>``), from which a router
adds what every instance committed to what it knows (:meth:`SeenSet.load`, a merge).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = [
    "DEFAULT_MAX_ENTRIES",
    "DEFAULT_WINDOW_S",
    "MAX_RECORD_BYTES",
    "Seen",
    "SeenSet",
    "Verdict",
]

DEFAULT_WINDOW_S = 7 * 24 * 3600
"""How long an accepted bulletin's id is remembered: 7 days."""
DEFAULT_MAX_ENTRIES = 100_000
"""How many ids a router remembers at most *per originating instance* (about 210 bytes
each: 21 MB per instance of the deployment); the oldest go first."""
MAX_RECORD_BYTES = 256 * 1024
"""The largest ``liaison.edge.seen`` record a transaction writes (Kafka's default
``max.message.bytes`` is 1 MiB): a batch's entries are split over as many records as needed."""

_FORMAT = 1
_PACKED = struct.Struct(">32sqiq")  # digest, time_ms, partition, offset: 85-byte objects


class Verdict(StrEnum):
    """What the rule says of one valid bulletin."""

    NEW = "new"
    """Not seen within the window: route it (and remember it)."""
    DUPLICATE = "duplicate"
    """The same content under an id seen within the window: decided, not routed."""
    ID_REUSED = "id_reused"
    """Different content under an id seen within the window: a dead letter."""


@dataclass(frozen=True, slots=True)
class Seen:
    """An accepted bulletin: its content digest, when it was decided and where it came in."""

    digest: bytes
    """SHA-256 of the record value as published."""
    time_ms: int
    """The router's clock when it was decided (never the sender's ``issued_at``)."""
    topic: str
    partition: int
    offset: int

    @property
    def origin(self) -> dict[str, Any]:
        return {"topic": self.topic, "partition": self.partition, "offset": self.offset}


class SeenSet:
    """The ids accepted within ``window_s`` per inbound topic (which names the source agency),
    per originating router instance (the key of its records): at most ``max_entries`` each,
    newest kept."""

    def __init__(
        self,
        *,
        window_s: float = DEFAULT_WINDOW_S,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        origin: str = "edge.0",
    ) -> None:
        if window_s <= 0 or max_entries < 1:
            raise ValueError(f"window_s={window_s} and max_entries={max_entries} must be positive")
        self.window_ms = int(window_s * 1000)
        self.max_entries = max_entries
        self.origin = origin
        """The instance this set commits for (the key of its records)."""
        # origin -> "<topic> <id>" -> packed (digest, time, partition, offset); insertion
        # order is age. Topic names and bulletin ids never contain a space.
        self._committed: dict[str, dict[str, bytes]] = {}
        self._pending: dict[str, bytes] = {}

    def __len__(self) -> int:
        """How many entries are held, every origin's together."""
        return sum(len(entries) for entries in self._committed.values())

    def observe(
        self,
        topic: str,
        partition: int,
        offset: int,
        bulletin_id: str,
        digest: bytes,
        *,
        now_ms: int,
    ) -> tuple[Verdict, Seen | None]:
        """The verdict on a valid bulletin read at ``topic:partition:offset``, and the earlier
        one it repeats.

        A ``NEW`` bulletin is remembered tentatively (visible to the rest of the batch), to
        be kept by :meth:`commit` or dropped by :meth:`discard`.
        """
        key = f"{topic} {bulletin_id}"
        packed = self._pending.get(key) or self._latest(key)
        if packed is not None:
            earlier = _unpack(topic, packed)
            if now_ms - earlier.time_ms < self.window_ms:
                verdict = Verdict.DUPLICATE if earlier.digest == digest else Verdict.ID_REUSED
                return verdict, earlier
        self._pending[key] = _PACKED.pack(digest, now_ms, partition, offset)
        return Verdict.NEW, None

    def _latest(self, key: str) -> bytes | None:
        """The newest committed entry for ``key``, whichever instance accepted it."""
        found: bytes | None = None
        for entries in self._committed.values():
            packed = entries.get(key)
            if packed is not None and (found is None or _time_ms(packed) > _time_ms(found)):
                found = packed
        return found

    # -- transactions ----------------------------------------------------------------

    def begin(self) -> None:
        """Start a batch: nothing tentative."""
        self._pending = {}

    def pending_records(self, max_bytes: int = MAX_RECORD_BYTES) -> list[bytes]:
        """The records that carry this batch's new entries (none if there are none), to
        write in the batch's transaction: each at most ``max_bytes``."""
        head, tail = b'{"format":%d,"entries":[' % _FORMAT, b"]}"
        records: list[bytes] = []
        chunk: list[bytes] = []
        size = len(head) + len(tail)
        for key, packed in self._pending.items():
            topic, _, bulletin_id = key.partition(" ")
            digest, time_ms, partition, offset = _PACKED.unpack(packed)
            entry = json.dumps(
                [topic, partition, offset, bulletin_id, digest.hex(), time_ms],
                separators=(",", ":"),
            ).encode()
            if len(head) + len(entry) + len(tail) > max_bytes:
                raise ValueError(f"a seen-set entry of {len(entry)} bytes exceeds {max_bytes}")
            if chunk and size + len(entry) + 1 > max_bytes:
                records.append(head + b",".join(chunk) + tail)
                chunk, size = [], len(head) + len(tail)
            size += len(entry) + (1 if chunk else 0)
            chunk.append(entry)
        if chunk:
            records.append(head + b",".join(chunk) + tail)
        return records

    def commit(self, now_ms: int) -> None:
        """The batch's transaction committed: its entries are remembered."""
        committed = self._committed.setdefault(self.origin, {})
        for key, packed in self._pending.items():
            committed.pop(key, None)  # re-inserted last: the newest
            committed[key] = packed
        self._pending = {}
        self._evict(committed, now_ms)

    def discard(self) -> None:
        """The batch's transaction aborted (or its outcome is unknown: then :meth:`load`)."""
        self._pending = {}

    # -- recovery --------------------------------------------------------------------

    def load(self, records: Iterable[tuple[bytes | None, bytes | None]], *, now_ms: int) -> int:
        """Add the committed records (key, value) of ``liaison.edge.seen``, oldest first, to
        what is known: a merge, never a replacement (committed knowledge is never wrong, and
        a partial read must not make the set forget). Per origin (the record key), the
        entries within the window, the newest ``max_entries``. Returns how many records
        could not be read (skipped)."""
        self._pending = {}
        unreadable = 0
        loaded: dict[str, dict[str, bytes]] = {}
        for key_bytes, value in records:
            try:
                entries = _entries(value)
                origin = (key_bytes or b"").decode()
            except (ValueError, TypeError, KeyError):
                unreadable += 1
                continue
            into = loaded.setdefault(origin, {})
            for topic, partition, offset, bulletin_id, digest, time_ms in entries:
                if now_ms - time_ms >= self.window_ms:
                    continue
                key = f"{topic} {bulletin_id}"
                into.pop(key, None)
                into[key] = _PACKED.pack(digest, time_ms, partition, offset)
        for origin, found in loaded.items():
            merged = dict(self._committed.get(origin, {}))
            for key, packed in found.items():
                mine = merged.get(key)
                if mine is None or _time_ms(packed) >= _time_ms(mine):
                    merged[key] = packed
            # Age order again: oldest first (a stable sort keeps the log's order on ties).
            ordered = dict(sorted(merged.items(), key=lambda item: _time_ms(item[1])))
            self._committed[origin] = ordered
        for kept in self._committed.values():
            self._evict(kept, now_ms)
        return unreadable

    def _evict(self, committed: dict[str, bytes], now_ms: int) -> None:
        while len(committed) > self.max_entries:
            del committed[next(iter(committed))]
        while committed:
            oldest = next(iter(committed))
            if now_ms - _time_ms(committed[oldest]) < self.window_ms:
                break
            del committed[oldest]


def _time_ms(packed: bytes) -> int:
    time_ms: int = _PACKED.unpack(packed)[1]
    return time_ms


def _unpack(topic: str, packed: bytes) -> Seen:
    digest, time_ms, partition, offset = _PACKED.unpack(packed)
    return Seen(digest, time_ms, topic, partition, offset)


def _entries(value: bytes | None) -> list[tuple[str, int, int, str, bytes, int]]:
    data = json.loads(value or b"")
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        raise ValueError("not a seen-set record of a known format")
    out = []
    for topic, partition, offset, bulletin_id, digest, time_ms in data["entries"]:
        if not (
            isinstance(topic, str)
            and isinstance(bulletin_id, str)
            and isinstance(digest, str)
            and all(isinstance(n, int) for n in (partition, offset, time_ms))
        ):
            raise TypeError("a seen-set entry of the wrong types")
        raw = bytes.fromhex(digest)
        if len(raw) != _PACKED.size - 20:
            raise ValueError("a seen-set digest that is not SHA-256")
        out.append((topic, partition, offset, bulletin_id, raw, time_ms))
    return out
