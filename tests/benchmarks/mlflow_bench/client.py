"""The mlflow client, as every workload drives it, and the points it sends."""

from __future__ import annotations

import os
from typing import Any

from tests.benchmarks.mlflow_bench.common import EXPERIMENT, KEYS, STEPS, TIMESTAMP
from tests.benchmarks.mlflow_bench.servers import Target


def use_token(token: str | None) -> None:
    """MLflow's client reads the token from the environment on every request."""
    if token:
        os.environ["MLFLOW_TRACKING_TOKEN"] = token
    else:
        os.environ.pop("MLFLOW_TRACKING_TOKEN", None)


def client_for(target: Target) -> Any:
    from mlflow import MlflowClient

    use_token(target.token)
    return MlflowClient(tracking_uri=target.uri)


def experiment_id(client: Any, name: str) -> str:
    found = client.get_experiment_by_name(name)
    return found.experiment_id if found else client.create_experiment(name)


def new_run(client: Any, name: str) -> str:
    return client.create_run(experiment_id(client, EXPERIMENT), run_name=name).info.run_id


def point_value(salt: int, k: int, step: int) -> float:
    """Distinct per (salt, key, step), and exact in binary, so it survives any round trip."""
    return salt + k / 16 + step / 2**20


def metric_batch(first_step: int, salt: int) -> list[Any]:
    """1,000 points: every key at STEPS consecutive steps from ``first_step``."""
    from mlflow.entities import Metric

    steps = range(first_step, first_step + STEPS)
    return [
        Metric(key, point_value(salt, k, step), TIMESTAMP + step, step)
        for k, key in enumerate(KEYS)
        for step in steps
    ]
