from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from alerts import urls as alert_urls
from labbook import health
from reports_app import report_urls
from tracking.mlflow import views as mlflow_views
from workspace import mlflow_links, team_urls, views

handler404 = "tracking.api.errors.not_found"  # JSON under /api/v1/, the HTML page elsewhere

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", health.healthz, name="healthz"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password/", views.PasswordChange.as_view(), name="password_change"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("tracking.api.urls")),
    path("api/v1/", include("reports_app.api.urls")),
    path("api/v1/", include("alerts.api_urls")),
    path("api/2.0/mlflow/", include("tracking.mlflow.urls")),
    path("get-artifact", mlflow_views.get_artifact),  # where MLflow serves it: no API prefix
    path("ajax-api/2.0/mlflow/", include("tracking.mlflow.urls")),
    path("api/2.0/mlflow-artifacts/", include("tracking.mlflow.artifact_urls")),
    path("ajax-api/2.0/mlflow-artifacts/", include("tracking.mlflow.artifact_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its start-up script as a file: no inline script for the CSP.
    # GET only: DRF's OPTIONS answer would go through the page's HTML template, and fail.
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(url_name="api-schema", http_method_names=["get"]),
        name="api-docs",
    ),
    path("", include(team_urls.fixed_patterns)),
    path("", include(alert_urls.fixed_patterns)),
    path("", include(report_urls.fixed_patterns)),
    path("", include(mlflow_links.patterns)),  # MLflow UI links: experiments/, runs/...
    # Last: a team slug may not shadow the fixed paths above.
    path("", include(team_urls.team_patterns)),
    path("", include(alert_urls.team_patterns)),
    path("<str:team>/<str:project>/", views.project, name="project"),
    path("<str:team>/<str:project>/compare", views.compare, name="compare"),
    path("", include(report_urls.project_patterns)),
    path("<str:team>/<str:project>/runs/<id:run_id>", views.run, name="run"),
    path("<str:team>/<str:project>/runs/<id:run_id>/state", views.run_state, name="run-state"),
    path(
        "<str:team>/<str:project>/runs/<id:run_id>/artifact-cards",
        views.run_artifact_cards,
        name="run-artifact-cards",
    ),
    path(
        "<str:team>/<str:project>/runs/<id:run_id>/metrics.csv",
        views.metric_csv,
        name="run-metric-csv",
    ),
    path(
        "<str:team>/<str:project>/runs/<id:run_id>/artifacts/<path:path>",
        views.run_artifact,
        name="run-artifact",
    ),
]
