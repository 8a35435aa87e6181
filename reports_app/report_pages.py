"""What the report pages show: the rendered report, its live-update plan, its export."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import User
from django.contrib.staticfiles import finders
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from kernel.charts import PLOTLY_JS
from reports_app import media_blocks, render, services, share_cache
from reports_app.models import Report, ReportRevision, ShareLink
from tracking.models import MediaItem

if TYPE_CHECKING:
    from reports_app.models import ReportWithRole

STATIC_INLINED = ("labbook/labbook.css",)


def _frozen(report: Report) -> dict[str, Any]:
    revision = ReportRevision.objects.filter(report=report, number=report.revision)
    return revision.values_list("frozen", flat=True).first() or {}


def _config(
    report: Report,
    rendered: render.Rendered,
    *,
    block_url: str,
    share: str | None,
    media_block_url: str = "",
) -> dict:
    """What ``report.js`` reads: the figures and what to subscribe to for live updates.

    Live media-kind blocks add their runs to a member's subscription and are
    drawn again from ``mediaBlockUrl`` when a run's media or console message touches them;
    a share link's socket says which block changed instead (``share_live_scope``).
    """
    watched = list(rendered.live_blocks)
    runs = set(rendered.live_runs)
    if share is None:
        runs |= {run for block in watched for run in block.runs}
    else:  # the socket names a changed block: the page needs no run, key or search text
        watched = [replace(block, runs=(), key="", search="") for block in watched]
    return {
        "report": report.pk,
        "figures": [figure.as_dict() for figure in rendered.figures],
        "live": {"runs": sorted(runs), "projects": rendered.live_projects},
        "blockUrl": block_url,
        "share": share,
        "mediaBlocks": [block.as_dict() for block in watched],
        "mediaBlockUrl": media_block_url,
    }


def contributors(report: Report) -> list[str]:
    """Everyone who saved a revision, the author first."""
    names = (
        report.revisions.exclude(author=None)
        .order_by("number")
        .values_list("author__username", flat=True)
    )
    return list(dict.fromkeys(names))


def report_context(report: ReportWithRole, *, user: User) -> dict[str, Any]:
    rendered = render.render_report(report, frozen=_frozen(report))
    block_url = reverse("report-block", kwargs={"report_id": report.pk, "index": 0})
    media_url = reverse("report-media-block", kwargs={"report_id": report.pk, "index": 0})
    return {
        "report": report,
        "project": report.project,
        "current_team": report.project.team,
        "project_href": report.project.get_absolute_url(),
        "rendered": rendered,
        "config": _config(
            report, rendered, block_url=block_url, share=None, media_block_url=media_url
        ),
        "can_edit": services.can_edit(report, user),
        "can_share": services.can_manage_links(report, user),
        "contributors": contributors(report),
        "public": False,
        "show_authors": True,
    }


def shared_context(link: ShareLink, *, token: str) -> dict[str, Any]:
    report = link.report
    rendered = _public_render(report)
    rendered = replace(rendered, html=_shared_sources(rendered, token))
    block_url = reverse("shared-block", kwargs={"token": token, "index": 0})
    media_url = reverse("shared-media-block", kwargs={"token": token, "index": 0})
    return {
        "report": report,
        "project": report.project,
        "rendered": rendered,
        "config": _config(
            report, rendered, block_url=block_url, share=token, media_block_url=media_url
        ),
        "can_edit": False,
        "can_share": False,
        "contributors": [] if link.hide_authors else contributors(report),
        "public": True,
        "show_authors": not link.hide_authors,
        "link": link,
    }


@dataclass(frozen=True)
class ShareLiveScope:
    """What a share link's socket may carry: its groups, per run the keys it charts, and the
    live media-kind blocks whose changes it announces (``{"type": "block.changed"}``)."""

    groups: list[str]
    keys: dict[int, set[str]]
    blocks: tuple[media_blocks.LiveBlock, ...] = ()


def share_live_scope(link: ShareLink) -> ShareLiveScope:
    """The channel groups of what a share link's live charts show (runs, watched projects),
    and the metric keys they draw of each run: a point of any other key is never sent."""
    from reports_app import live
    from tracking.models import Project

    rendered = _public_render(link.report)
    keys = rendered.live_keys
    # The report's own group first: it carries "access.changed" (link revoked, report edited).
    groups = [live.share_group(link.report_id)]
    runs = set(keys) | {run for block in rendered.live_blocks for run in block.runs}
    groups += [live.run_group(run_id) for run_id in sorted(runs)]
    names = [name.partition("/") for name in rendered.live_projects]
    projects = Project.objects.filter(team=link.report.project.team)
    for team, _, slug in names:
        project = projects.filter(team__slug=team, slug=slug).first()
        if project is not None:
            groups.append(live.project_group(project.pk))
    return ShareLiveScope(groups, keys, rendered.live_blocks)


# --- Images of a shared report --------------------------------------------------------------


def _shared_sources(rendered: render.Rendered, token: str) -> str:
    """The shared render's images loaded through this link (``shared_media_item``)."""

    def src(item_id: int) -> str:
        return reverse("shared-media", kwargs={"token": token, "media_id": item_id})

    return media_blocks.fill_sources(rendered.html, rendered.media, src)


def shared_media_item(link: ShareLink, media_id: int) -> MediaItem | None:
    """An image the link's report shows, for its anonymous readers; None for any other
    item, of the same run or not: a share link serves exactly what the report shows.

    Decided from the report's media blocks (``render.shown_images``: their runs, key, step
    rule, pins and ``max_images``), a few queries, not from a render of the whole report:
    a live report's cached render is often stale, and a page's every image asks.
    """
    team = link.report.project.team_id
    found = MediaItem.objects.filter(pk=media_id, run__project__team_id=team).exclude(file="")
    item = found.first()
    if item is None or media_id not in render.shown_images(
        link.report, frozen=_frozen(link.report)
    ):
        return None
    return item


def media_block(report: Report, index: int, *, token: str | None = None) -> dict[str, Any] | None:
    """A media, table, histogram or logs block drawn again, for a live page to swap in:
    ``{"block", "html", "figure"}``; None when block ``index`` is no such block. With a
    share link's ``token`` it is drawn publicly and its images load through the link."""
    drawn = render.render_block(report, index, frozen=_frozen(report), public=token is not None)
    if drawn is None:
        return None
    html = drawn.html
    if token is not None:

        def src(item_id: int) -> str:
            return reverse("shared-media", kwargs={"token": token, "media_id": item_id})

        html = media_blocks.fill_sources(html, drawn.images, src)
    return {"block": index, "html": html, "figure": drawn.figure}


# --- end images of a shared report ----------------------------------------------------------


def _public_render(report: Report) -> render.Rendered:
    """What every share link of ``report`` shows; the caller has checked the link."""
    return share_cache.shared_render(report, frozen=lambda: _frozen(report))


def block_figure(report: Report, index: int, *, public: bool) -> dict[str, Any] | None:
    """One chart block's figure, drawn again (a new run joined its selector)."""
    if public:
        rendered = _public_render(report)
    else:
        rendered = render.render_report(report, frozen=_frozen(report))
    return next((f.as_dict() for f in rendered.figures if f.block == index), None)


# --- Export -----------------------------------------------------------------------------


def _static_text(path: str) -> str:
    found = finders.find(path)
    return Path(found).read_text(encoding="utf-8") if found else ""


def export_html(report: Report) -> str:
    """One self-contained file: inline CSS, plotly.js and data; opens offline, never fetches.

    Runs are named rather than linked, as on a share link: the file outlives the server.
    """
    rendered = render.render_report(report, frozen=_frozen(report), public=True)
    html = media_blocks.inline_images(rendered.html, rendered.media)  # data: URIs
    rendered = replace(rendered, html=html)
    context = {
        "report": report,
        "rendered": rendered,
        "figures_config": {
            "report": report.pk,
            "figures": [{**f.as_dict(), "live": False} for f in rendered.figures],
            "live": {"runs": [], "projects": []},
            "blockUrl": "",
            "share": None,
        },
        "contributors": contributors(report),
        "css": "\n".join(_static_text(path) for path in STATIC_INLINED),
        "plotly_js": _static_text(PLOTLY_JS),
        "report_js": "\n".join(
            _static_text(path)
            for path in (
                "labbook/smoothing.js",
                "labbook/chart_tools.js",
                "labbook/bands.js",
                "labbook/panels.js",
                "labbook/report.js",
            )
        ),
        "exported_at": timezone.now(),
    }
    return render_to_string("reports_app/export.html", context)
