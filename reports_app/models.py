"""Reports: Markdown documents about runs, their revisions, share links and comments.

A report's text lives in its revisions: every save appends one (numbered 1, 2,
... per report) and the report row keeps a copy of the newest for lists and
search. Autosave writes the editor's ``ReportDraft`` instead, one per user
and report, so typing never floods the history and never conflicts.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from tracking.models import Project, Run


class Visibility(models.TextChoices):
    PRIVATE = "private", "Only me"
    TEAM = "team", "The team"


class Report(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="reports")
    title = models.CharField(max_length=200)
    slug = models.SlugField(max_length=200, allow_unicode=False)
    body = models.TextField(blank=True, help_text="The newest revision's Markdown.")
    revision = models.PositiveIntegerField(default=1, help_text="The newest revision's number.")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    visibility = models.CharField(max_length=8, choices=Visibility.choices, default=Visibility.TEAM)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-updated_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "slug"], name="report_unique_slug")
        ]
        indexes = [models.Index(fields=["project", "-updated_at"], name="report_project_updated")]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("report", kwargs={"report_id": self.pk})


class ReportRevision(models.Model):
    report = models.ForeignKey(Report, on_delete=models.CASCADE, related_name="revisions")
    number = models.PositiveIntegerField()
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    restored_from = models.PositiveIntegerField(null=True, blank=True)
    frozen = models.JSONField(
        default=dict, blank=True, help_text="Chart data of `live: false` blocks, by block index."
    )

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["report", "number"], name="revision_unique_number")
        ]

    def __str__(self) -> str:
        return f"{self.report_id} r{self.number}"


class ReportDraft(models.Model):
    """Autosaved text of one user's editor, on top of the revision it started from."""

    report = models.ForeignKey(Report, on_delete=models.CASCADE, related_name="drafts")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    base_revision = models.PositiveIntegerField()
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["report", "user"], name="draft_unique_user")]

    def __str__(self) -> str:
        return f"draft of {self.report_id} by {self.user_id}"


class ShareLink(models.Model):
    """Read-only access to one report for anyone holding the token; only its hash is stored."""

    report = models.ForeignKey(Report, on_delete=models.CASCADE, related_name="share_links")
    token_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=12)
    hide_authors = models.BooleanField(default=False)
    embeddable = models.BooleanField(
        default=False, help_text="Other sites may show the shared page in a frame."
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_accessed_at = models.DateTimeField(null=True, blank=True)
    access_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… for report {self.report_id}"

    @staticmethod
    def hash(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()


class Comment(models.Model):
    """A comment on a run or a report (optionally anchored to a heading or block)."""

    run = models.ForeignKey(
        Run, null=True, blank=True, on_delete=models.CASCADE, related_name="comments"
    )
    report = models.ForeignKey(
        Report, null=True, blank=True, on_delete=models.CASCADE, related_name="comments"
    )
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="replies"
    )
    anchor = models.CharField(max_length=200, blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    body = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    edited_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Not a column: the target as its reader got it, set by reports_app.comments (target_of).
    target: Target

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(run__isnull=False, report__isnull=True)
                | Q(run__isnull=True, report__isnull=False),
                name="comment_one_target",
            )
        ]

    def __str__(self) -> str:
        target = f"run {self.run_id}" if self.run_id else f"report {self.report_id}"
        return f"comment {self.pk} on {target}"


# --- The caller's role ---------------------------------------------------------------
# reports_app.selectors annotate a report with the caller's role in its project's team.

if TYPE_CHECKING:
    from typing import TypeAlias

    from django_stubs_ext import WithAnnotations

    from reports_app.comments import Target
    from tracking.models import RoleAnnotation

    ReportWithRole: TypeAlias = WithAnnotations[Report, RoleAnnotation]


def with_role(report: Report, role: str) -> ReportWithRole:
    """``report`` with ``role`` set as the selectors annotate it: a report just created."""
    annotated: Any = report  # the annotation's type belongs to a queryset, bypassed here
    annotated.role = role
    return annotated
