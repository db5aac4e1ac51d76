"""Directory inboxes and outboxes shared by the file-based built-in adapters.

Inbox protocol (documented for integrators): write a file elsewhere (or under a
name starting with ``.``), then rename it into the inbox; renames are atomic, so
the adapter never reads a half-written file. After every record of a file has
been published or rejected, the file moves to ``<inbox>/processed/``; a file that
cannot be read at all moves to ``<inbox>/failed/`` (and is reported in rejects).

Outbox protocol: one file per bulletin, named by its id, written to a temporary
name, fsynced and renamed into place. A file that already exists is a redelivery
and is left as it is: the outbox is idempotent by bulletin id.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

from bus.errors import ConfigError, DeliveryError

__all__ = ["Inbox", "Outbox"]


class Inbox:
    """A directory polled for files matching ``pattern``, oldest first."""

    def __init__(self, directory: Path, pattern: str, poll_interval_s: float) -> None:
        self.directory = directory
        self.pattern = pattern
        self.poll_interval_s = poll_interval_s
        self.processed = directory / "processed"
        self.failed = directory / "failed"

    def prepare(self) -> None:
        """Create the inbox and its subdirectories; :class:`ConfigError` if impossible."""
        try:
            for path in (self.directory, self.processed, self.failed):
                path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot use {self.directory} as an inbox: {exc.strerror}; "
                "point the adapter's directory setting at a writable directory"
            ) from exc

    def ready(self) -> list[Path]:
        """Files waiting, oldest first (hidden files are still being written)."""
        files = [
            p
            for p in self.directory.glob(self.pattern)
            if p.is_file() and not p.name.startswith(".")
        ]
        return sorted(files, key=lambda p: (p.stat().st_mtime_ns, p.name))

    async def files(self, stop: asyncio.Event) -> AsyncIterator[Path]:
        """Yield waiting files until ``stop`` is set, polling every ``poll_interval_s``."""
        while not stop.is_set():
            for path in await asyncio.to_thread(self.ready):
                if stop.is_set():
                    return
                yield path
            try:
                await asyncio.wait_for(stop.wait(), self.poll_interval_s)
            except TimeoutError:
                continue

    def done(self, path: Path) -> Path:
        """Move a fully handled file to ``processed/`` (never overwriting an older one)."""
        return _move_aside(path, self.processed)

    def fail(self, path: Path) -> Path:
        """Move an unreadable file to ``failed/``."""
        return _move_aside(path, self.failed)


def _move_aside(path: Path, directory: Path) -> Path:
    target = directory / path.name
    n = 1
    while target.exists():
        target = directory / f"{path.stem}.{n}{path.suffix}"
        n += 1
    shutil.move(path, target)
    return target


class Outbox:
    """A directory of one file per bulletin, idempotent by bulletin id."""

    def __init__(self, directory: Path, suffix: str) -> None:
        self.directory = directory
        self.suffix = suffix
        self.journal = directory / ".delivered"
        """Names of the files written, one per line, in delivery order."""
        self._journaled: set[str] | None = None

    def prepare(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot use {self.directory} as an outbox: {exc.strerror}; "
                "point the adapter's directory setting at a writable directory"
            ) from exc

    def path_for(self, bulletin_id: str) -> Path:
        # Bulletin ids are [A-Za-z0-9._:-]; ':' is awkward in file names on some systems.
        return self.directory / f"{bulletin_id.replace(':', '_')}{self.suffix}"

    def has(self, bulletin_id: str) -> bool:
        return self.path_for(bulletin_id).exists()

    async def write(self, bulletin_id: str, data: bytes) -> bool:
        """Write atomically; ``False`` (and nothing written) if the bulletin is already there.

        Raises a retriable :class:`DeliveryError` when the directory cannot be written.
        """
        try:
            return await asyncio.to_thread(self._write, bulletin_id, data)
        except OSError as exc:
            raise DeliveryError(
                f"cannot write to the outbox {self.directory}: {exc.strerror}; "
                "delivery is retried until the directory is writable again"
            ) from exc

    def _write(self, bulletin_id: str, data: bytes) -> bool:
        final = self.path_for(bulletin_id)
        if final.exists():
            self._journal(final.name)  # a crash may have come between rename and journal
            return False
        temporary = self.directory / f".{final.name}.tmp"
        with temporary.open("wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        temporary.replace(final)
        self._journal(final.name)
        return True

    def _journal(self, name: str) -> None:
        if self._journaled is None:
            self._journaled = set(self._read_journal())
        if name in self._journaled:
            return
        with self.journal.open("a", encoding="utf-8") as out:
            out.write(name + "\n")
            out.flush()
            os.fsync(out.fileno())
        self._journaled.add(name)

    def _read_journal(self) -> list[str]:
        if not self.journal.exists():
            return []
        return [n for n in self.journal.read_text(encoding="utf-8").splitlines() if n]

    def written(self) -> list[Path]:
        """The bulletin files, in the order they were delivered."""
        return [self.directory / name for name in self._read_journal()]
