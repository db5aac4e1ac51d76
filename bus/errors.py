"""Every error Liaison raises on purpose derives from :class:`LiaisonError`.

The tree::

    LiaisonError                      retriable = False unless noted
    ├── ConfigError                   a setting is invalid; the message names it
    ├── BrokerError                   the local broker launcher
    │   ├── JavaNotFoundError         no `java`, or one older than 17
    │   ├── JarResolutionError        `mvn` could not fetch the jars (retriable)
    │   ├── PortInUseError            a port the broker needs is taken
    │   ├── BrokerStartError          the JVM exited while starting
    │   ├── BrokerStartTimeoutError   not ready in time (retriable)
    │   └── BrokerNotRunningError     stop/status found no broker
    ├── SchemaError                   Avro schemas and their history
    │   ├── SchemaFileError           a file in schemas/ is malformed, misnamed or dangling
    │   ├── SchemaHistoryError        a frozen release changed, or a change is unreleased
    │   ├── InvalidSchemaError        text that is not a valid Avro schema (HTTP 422)
    │   └── IncompatibleSchemaError   breaks the subject's compatibility mode (HTTP 409)
    ├── RegistryLookupError           the registry has no such subject/version/id (HTTP 404)
    ├── CodecError                    bytes that are not a valid record on the wire; `reason`
    ├── BulletinInvalid               semantic rules broken; `violations` lists each
    ├── PolicyError                   a sharing policy is invalid; `problems` lists each
    ├── AdapterError                  an adapter could not take in or hand out a record
    │   ├── DeliveryError             a sink could not deliver now (retriable unless told)
    │   └── RecordRejected            a record the adapter can never map; `reason` says why
    └── KafkaAccessError              talking to a broker (bus.kafka)
        ├── KafkaAuthenticationError  SASL credentials refused
        ├── KafkaAuthorizationError   an ACL denied the operation
        ├── KafkaUnavailableError     broker unreachable or timed out (retriable)
        ├── ProducerFencedError       another producer took the transactional id
        ├── TopicExistsError          create_topics on an existing name
        └── KafkaOperationError       any other broker-side refusal

Every message says what happened, with the offending value, and what to do.
Errors from third-party libraries are translated at the boundary with
``raise ... from exc`` so that the cause stays visible in tracebacks. No message
ever contains a password: credentials are held in ``pydantic.SecretStr``.
"""

from __future__ import annotations

from collections.abc import Sequence as _Sequence

__all__ = [
    "AdapterError",
    "BrokerError",
    "BrokerNotRunningError",
    "BrokerStartError",
    "BrokerStartTimeoutError",
    "BulletinInvalid",
    "CodecError",
    "ConfigError",
    "DeliveryError",
    "IncompatibleSchemaError",
    "InvalidSchemaError",
    "JarResolutionError",
    "JavaNotFoundError",
    "KafkaAccessError",
    "KafkaAuthenticationError",
    "KafkaAuthorizationError",
    "KafkaOperationError",
    "KafkaUnavailableError",
    "LiaisonError",
    "PolicyError",
    "PortInUseError",
    "ProducerFencedError",
    "RecordRejected",
    "RegistryLookupError",
    "SchemaError",
    "SchemaFileError",
    "SchemaHistoryError",
    "TopicExistsError",
]


class LiaisonError(Exception):
    """Root of every error Liaison raises on purpose."""

    retriable: bool = False
    """True when the same call may succeed if tried again later, unchanged."""


class ConfigError(LiaisonError):
    """A configuration value is invalid. The message names the setting and the value."""


class BrokerError(LiaisonError):
    """The local broker launcher could not do what was asked."""


class JavaNotFoundError(BrokerError):
    """No usable Java runtime (17 or newer) was found."""


class JarResolutionError(BrokerError):
    """Maven failed to resolve the Kafka broker jars."""

    retriable = True


class PortInUseError(BrokerError):
    """A port the broker must bind is already taken on 127.0.0.1."""

    def __init__(self, port: int, purpose: str) -> None:
        super().__init__(
            f"port {port} on 127.0.0.1 (the broker's {purpose} listener) is already in use; "
            f"stop whatever holds it (`ss -ltnp 'sport = :{port}'` shows it) or choose another "
            f"port with --{purpose}-port"
        )
        self.port = port
        self.purpose = purpose


class BrokerStartError(BrokerError):
    """The broker process exited before it became ready."""


class BrokerStartTimeoutError(BrokerError):
    """The broker did not become ready before the deadline."""

    retriable = True


class BrokerNotRunningError(BrokerError):
    """No broker is running for the given data directory."""


class SchemaError(LiaisonError):
    """Something is wrong with an Avro schema or its history."""


class SchemaFileError(SchemaError):
    """A schema file is malformed, misnamed, or refers to a type that has no file."""


class SchemaHistoryError(SchemaError):
    """A released (frozen) schema changed, or the current schema differs from the last release."""


class InvalidSchemaError(SchemaError):
    """The text is not a valid Avro schema."""


class IncompatibleSchemaError(SchemaError):
    """The schema breaks the subject's compatibility mode; the message says which rule."""


class RegistryLookupError(LiaisonError):
    """The registry has no such subject, version or schema id.

    ``error_code`` is Confluent's: 40401 subject, 40402 version, 40403 schema.
    """

    def __init__(self, message: str, *, error_code: int) -> None:
        super().__init__(message)
        self.error_code = error_code


class CodecError(LiaisonError):
    """Bytes that cannot be decoded (or a record that cannot be encoded).

    ``reason`` is a machine-readable :class:`bus.codec.CodecReason`; it becomes the
    dead-letter reason. Messages never quote payload values.
    """

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class BulletinInvalid(LiaisonError):  # noqa: N818 - reads as a verdict, like ValidationError
    """A bulletin breaks one or more semantic rules; ``violations`` lists each one."""

    def __init__(self, message: str, *, violations: _Sequence[object]) -> None:
        super().__init__(message)
        self.violations = list(violations)


class PolicyError(LiaisonError):
    """A sharing policy is malformed or does not fit the schemas.

    ``problems`` lists each one, naming the rule and the field and saying what to do.
    """

    def __init__(self, message: str, *, problems: _Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems) or [message]


class AdapterError(LiaisonError):
    """An adapter could not take in a native record or hand out a delivered view."""


class DeliveryError(AdapterError):
    """A sink could not deliver a view now; the runner retries it with backoff.

    Raise it with ``retriable=False`` when trying again cannot help (the receiver
    refuses the record for good): the runner then sends the view to the agency's
    rejects with this message instead of retrying.
    """

    def __init__(self, message: str, *, retriable: bool = True) -> None:
        super().__init__(message)
        self.retriable = retriable


class RecordRejected(AdapterError):  # noqa: N818 - reads as a verdict, like BulletinInvalid
    """A record that the adapter can never map (a malformed line, a kind with no mapping).

    ``reason`` is a short machine-readable code (``bad_json``, ``unmapped_kind``...);
    the message says what is wrong and what to do. The runner writes both to the
    agency's rejects: the record is never silently dropped.
    """

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class KafkaAccessError(LiaisonError):
    """A call to the Kafka broker failed."""


class KafkaAuthenticationError(KafkaAccessError):
    """The broker refused the SASL credentials."""


class KafkaAuthorizationError(KafkaAccessError):
    """An ACL denied the operation. The message names the principal and the resource."""


class KafkaUnavailableError(KafkaAccessError):
    """The broker could not be reached, or did not answer in time."""

    retriable = True


class ProducerFencedError(KafkaAccessError):
    """A newer producer with the same transactional id fenced this one.

    The fenced producer must be closed; only the newer one may continue.
    """


class TopicExistsError(KafkaAccessError):
    """A topic with that name already exists."""


class KafkaOperationError(KafkaAccessError):
    """The broker refused an operation for a reason not covered by a narrower class."""
