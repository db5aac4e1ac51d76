"""aiokafka's log, read as Kafka documents its errors: a retried condition is not an ERROR.

aiokafka logs every failed FindCoordinator at ERROR, then retries it when the error is
retriable (``GroupCoordinatorNotAvailableError``, Kafka's COORDINATOR_NOT_AVAILABLE, is
what any first consumer group on a new broker meets while the broker creates
``__consumer_offsets``; ``NotCoordinatorError`` and ``CoordinatorLoadInProgressError``
follow a coordinator's move). Kafka's own clients retry these silently. :func:`install`
adds a filter to that logger which lowers those records to INFO; a non-retriable failure
(which aiokafka then raises) stays an ERROR.
"""

from __future__ import annotations

import logging

import aiokafka.errors as ak_errors

__all__ = ["RetriedIsNotAnError", "install"]

COORDINATOR_LOGGER = "aiokafka.consumer.group_coordinator"
_RETRIED_MESSAGES = frozenset({"Group Coordinator Request failed: %s"})


class RetriedIsNotAnError(logging.Filter):
    """Lowers aiokafka's ERROR for a retriable coordinator lookup failure to INFO."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR or record.msg not in _RETRIED_MESSAGES:
            return True
        args = record.args if isinstance(record.args, tuple) else ()
        error = args[0] if args else None
        if not isinstance(error, ak_errors.KafkaError) or not error.retriable:
            return True
        record.levelno, record.levelname = logging.INFO, logging.getLevelName(logging.INFO)
        record.msg = "group coordinator not available yet (retrying): %s"
        return logging.getLogger(record.name).isEnabledFor(logging.INFO)


def install() -> None:
    """Add the filter to aiokafka's coordinator logger (once)."""
    logger = logging.getLogger(COORDINATOR_LOGGER)
    if not any(isinstance(f, RetriedIsNotAnError) for f in logger.filters):
        logger.addFilter(RetriedIsNotAnError())
