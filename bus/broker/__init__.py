"""A real, secured, single-node Apache Kafka broker for tests, the demo and development.

See :class:`Broker`. The jars come from Maven Central (:func:`kafka_libs`); the
configuration has one source (:mod:`bus.broker._properties`) rendered both as the
launcher's ``server.properties`` and as ``docker-compose.yml``'s environment.
"""

from bus.broker._jars import KAFKA_VERSION, cache_root, kafka_libs
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
