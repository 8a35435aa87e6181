"""Websocket consumers: authenticate, join the groups the user may read, forward.

Protocol of ``/ws/live/`` (messages from the server are listed in ``reports_app.live``)::

    client: {"subscribe": {"runs": [7, 8], "projects": ["acme/mnist"]}}
    server: {"type": "subscribed", "runs": [7], "projects": ["acme/mnist"]}
            {"type": "error", "code": "not_found", "run": 8}
    client: {"unsubscribe": {"runs": [7]}}
    server: {"type": "unsubscribed", "runs": [7], "projects": []}

A run or project the user may not read is answered ``not_found`` whether or
not it exists. A socket holds at most MAX_SUBSCRIPTIONS groups. A socket
without a logged-in session is accepted and closed at once with code 4401,
so the browser can tell "log in again" from a network failure.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from reports_app.live import project_group, run_group
from tracking.errors import ApplicationError
from tracking.selectors import project_get_for_user, run_get_for_user

MAX_SUBSCRIPTIONS = 200
CLOSE_UNAUTHENTICATED = 4401


@database_sync_to_async
def _run_group_for(user: Any, run_id: int) -> str:
    return run_group(run_get_for_user(user, run_id).pk)


@database_sync_to_async
def _project_group_for(user: Any, name: str) -> str:
    return project_group(project_get_for_user(user, name).pk)


class LiveConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        self.subscriptions: dict[tuple[str, Any], str] = {}  # ("run", 7) -> "run.7"
        await self.accept()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)

    async def disconnect(self, code: int) -> None:
        for group in set(getattr(self, "subscriptions", {}).values()):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if not isinstance(content, dict) or not content.keys() & {"subscribe", "unsubscribe"}:
            await self._error(
                "invalid", message="Send {'subscribe': {...}} or {'unsubscribe': {...}}."
            )
            return
        if "subscribe" in content:
            await self._subscribe(_targets(content["subscribe"]))
        if "unsubscribe" in content:
            await self._unsubscribe(_targets(content["unsubscribe"]))

    async def _subscribe(self, targets: list[tuple[str, Any]]) -> None:
        joined: dict[str, list[Any]] = {"runs": [], "projects": []}
        for kind, ident in targets:
            group = await self._group_for(kind, ident)
            if group is None:
                continue
            if (kind, ident) not in self.subscriptions:
                if len(self.subscriptions) >= MAX_SUBSCRIPTIONS:
                    await self._error("too_many_subscriptions", **{kind: ident})
                    continue
                await self.channel_layer.group_add(group, self.channel_name)
                self.subscriptions[(kind, ident)] = group
            joined[f"{kind}s"].append(ident)
        await self.send_json({"type": "subscribed", **joined})

    async def _group_for(self, kind: str, ident: Any) -> str | None:
        """The group of a run or project the user may read; answers the error otherwise."""
        valid = isinstance(ident, str) if kind == "project" else _is_int(ident)
        if not valid:
            await self._error("invalid", **{kind: ident})
            return None
        lookup = _project_group_for if kind == "project" else _run_group_for
        try:
            return await lookup(self.scope["user"], ident)
        except ApplicationError:  # a malformed project name is as unknown as a missing one
            await self._error("not_found", **{kind: ident})
            return None

    async def _unsubscribe(self, targets: list[tuple[str, Any]]) -> None:
        left: dict[str, list[Any]] = {"runs": [], "projects": []}
        for kind, ident in targets:
            group = self.subscriptions.pop((kind, ident), None)
            if group is not None and group not in self.subscriptions.values():
                await self.channel_layer.group_discard(group, self.channel_name)
            left[f"{kind}s"].append(ident)
        await self.send_json({"type": "unsubscribed", **left})

    async def _error(self, code: str, **details: Any) -> None:
        await self.send_json({"type": "error", "code": code, **details})

    # Group messages (types "run.points", "run.status", "project.run") go out unchanged.
    async def run_points(self, message: dict[str, Any]) -> None:
        await self.send_json(message)

    async def run_status(self, message: dict[str, Any]) -> None:
        await self.send_json(message)

    async def project_run(self, message: dict[str, Any]) -> None:
        await self.send_json(message)


def _targets(spec: Any) -> list[tuple[str, Any]]:
    """``{"runs": [...], "projects": [...]}`` as (kind, ident) pairs; anything else is empty."""
    if not isinstance(spec, dict):
        return []
    pairs: list[tuple[str, Any]] = []
    for kind in ("run", "project"):
        idents = spec.get(f"{kind}s") or []
        if isinstance(idents, list):
            pairs += [(kind, ident) for ident in idents[: MAX_SUBSCRIPTIONS + 1]]
    return pairs


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
