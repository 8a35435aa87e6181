"""``runs._points``: the fast path for the usual point agrees with the careful one."""

from __future__ import annotations

import math

import pytest

from tracking.mlflow import runs
from tracking.mlflow.http import MlflowError


def point(**fields):
    return {"key": "loss", "value": 1.5, "timestamp": 1_700_000_000_000, "step": 3, **fields}


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"value": math.nan},
        {"value": math.inf},
        {"value": 2},  # an int value
        {"value": "NaN"},
        {"step": None},
        {"timestamp": 10**15},  # beyond what Labbook stores: clamped
        {"timestamp": 0},
        {"step": -(2**62)},
    ],
)
def test_the_second_point_of_a_key_reads_like_the_first(fields):
    first, second = runs._points(
        [point(**fields), point(**fields)], single=False
    )  # careful, then fast
    assert first == second
    assert first.timestamp < 1e11


def test_nan_is_stored_as_none_and_a_missing_step_is_zero():
    (nan, no_step) = runs._points(
        [point(value=math.nan), {"key": "x", "value": 1.0, "timestamp": 1}], single=False
    )
    assert nan.value is None
    assert (no_step.step, no_step.timestamp) == (0, 0.001)


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"value": "x"}, "metrics[1].value"),
        ({"value": [1]}, "metrics[1].value"),
        ({"timestamp": -1}, "metrics[1].timestamp"),
        ({"timestamp": "soon"}, "metrics[1].timestamp"),
        ({"step": 2**63}, "metrics[1].step"),
        ({"key": "a//b"}, "metrics[1].name"),  # MLflow calls a metric's key its name
    ],
)
def test_a_bad_point_after_a_good_one_is_named(bad, field):
    with pytest.raises(MlflowError) as error:
        runs._points([point(), point(**bad)], single=False)
    assert f"'{field}'" in error.value.message
