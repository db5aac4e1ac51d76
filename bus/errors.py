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

__all__ = [
    "BrokerError",
    "BrokerNotRunningError",
    "BrokerStartError",
    "BrokerStartTimeoutError",
    "ConfigError",
    "JarResolutionError",
    "JavaNotFoundError",
    "KafkaAccessError",
    "KafkaAuthenticationError",
    "KafkaAuthorizationError",
    "KafkaOperationError",
    "KafkaUnavailableError",
    "LiaisonError",
    "PortInUseError",
    "ProducerFencedError",
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
