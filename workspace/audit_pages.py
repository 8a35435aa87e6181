"""What the audit page and its CSV download show: rows, their details as words, the CSV lines."""

from __future__ import annotations

import csv
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from asgiref.sync import sync_to_async
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, QueryDict
from django.urls import reverse
from rest_framework.exceptions import NotFound as CursorNotFound
from rest_framework.request import Request

from audit import selectors
from audit.models import AuditAction, AuditEvent
from kernel.errors import ApplicationError
from tracking.api.audit import AuditCursorPagination
from tracking.models import Team

CSV_CHUNK = 2_000  # events per database read while streaming the download
CSV_HEADER = [
    *("id", "when", "team", "actor", "action"),
    *("target_type", "target_id", "target", "data", "ip"),
]
# A cell starting with one of these is a formula to a spreadsheet: "=HYPERLINK(...)".
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class EventRow:
    event: AuditEvent
    details: str


def _words(key: str) -> str:
    return key.replace("_", " ")


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "none"
    if isinstance(value, list):
        return ", ".join(_value(item) for item in value)
    return str(value)


def details(data: dict[str, Any]) -> str:
    """``data`` as words; ``old_role``/``new_role`` become "role: editor → owner"."""
    parts = []
    for key, value in data.items():
        name = key.removeprefix("old_")
        if key.startswith("old_") and f"new_{name}" in data:
            parts.append(f"{_words(name)}: {_value(value)} → {_value(data[f'new_{name}'])}")
        elif not (key.startswith("new_") and f"old_{key[4:]}" in data):
            parts.append(f"{_words(key)}: {_value(value)}")
    return " · ".join(parts)


def _relative(link: str | None) -> str | None:
    """DRF's absolute page link as ``?query``: the page's own address, its filter kept."""
    return None if link is None else f"?{urlsplit(link).query}"


def events_page(request: HttpRequest, events: QuerySet[AuditEvent]) -> dict[str, Any]:
    """One keyset page of ``events`` and the links to its neighbours (the filter kept)."""
    paginator = AuditCursorPagination()
    paginator.page_size_query_param = None  # type: ignore[assignment]  # the page shows its own size
    try:
        page = paginator.paginate_queryset(events, Request(request))
    except CursorNotFound:
        raise Http404("No such page of the audit log.") from None
    return {
        "rows": [EventRow(event, details(event.data)) for event in page],
        "next_href": _relative(paginator.get_next_link()),
        "previous_href": _relative(paginator.get_previous_link()),
    }


def chosen_action(query: QueryDict) -> tuple[str | None, str]:
    """The action to filter by, and the error when the query names none of ours."""
    try:
        return selectors.clean_action(query.get("action")), ""
    except ApplicationError as error:
        return None, error.message


def audit_page_context(
    request: HttpRequest,
    team: Team,
    events: QuerySet[AuditEvent],
    *,
    action: str | None,
    error: str = "",
) -> dict[str, Any]:
    csv_href = reverse("settings-team-audit-csv", kwargs={"team": team.slug})
    return {
        "section": "audit",
        "current_team": team,
        "team": team,
        "actions": AuditAction.choices,
        "action": action or "",
        "error": error,
        "csv_href": csv_href + (f"?{urlencode({'action': action})}" if action else ""),
        **events_page(request, events),
    }


# --- CSV ------------------------------------------------------------------------------------


class _Echo:
    def write(self, value: str) -> str:
        return value


def _cell(value: str) -> str:
    return f"'{value}" if value.startswith(FORMULA_STARTS) else value


def csv_line(event: AuditEvent) -> list[str]:
    data = json.dumps(event.data, ensure_ascii=False, sort_keys=True)
    texts = [event.team_slug, event.actor_name, event.action, event.target_type, event.target_id]
    texts += [event.target_repr, data]
    return [str(event.pk), event.created_at.isoformat(), *map(_cell, texts), event.ip or ""]


def _chunk(events: QuerySet[AuditEvent], after: AuditEvent | None) -> list[AuditEvent]:
    """The next events after ``after`` in the (newest first) order: a keyset read."""
    if after is not None:
        older = Q(created_at__lt=after.created_at)
        events = events.filter(older | Q(created_at=after.created_at, id__lt=after.pk))
    return list(events[:CSV_CHUNK])


def csv_lines(events: QuerySet[AuditEvent]) -> Iterator[str]:
    """Every event, chunk by chunk: a long log never sits in memory at once."""
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_HEADER)
    chunk = _chunk(events, None)
    while chunk:
        for event in chunk:
            yield writer.writerow(csv_line(event))
        chunk = _chunk(events, chunk[-1]) if len(chunk) == CSV_CHUNK else []


async def csv_lines_async(events: QuerySet[AuditEvent]) -> AsyncIterator[str]:
    """``csv_lines`` for an ASGI server, which would read a plain iterator whole before sending."""
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_HEADER)
    chunk = await sync_to_async(_chunk)(events, None)
    while chunk:
        for event in chunk:
            yield writer.writerow(csv_line(event))
        more = len(chunk) == CSV_CHUNK
        chunk = await sync_to_async(_chunk)(events, chunk[-1]) if more else []
