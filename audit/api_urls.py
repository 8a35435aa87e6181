"""Audit log endpoints, included under ``/api/v1/`` by ``labbook.urls``."""

from django.urls import path

from audit import api

urlpatterns = [
    path(
        "teams/<str:team>/audit-events",
        api.TeamAuditEventListView.as_view(),
        name="api-team-audit-events",
    ),
]
