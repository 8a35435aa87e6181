"""The parts of ``tests/benchmarks/vs_mlflow.py``: Labbook against MLflow's tracking server."""
