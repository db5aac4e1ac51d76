"""A real, secured, single-node Apache Kafka broker for tests, the demo and development.

See :class:`Broker`. The jars come from Maven Central (:func:`kafka_libs`); the
configuration has one source (:mod:`bus.broker._properties`) rendered both as the
launcher's ``server.properties`` and as ``docker-compose.yml``'s environment.

The launcher (and with it the Kafka clients) is imported on first use of one of its
names, so that ``liaison`` commands which only need :data:`KAFKA_VERSION` start quickly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from bus.broker._jars import KAFKA_VERSION, cache_root, kafka_libs

if _TYPE_CHECKING:
    from bus.broker._launcher import Broker, BrokerConfig, BrokerState, find_java, read_state

__all__ = [
    "KAFKA_VERSION",
    "Broker",
    "BrokerConfig",
    "BrokerState",
    "cache_root",
    "find_java",
    "kafka_libs",
    "read_state",
]

_LAUNCHER = frozenset({"Broker", "BrokerConfig", "BrokerState", "find_java", "read_state"})


def __getattr__(name: str) -> _Any:
    if name in _LAUNCHER:
        from bus.broker import _launcher

        return getattr(_launcher, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
