"""The ``jsonl`` adapter: JSON-lines files in a directory, in and out.

Source (``direction: source``): watches ``directory`` for ``*.jsonl`` files (see
:mod:`adapters._files` for the rename-into-place protocol). Each line holds one
bulletin in its JSON form (:meth:`bus.bulletin.BulletinSchema.to_json`). Every line
is published or, if it is not JSON or not a valid bulletin, written to the agency's
rejects with ``<file>:<line>`` and the reason; blank lines are skipped. Once every
line of a file is handled, the file moves to ``processed/``. Progress within a file
is kept in the instance's state directory, so a restart resumes after the last line
handled rather than publishing the file again.

Sink (``direction: sink``): appends each delivered view, in its JSON form
(:meth:`bus.adapters.DeliveredView.to_json`), as one line to ``directory/file_name``,
fsynced before the offset is committed. Idempotent by bulletin id: ids already in
the file are not written again, across restarts; a torn last line left by a crash
is cut off on start (its view is delivered again).

Nothing is lost in translation: both directions carry the full JSON form.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from adapters._files import Inbox
from bus.adapters import (
    AdapterContext,
    AdapterType,
    DeliveredView,
    Outlet,
    SinkFactory,
    SourceFactory,
)
from bus.errors import ConfigError, DeliveryError

__all__ = ["ADAPTER", "JsonlSink", "JsonlSinkConfig", "JsonlSource", "JsonlSourceConfig"]

_BATCH = 100


class JsonlSourceConfig(BaseModel):
    """Settings of a jsonl source."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    directory: Path = Field(description="The inbox: *.jsonl files are renamed into it.")
    poll_interval_s: float = Field(default=1.0, gt=0, le=3600, description="Polling period.")
    pattern: str = Field(default="*.jsonl", min_length=1, description="Which files to take.")


class JsonlSinkConfig(BaseModel):
    """Settings of a jsonl sink."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    directory: Path = Field(description="Where the views file is written.")
    file_name: str = Field(
        default="views.jsonl", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description="Its name."
    )


class JsonlSource:
    """Publishes every line of every file renamed into the inbox."""

    def __init__(self, config: JsonlSourceConfig, context: AdapterContext) -> None:
        self.config = config
        self.context = context
        self.inbox = Inbox(config.directory, config.pattern, config.poll_interval_s)
        self.progress_file = context.state_dir / "progress.json"

    async def start(self) -> None:
        await asyncio.to_thread(self.inbox.prepare)

    async def stop(self) -> None:
        return None

    async def run(self, outlet: Outlet, stop: asyncio.Event) -> None:
        async for path in self.inbox.files(stop):
            if not await self._publish_file(path, outlet, stop):
                return  # stopped mid-file: the progress file says where to resume
            # Forget the progress first: a crash between the two steps then means a file
            # published again (duplicates recipients recognise), never one skipped.
            await asyncio.to_thread(self.progress_file.unlink, missing_ok=True)
            await asyncio.to_thread(self.inbox.done, path)

    async def _publish_file(self, path: Path, outlet: Outlet, stop: asyncio.Event) -> bool:
        try:
            stat = await asyncio.to_thread(path.stat)
            lines = (await asyncio.to_thread(path.read_bytes)).split(b"\n")
        except OSError as exc:
            await outlet.reject(origin=path.name, reason="unreadable", detail=str(exc.strerror))
            await asyncio.to_thread(self.inbox.fail, path)
            return True
        # The claim (a rename) set ctime; with the inode it tells this file from any
        # later one of the same name, size and mtime.
        identity = {
            "file": path.name,
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "inode": stat.st_ino,
            "ctime_ns": stat.st_ctime_ns,
        }
        done = await asyncio.to_thread(self._resume_point, identity)
        numbered = [(n, line) for n, line in enumerate(lines, start=1) if n > done]
        for start in range(0, len(numbered), _BATCH):
            if stop.is_set():
                return False
            batch = numbered[start : start + _BATCH]
            await asyncio.gather(*(self._publish_line(path, n, line, outlet) for n, line in batch))
            await asyncio.to_thread(self._save_progress, {**identity, "lines_done": batch[-1][0]})
        return True

    async def _publish_line(self, path: Path, number: int, line: bytes, outlet: Outlet) -> None:
        origin = f"{path.name}:{number}"
        if not line.strip():
            return
        try:
            data = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            detail = f"line {number} of {path.name} is not JSON: {exc}; fix the line and resend it"
            await outlet.reject(origin=origin, reason="bad_json", detail=detail)
            return
        if not isinstance(data, dict):
            await outlet.reject(
                origin=origin,
                reason="not_a_bulletin",
                detail=f"line {number} of {path.name} holds a JSON {type(data).__name__}, "
                "not an object with a bulletin's fields",
            )
            return
        await outlet.publish(data, origin=origin)  # a rejection is recorded by the outlet

    def _resume_point(self, identity: dict[str, Any]) -> int:
        try:
            saved = json.loads(self.progress_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return 0
        if isinstance(saved, dict) and all(saved.get(k) == v for k, v in identity.items()):
            return int(saved.get("lines_done", 0))
        return 0

    def _save_progress(self, progress: dict[str, Any]) -> None:
        temporary = self.progress_file.with_suffix(".tmp")
        with temporary.open("w", encoding="utf-8") as out:
            out.write(json.dumps(progress))
            out.flush()
            os.fsync(out.fileno())
        temporary.replace(self.progress_file)


class JsonlSink:
    """Appends views to one JSON-lines file, each bulletin at most once."""

    def __init__(self, config: JsonlSinkConfig, context: AdapterContext) -> None:
        self.config = config
        self.context = context
        self.path = config.directory / config.file_name
        self.delivered: set[str] = set()

    async def start(self) -> None:
        try:
            await asyncio.to_thread(self._recover)
        except OSError as exc:  # ConfigError from _recover passes through
            raise ConfigError(
                f"cannot use {self.path} for views: {exc.strerror}; "
                "point the adapter's directory setting at a writable directory"
            ) from exc

    def _recover(self) -> None:
        self.config.directory.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        complete, _, torn = data.rpartition(b"\n")
        if torn:
            # A crash cut the last line short; its offset was never committed.
            with self.path.open("r+b") as out:
                out.truncate(len(complete) + 1 if complete else 0)
                os.fsync(out.fileno())
        for number, line in enumerate(complete.split(b"\n"), start=1):
            if not line.strip():
                continue
            try:
                bulletin = json.loads(line)["bulletin"]
                self.delivered.add(f"{bulletin['source_agency']}/{bulletin['bulletin_id']}")
            except (ValueError, KeyError, TypeError) as exc:
                raise ConfigError(
                    f"line {number} of {self.path} is not a view this sink wrote "
                    f"({type(exc).__name__}); move the file aside or repair the line"
                ) from exc

    async def stop(self) -> None:
        return None

    async def deliver(self, view: DeliveredView) -> None:
        if view.dedup_key in self.delivered:
            return  # a redelivery after a restart or a retried commit
        line = json.dumps(view.to_json(self.context.schema), separators=(",", ":")) + "\n"
        try:
            await asyncio.to_thread(self._append, line.encode())
        except OSError as exc:
            raise DeliveryError(
                f"cannot append to {self.path}: {exc.strerror}; "
                "delivery is retried until the file is writable again"
            ) from exc
        self.delivered.add(view.dedup_key)

    def _append(self, data: bytes) -> None:
        with self.path.open("ab") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())


ADAPTER = AdapterType(
    name="jsonl",
    summary="JSON-lines files: a directory inbox in, an append-only views file out.",
    source=SourceFactory(config=JsonlSourceConfig, build=JsonlSource),
    sink=SinkFactory(config=JsonlSinkConfig, build=JsonlSink),
)
