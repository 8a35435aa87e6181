"""A training script that logs with the unmodified ``mlflow`` client — to Labbook.

    export MLFLOW_TRACKING_URI=http://127.0.0.1:8000
    export MLFLOW_TRACKING_TOKEN=<a Labbook API token>
    python examples/train_with_mlflow.py

Nothing here knows about Labbook. ``EXPERIMENT`` (default ``mlflow-demo``, a
project of your first team; ``team/project`` names one exactly), ``STEPS``
and ``FAIL=1`` (end the run FAILED, which fires ``run_failed`` alert rules)
change what it does. It prints the run id.
"""

from __future__ import annotations

import math
import os
import random
import tempfile
from pathlib import Path

import mlflow

EXPERIMENT = os.environ.get("EXPERIMENT", "mlflow-demo")
STEPS = int(os.environ.get("STEPS", "200"))
FAIL = os.environ.get("FAIL") == "1"


def main() -> str:
    mlflow.set_experiment(EXPERIMENT)
    run = mlflow.start_run(run_name="sgd-baseline")
    mlflow.log_params({"lr": 0.01, "batch_size": 64, "optimizer": "sgd"})
    mlflow.set_tags({"team": "vision", "nightly": "true"})
    rng = random.Random(7)  # noqa: S311 - noise for a toy loss curve
    for step in range(STEPS):
        loss = 2.0 * math.exp(-step / 50) + 0.05 * rng.random()
        mlflow.log_metrics({"train/loss": loss, "train/acc": 1 - loss / 2.1}, step=step)
    with tempfile.TemporaryDirectory() as folder:
        card = Path(folder) / "model_card.md"
        card.write_text("# sgd-baseline\n\nA toy model trained for the Labbook example.\n")
        mlflow.log_artifact(str(card))
    mlflow.log_dict({"classes": ["cat", "dog"]}, "labels.json")
    mlflow.end_run(status="FAILED" if FAIL else "FINISHED")
    return run.info.run_id


if __name__ == "__main__":
    print(main())
