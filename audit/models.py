"""The audit log: who changed what in a team, one row per change, never edited.

Rows are snapshots. ``team_slug``, ``actor_name`` and ``target_repr`` keep
names as they were, so an event still reads right after the team, the user
or the target is renamed or deleted (the foreign keys then become NULL).

Append-only from the app's point of view: saving an existing row, deleting
one, and ``update()``/``delete()`` on the default manager's querysets raise
``AppendOnlyError``. Django's own deletion machinery still sets ``team`` and
``actor`` to NULL when those rows go (it writes through the base manager).
A database administrator can of course still change rows with SQL.
"""

from __future__ import annotations

from typing import Any, NoReturn

from django.conf import settings
from django.db import models
from django.utils import timezone


class AppendOnlyError(Exception):
    """Someone tried to change or delete an audit event."""

    def __init__(self, what: str) -> None:
        super().__init__(f"The audit log is append-only: {what} is not allowed.")


class AuditAction(models.TextChoices):
    TOKEN_CREATED = "token.created", "API token created"
    TOKEN_REVOKED = "token.revoked", "API token revoked"
    MEMBER_ADDED = "member.added", "Member added"
    MEMBER_REMOVED = "member.removed", "Member removed"
    MEMBER_ROLE_CHANGED = "member.role_changed", "Member's role changed"
    INVITATION_CREATED = "invitation.created", "Invitation sent"
    INVITATION_ACCEPTED = "invitation.accepted", "Invitation accepted"
    INVITATION_DECLINED = "invitation.declined", "Invitation declined"
    INVITATION_REVOKED = "invitation.revoked", "Invitation revoked"
    SHARE_LINK_CREATED = "share_link.created", "Share link created"
    SHARE_LINK_REVOKED = "share_link.revoked", "Share link revoked"
    SHARE_LINK_ACCESSED = "share_link.accessed", "Share link opened"
    ALERT_RULE_CREATED = "alert_rule.created", "Alert rule created"
    ALERT_RULE_UPDATED = "alert_rule.updated", "Alert rule changed"
    ALERT_RULE_DELETED = "alert_rule.deleted", "Alert rule deleted"
    DESTINATION_CREATED = "destination.created", "Alert destination created"
    DESTINATION_UPDATED = "destination.updated", "Alert destination changed"
    DESTINATION_DELETED = "destination.deleted", "Alert destination deleted"
    ALERT_ACKNOWLEDGED = "alert.acknowledged", "Alert acknowledged"
    ALERT_SILENCED = "alert.silenced", "Alert's rule silenced"
    REPORT_DELETED = "report.deleted", "Report deleted"


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    def update(self, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError("updating audit events")

    def delete(self) -> NoReturn:
        raise AppendOnlyError("deleting audit events")


class AuditEvent(models.Model):
    team = models.ForeignKey(
        "tracking.Team", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    team_slug = models.CharField(max_length=64, blank=True, help_text="The team's slug then.")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(
        max_length=150, help_text='The username then; "system" or "anonymous" without a user.'
    )
    action = models.CharField(max_length=32, choices=AuditAction.choices)
    target_type = models.CharField(max_length=32, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_repr = models.CharField(max_length=250, blank=True, help_text="A name, never a secret.")
    data = models.JSONField(default=dict, blank=True, help_text="Details; never a secret.")
    ip = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["team", "-created_at"], name="audit_team_created"),
            models.Index(fields=["actor", "-created_at"], name="audit_actor_created"),
            models.Index(
                fields=["target_type", "target_id", "-created_at"], name="audit_target_created"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_name} {self.action}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError("changing an audit event")
        # An explicit primary key must never turn the INSERT into an UPDATE of an old row.
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError("deleting an audit event")
