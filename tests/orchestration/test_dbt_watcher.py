"""The watcher producer's retry: a lost dbt build runs again, a failed one is final."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from cosmos.exceptions import CosmosDbtRunError

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


def test_a_failed_model_is_not_retried() -> None:
    ti = SimpleNamespace(try_number=1)
    error = CosmosDbtRunError("dbt invocation completed with errors: zz_broken: division by zero")
    with pytest.raises(AirflowFailException, match="division by zero"):
        _Producer(error=error).execute({"ti": ti})
    assert ti.try_number == 1


@pytest.mark.parametrize(
    "error",
    [
        CosmosDbtRunError("dbt invocation did not complete with unhandled error: connection reset"),
        ConnectionError("the execution API went away"),
    ],
)
def test_other_errors_take_the_retries(error: Exception) -> None:
    with pytest.raises(type(error)) as raised:
        _Producer(error=error).execute({"ti": SimpleNamespace(try_number=1)})
    assert not isinstance(raised.value, AirflowFailException)


def test_the_failed_models_wording_is_cosmoss() -> None:
    """MODELS_FAILED is how cosmos's runner words a build with failed models, and only that."""
    from cosmos.dbt.runner import handle_exception_if_needed

    from b2b_pipeline.orchestration.dbt_watcher import MODELS_FAILED

    node = SimpleNamespace(status="error", node=SimpleNamespace(name="zz_broken"), message="division by zero")
    failed_models = SimpleNamespace(success=False, exception=None, result=SimpleNamespace(results=[node]))
    with pytest.raises(CosmosDbtRunError) as raised:
        handle_exception_if_needed(failed_models)
    assert str(raised.value).startswith(MODELS_FAILED)
    crashed = SimpleNamespace(success=False, exception=RuntimeError("connection reset"), result=None)
    with pytest.raises(CosmosDbtRunError) as raised:
        handle_exception_if_needed(crashed)
    assert not str(raised.value).startswith(MODELS_FAILED)
