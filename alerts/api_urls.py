"""Alerting endpoints, included under ``/api/v1/`` by ``labbook.urls``."""

from django.urls import path

from alerts import api

urlpatterns = [
    path("destinations", api.DestinationListView.as_view(), name="api-destinations"),
    path("destinations/<id:pk>", api.DestinationDetailView.as_view(), name="api-destination"),
    path(
        "destinations/<id:pk>/test",
        api.DestinationTestView.as_view(),
        name="api-destination-test",
    ),
    path("alert-rules", api.RuleListView.as_view(), name="api-alert-rules"),
    path("alert-rules/<id:pk>", api.RuleDetailView.as_view(), name="api-alert-rule"),
    path("alerts", api.AlertListView.as_view(), name="api-alerts"),
    path(
        "alerts/<id:pk>/acknowledge",
        api.AlertAcknowledgeView.as_view(),
        name="api-alert-acknowledge",
    ),
    path("notifications", api.NotificationListView.as_view(), name="api-notifications"),
    path("silences", api.SilenceListView.as_view(), name="api-silences"),
    path("silences/<id:pk>", api.SilenceDetailView.as_view(), name="api-silence"),
    path("me/alerts", api.MyAlertsView.as_view(), name="api-my-alerts"),
]
