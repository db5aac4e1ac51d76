"""Helpers for tests that talk to the real broker: waits with deadlines, never sleeps."""

from __future__ import annotations

import os
import select
import time
from collections.abc import Callable
from pathlib import Path

from bus.kafka import Acl, AclOperation, Consumer, Record, ResourceType, TopicPartition
from bus.sandbox import read_until

__all__ = [
    "allow",
    "committed_offset_eventually",
    "jvm_pids_using",
    "read_count",
    "read_until",
    "wait_for_exit",
]


async def read_count(consumer: Consumer, count: int, *, timeout_s: float = 30.0) -> list[Record]:
    """Read exactly until at least ``count`` records arrived."""
    return await read_until(consumer, lambda rs: len(rs) >= count, timeout_s=timeout_s)


async def committed_offset_eventually(
    consumer: Consumer, tp: TopicPartition, *, expected: int, timeout_s: float = 15.0
) -> int | None:
    """The group's committed offset for ``tp`` once it equals ``expected``, or at the deadline."""
    deadline = time.monotonic() + timeout_s
    committed = await consumer.committed(tp)
    while committed != expected and time.monotonic() < deadline:
        await consumer.getmany(timeout_ms=100)  # a bounded broker round trip paces the poll
        committed = await consumer.committed(tp)
    return committed


def wait_for_exit(pid: int, *, timeout_s: float = 30.0) -> bool:
    """Wait until process ``pid`` (not necessarily our child) has exited; True if it did.

    A pidfd becomes readable when the process exits: an event, not a polling loop.
    """
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        ready, _, _ = select.select([fd], [], [], timeout_s)
        return bool(ready)
    finally:
        os.close(fd)


def jvm_pids_using(path: Path) -> list[int]:
    """Pids of running processes whose command line mentions ``path``."""
    needle = str(path).encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmdline and b"java" in cmdline:
            pids.append(int(entry.name))
    return pids


def allow(*grants: tuple[ResourceType, str, AclOperation]) -> Callable[[str], list[Acl]]:
    """ACLs for the ``new_principal`` factory: ``allow((ResourceType.TOPIC, "t", READ))``."""

    def acls(principal: str) -> list[Acl]:
        return [
            Acl(principal=principal, resource_type=kind, resource_name=name, operation=op)
            for kind, name, op in grants
        ]

    return acls
