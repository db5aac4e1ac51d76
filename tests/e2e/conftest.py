"""A whole bus per test (bus.sandbox): its own topic prefix, agencies, edge, schemas, policy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bus.kafka import KafkaConnection
from bus.sandbox import Bus, build_bus, running_edge, teardown_bus

__all__ = ["Bus", "build_bus", "running_edge", "teardown_bus"]


@pytest.fixture
async def bus(admin_connection: KafkaConnection) -> AsyncIterator[Bus]:
    built = await build_bus(admin_connection)
    yield built
    await asyncio.to_thread(teardown_bus, built)
