"""Routes of the settings pages and the team page (included by ``labbook.urls``).

``fixed_patterns`` start with a fixed word (``settings/``) and are included
before the catch-all team/project routes; ``team_patterns`` start with a team
slug and are included after every fixed route.
"""

from __future__ import annotations

from django.urls import path
from django.views.generic import RedirectView

from workspace import account_views, artifact_pages, audit_views, team_views

fixed_patterns: list = [
    path("settings/teams/<str:team>/audit/", audit_views.team_audit, name="settings-team-audit"),
    path(
        "settings/teams/<str:team>/audit/events.csv",
        audit_views.team_audit_csv,
        name="settings-team-audit-csv",
    ),
    path("settings/", RedirectView.as_view(pattern_name="settings-tokens"), name="settings"),
    path("settings/profile/", account_views.profile, name="settings-profile"),
    path(
        "settings/profile/email-banner",
        account_views.email_banner_dismiss,
        name="settings-email-banner-dismiss",
    ),
    path("settings/tokens/", team_views.tokens, name="settings-tokens"),
    path(
        "settings/tokens/<id:token_id>/revoke",
        team_views.token_revoke,
        name="settings-token-revoke",
    ),
    path("settings/new-team/", team_views.team_new, name="team-new"),
    path("settings/invitations/", team_views.my_invitations, name="settings-invitations"),
    path(
        "settings/invitations/<id:invitation_id>/accept",
        team_views.invitation_accept,
        name="settings-invitation-accept",
    ),
    path(
        "settings/invitations/<id:invitation_id>/decline",
        team_views.invitation_decline,
        name="settings-invitation-decline",
    ),
    # The emailed link: https://labbook.example/settings/invitations/link/lbi_.../
    path("settings/invitations/link/<str:code>/", team_views.invitation, name="invitation"),
    path("settings/teams/<str:team>/", team_views.team_members, name="settings-team"),
    path(
        "settings/teams/<str:team>/invitations/<id:invitation_id>/revoke",
        team_views.invitation_revoke,
        name="settings-invitation-revoke",
    ),
    path(
        "settings/teams/<str:team>/members/<id:user_id>/role",
        team_views.member_role,
        name="settings-member-role",
    ),
    path(
        "settings/teams/<str:team>/members/<id:user_id>/remove",
        team_views.member_remove,
        name="settings-member-remove",
    ),
]
team_patterns: list = [
    path("<str:team>/", team_views.team, name="team"),
    path(
        "<str:team>/<str:project>/settings/",
        team_views.project_settings,
        name="project-settings",
    ),
    path(
        "<str:team>/<str:project>/settings/delete",
        team_views.project_delete,
        name="project-delete",
    ),
    # Versioned artifacts
    path(
        "<str:team>/<str:project>/artifacts/<str:name>",
        artifact_pages.artifact_page,
        name="project-artifact",
    ),
]
