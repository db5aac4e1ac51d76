"""aiokafka's retried coordinator lookups are not logged as errors; real failures still are."""

from __future__ import annotations

import logging

import aiokafka.errors as ak_errors
import pytest

import bus.kafka  # noqa: F401 - installs the filter, as every use of the clients does
from bus.kafka._logging import COORDINATOR_LOGGER

MESSAGE = "Group Coordinator Request failed: %s"  # aiokafka's own call, word for word


def _log_as_aiokafka(error: ak_errors.KafkaError) -> None:
    logging.getLogger(COORDINATOR_LOGGER).error(MESSAGE, error)


@pytest.mark.parametrize(
    "error",
    [
        ak_errors.GroupCoordinatorNotAvailableError(),
        ak_errors.NotCoordinatorForGroupError(),
        ak_errors.GroupLoadInProgressError(),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_retried_coordinator_lookup_is_info_not_error(
    error: ak_errors.KafkaError, caplog: pytest.LogCaptureFixture
) -> None:
    assert error.retriable
    with caplog.at_level(logging.INFO, logger=COORDINATOR_LOGGER):
        _log_as_aiokafka(error)

    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", f"group coordinator not available yet (retrying): {error}")
    ]


def test_where_info_is_off_a_retried_lookup_says_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger=COORDINATOR_LOGGER):
        _log_as_aiokafka(ak_errors.GroupCoordinatorNotAvailableError())

    assert caplog.records == []


def test_a_failure_that_is_not_retried_stays_an_error(caplog: pytest.LogCaptureFixture) -> None:
    error = ak_errors.UnknownError()
    assert not error.retriable
    with caplog.at_level(logging.WARNING, logger=COORDINATOR_LOGGER):
        _log_as_aiokafka(error)

    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [("ERROR", MESSAGE % error)]
