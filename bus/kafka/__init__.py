"""Kafka access: the only package in Liaison that imports aiokafka or confluent_kafka.

* :class:`KafkaConnection`: bootstrap address and SCRAM credentials (secret-safe).
* :class:`KafkaAdmin`: topics, SCRAM users and ACLs (confluent-kafka's AdminClient).
* :class:`Producer` / :class:`Consumer`: typed asyncio clients over aiokafka;
  consumers read committed records only, by default.

Every failure surfaces as a :class:`bus.errors.KafkaAccessError` subclass.
"""

from bus.kafka._acl import Acl, AclFilter, AclOperation, AclPermission, PatternType, ResourceType
from bus.kafka._admin import KafkaAdmin, TopicSpec, wait_until_authenticates
from bus.kafka._clients import (
    ClientState,
    Consumer,
    Producer,
    Record,
    RecordMetadata,
    TopicPartition,
)
from bus.kafka._connection import KafkaConnection
from bus.kafka._read import read_to_end

__all__ = [
    "Acl",
    "AclFilter",
    "AclOperation",
    "AclPermission",
    "ClientState",
    "Consumer",
    "KafkaAdmin",
    "KafkaConnection",
    "PatternType",
    "Producer",
    "Record",
    "RecordMetadata",
    "ResourceType",
    "TopicPartition",
    "TopicSpec",
    "read_to_end",
    "wait_until_authenticates",
]
