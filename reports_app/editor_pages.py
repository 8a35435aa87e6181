"""What the report authoring pages show: the list, the editor, the history, the diff, sharing.

Reads go through ``reports_app.selectors`` (access checks) and writes through
``reports_app.services``; this module shapes rows and the editor's
configuration for the templates in ``templates/reports_app/editor/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from datetime import timezone as dt_timezone
from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import User
from django.contrib.sessions.backends.base import SessionBase
from django.core.paginator import Page, Paginator
from django.http import QueryDict
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from kernel.errors import invalid
from kernel.http import query_string
from reports_app import render, revision_diff, selectors, services
from reports_app.models import Report, ReportRevision, ShareLink, Visibility
from tracking.models import WRITE_ROLES
from tracking.validation import in_utc

if TYPE_CHECKING:
    from reports_app.models import ReportWithRole
    from tracking.models import ProjectWithRole

LIST_PAGE = 30
HISTORY_PAGE = 50
MAX_SEARCH = 200
NEW_LINK_KEY = "labbook.new_share_link"
MAX_OFFSET_MINUTES = 14 * 60


def page_links(query: QueryDict, page: Page) -> dict[str, str]:
    links = {}
    if page.has_previous():
        links["previous"] = query_string(query, page=str(page.previous_page_number()))
    if page.has_next():
        links["next"] = query_string(query, page=str(page.next_page_number()))
    return links


def _report_base(report: Report) -> dict[str, Any]:
    """What every page about one report needs for its breadcrumbs and the team switcher."""
    return {
        "report": report,
        "project": report.project,
        "project_href": report.project.get_absolute_url(),
        "current_team": report.project.team,
    }


# --- The project's reports ------------------------------------------------------------------


def list_context(user: User, project: ProjectWithRole, query: QueryDict) -> dict[str, Any]:
    search = query.get("q", "").strip()[:MAX_SEARCH]
    reports = selectors.reports_for_user(user, project=project, search=search or None)
    page = Paginator(reports.defer("body"), LIST_PAGE).get_page(query.get("page"))
    return {
        "project": project,
        "project_href": project.get_absolute_url(),
        "current_team": project.team,
        "page": page,
        "page_links": page_links(query, page),
        "search": search,
        "can_create": project.role in WRITE_ROLES,
        "visibilities": Visibility.choices,
    }


# --- The editor -----------------------------------------------------------------------------


def _draft_offer(report: Report, user: User) -> dict[str, Any] | None:
    """The user's autosaved draft, when it holds text the report does not."""
    draft = selectors.draft_for(report, user)
    if draft is None or (draft.title, draft.body) == (report.title, report.body):
        return None
    return {
        "title": draft.title,
        "body": draft.body,
        "revision": draft.base_revision,
        "updatedAt": draft.updated_at.isoformat(),
    }


def _api_urls(report: Report) -> dict[str, str]:
    ids = {"report_id": report.pk}
    return {
        "report": reverse("api-report", kwargs=ids),
        "draft": reverse("api-report-draft", kwargs=ids),
        "preview": reverse("api-report-preview", kwargs=ids),
        "merge": reverse("api-report-merge", kwargs=ids),
        "runs": reverse("api-runs"),
        "metrics": reverse("api-run-metrics", kwargs={"run_id": 0}),  # editor.js puts the id in
        "page": reverse("report", kwargs=ids),
    }


def editor_context(report: ReportWithRole, user: User, *, csrf: str) -> dict[str, Any]:
    """The editor page; ``config`` is what ``editor.js`` reads to start."""
    can_change_visibility = services.can_manage_links(report, user)
    config = {
        "report": report.pk,
        "revision": report.revision,
        "title": report.title,
        "body": report.body,
        "visibility": report.visibility if can_change_visibility else None,
        "project": report.project.full_name,
        "draft": _draft_offer(report, user),
        "csrf": csrf,
        "urls": _api_urls(report),
    }
    return {
        **_report_base(report),
        "config": config,
        "can_change_visibility": can_change_visibility,
        "visibilities": Visibility.choices,
    }


# --- History ------------------------------------------------------------------------------------


def revisions_context(report: ReportWithRole, user: User, query: QueryDict) -> dict[str, Any]:
    revisions = selectors.revisions(report).defer("body")
    page = Paginator(revisions, HISTORY_PAGE).get_page(query.get("page"))
    return {
        **_report_base(report),
        "page": page,
        "page_links": page_links(query, page),
        "can_edit": services.can_edit(report, user),
        "default_from": max(report.revision - 1, 1),
        "default_to": report.revision,
    }


def revision_context(
    report: ReportWithRole, revision: ReportRevision, user: User
) -> dict[str, Any]:
    """One revision drawn as it reads; its charts are drawn once, never live."""
    rendered = render.render_report(report, body=revision.body, frozen=revision.frozen)
    figures = [{**figure.as_dict(), "live": False} for figure in rendered.figures]
    return {
        **_report_base(report),
        "revision": revision,
        "rendered": rendered,
        "is_newest": revision.number == report.revision,
        "can_edit": services.can_edit(report, user),
        "config": {
            "report": report.pk,
            "figures": figures,
            "live": {"runs": [], "projects": []},
            "blockUrl": "",
            "share": None,
        },
    }


def _number(value: str | None, default: int) -> int:
    try:
        return int(value) if value else default
    except ValueError:
        return default


def diff_context(report: Report, query: QueryDict) -> dict[str, Any]:
    """Two revisions compared (``?from=N&to=M``, newest-but-one to newest by default)."""
    to = _number(query.get("to"), report.revision)
    old = selectors.revision_get(report, _number(query.get("from"), max(to - 1, 1)))
    new = selectors.revision_get(report, to)
    body = revision_diff.diff(old.body, new.body)
    inline = query.get("view") == "inline"
    return {
        **_report_base(report),
        "old": old,
        "new": new,
        "diff": body,
        "lines": body.inline() if inline else None,
        "title_diff": revision_diff.words(old.title, new.title) if old.title != new.title else None,
        "view": "inline" if inline else "side",
        "side_href": query_string(query, view=None),
        "inline_href": query_string(query, view="inline"),
        "numbers": list(selectors.revisions(report).values_list("number", flat=True)),
    }


# --- Sharing ------------------------------------------------------------------------------------


@dataclass
class LinkRow:
    link: ShareLink
    status: str  # active, expired or revoked


def link_status(link: ShareLink, *, now: datetime) -> str:
    if link.revoked_at is not None:
        return "revoked"
    if link.expires_at is not None and link.expires_at <= now:
        return "expired"
    return "active"


def _browser_zone(offset: str) -> tzinfo:
    """The visitor's zone as the page's script read it (``getTimezoneOffset``); UTC without."""
    try:
        minutes = int(offset)
    except ValueError:
        return UTC
    if abs(minutes) > MAX_OFFSET_MINUTES:
        return UTC
    return dt_timezone(timedelta(minutes=-minutes))


def parse_expiry(value: str, offset: str = "") -> datetime | None:
    """An expiry typed in a ``datetime-local`` field, in the visitor's zone; blank is never."""
    if not value.strip():
        return None
    try:
        parsed = parse_datetime(value.strip())
    except ValueError:
        parsed = None
    if parsed is None:
        raise invalid("expires_at", "Give a date and time, e.g. 2027-01-31 12:00.")
    if not timezone.is_aware(parsed):
        parsed = parsed.replace(tzinfo=_browser_zone(offset))
    return in_utc(parsed, field="expires_at")


def share_link_create(
    report: ReportWithRole,
    user: User,
    data: QueryDict,
    session: SessionBase,
    *,
    ip: str | None = None,
) -> ShareLink:
    """Create a link and keep its token in the session for the next page only (shown once)."""
    link, token = services.share_link_create(
        report=report,
        user=user,
        expires_at=parse_expiry(data.get("expires_at", ""), data.get("tz_offset", "")),
        hide_authors=data.get("hide_authors") == "on",
        embeddable=data.get("embeddable") == "on",
        ip=ip,
    )
    session[NEW_LINK_KEY] = {
        "id": link.pk,
        "report": report.pk,
        "token": token,
        "embeddable": link.embeddable,
    }
    return link


def new_link_pop(session: SessionBase, report: Report) -> dict[str, Any] | None:
    """The link created just before, once; reading it removes it from the session."""
    new = session.get(NEW_LINK_KEY)
    if not new or new.get("report") != report.pk:
        return None
    return session.pop(NEW_LINK_KEY)


def share_link_get(report: ReportWithRole, link_id: str) -> ShareLink | None:
    if not link_id.isdigit():
        return None
    link = selectors.share_links(report).filter(pk=int(link_id)).first()
    if link is not None:
        link.report = report  # carries the caller's role for the permission check
    return link


def share_context(report: Report, *, new_link: dict[str, Any] | None, form: Any) -> dict[str, Any]:
    now = timezone.now()
    links = [LinkRow(link, link_status(link, now=now)) for link in selectors.share_links(report)]
    return {**_report_base(report), "links": links, "new_link": new_link, "form": form}
