"""Routes of the MLflow tracking protocol, under ``api/2.0/mlflow/`` and ``ajax-api/2.0/mlflow/``.

``labbook.urls`` includes ``urlpatterns`` at both prefixes (the MLflow UI
uses the second). Unknown paths answer JSON ``ENDPOINT_NOT_FOUND``, never an
HTML page the client could not read.
"""

from __future__ import annotations

from django.urls import path, re_path

from tracking.mlflow import http, views

urlpatterns = [
    path("experiments/create", views.experiment_create),
    path("experiments/get", views.experiment_get),
    path("experiments/get-by-name", views.experiment_get_by_name),
    path("experiments/search", views.experiment_search),
    path("experiments/list", views.experiment_search),  # MLflow 1.x clients
    path("experiments/update", views.experiment_update),
    path("experiments/delete", views.experiment_delete),
    path("experiments/restore", views.experiment_restore),
    path("experiments/set-experiment-tag", views.experiment_set_tag),
    path("experiments/delete-experiment-tag", views.experiment_delete_tag),
    path("runs/create", views.run_create),
    path("runs/get", views.run_get),
    path("runs/update", views.run_update),
    path("runs/delete", views.run_delete),
    path("runs/restore", views.run_restore),
    path("runs/search", views.run_search),
    path("runs/log-batch", views.log_batch),
    path("runs/log-metric", views.log_metric),
    path("runs/log-parameter", views.log_param),
    path("runs/set-tag", views.set_tag),
    path("runs/delete-tag", views.delete_tag),
    path("runs/log-inputs", views.log_inputs),
    path("runs/outputs", views.accepted),
    path("metrics/get-history", views.metric_history),
    path("artifacts/list", views.artifact_list),
    path("metrics/get-history-bulk-interval", views.metric_history_bulk_interval),
    path("logged-models/search", views.nothing_found),
    re_path(r"^.*$", http.not_found),
]
