"""A whole bus per test (bus.sandbox): its own topic prefix, agencies, edge, schemas, policy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bus.kafka import KafkaConnection
from bus.sandbox import Bus, build_bus, running_edge, teardown_bus
from tests.support.api import ApiHarness, provision_admin_service, running_api

__all__ = ["Bus", "build_bus", "running_edge", "teardown_bus"]


@pytest.fixture
async def bus(admin_connection: KafkaConnection) -> AsyncIterator[Bus]:
    built = await build_bus(admin_connection)
    yield built
    await asyncio.to_thread(teardown_bus, built)


@pytest.fixture
async def admin_service(bus: Bus) -> KafkaConnection:
    """The admin service's principal for this bus (its least-privilege ACLs only)."""
    return await provision_admin_service(bus)


@pytest.fixture
def api(bus: Bus, admin_service: KafkaConnection, tmp_path: Path) -> Iterator[ApiHarness]:
    """The admin API over this bus, on a real port, with a token per role."""
    with running_api(bus, admin_service, tmp_path) as harness:
        yield harness


@pytest.fixture(scope="module")
def module_bus(admin_connection: KafkaConnection) -> Iterator[Bus]:
    """One bus (its own topic prefix) shared by every test of a module.

    For modules of many small tests that only read the bus, or that change only what no
    other test of theirs depends on (the API's authorization matrix, schemathesis).
    Built in an event loop of its own: sync fixtures run outside the tests' loops.
    """
    built = asyncio.run(build_bus(admin_connection))
    try:
        yield built
    finally:
        teardown_bus(built)


@pytest.fixture(scope="module")
def module_api(module_bus: Bus, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiHarness]:
    """The admin API over ``module_bus``, on a real port, with a token per role."""
    service = asyncio.run(provision_admin_service(module_bus))
    with running_api(module_bus, service, tmp_path_factory.mktemp("api")) as harness:
        yield harness
