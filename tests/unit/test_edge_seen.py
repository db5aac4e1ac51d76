"""The re-send rule (bus.edge._seen), without a broker."""

from __future__ import annotations

import hashlib
import json
import logging

import pytest
from pydantic import SecretBytes, SecretStr

from bus.bulletin import BulletinSchema
from bus.edge import DEFAULT_WINDOW_S, EdgeConfig, EdgeRouter
from bus.edge._seen import Seen, SeenSet, Verdict
from bus.kafka import KafkaConnection
from bus.policy import RedactionKeys
from bus.provision import EDGE_SEEN_RETENTION_MS
from bus.schemas import SchemaCatalog
from bus.topics import TopicNames

NAMES = TopicNames()
DAY_MS = 24 * 3600 * 1000
T0 = 1_800_000_000_000
KEY = b"edge.0"


def observe(
    seen: SeenSet,
    bulletin_id: str,
    digest: str,
    *,
    now_ms: int = T0,
    agency: str = "north-river",
    offset: int = 0,
) -> tuple[Verdict, Seen | None]:
    return seen.observe(
        NAMES.inbound(agency),
        0,
        offset,
        bulletin_id,
        hashlib.sha256(digest.encode()).digest(),
        now_ms=now_ms,
    )


def committed(seen: SeenSet, bulletin_id: str, digest: str, now_ms: int = T0) -> None:
    seen.begin()
    assert observe(seen, bulletin_id, digest, now_ms=now_ms)[0] is Verdict.NEW
    seen.commit(now_ms)


def test_a_resend_with_the_same_content_is_a_duplicate_of_the_first() -> None:
    seen = SeenSet()
    committed(seen, "b-1", "d1")

    seen.begin()
    verdict, earlier = observe(seen, "b-1", "d1", now_ms=T0 + 1000, offset=7)

    assert verdict is Verdict.DUPLICATE
    assert earlier is not None
    assert earlier.offset == 0
    assert earlier.time_ms == T0


def test_different_content_under_a_used_id_is_id_reused() -> None:
    seen = SeenSet()
    committed(seen, "b-1", "d1")

    seen.begin()
    assert observe(seen, "b-1", "d2", now_ms=T0 + 1)[0] is Verdict.ID_REUSED
    # The first content stays the one remembered: its own re-send is still a duplicate.
    assert observe(seen, "b-1", "d1", now_ms=T0 + 2)[0] is Verdict.DUPLICATE


def test_ids_are_per_source_agency() -> None:
    seen = SeenSet()
    committed(seen, "b-1", "d1")

    seen.begin()
    assert observe(seen, "b-1", "d1", agency="harbour-watch")[0] is Verdict.NEW


def test_a_resend_inside_the_same_batch_is_a_duplicate() -> None:
    seen = SeenSet()
    seen.begin()
    assert observe(seen, "b-1", "d1")[0] is Verdict.NEW
    assert observe(seen, "b-1", "d1", offset=1)[0] is Verdict.DUPLICATE
    assert observe(seen, "b-1", "d9", offset=2)[0] is Verdict.ID_REUSED


def test_an_aborted_batch_remembers_nothing() -> None:
    seen = SeenSet()
    seen.begin()
    observe(seen, "b-1", "d1")
    seen.discard()

    seen.begin()
    assert observe(seen, "b-1", "d1")[0] is Verdict.NEW
    assert len(seen) == 0


def test_after_the_window_the_id_is_new_again() -> None:
    seen = SeenSet(window_s=7 * 24 * 3600)
    committed(seen, "b-1", "d1")

    seen.begin()
    assert observe(seen, "b-1", "d2", now_ms=T0 + 7 * DAY_MS - 1)[0] is Verdict.ID_REUSED
    assert observe(seen, "b-1", "d2", now_ms=T0 + 7 * DAY_MS)[0] is Verdict.NEW


def test_memory_is_bounded_by_count_and_by_time_oldest_first() -> None:
    seen = SeenSet(window_s=3600, max_entries=3)
    for i in range(5):
        committed(seen, f"b-{i}", "d", now_ms=T0 + i)
    assert len(seen) == 3
    seen.begin()
    assert observe(seen, "b-1", "d")[0] is Verdict.NEW  # forgotten: over the count
    assert observe(seen, "b-4", "d")[0] is Verdict.DUPLICATE
    seen.discard()

    seen.begin()
    seen.commit(T0 + 3600 * 1000 + 3)  # b-2 and b-3 (times T0+2, T0+3) have expired
    assert len(seen) == 1


def test_the_transaction_records_rebuild_the_set() -> None:
    seen = SeenSet()
    seen.begin()
    observe(seen, "b-1", "d1", offset=3)
    observe(seen, "b-2", "d2", agency="harbour-watch", offset=4)
    [record] = seen.pending_records()
    assert len(json.loads(record)["entries"]) == 2
    seen.commit(T0)

    restarted = SeenSet()
    not_sha256 = json.dumps({"format": 1, "entries": [["t", 0, 0, "b-9", "abcd", T0]]}).encode()
    unreadable = restarted.load(
        [(KEY, b"not json"), (KEY, record), (KEY, None), (KEY, not_sha256)], now_ms=T0 + 1
    )

    assert unreadable == 3
    restarted.begin()
    verdict, earlier = observe(restarted, "b-1", "d1", now_ms=T0 + 2)
    assert verdict is Verdict.DUPLICATE
    assert earlier is not None
    assert earlier.offset == 3
    assert earlier.origin == {"topic": NAMES.inbound("north-river"), "partition": 0, "offset": 3}
    assert observe(restarted, "b-2", "d2", agency="harbour-watch")[0] is Verdict.DUPLICATE
    assert observe(restarted, "b-2", "d2", agency="vale-fire")[0] is Verdict.NEW


def test_loading_keeps_the_window_and_the_newest_entries() -> None:
    records = []
    writer = SeenSet()
    for i in range(4):
        writer.begin()
        observe(writer, f"b-{i}", "d", now_ms=T0 + i * DAY_MS)
        [record] = writer.pending_records()
        records.append((KEY, record))
        writer.commit(T0 + i * DAY_MS)

    loaded = SeenSet(window_s=2.5 * 24 * 3600, max_entries=2)
    loaded.load(records, now_ms=T0 + 3 * DAY_MS)

    assert len(loaded) == 2
    loaded.begin()
    assert observe(loaded, "b-0", "d", now_ms=T0 + 3 * DAY_MS)[0] is Verdict.NEW  # expired
    assert observe(loaded, "b-1", "d", now_ms=T0 + 3 * DAY_MS)[0] is Verdict.NEW  # over count
    assert observe(loaded, "b-3", "d", now_ms=T0 + 3 * DAY_MS)[0] is Verdict.DUPLICATE


def records_of(origin: bytes, ids: list[str], now_ms: int) -> list[tuple[bytes, bytes]]:
    """What instance ``origin`` writes when it accepts ``ids`` at ``now_ms``."""
    writer = SeenSet(origin=origin.decode())
    writer.begin()
    for bulletin_id in ids:
        observe(writer, bulletin_id, "d", now_ms=now_ms)
    return [(origin, r) for r in writer.pending_records()]


def test_loading_merges_into_what_is_known_and_never_forgets_it() -> None:
    """Issue 15.11 review: a reload that saw less than was committed (another instance's
    open transaction hides what follows it) replaced the set, forgetting this instance's own
    committed ids."""
    seen = SeenSet()
    committed(seen, "b-1", "d")
    committed(seen, "b-2", "d", now_ms=T0 + 1)

    # The partial read: only another instance's earlier record, not this one's.
    seen.load(records_of(b"edge.1", ["b-9"], T0), now_ms=T0 + 2)
    seen.load([], now_ms=T0 + 2)

    seen.begin()
    for bulletin_id in ("b-1", "b-2", "b-9"):
        assert observe(seen, bulletin_id, "d", now_ms=T0 + 3)[0] is Verdict.DUPLICATE
    assert len(seen) == 3


def test_the_count_bound_applies_per_originating_instance() -> None:
    """Issue 15.11 review: every instance loads every instance's ids; a bound over all of them
    left each of N instances about 1/N of its own."""
    seen = SeenSet(max_entries=2)
    committed(seen, "own-1", "d", now_ms=T0)
    committed(seen, "own-2", "d", now_ms=T0 + 1)
    others = [*records_of(b"edge.1", ["x-1", "x-2", "x-3"], T0 + 2)]
    others += records_of(b"edge.2", ["y-1", "y-2"], T0 + 3)

    seen.load(others, now_ms=T0 + 4)

    assert len(seen) == 6  # 2 per origin, 3 origins
    seen.begin()
    for bulletin_id in ("own-1", "own-2", "x-2", "x-3", "y-1", "y-2"):
        assert observe(seen, bulletin_id, "d", now_ms=T0 + 5)[0] is Verdict.DUPLICATE
    assert observe(seen, "x-1", "d", now_ms=T0 + 5)[0] is Verdict.NEW  # edge.1's oldest
    seen.commit(T0 + 5)  # x-1, now this instance's: its own oldest (own-1) goes
    seen.begin()
    assert observe(seen, "own-1", "d", now_ms=T0 + 6)[0] is Verdict.NEW
    assert observe(seen, "y-1", "d", now_ms=T0 + 6)[0] is Verdict.DUPLICATE


def test_a_large_batch_is_split_into_records_under_the_limit() -> None:
    """Issue 15.11 review: one record per transaction, with up to batch_max entries of up to
    ~315 bytes, passed Kafka's 1 MiB message limit above ~3,300 entries."""
    seen = SeenSet()
    seen.begin()
    long_id = "x" * 100
    ids = [f"{long_id}-{i}" for i in range(5000)]
    for i, bulletin_id in enumerate(ids):
        observe(seen, bulletin_id, str(i), offset=i)

    records = seen.pending_records(max_bytes=64 * 1024)

    assert len(records) > 1
    assert all(len(r) <= 64 * 1024 for r in records)
    assert all(len(r) <= 256 * 1024 for r in seen.pending_records())
    entries = [e for r in records for e in json.loads(r)["entries"]]
    assert [e[3] for e in entries] == ids
    restarted = SeenSet()
    assert restarted.load([(KEY, r) for r in records], now_ms=T0 + 1) == 0
    assert len(restarted) == 5000


def test_a_batch_without_new_ids_writes_no_record() -> None:
    seen = SeenSet()
    committed(seen, "b-1", "d1")
    seen.begin()
    observe(seen, "b-1", "d1")
    assert seen.pending_records() == []


@pytest.mark.parametrize(("window_s", "max_entries"), [(0, 10), (10, 0)])
def test_bounds_must_be_positive(window_s: float, max_entries: int) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        SeenSet(window_s=window_s, max_entries=max_entries)


def _router(window_s: float) -> EdgeRouter:
    return EdgeRouter(
        KafkaConnection(bootstrap_servers="127.0.0.1:9", username="edge", password=SecretStr("x")),
        BulletinSchema(SchemaCatalog.load()),
        RedactionKeys(master=SecretBytes(b"k" * 32)),
        EdgeConfig(dedup_window_s=window_s),
    )


def test_a_window_longer_than_the_provisioned_retention_is_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="liaison.edge"):
        _router(DEFAULT_WINDOW_S)
        assert caplog.messages == []
        _router(EDGE_SEEN_RETENTION_MS / 1000 + 1)
    (message,) = caplog.messages
    assert "raise the topic's retention.ms" in message


@pytest.mark.parametrize("window_s", [0, -1])
def test_the_router_refuses_a_window_that_is_not_positive(window_s: float) -> None:
    with pytest.raises(ValueError, match="dedup_window_s"):
        EdgeConfig(dedup_window_s=window_s)
