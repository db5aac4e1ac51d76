"""Shared fixtures: one real broker per test session, and per-test topics and principals.

The broker starts lazily, the first time a test asks for it, so a run of only the
unit tests never starts a JVM. A broker that cannot start is an error, never a
skip: integration tests do not silently disappear.
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from hypothesis import settings

from bus.broker import Broker, BrokerConfig
from bus.kafka import (
    Acl,
    AclFilter,
    KafkaAdmin,
    KafkaConnection,
    TopicSpec,
    wait_until_authenticates,
)

# Property tests take their example counts from a profile, never from the test:
# HYPOTHESIS_PROFILE=proof (make policy-proof) runs the policy proofs at 10,000 examples.
settings.register_profile("default", max_examples=100, deadline=None)
settings.register_profile("proof", max_examples=10_000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

TopicFactory = Callable[..., str]
PrincipalFactory = Callable[..., KafkaConnection]


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A real Kafka 4.3.1 broker with SCRAM and default-deny ACLs, for the whole session."""
    data_dir = tmp_path_factory.mktemp("kafka")
    with Broker(BrokerConfig(data_dir=data_dir)) as running:
        yield running


@pytest.fixture(scope="session")
def admin_connection(broker: Broker) -> KafkaConnection:
    """Credentials of the broker's `admin` super user."""
    return broker.connection


@pytest.fixture
def admin(admin_connection: KafkaConnection) -> Iterator[KafkaAdmin]:
    with KafkaAdmin(admin_connection) as client:
        yield client


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """Names no other test uses: ``<prefix>.<test name>.<random>``."""
    test = "".join(c if c.isalnum() else "-" for c in request.node.name)[:60]

    def make(prefix: str) -> str:
        return f"{prefix}.{test}.{uuid.uuid4().hex[:8]}"

    return make


@pytest.fixture
def new_topic(admin: KafkaAdmin, unique_name: Callable[[str], str]) -> Iterator[TopicFactory]:
    """Create a fresh topic for this test; all are deleted afterwards."""
    created: list[str] = []

    def make(partitions: int = 1, *, prefix: str = "t") -> str:
        name = unique_name(prefix)
        admin.create_topics([TopicSpec(name, partitions=partitions)])
        created.append(name)
        return name

    yield make
    admin.delete_topics(created)


@pytest.fixture
def new_principal(
    admin: KafkaAdmin, admin_connection: KafkaConnection, unique_name: Callable[[str], str]
) -> Iterator[PrincipalFactory]:
    """Create a SCRAM user with exactly the given ACLs; returns its connection.

    The factory waits until the broker accepts the new credentials, since SCRAM
    changes reach the authenticator shortly after the admin call returns.
    """
    users: list[str] = []

    def make(acls: Callable[[str], Sequence[Acl]] | Sequence[Acl] = ()) -> KafkaConnection:
        username = unique_name("u").replace(".", "-")
        password = secrets.token_urlsafe(18)
        admin.upsert_scram_user(username, password)
        users.append(username)
        connection = admin_connection.with_credentials(username, password)
        grants = acls(connection.principal) if callable(acls) else acls
        admin.create_acls(list(grants))
        wait_until_authenticates(connection)
        return connection

    yield make
    for username in users:
        admin.delete_acls([AclFilter(principal=f"User:{username}")])
        admin.delete_scram_user(username)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI a skipped test fails the run: every test must run against the real broker."""
    if os.environ.get("CI") != "true" or exitstatus != 0:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    skipped = len(reporter.stats.get("skipped", []))
    if skipped:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        reporter.write_line(f"CI=true: {skipped} test(s) were skipped; failing the run.", red=True)


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
