"""Access-checked reads of reports, revisions and share links.

A report is readable by the members of its project's team when its
visibility is ``team``, and by its author alone when ``private``. Everyone
else gets ``NotFound``, never a hint that it exists. ``report.role`` carries
the caller's role in the team, for the write checks in ``reports_app.services``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib.auth.models import User
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from kernel.errors import NotFound
from kernel.ids import by_id, is_id
from reports_app.models import Report, ReportDraft, ReportRevision, ShareLink, Visibility
from tracking.models import Membership, Project

if TYPE_CHECKING:
    from reports_app.models import ReportWithRole


def _role(user: User) -> Subquery:
    memberships = Membership.objects.filter(team=OuterRef("project__team_id"), user_id=user.pk)
    return Subquery(memberships.values("role")[:1])


def reports_for_user(
    user: User, *, project: Project | None = None, search: str | None = None
) -> QuerySet[ReportWithRole]:
    """Reports the user may read, newest first, each with ``role``."""
    reports = Report.objects.filter(project__team__memberships__user_id=user.pk).filter(
        Q(visibility=Visibility.TEAM) | Q(author_id=user.pk)
    )
    if project is not None:
        reports = reports.filter(project=project)
    if search:
        reports = reports.filter(Q(title__icontains=search) | Q(body__icontains=search))
    return reports.select_related("project__team", "author").annotate(role=_role(user))


def report_get_for_user(user: User, report_id: int) -> ReportWithRole:
    if not is_id(report_id):
        raise NotFound("Report")
    report = reports_for_user(user).filter(pk=report_id).first()
    if report is None:
        raise NotFound("Report")
    return report


def revision_get(report: Report, number: int) -> ReportRevision:
    revision = (
        ReportRevision.objects.filter(report=report, number=number).select_related("author").first()
        if is_id(number)
        else None
    )
    if revision is None:
        raise NotFound(f"Revision {number}", field="revision")
    return revision


def revisions(report: Report) -> QuerySet[ReportRevision]:
    return ReportRevision.objects.filter(report=report).select_related("author").defer("frozen")


def draft_for(report: Report, user: User) -> ReportDraft | None:
    return ReportDraft.objects.filter(report=report, user_id=user.pk).first()


def share_links(report: Report) -> QuerySet[ShareLink]:
    return ShareLink.objects.filter(report=report).select_related("created_by")


def share_link_get_for_user(user: User, link_id: int) -> ShareLink:
    """A link of a report the user may read; ``link.report`` carries the user's role.

    Anyone else gets the same ``NotFound`` whether or not the link exists.
    """
    readable = reports_for_user(user).values("pk")
    links = ShareLink.objects.filter(pk=link_id, report__in=readable)
    link = by_id(links, link_id)
    if link is None:
        raise NotFound("Share link")
    link.report = report_get_for_user(user, link.report_id)
    return link


def share_link_gone(token_hash: str) -> str:
    """Why a link does not open its report: "revoked", "expired" or "unknown" (no such link;
    a report deleted takes its links with it). Only its holder can ask: it names the hash."""
    link = ShareLink.objects.filter(token_hash=token_hash).only("revoked_at", "expires_at").first()
    if link is None:
        return "unknown"
    return "revoked" if link.revoked_at is not None else "expired"


def share_link_active(token_hash: str) -> ShareLink | None:
    """The link with this hash if it still opens its report (not revoked, not expired)."""
    now = timezone.now()
    return (
        ShareLink.objects.filter(token_hash=token_hash, revoked_at__isnull=True)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .select_related("report__project__team", "report__author")
        .first()
    )
