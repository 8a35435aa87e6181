"""Share-link renders, cached: an anonymous view of an unchanged report does not render it again.

Anyone holding a share link can reload it as often as they like, and every
render reads histories and builds figures. So the public render (the same
for every link of a report) is kept in the ``renders`` cache, keyed by report,
revision and time of the last save: an edited report is never served from an
entry of the old text. Callers check the link first
(``selectors.share_link_active``): a revoked or expired link never reaches
the cache.

The entry also holds the *data version* it was drawn at: one aggregate query
over the runs the render read and the runs of the projects its selectors
watch (count, newest id, newest ``last_seen_at``, ``ended_at`` and
``deleted_at``). New points, a status change, a new or deleted run all move
it, so a live report is drawn again once its data changed and never shows
older data than the database holds. What the version cannot see (a tag
edited, a project renamed) is at most ``TTL_SECONDS`` old. A render during
which the data changed is not kept: it may predate the version read after it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from django.core.cache import caches
from django.db.models import Count, Max, Q
from django.utils import timezone

from reports_app import render
from reports_app.models import Report
from tracking.models import Run

CACHE = "renders"  # settings.CACHES: Redis when REDIS_URL is set, else this process's memory
TTL_SECONDS = 60  # the oldest an entry gets, for changes the data version cannot see
MAX_ENTRY_BYTES = 6_000_000  # the page budget's 4 MB of figures and a 200,000-character body


@dataclass(frozen=True)
class _Entry:
    rendered: render.Rendered
    version: tuple


def shared_render(report: Report, *, frozen: Callable[[], dict[str, Any]]) -> render.Rendered:
    """The public render of ``report`` from the cache while its data is unchanged.

    ``frozen`` reads the revision's frozen charts: only when drawing again.
    """
    key = _key(report)
    entry = caches[CACHE].get(key)
    if entry is not None and entry.version == data_version(report, entry.rendered.sources):
        return entry.rendered
    started = timezone.now()
    rendered = render.render_report(report, frozen=frozen(), public=True)
    version = data_version(report, rendered.sources)
    if not _changed_since(version, started) and entry_size(rendered) <= MAX_ENTRY_BYTES:
        caches[CACHE].set(key, _Entry(rendered, version), TTL_SECONDS)
    return rendered


def _key(report: Report) -> str:
    """The report as of its newest save; its creation time tells apart a reused id."""
    made, saved = report.created_at.timestamp(), report.updated_at.timestamp()
    return f"share-render:{report.pk}:{made}:{report.revision}:{saved}"


def data_version(report: Report, sources: render.Sources | None) -> tuple:
    """What changes whenever the runs a render drew (or may draw) change."""
    if sources is None:
        return ()
    query = Q(pk__in=sources.runs)
    if "" in sources.projects:
        query |= Q(project_id=report.project_id)
    slugs = {name.partition("/")[2] for name in sources.projects if name}
    if slugs:
        query |= Q(project__team_id=report.project.team_id, project__slug__in=slugs)
    found = Run.objects.filter(query).aggregate(
        count=Count("id"),
        newest=Max("id"),
        seen=Max("last_seen_at"),
        ended=Max("ended_at"),
        deleted=Max("deleted_at"),
    )
    return tuple(found.values())


def _changed_since(version: tuple, started: datetime) -> bool:
    """Whether a run was touched while the render ran (``last_seen_at`` moves on every change)."""
    stamps = [value for value in version if isinstance(value, datetime)]
    return any(stamp >= started for stamp in stamps)


def entry_size(rendered: render.Rendered) -> int:
    """About the bytes an entry takes: its HTML and its figures' JSON."""
    figures = sum(len(orjson.dumps(figure.figure)) for figure in rendered.figures)
    return len(rendered.html) + figures
