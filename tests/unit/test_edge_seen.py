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
    record = seen.pending_record()
    assert record is not None
    assert len(json.loads(record)["entries"]) == 2
    seen.commit(T0)

    restarted = SeenSet()
    not_sha256 = json.dumps({"format": 1, "entries": [["t", 0, 0, "b-9", "abcd", T0]]}).encode()
    unreadable = restarted.load([b"not json", record, None, not_sha256], now_ms=T0 + 1)

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
        records.append(writer.pending_record())
        writer.commit(T0 + i * DAY_MS)

    loaded = SeenSet(window_s=2.5 * 24 * 3600, max_entries=2)
    loaded.load(records, now_ms=T0 + 3 * DAY_MS)

    assert len(loaded) == 2
    loaded.begin()
    assert observe(loaded, "b-0", "d", now_ms=T0 + 3 * DAY_MS)[0] is Verdict.NEW  # expired
    assert observe(loaded, "b-1", "d", now_ms=T0 + 3 * DAY_MS)[0] is Verdict.NEW  # over count
    assert observe(loaded, "b-3", "d", now_ms=T0 + 3 * DAY_MS)[0] is Verdict.DUPLICATE


def test_a_batch_without_new_ids_writes_no_record() -> None:
    seen = SeenSet()
    committed(seen, "b-1", "d1")
    seen.begin()
    observe(seen, "b-1", "d1")
    assert seen.pending_record() is None


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
