"""Routes of MLflow's proxied artifact store, under ``api/2.0/mlflow-artifacts/``.

``labbook.urls`` includes ``urlpatterns`` there and under
``ajax-api/2.0/mlflow-artifacts/`` (the MLflow UI's prefix).
"""

from __future__ import annotations

from django.urls import path, re_path

from tracking.mlflow import artifact_views, http

UNSUPPORTED = r"^(?:mpu/(?:create|complete|abort)|presigned)/(?P<path>.*)$"

urlpatterns = [
    path("artifacts", artifact_views.artifact_list),
    path("artifacts/<path:path>", artifact_views.artifact),
    re_path(UNSUPPORTED, artifact_views.unsupported),
    re_path(r"^.*$", http.not_found),
]
