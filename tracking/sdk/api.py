"""The read side: ``sdk.Api(url, token)`` for notebooks and scripts."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote, urlencode

from tracking.sdk.transport import Transport


class Api:
    def __init__(self, url: str | None = None, token: str | None = None) -> None:
        url = url or os.environ.get("LABBOOK_URL") or "http://127.0.0.1:8000"
        token = token or os.environ.get("LABBOOK_TOKEN") or ""
        self._transport = Transport(url, token)

    def _get(self, path: str, query: dict[str, Any] | None = None) -> Any:
        query = {k: v for k, v in (query or {}).items() if v is not None}
        suffix = "?" + urlencode(query, doseq=True) if query else ""
        return self._transport.request_retrying("GET", path + suffix, budget=30)

    def runs(self, project: str | None = None, **filters: Any) -> list[dict[str, Any]]:
        """Every run matching: ``status=``, ``tag=`` (one or a list), ``group=``, ``search=``."""
        query = {"project": project, "page_size": 500, **filters}
        page = self._get("/api/v1/runs", query)
        runs = list(page["results"])
        while page["next"]:
            cursor = page["next"].split("?", 1)[1]
            page = self._transport.request_retrying("GET", f"/api/v1/runs?{cursor}", budget=30)
            runs.extend(page["results"])
        return runs

    def run(self, run_id: int) -> dict[str, Any]:
        run: dict[str, Any] = self._get(f"/api/v1/runs/{int(run_id)}")
        return run

    def metrics(self, run_id: int) -> list[dict[str, Any]]:
        metrics: list[dict[str, Any]] = self._get(f"/api/v1/runs/{int(run_id)}/metrics")["metrics"]
        return metrics

    def history(self, run_id: int, key: str, max_points: int | None = None) -> dict[str, list[Any]]:
        """``{"steps": [...], "values": [...], "timestamps": [...]}``, every page fetched."""
        path = f"/api/v1/runs/{int(run_id)}/metrics/{quote(key, safe='/')}"
        page = self._get(path, {"max_points": max_points})
        result = {name: list(page[name]) for name in ("steps", "values", "timestamps")}
        while (query := _next_page(page)) is not None:
            page = self._get(path, query)
            for name in result:
                result[name].extend(page[name])
        return result

    def history_frame(self, run_id: int, key: str, max_points: int | None = None) -> Any:
        """The history as a pandas DataFrame (needs pandas)."""
        try:
            import pandas
        except ImportError:
            raise ImportError("history_frame() needs pandas: pip install pandas") from None
        history = self.history(run_id, key, max_points)
        frame = pandas.DataFrame({"step": history["steps"], key: history["values"]})
        frame["timestamp"] = pandas.to_datetime(history["timestamps"], unit="s", utc=True)
        return frame


def _next_page(page: dict[str, Any]) -> dict[str, Any] | None:
    """Where the history goes on: its exact cursor, or, from an older server, the next step."""
    if page.get("next_cursor"):
        return {"cursor": page["next_cursor"]}
    if page.get("next_step") is not None:
        return {"step_min": page["next_step"]}
    return None
