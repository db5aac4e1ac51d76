"""A schema registry whose source of truth is a compacted Kafka topic, with Confluent's REST API.

* :class:`RegistryState`: the pure fold over the topic's records.
* :class:`SchemaRegistry` with :class:`KafkaRegistryStore` (or :class:`MemoryRegistryStore`).
* :func:`registry_router` / :func:`create_registry_app`: the HTTP endpoints.
"""

from bus.registry._api import (
    CONTENT_TYPE,
    create_kafka_registry_app,
    create_registry_app,
    install_error_handlers,
    registry_router,
)
from bus.registry._service import (
    DEFAULT_TOPIC,
    KafkaRegistryStore,
    MemoryRegistryStore,
    RegistryStore,
    SchemaRegistry,
)
from bus.registry._state import RegistryRecord, RegistryState, SchemaVersion, schema_identity

__all__ = [
    "CONTENT_TYPE",
    "DEFAULT_TOPIC",
    "KafkaRegistryStore",
    "MemoryRegistryStore",
    "RegistryRecord",
    "RegistryState",
    "RegistryStore",
    "SchemaRegistry",
    "SchemaVersion",
    "create_kafka_registry_app",
    "create_registry_app",
    "install_error_handlers",
    "registry_router",
    "schema_identity",
]
