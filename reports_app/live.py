"""Live updates: the one module that publishes tracking events to channel groups.

``ReportsAppConfig.ready()`` calls :func:`connect`; ``tracking.events`` then
calls the handlers below after the ingest/update transaction commits.
``reports_app.consumers.LiveConsumer`` joins sockets to the groups and
forwards every message unchanged, so the shapes below are the wire protocol.

Groups and messages (metric values are numbers, or the strings ``"NaN"``,
``"Infinity"``, ``"-Infinity"``; timestamps are Unix seconds)::

    run.<id>      {"type": "run.points", "run": 7,
                   "series": {"loss": {"steps": [...], "values": [...],
                                       "timestamps": [...]}}}
                  A key with more than MAX_POINTS_PER_KEY new points carries
                  only its latest point and ``"truncated": true``: the client
                  refetches that key from /api/v1/runs/<id>/metrics/<key>.
    run.<id>      {"type": "run.media", "run": 7,
                   "media": {"samples": {"kind": "image", "steps": [300]}}}
                  Images, tables or histograms were logged at those steps; the
                  client fetches them from /api/v1/runs/<id>/media/<key>.
    run.<id>      {"type": "run.console", "run": 7,
                   "lines": [{"number": 41, "stream": "stdout", "text": "epoch 3",
                              "timestamp": 1700000000.5}]}
                  New console lines, in order; more than MAX_CONSOLE_LINES in one
                  batch sends only the last of them and ``"truncated": true``.
    run.<id>      {"type": "run.status", "run": 7, "status": "failed", "old": "running"}
    run.<id>      {"type": "run.artifacts", "run": 7}
                  The run's artifacts changed: a version it logged was committed, it
                  used a version, or an MLflow artifact file was stored or deleted;
                  the run page reads its artifact cards again.
    project.<id>  {"type": "project.run", "run": 7, ...} with the fields that
                  changed: ``"status"`` on a status change, ``"summary"``
                  ({key: latest value}) when points arrive, ``"created": true``
                  for a new run (the client fetches the row from the API).
    user.<id>, share.report.<id>
                  {"type": "access.changed"}: access may have shrunk (a member
                  removed, a link revoked, a report edited, made private or
                  deleted); every socket in the group re-checks what it may
                  read (``reports_app.consumers``). A logout adds
                  ``"logged_out": sha256(session key)``: that session's sockets close.
                  Consumers handle these; they are never forwarded to clients.
    comments.run.<id>, comments.report.<id>
                  {"type": "comment.changed", "action": "created", "target": "run:7",
                   "comment": {...}} with the comment as GET /api/v1/comments/<id>
                  answers it; ``action`` is one of created, edited, deleted,
                  resolved, reopened (``reports_app.comments`` publishes them).

Publishing never breaks the caller: a layer that is down or slow is logged
(bounded by SEND_TIMEOUT) and the update is simply not live.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import Counter
from collections.abc import Mapping
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth.signals import user_logged_out
from django.db import transaction

from tracking import events
from tracking.validation import float_to_json

logger = logging.getLogger(__name__)

MAX_POINTS_PER_KEY = 500  # more in one batch: the client refetches the key, downsampled
MAX_CONSOLE_LINES = 200  # more in one batch: the client refetches the tail
SEND_TIMEOUT = 2.0  # seconds; a stuck layer must not hold an ingest response for long

Message = dict[str, Any]


def run_group(run_id: int) -> str:
    return f"run.{run_id}"


def project_group(project_id: int) -> str:
    return f"project.{project_id}"


def connect() -> None:
    events.subscribe(events.PointsIngested, on_points_ingested)
    events.subscribe(events.MediaLogged, on_media_logged)
    events.subscribe(events.ConsoleAppended, on_console_appended)
    events.subscribe(events.RunStatusChanged, on_run_status_changed)
    events.subscribe(events.RunArtifactsChanged, on_run_artifacts_changed)
    events.subscribe(events.RunCreated, on_run_created)
    events.subscribe(events.MembershipRemoved, on_membership_removed)
    user_logged_out.connect(on_logged_out, dispatch_uid="labbook.live.on_logged_out")


def on_points_ingested(event: events.PointsIngested) -> None:
    groups = run_group(event.run_id), project_group(event.project_id)
    if not _listened(groups):
        return  # building a 10,000-point message for nobody costs ingest ~10%
    summary = {key: float_to_json(row["last_value"]) for key, row in event.series.items()}
    publish(
        [
            (groups[0], points_message(event)),
            (groups[1], {"type": "project.run", "run": event.run_id, "summary": summary}),
        ]
    )


def _listened(groups: tuple[str, ...]) -> bool:
    """False only when certain nobody is subscribed to any of ``groups``.

    The in-memory layer (one process) keeps its groups in ``layer.groups``; a
    shared layer (Redis) may have subscribers in other processes, so always True.
    """
    local = getattr(get_channel_layer(), "groups", None)
    return not isinstance(local, dict) or any(local.get(group) for group in groups)


def on_media_logged(event: events.MediaLogged) -> None:
    message = {"type": "run.media", "run": event.run_id, "media": dict(event.media)}
    publish([(run_group(event.run_id), message)])


def on_console_appended(event: events.ConsoleAppended) -> None:
    if not _listened((run_group(event.run_id),)):
        return
    lines = event.lines[-MAX_CONSOLE_LINES:]
    message: Message = {
        "type": "run.console",
        "run": event.run_id,
        "lines": [
            {"number": n.number, "stream": n.stream, "text": n.text, "timestamp": n.timestamp}
            for n in lines
        ],
    }
    if len(lines) < len(event.lines):
        message["truncated"] = True
    publish([(run_group(event.run_id), message)])


def on_run_status_changed(event: events.RunStatusChanged) -> None:
    status = {"run": event.run_id, "status": event.new}
    publish(
        [
            (run_group(event.run_id), {"type": "run.status", **status, "old": event.old}),
            (project_group(event.project_id), {"type": "project.run", **status}),
        ]
    )


def on_run_artifacts_changed(event: events.RunArtifactsChanged) -> None:
    """Names the run only: the page reads what changed through its own access check."""
    message = {"type": "run.artifacts", "run": event.run_id}
    publish([(run_group(event.run_id), message)])


def on_run_created(event: events.RunCreated) -> None:
    message = {"type": "project.run", "run": event.run_id, "created": True}
    publish([(project_group(event.project_id), message)])


def points_message(event: events.PointsIngested) -> Message:
    """Per key: the new points, or for a key with too many, its latest point and a flag.

    ``event.rows`` is sorted by series and step, so each key's points arrive in order.
    """
    counts = Counter(series_id for series_id, _ in event.rows)
    grouped: dict[int, list] = {sid: [] for sid, n in counts.items() if n <= MAX_POINTS_PER_KEY}
    for series_id, point in event.rows:
        bucket = grouped.get(series_id)
        if bucket is not None:
            bucket.append(point)
    series = {}
    for series_id in counts:
        key = event.keys[series_id]
        if series_id in grouped:
            series[key] = _columns(grouped[series_id])
        else:
            series[key] = {**_latest(event.series[key]), "truncated": True}
    return {"type": "run.points", "run": event.run_id, "series": series}


def _latest(summary: Mapping[str, Any]) -> Message:
    return {
        "steps": [summary["last_step"]],
        "values": [float_to_json(summary["last_value"])],
        "timestamps": [summary["last_timestamp"]],
    }


def _columns(points: list) -> Message:
    return {
        "steps": [p.step for p in points],
        # v - v == 0 holds exactly for finite floats: the cheap test for the common case.
        "values": [
            p.value if p.value is not None and p.value - p.value == 0 else float_to_json(p.value)
            for p in points
        ],
        "timestamps": [p.timestamp for p in points],
    }


def publish(messages: list[tuple[str, Message]]) -> None:
    """Send each (group, message); one event-loop hop for all of them, failures logged."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(_send_all)(layer, messages)
    except Exception:
        logger.warning("live update not published to %s", [g for g, _ in messages], exc_info=True)


async def _send_all(layer: Any, messages: list[tuple[str, Message]]) -> None:
    sends = [layer.group_send(group, message) for group, message in messages]
    await asyncio.wait_for(asyncio.gather(*sends), timeout=SEND_TIMEOUT)


# --- Comments ------------------------------------------------------------------------


def comments_group(kind: str, target_id: int) -> str:
    """The group of a run's or report's discussion: ``comments.run.7``, ``comments.report.3``."""
    return f"comments.{kind}.{target_id}"


def publish_comment(*, target: str, action: str, comment: Mapping[str, Any]) -> None:
    """Tell the readers of ``target`` (``"run:7"``) that a comment changed; call after commit."""
    kind, _, ident = target.partition(":")
    message = {"type": "comment.changed", "action": action, "target": target, "comment": comment}
    publish([(comments_group(kind, int(ident)), message)])


# --- Access changes ------------------------------------------------------------------


def user_group(user_id: int) -> str:
    """Every live socket of one user."""
    return f"user.{user_id}"


def share_group(report_id: int) -> str:
    """Every share-link socket of one report, whichever link opened it."""
    return f"share.report.{report_id}"


def session_digest(session_key: str) -> str:
    """How a logout names its session on the layer: the key itself never travels."""
    return hashlib.sha256(session_key.encode()).hexdigest()


def access_changed(*, users: tuple[int, ...] = (), reports: tuple[int, ...] = ()) -> None:
    """Tell the sockets that may have lost access to re-check it now; call after commit.

    A report's change reaches its share-link sockets and its discussion's readers.
    """
    groups = [user_group(pk) for pk in users]
    for pk in reports:
        groups += [share_group(pk), comments_group("report", pk)]
    publish([(group, {"type": "access.changed"}) for group in groups])


def access_changed_on_commit(*, reports: tuple[int, ...]) -> None:
    """``access_changed`` for reports, once the caller's transaction has committed."""
    transaction.on_commit(lambda: access_changed(reports=reports))


def on_membership_removed(event: events.MembershipRemoved) -> None:
    access_changed(users=(event.user_id,))


def on_logged_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    """Close the sockets of the session that logged out; its user's others re-check.

    Django flushes the session only after this signal, so the sockets are told
    which session ended rather than left to find it still valid.
    """
    key = getattr(getattr(request, "session", None), "session_key", None)
    if user is None or not key:
        return
    message = {"type": "access.changed", "logged_out": session_digest(key)}
    publish([(user_group(user.pk), message)])
