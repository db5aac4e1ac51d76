"""The jsonl adapter: the contract kit, plus file-level behaviour."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from adapters.jsonl import ADAPTER, JsonlSinkConfig, JsonlSourceConfig
from bus.adapters import AdapterContext, PublishOutcome
from bus.adapters.testing import (
    KIT_AGENCY,
    MemoryOutlet,
    SinkContract,
    SourceContract,
    sample_views,
)
from bus.bulletin import Bulletin, BulletinGenerator, BulletinSchema
from bus.schemas import SchemaCatalog


def drop_file(directory: Path, name: str, lines: list[str]) -> Path:
    """Write a file elsewhere, then rename it into the inbox (the documented protocol)."""
    directory.mkdir(parents=True, exist_ok=True)
    hidden = directory / f".{name}.part"
    hidden.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return hidden.rename(directory / name)


class TestJsonlSource(SourceContract):
    adapter = ADAPTER

    def valid_config(self, tmp_path: Path) -> dict[str, object]:
        return {"directory": str(tmp_path / "inbox"), "poll_interval_s": 0.05}

    def invalid_configs(self, tmp_path: Path) -> list[dict[str, object]]:
        good = self.valid_config(tmp_path)
        return [
            *super().invalid_configs(tmp_path),
            {**good, "poll_interval_s": 0},
            {"poll_interval_s": 1},
        ]

    async def feed(
        self, config: BaseModel, bulletins: list[Bulletin], schema: BulletinSchema
    ) -> int:
        assert isinstance(config, JsonlSourceConfig)
        lines = [json.dumps(schema.to_json(b)) for b in bulletins]
        drop_file(config.directory, "first.jsonl", [*lines[:4], "{not json", ""])
        drop_file(config.directory, "second.jsonl", [*lines[4:], "[1, 2]"])
        return 2


class TestJsonlSink(SinkContract):
    adapter = ADAPTER

    def valid_config(self, tmp_path: Path) -> dict[str, object]:
        return {"directory": str(tmp_path / "outbox")}

    def invalid_configs(self, tmp_path: Path) -> list[dict[str, object]]:
        return [*super().invalid_configs(tmp_path), {"directory": "x", "file_name": "../escape"}]

    async def read_back(self, config: BaseModel) -> list[str]:
        assert isinstance(config, JsonlSinkConfig)
        path = config.directory / config.file_name
        if not path.exists():
            return []
        lines = path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line)["bulletin"]["bulletin_id"] for line in lines]

    async def break_native(self, config: BaseModel) -> None:
        assert isinstance(config, JsonlSinkConfig)
        path = config.directory / config.file_name
        path.unlink(missing_ok=True)
        path.mkdir()  # appending to a directory fails: a transient, fixable failure

    async def heal_native(self, config: BaseModel) -> None:
        assert isinstance(config, JsonlSinkConfig)
        (config.directory / config.file_name).rmdir()


@pytest.fixture
def schema() -> BulletinSchema:
    return BulletinSchema(SchemaCatalog.load())


def context(tmp_path: Path, schema: BulletinSchema) -> AdapterContext:
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    return AdapterContext(agency=KIT_AGENCY, instance="t", schema=schema, state_dir=state)


async def test_bad_lines_are_reported_with_file_and_line_number(
    tmp_path: Path, schema: BulletinSchema
) -> None:
    source = ADAPTER.source.build(  # type: ignore[union-attr]
        JsonlSourceConfig(directory=tmp_path / "in", poll_interval_s=0.05),
        context(tmp_path, schema),
    )
    good = BulletinGenerator(schema, seed=3, agencies=[KIT_AGENCY]).bulletin("notice")
    invalid = {**schema.to_json(good), "bulletin_id": "two words"}
    await source.start()
    drop_file(
        tmp_path / "in",
        "mixed.jsonl",
        [json.dumps(schema.to_json(good)), "", "{", json.dumps(invalid)],
    )
    outlet = MemoryOutlet(schema)
    stop = asyncio.Event()
    task = asyncio.create_task(source.run(outlet, stop))
    await outlet.wait_for(published=1, rejected=2)
    stop.set()
    await asyncio.wait_for(task, 10)
    await source.stop()
    origins = {r["origin"]: r["reason"] for r in outlet.rejected}
    assert origins == {"mixed.jsonl:3": "bad_json", "mixed.jsonl:4": "invalid_bulletin"}
    assert "bulletin_id" in next(r["detail"] for r in outlet.rejected if r["origin"].endswith(":4"))
    assert (tmp_path / "in" / "processed" / "mixed.jsonl").exists()
    assert not (tmp_path / "in" / "mixed.jsonl").exists()


async def test_a_torn_last_line_is_cut_off_and_delivered_again(
    tmp_path: Path, schema: BulletinSchema
) -> None:
    views = sample_views(schema, ["notice"], count=2)
    config = JsonlSinkConfig(directory=tmp_path / "out")
    sink = ADAPTER.sink.build(config, context(tmp_path, schema))  # type: ignore[union-attr]
    await sink.start()
    await sink.deliver(views[0])
    await sink.stop()
    path = tmp_path / "out" / "views.jsonl"
    with path.open("a", encoding="utf-8") as out:
        out.write('{"bulletin": {"bulletin_id": "torn')  # a crash mid-append
    again = ADAPTER.sink.build(config, context(tmp_path, schema))  # type: ignore[union-attr]
    await again.start()
    await again.deliver(views[0])
    await again.deliver(views[1])
    await again.stop()
    ids = [json.loads(line)["bulletin"]["bulletin_id"] for line in path.read_text().splitlines()]
    assert ids == [views[0].bulletin.bulletin_id, views[1].bulletin.bulletin_id]


async def test_a_restarted_source_resumes_after_the_last_line_handled(
    tmp_path: Path, schema: BulletinSchema
) -> None:
    generator = BulletinGenerator(schema, seed=5, agencies=[KIT_AGENCY])
    bulletins = [generator.bulletin("notice") for _ in range(250)]
    config = JsonlSourceConfig(directory=tmp_path / "in", poll_interval_s=0.05)
    drop_file(tmp_path / "in", "bulk.jsonl", [json.dumps(schema.to_json(b)) for b in bulletins])

    class StopAfter(MemoryOutlet):
        """Sets ``stop`` once the first batch is published, as a SIGTERM would."""

        def __init__(self, stop: asyncio.Event) -> None:
            super().__init__(schema)
            self.stop = stop

        async def publish(
            self, bulletin: Bulletin | Mapping[str, Any], *, origin: str
        ) -> PublishOutcome:
            outcome = await super().publish(bulletin, origin=origin)
            if len(self.published) >= 100:
                self.stop.set()
            return outcome

    stop = asyncio.Event()
    first_outlet = StopAfter(stop)
    first = ADAPTER.source.build(config, context(tmp_path, schema))  # type: ignore[union-attr]
    await first.start()
    await asyncio.wait_for(first.run(first_outlet, stop), 10)
    await first.stop()
    assert (tmp_path / "in" / ".working" / "bulk.jsonl").exists(), "a half-published file waits"

    second_outlet, second_stop = MemoryOutlet(schema), asyncio.Event()
    second = ADAPTER.source.build(config, context(tmp_path, schema))  # type: ignore[union-attr]
    await second.start()
    task = asyncio.create_task(second.run(second_outlet, second_stop))
    await second_outlet.wait_for(published=150)
    second_stop.set()
    await asyncio.wait_for(task, 10)
    await second.stop()
    published = [b.bulletin_id for b in first_outlet.published + second_outlet.published]
    assert published == [b.bulletin_id for b in bulletins]


async def test_a_file_renamed_in_under_a_name_being_read_is_not_lost(
    tmp_path: Path, schema: BulletinSchema
) -> None:
    """The inbox claims a file before reading it, so the next export.jsonl renamed into
    the inbox while the first is still being published is a file of its own."""
    generator = BulletinGenerator(schema, seed=8, agencies=[KIT_AGENCY])
    first = [generator.bulletin("notice") for _ in range(250)]
    second = [generator.bulletin("notice") for _ in range(3)]
    inbox = tmp_path / "in"
    drop_file(inbox, "export.jsonl", [json.dumps(schema.to_json(b)) for b in first])

    class DropsTheNextExport(MemoryOutlet):
        async def publish(
            self, bulletin: Bulletin | Mapping[str, Any], *, origin: str
        ) -> PublishOutcome:
            if len(self.published) == 50:
                drop_file(inbox, "export.jsonl", [json.dumps(schema.to_json(b)) for b in second])
            return await super().publish(bulletin, origin=origin)

    outlet, stop = DropsTheNextExport(schema), asyncio.Event()
    config = JsonlSourceConfig(directory=inbox, poll_interval_s=0.05)
    source = ADAPTER.source.build(config, context(tmp_path, schema))  # type: ignore[union-attr]
    await source.start()
    task = asyncio.create_task(source.run(outlet, stop))
    await outlet.wait_for(published=253)
    stop.set()
    await asyncio.wait_for(task, 10)
    await source.stop()
    assert [b.bulletin_id for b in outlet.published] == [b.bulletin_id for b in [*first, *second]]
    assert sorted(p.name for p in (inbox / "processed").iterdir()) == [
        "export.1.jsonl",
        "export.jsonl",
    ]


async def test_a_resubmitted_file_is_read_again_even_after_a_stale_progress_file(
    tmp_path: Path, schema: BulletinSchema
) -> None:
    """A crash between forgetting progress and moving the file aside cannot make a later
    file with the same name, size and mtime look already published."""
    generator = BulletinGenerator(schema, seed=9, agencies=[KIT_AGENCY])
    bulletins = [generator.bulletin("notice") for _ in range(3)]
    lines = [json.dumps(schema.to_json(b)) for b in bulletins]
    inbox = tmp_path / "in"
    path = drop_file(inbox, "same.jsonl", lines)
    stat = path.stat()
    state = tmp_path / "state"
    state.mkdir()
    (state / "progress.json").write_text(
        json.dumps(
            {
                "file": "same.jsonl",
                "size": stat.st_size,
                "mtime_ns": stat.st_mtime_ns,
                "lines_done": 4,
            }
        )
    )
    outlet, stop = MemoryOutlet(schema), asyncio.Event()
    config = JsonlSourceConfig(directory=inbox, poll_interval_s=0.05)
    source = ADAPTER.source.build(config, context(tmp_path, schema))  # type: ignore[union-attr]
    await source.start()
    task = asyncio.create_task(source.run(outlet, stop))
    await outlet.wait_for(published=3)
    stop.set()
    await asyncio.wait_for(task, 10)
    await source.stop()
    assert [b.bulletin_id for b in outlet.published] == [b.bulletin_id for b in bulletins]
