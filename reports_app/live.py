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
    run.<id>      {"type": "run.status", "run": 7, "status": "failed", "old": "running"}
    project.<id>  {"type": "project.run", "run": 7, ...} with the fields that
                  changed: ``"status"`` on a status change, ``"summary"``
                  ({key: latest value}) when points arrive, ``"created": true``
                  for a new run (the client fetches the row from the API).

Publishing never breaks the caller: a layer that is down or slow is logged
(bounded by SEND_TIMEOUT) and the update is simply not live.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from tracking import events
from tracking.validation import float_to_json

logger = logging.getLogger(__name__)

MAX_POINTS_PER_KEY = 2_000
SEND_TIMEOUT = 2.0  # seconds; a stuck layer must not hold an ingest response for long

Message = dict[str, Any]


def run_group(run_id: int) -> str:
    return f"run.{run_id}"


def project_group(project_id: int) -> str:
    return f"project.{project_id}"


def connect() -> None:
    events.subscribe(events.PointsIngested, on_points_ingested)
    events.subscribe(events.RunStatusChanged, on_run_status_changed)
    events.subscribe(events.RunCreated, on_run_created)


def on_points_ingested(event: events.PointsIngested) -> None:
    summary = {key: float_to_json(row["last_value"]) for key, row in event.series.items()}
    publish(
        [
            (run_group(event.run_id), points_message(event)),
            (
                project_group(event.project_id),
                {"type": "project.run", "run": event.run_id, "summary": summary},
            ),
        ]
    )


def on_run_status_changed(event: events.RunStatusChanged) -> None:
    status = {"run": event.run_id, "status": event.new}
    publish(
        [
            (run_group(event.run_id), {"type": "run.status", **status, "old": event.old}),
            (project_group(event.project_id), {"type": "project.run", **status}),
        ]
    )


def on_run_created(event: events.RunCreated) -> None:
    message = {"type": "project.run", "run": event.run_id, "created": True}
    publish([(project_group(event.project_id), message)])


def points_message(event: events.PointsIngested) -> Message:
    by_key: dict[str, list[tuple[int, float | None, float]]] = {}
    for key, step, value, timestamp in event.points:
        by_key.setdefault(key, []).append((step, value, timestamp))
    series = {key: _series_payload(rows, event.series.get(key, {})) for key, rows in by_key.items()}
    return {"type": "run.points", "run": event.run_id, "series": series}


def _series_payload(rows: list[tuple[int, float | None, float]], summary: dict) -> Message:
    if len(rows) > MAX_POINTS_PER_KEY:
        last = max(rows)
        if summary:  # the series' latest point, which a back-filling batch may not hold
            last = (summary["last_step"], summary["last_value"], summary["last_timestamp"])
        return {**_columns([last]), "truncated": True}
    return _columns(sorted(rows, key=lambda row: row[0]))


def _columns(rows: list[tuple[int, float | None, float]]) -> Message:
    return {
        "steps": [step for step, _, _ in rows],
        "values": [float_to_json(value) for _, value, _ in rows],
        "timestamps": [timestamp for _, _, timestamp in rows],
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
