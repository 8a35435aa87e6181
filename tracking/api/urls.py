from django.urls import path

from tracking.api import artifact_views, audit, views

urlpatterns = [
    path("teams", views.TeamListView.as_view(), name="api-teams"),
    path(
        "teams/<str:team>/audit-events",
        audit.TeamAuditEventListView.as_view(),
        name="api-team-audit-events",
    ),
    path(
        "teams/<str:team>/members",
        views.TeamMemberListView.as_view(),
        name="api-team-members",
    ),
    path(
        "teams/<str:team>/invitations",
        views.TeamInvitationListView.as_view(),
        name="api-team-invitations",
    ),
    path(
        "teams/<str:team>/invitations/<id:invitation_id>",
        views.TeamInvitationDetailView.as_view(),
        name="api-team-invitation",
    ),
    path("invitations", views.MyInvitationListView.as_view(), name="api-invitations"),
    path(
        "invitations/<id:invitation_id>/accept",
        views.InvitationAcceptView.as_view(),
        name="api-invitation-accept",
    ),
    path(
        "invitations/<id:invitation_id>/decline",
        views.InvitationDeclineView.as_view(),
        name="api-invitation-decline",
    ),
    path("projects", views.ProjectListView.as_view(), name="api-projects"),
    path(
        "projects/<str:team>/<str:project>",
        views.ProjectDetailView.as_view(),
        name="api-project-detail",
    ),
    path("runs", views.RunListView.as_view(), name="api-runs"),
    path("runs/<id:run_id>", views.RunDetailView.as_view(), name="api-run-detail"),
    path("runs/<id:run_id>/heartbeat", views.RunHeartbeatView.as_view(), name="api-heartbeat"),
    path("runs/<id:run_id>/metrics", views.RunMetricsView.as_view(), name="api-run-metrics"),
    path("runs/<id:run_id>/alerts", views.RunAlertsView.as_view(), name="api-run-alerts"),
    path(
        "runs/<id:run_id>/metrics/<path:key>",
        views.MetricHistoryView.as_view(),
        name="api-metric-history",
    ),
    path(
        "metrics/<path:key>",
        views.MetricHistoriesView.as_view(),
        name="api-metric-histories",
    ),
    path("runs/<id:run_id>/console", views.RunConsoleView.as_view(), name="api-run-console"),
    path(
        "runs/<id:run_id>/console.txt",
        views.RunConsoleTextView.as_view(),
        name="api-run-console-text",
    ),
    path("runs/<id:run_id>/media", views.RunMediaView.as_view(), name="api-run-media"),
    path(
        "runs/<id:run_id>/media/<path:key>",
        views.MediaHistoryView.as_view(),
        name="api-media-history",
    ),
    path("media/<id:media_id>", views.MediaFileView.as_view(), name="api-media-file"),
    path("runs/<id:run_id>/artifacts", views.RunArtifactsView.as_view(), name="api-artifacts"),
    path(
        "runs/<id:run_id>/artifacts/<path:path>",
        views.RunArtifactFileView.as_view(),
        name="api-artifact-file",
    ),
    # --- Versioned artifacts (tracking/api/artifact_views.py) -------------
    path(
        "runs/<id:run_id>/artifact-versions",
        artifact_views.RunArtifactVersionsView.as_view(),
        name="api-run-artifact-versions",
    ),
    path(
        "runs/<id:run_id>/artifact-uses",
        artifact_views.RunArtifactUsesView.as_view(),
        name="api-run-artifact-uses",
    ),
    path(
        "artifact-versions/<id:version_id>/files/<str:sha256>",
        artifact_views.ArtifactVersionUploadView.as_view(),
        name="api-artifact-version-upload",
    ),
    path(
        "artifact-versions/<id:version_id>/commit",
        artifact_views.ArtifactVersionCommitView.as_view(),
        name="api-artifact-version-commit",
    ),
    path(
        "projects/<str:team>/<str:project>/artifacts",
        artifact_views.ProjectArtifactsView.as_view(),
        name="api-project-artifacts",
    ),
    path(
        "projects/<str:team>/<str:project>/artifacts/<str:name>",
        artifact_views.ProjectArtifactView.as_view(),
        name="api-project-artifact",
    ),
    path(
        "projects/<str:team>/<str:project>/artifacts/<str:name>/<str:version>",
        artifact_views.ArtifactVersionView.as_view(),
        name="api-artifact-version",
    ),
    path(
        "projects/<str:team>/<str:project>/artifacts/<str:name>/<str:version>/files/<path:path>",
        artifact_views.ArtifactVersionFileView.as_view(),
        name="api-artifact-version-file",
    ),
    # --- End of versioned artifacts ---
    path("tokens", views.TokenListView.as_view(), name="api-tokens"),
    path("tokens/<id:token_id>", views.TokenDetailView.as_view(), name="api-token-detail"),
]
