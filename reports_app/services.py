"""Writes of the reports feature: reports and their revisions, drafts, share links.

Every save appends a revision and must name the revision it edited: a stale
one raises ``Conflict`` carrying the current revision, so an editor shows the
conflict instead of overwriting a teammate. The editor then asks
``report_merge`` for its text merged with the newest revision, and saves the
result naming that revision: the same check guards that save, so a third save
in between is caught again and nothing half merged is written. Drafts
(autosave) never conflict: each user has one per report.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from audit.models import AuditAction
from audit.services import audit_record, audit_share_link_access, moment
from kernel.errors import Conflict, PermissionDenied, invalid
from kernel.limits import max_length
from reports_app import live, markup, merge, render, selectors
from reports_app.blocks import MAX_BLOCKS
from reports_app.models import (
    Report,
    ReportDraft,
    ReportRevision,
    ShareLink,
    Visibility,
    with_role,
)
from tracking.models import Project, Role
from tracking.services import require_write
from tracking.validation import clean_text

if TYPE_CHECKING:
    from reports_app.models import ReportWithRole
    from tracking.models import ProjectWithRole

MAX_BODY = 200_000  # characters of Markdown
MAX_REVISION = 2**31 - 1  # PositiveIntegerField on PostgreSQL
SHARE_PREFIX = "s_"


# Permissions follow the reader's role in the team *now* (``report.role``): an
# author demoted to viewer keeps no more than any viewer.
_WRITERS = (Role.OWNER, Role.EDITOR)


def can_edit(report: ReportWithRole, user: User) -> bool:
    """Editors and owners edit team reports; a private report only its author, still an editor."""
    if report.visibility == Visibility.PRIVATE:
        return report.author_id == user.pk and report.role in _WRITERS
    return report.role in _WRITERS


def can_manage_links(report: ReportWithRole, user: User) -> bool:
    """Share links and deletion: an owner, or the author while still an editor."""
    return report.role == Role.OWNER or (report.author_id == user.pk and report.role in _WRITERS)


def require_edit(report: ReportWithRole, user: User) -> None:
    if not can_edit(report, user):
        raise PermissionDenied(
            "Only editors and owners of the team (or its author) edit this report."
        )


def _clean(title: Any, body: Any, visibility: Any = None) -> dict[str, Any]:
    cleaned = {
        "title": clean_text(
            title, field="title", max_length=max_length(Report, "title"), required=True
        ),
        "body": clean_text(body, field="body", max_length=MAX_BODY) if body is not None else "",
    }
    if (count := markup.block_count(cleaned["body"])) > MAX_BLOCKS:
        raise invalid(
            "body",
            f"A report holds at most {MAX_BLOCKS} chart, runs and compare blocks, not {count}.",
        )
    if visibility is not None:
        if visibility not in Visibility.values:
            raise invalid(
                "visibility", f"Visibility must be one of {', '.join(Visibility.values)}."
            )
        cleaned["visibility"] = visibility
    return cleaned


def _unique_slug(project: Project, title: str) -> str:
    base = slugify(title)[:180] or "report"
    taken = set(
        Report.objects.filter(project=project, slug__startswith=base).values_list("slug", flat=True)
    )
    slug, n = base, 1
    while slug in taken:
        n += 1
        slug = f"{base}-{n}"
    return slug


def _revision(report: Report, *, number: int, user: User, **extra: Any) -> ReportRevision:
    return ReportRevision.objects.create(
        report=report,
        number=number,
        title=report.title,
        body=report.body,
        author=user,
        frozen=render.freeze(report),
        **extra,
    )


@transaction.atomic
def report_create(
    *,
    user: User,
    project: ProjectWithRole,
    title: Any,
    body: Any = "",
    visibility: Any = Visibility.TEAM,
) -> ReportWithRole:
    """A new report with its first revision; ``project.role`` must allow writing."""
    require_write(project.role)
    cleaned = _clean(title, body, visibility)
    now = timezone.now()
    created = Report.objects.create(
        project=project,
        slug=_unique_slug(project, cleaned["title"]),
        author=user,
        revision=1,
        created_at=now,
        updated_at=now,
        **cleaned,
    )
    report = with_role(created, project.role)
    _revision(report, number=1, user=user)
    return report


def _check_revision(revision: Any, missing: str) -> None:
    """A revision number a client sent: a whole number in the column's range (beyond it,
    a database error), or a 400 on ``revision`` saying ``missing``."""
    if isinstance(revision, bool) or not isinstance(revision, int):
        raise invalid("revision", missing)
    if not 1 <= revision <= MAX_REVISION:
        raise invalid("revision", f"A revision number from 1 to {MAX_REVISION}.")


def _locked(report: ReportWithRole, revision: Any) -> ReportWithRole:
    """The report row, locked, after checking the caller edited its newest revision."""
    _check_revision(revision, "Send the revision you edited (a whole number).")
    locked = Report.objects.select_for_update().get(pk=report.pk)
    if revision != locked.revision:
        raise Conflict(
            "conflict",
            f"Revision {locked.revision} was saved after revision {revision}, which you edited.",
            field="revision",
            details={
                "current": {"revision": locked.revision, "title": locked.title, "body": locked.body}
            },
        )
    return with_role(locked, report.role)


@transaction.atomic
def report_save(
    *,
    report: ReportWithRole,
    user: User,
    revision: Any,
    title: Any = None,
    body: Any = None,
    visibility: Any = None,
) -> ReportWithRole:
    """Save edits as the next revision (409 ``Conflict`` if ``revision`` is not the newest)."""
    require_edit(report, user)
    locked = _locked(report, revision)
    cleaned = _clean(
        locked.title if title is None else title,
        locked.body if body is None else body,
        visibility,
    )
    changes_visibility = cleaned.get("visibility", locked.visibility) != locked.visibility
    if changes_visibility and not can_manage_links(locked, user):
        raise PermissionDenied("Only the author or an owner changes who sees this report.")
    if all(getattr(locked, name) == value for name, value in cleaned.items()):
        ReportDraft.objects.filter(report=locked, user=user).delete()
        return locked  # nothing changed: no empty revision in the history
    for name, value in cleaned.items():
        setattr(locked, name, value)
    locked.revision += 1
    locked.updated_at = timezone.now()
    locked.save(update_fields=[*cleaned, "revision", "updated_at"])
    _revision(locked, number=locked.revision, user=user)
    ReportDraft.objects.filter(report=locked, user=user).delete()
    # Made private, or a chart taken out: open sockets must stop receiving what it showed.
    live.access_changed_on_commit(reports=(locked.pk,))
    return locked


@dataclass(frozen=True)
class ReportMerge:
    """The editor's text (mine), started from revision ``base``, merged with ``revision``,
    the newest (theirs), which ``authors`` saved since."""

    base: int
    revision: int
    authors: list[str]
    title: merge.Merge
    body: merge.Merge

    @property
    def clean(self) -> bool:
        return self.title.clean and self.body.clean


def report_merge(
    *, report: ReportWithRole, user: User, revision: Any, title: Any, body: Any
) -> ReportMerge:
    """Merge the editor's text with the newest revision, three-way from the revision it
    started from (``reports_app.merge``). Writes nothing: the editor shows the merge, and
    saving it goes through ``report_save`` naming ``ReportMerge.revision``."""
    require_edit(report, user)
    _check_revision(revision, "Send the revision your text started from (a whole number).")
    mine = _clean(title, body)
    base = selectors.revision_get(report, revision)  # 404 naming `revision` past the newest
    return ReportMerge(
        base=base.number,
        revision=report.revision,
        authors=_authors_since(report, base.number),
        title=merge.merge(base.title, mine["title"], report.title),
        body=merge.merge(base.body, mine["body"], report.body),
    )


def _authors_since(report: Report, number: int) -> list[str]:
    """Who saved the revisions after ``number``, in the order they first did."""
    names = (
        selectors.revisions(report)
        .filter(number__gt=number)
        .order_by("number")
        .values_list("author__username", flat=True)
    )
    return list(dict.fromkeys(name or "a former member" for name in names))


@transaction.atomic
def report_restore(
    *, report: ReportWithRole, user: User, number: int, revision: Any
) -> ReportWithRole:
    """Bring an old revision back as the newest one (the history keeps everything)."""
    require_edit(report, user)
    locked = _locked(report, revision)
    old = ReportRevision.objects.filter(report=locked, number=number).first()
    if old is None:
        raise invalid("number", f"There is no revision {number}.")
    locked.title, locked.body = old.title, old.body
    locked.revision += 1
    locked.updated_at = timezone.now()
    locked.save(update_fields=["title", "body", "revision", "updated_at"])
    _revision(locked, number=locked.revision, user=user, restored_from=number)
    live.access_changed_on_commit(reports=(locked.pk,))
    return locked


@transaction.atomic
def report_delete(*, report: ReportWithRole, user: User, ip: str | None = None) -> None:
    if not can_manage_links(report, user):
        raise PermissionDenied("Only the author (an editor) or an owner deletes a report.")
    project = report.project
    data = {"project": project.full_name, "visibility": report.visibility}
    audit_record(
        action=AuditAction.REPORT_DELETED,
        actor=user,
        team=project.team,
        target=report,
        data=data,
        ip=ip,
    )
    live.access_changed_on_commit(reports=(report.pk,))
    report.delete()


def draft_discard(*, report: Report, user: User) -> None:
    ReportDraft.objects.filter(report=report, user=user).delete()


def draft_save(
    *, report: ReportWithRole, user: User, title: Any, body: Any, base_revision: Any
) -> ReportDraft:
    """Keep the editor's text between saves (autosave); one draft per user and report."""
    require_edit(report, user)
    cleaned = _clean(title, body)
    _check_revision(base_revision, "Send the revision the draft started from.")
    draft, _ = ReportDraft.objects.update_or_create(
        report=report,
        user=user,
        defaults={**cleaned, "base_revision": base_revision, "updated_at": timezone.now()},
    )
    return draft


# --- Share links ---------------------------------------------------------------------


@transaction.atomic
def share_link_create(
    *,
    report: ReportWithRole,
    user: User,
    expires_at: datetime | None = None,
    hide_authors: bool = False,
    embeddable: bool = False,
    ip: str | None = None,
) -> tuple[ShareLink, str]:
    """A new link and its token (shown once: only the hash is kept)."""
    if not can_manage_links(report, user):
        raise PermissionDenied("Only the author or an owner shares this report.")
    if expires_at is not None and expires_at <= timezone.now():
        raise invalid("expires_at", "The expiry must be in the future.")
    raw = SHARE_PREFIX + secrets.token_urlsafe(24)
    link = ShareLink.objects.create(
        report=report,
        token_hash=ShareLink.hash(raw),
        prefix=raw[:8],
        hide_authors=bool(hide_authors),
        embeddable=bool(embeddable),
        expires_at=expires_at,
        created_by=user,
    )
    flags = {"hide_authors": link.hide_authors, "embeddable": link.embeddable}
    _audit_link(
        AuditAction.SHARE_LINK_CREATED, link, user, ip, expires_at=moment(expires_at), **flags
    )
    return link, raw


def _audit_link(action: str, link: ShareLink, user: User, ip: str | None, **data: Any) -> None:
    data = {"report_id": link.report_id, **data}
    team = link.report.project.team
    audit_record(action=action, actor=user, team=team, target=link, data=data, ip=ip)


@transaction.atomic
def share_link_revoke(*, link: ShareLink, user: User, ip: str | None = None) -> None:
    # Callers hand a link whose report is the role-annotated one (share_link_get_for_user
    # and editor_pages.share_link_get put it there): a foreign key's type cannot say so.
    if not can_manage_links(link.report, user):  # type: ignore[arg-type]
        raise PermissionDenied("Only the author or an owner revokes this link.")
    if ShareLink.objects.filter(pk=link.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    ):
        _audit_link(AuditAction.SHARE_LINK_REVOKED, link, user, ip)
        live.access_changed_on_commit(reports=(link.report_id,))


@transaction.atomic
def share_link_touch(
    link: ShareLink, *, actor: User | AnonymousUser | None = None, ip: str | None = None
) -> None:
    """Count an access and remember when it happened (for the share dialog).

    The update locks the link's row first, which ``audit_share_link_access`` relies on.
    """
    from django.db.models import F

    ShareLink.objects.filter(pk=link.pk).update(
        access_count=F("access_count") + 1, last_accessed_at=timezone.now()
    )
    audit_share_link_access(link=link, actor=actor, ip=ip)
