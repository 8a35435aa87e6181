"""Routes of the alerting pages (included by ``labbook.urls``).

``fixed_patterns`` start with a fixed word (``alerts/``, ``settings/``);
``team_patterns`` start with ``<team>/<project>/alerts/`` and must come before
the catch-all project routes.
"""

from __future__ import annotations

from django.urls import URLPattern, path

from alerts import views

DESTINATIONS = "settings/teams/<str:team>/destinations/"
ALERTS = "<str:team>/<str:project>/alerts/"

fixed_patterns: list[URLPattern] = [
    path(DESTINATIONS, views.destinations, name="alert-destinations"),
    path(f"{DESTINATIONS}<id:destination_id>/", views.destination_edit, name="alert-destination"),
    path(
        f"{DESTINATIONS}<id:destination_id>/test",
        views.destination_test,
        name="alert-destination-test",
    ),
    path(
        f"{DESTINATIONS}<id:destination_id>/enabled",
        views.destination_enabled,
        name="alert-destination-enabled",
    ),
    path(
        f"{DESTINATIONS}<id:destination_id>/delete",
        views.destination_delete,
        name="alert-destination-delete",
    ),
    path("settings/alerts/", views.my_alerts, name="settings-alerts"),
    path("settings/alerts/test", views.my_alerts_test, name="settings-alerts-test"),
    path("alerts/", views.all_alerts, name="alerts"),
    path("alerts/<id:alert_id>/", views.alert, name="alert"),
    path("alerts/act/<str:token>/", views.alert_act, name="alert-act"),
    path("alerts/<id:alert_id>/chart.png", views.alert_chart, name="alert-chart"),
    path("alerts/chart/<str:token>.png", views.alert_chart_link, name="alert-chart-link"),
]
team_patterns: list[URLPattern] = [
    path(ALERTS, views.project_alerts, name="project-alerts"),
    path(f"{ALERTS}rules/", views.rules, name="alert-rules"),
    path(f"{ALERTS}rules/new", views.rule_new, name="alert-rule-new"),
    path(f"{ALERTS}rules/<id:rule_id>/", views.rule_edit, name="alert-rule"),
    path(f"{ALERTS}rules/<id:rule_id>/delete", views.rule_delete, name="alert-rule-delete"),
    path(f"{ALERTS}silences/", views.silences, name="alert-silences"),
    path(
        f"{ALERTS}silences/<id:silence_id>/end",
        views.silence_end,
        name="alert-silence-end",
    ),
]
