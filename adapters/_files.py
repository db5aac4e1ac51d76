"""Directory inboxes and outboxes shared by the file-based built-in adapters.

Inbox protocol (documented for integrators): write a file elsewhere (or under a
name starting with ``.``), then rename it into the inbox; renames are atomic, so
the adapter never reads a half-written file. The adapter first *claims* a file by
renaming it into ``<inbox>/.working/``, so a new file renamed into the inbox under
the same name while the first is being read is a separate file, never lost. After
every record of a file has been published or rejected, the file moves to
``<inbox>/processed/``; a file that cannot be read at all moves to
``<inbox>/failed/`` (and is reported in rejects). A claimed file left by a crash is
taken up again first, on the next start.

Outbox protocol: one file per bulletin, ``<outbox>/<source agency>/<bulletin id>``
(``:`` in the id written as ``%3A``), written to a temporary name, fsynced and
renamed into place, the directory fsynced. A file that already exists is a
redelivery and is left as it is: the outbox is idempotent by
:attr:`bus.adapters.DeliveredView.dedup_key` (source agency and bulletin id, so
two agencies' bulletins never collide even with equal ids).
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
        self.working = directory / ".working"

    def prepare(self) -> None:
        """Create the inbox and its subdirectories; :class:`ConfigError` if impossible."""
        try:
            for path in (self.directory, self.processed, self.failed, self.working):
                path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot use {self.directory} as an inbox: {exc.strerror}; "
                "point the adapter's directory setting at a writable directory"
            ) from exc

    def ready(self) -> list[Path]:
        """Files waiting, oldest first (hidden files are still being written)."""
        found = []
        for path in self.directory.glob(self.pattern):
            if path.name.startswith("."):
                continue
            try:
                stat = path.lstat()
            except FileNotFoundError:
                continue  # taken away while we looked
            if not path.is_dir():
                found.append((stat.st_mtime_ns, path.name, path))
        return [path for _, _, path in sorted(found)]

    def claim(self, path: Path) -> Path | None:
        """Move ``path`` into ``.working/`` (same name); ``None`` if it has gone."""
        target = self.working / path.name
        try:
            path.rename(target)
        except FileNotFoundError:
            return None
        return target

    def claimed(self) -> list[Path]:
        """Files claimed before a crash, to be taken up again."""
        return sorted(p for p in self.working.iterdir() if not p.name.startswith("."))

    async def files(self, stop: asyncio.Event) -> AsyncIterator[Path]:
        """Claim and yield waiting files until ``stop`` is set, polling every
        ``poll_interval_s``. Yielded paths are in ``.working/`` and keep their name;
        pass each to :meth:`done` or :meth:`fail` once handled."""
        for path in await asyncio.to_thread(self.claimed):
            if stop.is_set():
                return
            yield path
        while not stop.is_set():
            for waiting in await asyncio.to_thread(self.ready):
                if stop.is_set():
                    return
                taken = await asyncio.to_thread(self.claim, waiting)
                if taken is not None:
                    yield taken
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

    def path_for(self, key: str) -> Path:
        """The file of a dedup key ``<source agency>/<bulletin id>``.

        Agency ids are ``[a-z0-9-]`` and bulletin ids ``[A-Za-z0-9._:-]`` starting with a
        letter or digit, so neither can climb out of the outbox; ``:`` (awkward in file
        names on some systems) is written ``%3A``, which no bulletin id can contain.
        """
        agency, _, bulletin_id = key.rpartition("/")
        name = f"{bulletin_id.replace(':', '%3A')}{self.suffix}"
        return self.directory / agency / name if agency else self.directory / name

    def has(self, key: str) -> bool:
        return self.path_for(key).exists()

    async def write(self, key: str, data: bytes) -> bool:
        """Write atomically; ``False`` (and nothing written) if the bulletin is already there.

        Raises a retriable :class:`DeliveryError` when the directory cannot be written.
        """
        try:
            return await asyncio.to_thread(self._write, key, data)
        except OSError as exc:
            raise DeliveryError(
                f"cannot write to the outbox {self.directory}: {exc.strerror}; "
                "delivery is retried until the directory is writable again"
            ) from exc

    def _write(self, key: str, data: bytes) -> bool:
        final = self.path_for(key)
        entry = str(final.relative_to(self.directory))
        if final.exists():
            self._journal(entry)  # a crash may have come between rename and journal
            return False
        final.parent.mkdir(parents=True, exist_ok=True)
        temporary = final.parent / f".{final.name}.tmp"
        with temporary.open("wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        temporary.replace(final)
        _fsync_directory(final.parent)  # the rename itself survives a power loss
        self._journal(entry)
        return True

    def _journal(self, name: str) -> None:
        if self._journaled is None:
            self._journaled = set(self._read_journal())
        if name in self._journaled:
            return
        new = not self.journal.exists()
        with self.journal.open("a", encoding="utf-8") as out:
            out.write(name + "\n")
            out.flush()
            os.fsync(out.fileno())
        if new:
            _fsync_directory(self.directory)
        self._journaled.add(name)

    def _read_journal(self) -> list[str]:
        if not self.journal.exists():
            return []
        return [n for n in self.journal.read_text(encoding="utf-8").splitlines() if n]

    def written(self) -> list[Path]:
        """The bulletin files, in the order they were delivered."""
        return [self.directory / name for name in self._read_journal()]


def _fsync_directory(directory: Path) -> None:
    """Make a rename or a new file in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
