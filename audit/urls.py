"""Routes of the audit log page (included by ``labbook.urls`` with the fixed routes)."""

from __future__ import annotations

from django.urls import path

from audit import views

fixed_patterns: list = [
    path("settings/teams/<str:team>/audit/", views.team_audit, name="settings-team-audit"),
    path(
        "settings/teams/<str:team>/audit/events.csv",
        views.team_audit_csv,
        name="settings-team-audit-csv",
    ),
]
