"""The watcher producer's retry: a lost dbt build runs again, a failed one is final."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from b2b_pipeline.orchestration.dbt_watcher import _BuildAgainOnRetry


class _CosmosLikeProducer:
    """What cosmos's producer does with a retry (skip it), and a build that may fail."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.builds = 0

    def execute(self, context: Any, **kwargs: Any) -> str:
        if context["ti"].try_number > 1:
            raise AirflowSkipException("does not support Airflow retries")
        self.builds += 1
        if self.error is not None:
            raise self.error
        return "built"


class _Producer(_BuildAgainOnRetry, _CosmosLikeProducer):
    pass


@pytest.mark.parametrize("try_number", [1, 2, 3])
def test_every_try_builds(try_number: int) -> None:
    ti = SimpleNamespace(try_number=try_number)
    producer = _Producer()
    assert producer.execute({"ti": ti}) == "built"
    assert producer.builds == 1
    assert ti.try_number == try_number  # given back as it was


def test_without_the_mixin_a_retry_is_skipped() -> None:
    """The behaviour the mixin exists for (the test above would pass vacuously without it)."""
    with pytest.raises(AirflowSkipException):
        _CosmosLikeProducer().execute({"ti": SimpleNamespace(try_number=2)})


def test_a_failed_build_is_not_retried() -> None:
    ti = SimpleNamespace(try_number=1)
    producer = _Producer(error=RuntimeError("Database Error in model zz_broken: division by zero"))
    with pytest.raises(AirflowFailException, match="division by zero"):
        producer.execute({"ti": ti})
    assert ti.try_number == 1
