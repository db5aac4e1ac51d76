"""Cluster administration: topics (and their partitions), SCRAM users and ACLs.

aiokafka can manage none of SCRAM users or ACLs, so administration goes through
confluent-kafka's ``AdminClient`` (librdkafka). Its futures are resolved here with
explicit timeouts and its errors are translated into :mod:`bus.errors`.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka import admin as ck

from bus.errors import (
    ConfigError,
    KafkaAccessError,
    KafkaAuthenticationError,
    KafkaAuthorizationError,
    KafkaOperationError,
    KafkaUnavailableError,
    TopicExistsError,
)
from bus.kafka._acl import (
    Acl,
    AclFilter,
    AclOperation,
    AclPermission,
    PatternType,
    ResourceType,
)
from bus.kafka._connection import KafkaConnection

__all__ = ["KafkaAdmin", "TopicSpec", "translate_kafka_error"]

_T = TypeVar("_T")

_AUTHZ_CODES = {
    KafkaError.TOPIC_AUTHORIZATION_FAILED: "topic",
    KafkaError.GROUP_AUTHORIZATION_FAILED: "group",
    KafkaError.CLUSTER_AUTHORIZATION_FAILED: "cluster",
    KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED: "transactional id",
}
_AUTHN_CODES = {KafkaError.SASL_AUTHENTICATION_FAILED, KafkaError._AUTHENTICATION}
_UNAVAILABLE_CODES = {
    KafkaError._TIMED_OUT,
    KafkaError._TRANSPORT,
    KafkaError._ALL_BROKERS_DOWN,
    KafkaError.REQUEST_TIMED_OUT,
    KafkaError.NOT_CONTROLLER,
    KafkaError.LEADER_NOT_AVAILABLE,
}


def translate_kafka_error(
    exc: BaseException, *, action: str, principal: str, resource: str = ""
) -> KafkaAccessError:
    """Map a confluent-kafka error onto Liaison's tree, naming who tried what."""
    err = exc.args[0] if isinstance(exc, KafkaException) and exc.args else None
    on = f" on {resource}" if resource else ""
    if isinstance(err, KafkaError):
        code = err.code()
        if code in _AUTHZ_CODES:
            return KafkaAuthorizationError(
                f"{principal} is not authorized to {action}{on} ({err.name()}); "
                f"an administrator must grant an ACL for it"
            )
        if code in _AUTHN_CODES:
            return KafkaAuthenticationError(
                f"the broker rejected the credentials of {principal} while trying to {action}; "
                f"check the username and password (the password is not shown)"
            )
        if code == KafkaError.TOPIC_ALREADY_EXISTS:
            return TopicExistsError(
                f"{principal} cannot {action}: {resource or 'the topic'} already exists; "
                f"choose another name or delete it first"
            )
        if code in _UNAVAILABLE_CODES or err.retriable():
            return KafkaUnavailableError(
                f"broker did not answer {principal}'s request to {action}{on} ({err.name()}); "
                f"check that it is running and reachable, then retry"
            )
        return KafkaOperationError(f"{principal} could not {action}{on}: {err.name()}: {err.str()}")
    if isinstance(exc, concurrent.futures.TimeoutError | TimeoutError):
        return KafkaUnavailableError(
            f"timed out waiting for the broker to {action}{on} for {principal}; "
            f"check that it is running and reachable, then retry"
        )
    return KafkaOperationError(f"{principal} could not {action}{on}: {exc}")


@dataclass(frozen=True)
class TopicSpec:
    """A topic to create."""

    name: str
    partitions: int = 1
    replication_factor: int = 1
    config: Mapping[str, str] = field(default_factory=dict)


_RT = {
    ResourceType.TOPIC: ck.ResourceType.TOPIC,
    ResourceType.GROUP: ck.ResourceType.GROUP,
    ResourceType.TRANSACTIONAL_ID: ck.ResourceType.TRANSACTIONAL_ID,
    ResourceType.CLUSTER: ck.ResourceType.BROKER,  # librdkafka's name for CLUSTER
}
_RT_BACK = {v: k for k, v in _RT.items()}
_PT = {
    PatternType.LITERAL: ck.ResourcePatternType.LITERAL,
    PatternType.PREFIXED: ck.ResourcePatternType.PREFIXED,
}
_PT_BACK = {v: k for k, v in _PT.items()}
_PERM = {
    AclPermission.ALLOW: ck.AclPermissionType.ALLOW,
    AclPermission.DENY: ck.AclPermissionType.DENY,
}
_PERM_BACK = {v: k for k, v in _PERM.items()}


def _op(op: AclOperation) -> ck.AclOperation:
    return ck.AclOperation[op.value]


def _to_binding(acl: Acl) -> ck.AclBinding:
    return ck.AclBinding(
        _RT[acl.resource_type],
        acl.resource_name,
        _PT[acl.pattern],
        acl.principal,
        acl.host,
        _op(acl.operation),
        _PERM[acl.permission],
    )


def _from_binding(b: ck.AclBinding) -> Acl:
    return Acl(
        principal=b.principal,
        # The binding normalises these to enums; the calls narrow the declared unions.
        resource_type=_RT_BACK[ck.ResourceType(b.restype)],
        resource_name=b.name,
        pattern=_PT_BACK[ck.ResourcePatternType(b.resource_pattern_type)],
        operation=AclOperation(ck.AclOperation(b.operation).name),
        permission=_PERM_BACK[ck.AclPermissionType(b.permission_type)],
        host=b.host,
    )


def _to_filter(f: AclFilter) -> ck.AclBindingFilter:
    # librdkafka reads None as "match any" for name, principal and host, as its
    # docstring says; the type annotations say str only, hence the ignores.
    return ck.AclBindingFilter(
        _RT[f.resource_type] if f.resource_type else ck.ResourceType.ANY,
        f.resource_name,  # type: ignore[arg-type]
        _PT[f.pattern] if f.pattern else ck.ResourcePatternType.ANY,
        f.principal,  # type: ignore[arg-type]
        f.host,  # type: ignore[arg-type]
        _op(f.operation) if f.operation else ck.AclOperation.ANY,
        _PERM[f.permission] if f.permission else ck.AclPermissionType.ANY,
    )


class KafkaAdmin:
    """Administrative operations for one principal, usually the bus administrator.

    Use as a context manager. Every call blocks for at most ``timeout_s`` and raises
    a :class:`~bus.errors.KafkaAccessError` subclass on failure.
    """

    def __init__(self, connection: KafkaConnection, *, timeout_s: float = 30.0) -> None:
        self._connection = connection
        self._timeout_s = timeout_s
        self._auth_failed = threading.Event()
        conf: dict[str, Any] = dict(connection.confluent_config())
        conf["error_cb"] = self._on_error
        # librdkafka would otherwise print connection errors to stderr.
        conf["log_level"] = 0
        self._client = ck.AdminClient(conf)

    def _on_error(self, err: KafkaError) -> None:
        if err.code() in _AUTHN_CODES:
            self._auth_failed.set()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release the client (librdkafka threads stop when it is collected)."""
        self._client = None  # type: ignore[assignment]

    @property
    def principal(self) -> str:
        return self._connection.principal

    def _wait(self, future: concurrent.futures.Future[_T], action: str, resource: str = "") -> _T:
        try:
            return future.result(timeout=self._timeout_s)
        except (KafkaException, concurrent.futures.TimeoutError) as exc:
            raise self._translate(exc, action, resource) from exc

    def _translate(self, exc: BaseException, action: str, resource: str) -> KafkaAccessError:
        # librdkafka reports authentication failures only through error_cb, which runs
        # inside poll(): serve pending callbacks before deciding what went wrong.
        self._client.poll(0)
        if self._auth_failed.is_set():
            return translate_kafka_error(
                KafkaException(KafkaError(KafkaError._AUTHENTICATION)),
                action=action,
                principal=self.principal,
            )
        return translate_kafka_error(
            exc, action=action, principal=self.principal, resource=resource
        )

    # -- cluster ---------------------------------------------------------------------

    def broker_count(self) -> int:
        """How many brokers the cluster metadata lists (proves an authenticated round trip)."""
        try:
            metadata = self._client.list_topics(timeout=self._timeout_s)
        except KafkaException as exc:
            raise self._translate(exc, "fetch cluster metadata", "") from exc
        return len(metadata.brokers)

    def cluster_operations(self) -> set[str]:
        """The operations the broker authorizes this principal for on the cluster (KIP-430
        authorized operations, e.g. ``{"ALTER", "DESCRIBE"}``); a super user has them all."""
        future = self._client.describe_cluster(include_authorized_operations=True)
        description = self._wait(future, "describe the cluster")
        return {op.name for op in (description.authorized_operations or ())}

    def _require_cluster(self, operation: str, action: str) -> None:
        """Refuse early when the principal lacks ``operation`` on the cluster.

        Without this, confluent-kafka 2.16 aborts the whole process on a refused
        DescribeUserScramCredentials, and librdkafka turns a refused DescribeAcls into
        an empty answer ("no ACLs"): both must be an authorization error instead.
        """
        future = self._client.describe_cluster(include_authorized_operations=True)
        description = self._wait(future, "describe the cluster")
        allowed = {op.name for op in (description.authorized_operations or ())}
        if operation not in allowed and "ALL" not in allowed:
            raise KafkaAuthorizationError(
                f"{self.principal} is not authorized to {action} (needs {operation} on the "
                f"cluster); an administrator must grant an ACL for it"
            )

    # -- topics ----------------------------------------------------------------------

    def create_topics(self, specs: Sequence[TopicSpec]) -> None:
        """Create topics; raises :class:`TopicExistsError` if one already exists."""
        if not specs:
            return
        new = [
            ck.NewTopic(s.name, s.partitions, s.replication_factor, config=dict(s.config))
            for s in specs
        ]
        futures = self._client.create_topics(new, operation_timeout=self._timeout_s)
        for name, fut in futures.items():
            self._wait(fut, "create topic", f"topic {name}")

    def delete_topics(self, names: Iterable[str]) -> None:
        names = list(names)
        if not names:
            return
        futures = self._client.delete_topics(names, operation_timeout=self._timeout_s)
        for name, fut in futures.items():
            self._wait(fut, "delete topic", f"topic {name}")

    def partition_counts(self, names: Iterable[str]) -> dict[str, int]:
        """How many partitions each of ``names`` has; a topic this principal cannot see
        (or that does not exist) is left out."""
        try:
            metadata = self._client.list_topics(timeout=self._timeout_s)
        except KafkaException as exc:
            raise self._translate(exc, "list topics", "") from exc
        counts: dict[str, int] = {}
        for name in names:
            topic = metadata.topics.get(name)
            if topic is not None and topic.error is None:
                counts[name] = len(topic.partitions)
        return counts

    def create_partitions(self, totals: Mapping[str, int]) -> None:
        """Grow each topic to the given *total* number of partitions (Kafka's
        CreatePartitions, which needs ALTER on the topic), and return once the broker's
        metadata shows them, so that a caller's next read sees the growth.

        Kafka can only add partitions: a total at or below the current count is refused
        (:class:`ConfigError` with the broker's message, which names the count), so callers
        check first (see :meth:`bus.provision.Provisioner.grow_partitions`)."""
        if not totals:
            return
        futures = self._client.create_partitions(
            [ck.NewPartitions(name, total) for name, total in totals.items()],
            operation_timeout=self._timeout_s,
        )
        for name, fut in futures.items():
            try:
                fut.result(timeout=self._timeout_s)
            except KafkaException as exc:
                err = exc.args[0] if exc.args else None
                if isinstance(err, KafkaError) and err.code() == KafkaError.INVALID_PARTITIONS:
                    # Another grow got there first (metadata read before it said fewer):
                    # the broker's message names the count the topic has now.
                    raise ConfigError(
                        f"cannot grow topic {name} to {totals[name]} partitions: {err.str()} "
                        "Kafka can only add partitions: ask for more than it has."
                    ) from exc
                raise self._translate(exc, "grow partitions", f"topic {name}") from exc
            except concurrent.futures.TimeoutError as exc:
                raise self._translate(exc, "grow partitions", f"topic {name}") from exc
        # The controller has them; the broker answering metadata learns of them a moment later.
        deadline = time.monotonic() + self._timeout_s
        while True:
            counts = self.partition_counts(totals)
            if all(counts.get(name, 0) >= total for name, total in totals.items()):
                return
            if time.monotonic() >= deadline:
                raise KafkaUnavailableError(
                    f"the broker's metadata did not show the new partitions of "
                    f"{', '.join(sorted(totals))} within {self._timeout_s}s; check again later"
                )
            time.sleep(0.05)  # sleep-ok: polling the broker's metadata for the growth

    def list_topics(self) -> set[str]:
        """Names of the topics this principal may describe."""
        try:
            metadata = self._client.list_topics(timeout=self._timeout_s)
        except KafkaException as exc:
            raise self._translate(exc, "list topics", "") from exc
        return set(metadata.topics)

    # -- SCRAM users -----------------------------------------------------------------

    def upsert_scram_user(
        self,
        username: str,
        password: str,
        *,
        mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256"] = "SCRAM-SHA-512",
        iterations: int = 8192,
    ) -> None:
        """Create the user, or replace its password for ``mechanism``.

        The broker applies the change asynchronously: the first login may fail for a
        moment after this returns (see :meth:`bus.kafka.wait_until_authenticates`).
        """
        info = ck.ScramCredentialInfo(ck.ScramMechanism[mechanism.replace("-", "_")], iterations)
        upsert = ck.UserScramCredentialUpsertion(username, info, password.encode())
        futures = self._client.alter_user_scram_credentials([upsert])
        for user, fut in futures.items():
            self._wait(fut, "create SCRAM credentials", f"user {user}")

    def delete_scram_user(
        self,
        username: str,
        *,
        mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256"] = "SCRAM-SHA-512",
        missing_ok: bool = False,
    ) -> bool:
        """Delete the user's credentials for ``mechanism``; ``True`` if they were deleted.

        With ``missing_ok``, credentials that are already gone (``RESOURCE_NOT_FOUND``) are
        not an error: a broker's view of SCRAM users lags the controller for a moment after
        a deletion, so a user just deleted can still be listed by :meth:`scram_users`.
        """
        deletion = ck.UserScramCredentialDeletion(
            username, ck.ScramMechanism[mechanism.replace("-", "_")]
        )
        futures = self._client.alter_user_scram_credentials([deletion])
        for user, fut in futures.items():
            try:
                fut.result(timeout=self._timeout_s)
            except KafkaException as exc:
                err = exc.args[0] if exc.args else None
                gone = isinstance(err, KafkaError) and err.code() == KafkaError.RESOURCE_NOT_FOUND
                if missing_ok and gone:
                    return False
                raise self._translate(exc, "delete SCRAM credentials", f"user {user}") from exc
            except concurrent.futures.TimeoutError as exc:
                raise self._translate(exc, "delete SCRAM credentials", f"user {user}") from exc
        return True

    def scram_users(self) -> dict[str, list[str]]:
        """Every SCRAM user and its mechanisms, e.g. ``{"admin": ["SCRAM-SHA-512"]}``."""
        self._require_cluster("DESCRIBE", "describe SCRAM users")
        fut = self._client.describe_user_scram_credentials()
        assert isinstance(fut, concurrent.futures.Future)
        described = self._wait(fut, "describe SCRAM users")
        return {
            user: sorted(
                info.mechanism.name.replace("_", "-") for info in desc.scram_credential_infos
            )
            for user, desc in described.items()
        }

    # -- ACLs ------------------------------------------------------------------------

    def create_acls(self, acls: Sequence[Acl]) -> None:
        if not acls:
            return
        futures = self._client.create_acls([_to_binding(a) for a in acls])
        for binding, fut in futures.items():
            self._wait(fut, "create ACL", str(_from_binding(binding)))

    def describe_acls(self, acl_filter: AclFilter | None = None) -> list[Acl]:
        self._require_cluster("DESCRIBE", "describe ACLs")
        fut = self._client.describe_acls(_to_filter(acl_filter or AclFilter()))
        bindings: list[ck.AclBinding] = self._wait(fut, "describe ACLs")
        return [_from_binding(b) for b in bindings]

    def delete_acls(self, filters: Sequence[AclFilter]) -> list[Acl]:
        """Delete every ACL matching any filter; returns what was deleted."""
        if not filters:
            return []
        futures = self._client.delete_acls([_to_filter(f) for f in filters])
        deleted: list[Acl] = []
        for fut in futures.values():
            bindings: list[ck.AclBinding] = self._wait(fut, "delete ACLs")
            deleted.extend(_from_binding(b) for b in bindings)
        return deleted

    # -- consumer groups -------------------------------------------------------------

    def list_groups(self) -> set[str]:
        """Ids of the consumer groups this principal may see: every group with DESCRIBE on
        the cluster, else only the groups it may DESCRIBE (Kafka's ListGroups)."""
        future = self._client.list_consumer_groups(request_timeout=self._timeout_s)
        result = self._wait(future, "list consumer groups")
        return {listing.group_id for listing in result.valid}

    def describe_group(self, group_id: str) -> str:
        """The group's state name (e.g. ``EMPTY``); raises if the principal may not describe it."""
        futures = self._client.describe_consumer_groups([group_id])
        description = self._wait(futures[group_id], "describe consumer group", f"group {group_id}")
        return str(description.state.name)


def wait_until_authenticates(connection: KafkaConnection, *, timeout_s: float = 30.0) -> None:
    """Block until the broker accepts ``connection``'s credentials.

    New SCRAM credentials reach the broker's authenticator shortly after the admin
    call returns; this waits for that instead of failing the first login.
    Raises :class:`KafkaAuthenticationError` if they are still refused at the deadline.
    """
    deadline = time.monotonic() + timeout_s
    last: KafkaAccessError | None = None
    while time.monotonic() < deadline:
        with KafkaAdmin(connection, timeout_s=min(5.0, timeout_s)) as admin:
            try:
                admin.broker_count()
                return
            except (KafkaAuthenticationError, KafkaUnavailableError) as exc:
                last = exc
        time.sleep(0.2)  # back-off between login attempts
    raise last or KafkaAuthenticationError(f"{connection.principal} did not authenticate in time")
