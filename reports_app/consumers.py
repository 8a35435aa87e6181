"""Websocket consumers: authenticate, join the groups the user may read, forward.

Protocol of ``/ws/live/`` (messages from the server are listed in ``reports_app.live``)::

    client: {"subscribe": {"runs": [7, 8], "projects": ["acme/mnist"]}}
    server: {"type": "subscribed", "runs": [7], "projects": ["acme/mnist"]}
            {"type": "error", "code": "not_found", "run": 8}
    client: {"unsubscribe": {"runs": [7]}}
    server: {"type": "unsubscribed", "runs": [7], "projects": []}

The discussion of a run or report (its ``comment.changed`` messages) is
subscribed to by target name; answers carry a ``comments`` list only when the
request had one, so clients of runs and projects see the shapes above::

    client: {"subscribe": {"comments": ["run:7", "report:3"]}}
    server: {"type": "subscribed", "runs": [], "projects": [], "comments": ["run:7"]}
            {"type": "error", "code": "not_found", "comments": "report:3"}

A run, project or report the user may not read is answered ``not_found``
whether or not it exists. A socket holds at most MAX_SUBSCRIPTIONS groups. A socket
without a logged-in session is accepted and closed at once with code 4401,
so the browser can tell "log in again" from a network failure.

Access is checked again while a socket is open: at once when it may have
shrunk (``reports_app.live`` sends ``access.changed`` on a member's removal,
a logout, a link revoked, a report edited, made private or deleted), and every
``LIVE_ACCESS_RECHECK_SECONDS`` as a backstop for changes nobody announced
(a deactivated account, a password change, a deleted project). A socket whose
session ended is closed with 4401; a subscription the user lost is dropped
and answered as a refused one is::

    server: {"type": "error", "code": "not_found", "run": 7}
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Iterable
from importlib import import_module
from typing import Any

from channels.auth import get_user
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from kernel.errors import ApplicationError
from reports_app import media_blocks
from reports_app.comments import TARGET_RE, target_get_for_user
from reports_app.live import (
    comments_group,
    project_group,
    run_group,
    session_digest,
    user_group,
)
from tracking.selectors import project_get_for_user, run_get_for_user

logger = logging.getLogger(__name__)

MAX_SUBSCRIPTIONS = 200
CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404
# A subscription's lists, and the key that names one of their items in an error.
ITEM_KEYS = {"runs": "run", "projects": "project", "comments": "comments"}


@database_sync_to_async
def _run_group_for(user: Any, run_id: int) -> str:
    return run_group(run_get_for_user(user, run_id).pk)


@database_sync_to_async
def _project_group_for(user: Any, name: str) -> str:
    return project_group(project_get_for_user(user, name).pk)


@database_sync_to_async
def _comments_group_for(user: Any, name: str) -> str:
    target = target_get_for_user(user, name)
    return comments_group(target.kind, target.obj.pk)


class Rechecking(AsyncJsonWebsocketConsumer):
    """A consumer whose access is checked again on ``access.changed`` and on a timer."""

    recheck_task: asyncio.Task | None = None

    def start_rechecking(self) -> None:
        self.recheck_lock = asyncio.Lock()
        self.recheck_task = asyncio.create_task(self._recheck_periodically())

    def stop_rechecking(self) -> None:
        if self.recheck_task is not None:
            self.recheck_task.cancel()

    async def _recheck_periodically(self) -> None:
        period = settings.LIVE_ACCESS_RECHECK_SECONDS
        # Sockets opened together spread out; nothing secret hangs on the draw.
        await asyncio.sleep(period * random.uniform(0.5, 1.0))  # noqa: S311
        while True:
            try:
                await self.access_changed(PERIODIC)
            except Exception:  # a database hiccup must not end the backstop for good
                logger.warning("access re-check of a socket failed", exc_info=True)
            await asyncio.sleep(period)

    async def access_changed(self, message: dict[str, Any]) -> None:
        async with self.recheck_lock:
            await self.recheck(message)

    async def recheck(self, message: dict[str, Any]) -> None:
        """Close the socket, or drop what it may no longer carry. ``PERIODIC`` from the timer."""
        raise NotImplementedError


PERIODIC: dict[str, Any] = {"type": "access.periodic"}


async def _session_user(session_key: str) -> Any:
    """The session's user as the database holds it now: anonymous once it ended.

    A fresh store, not the scope's: that one cached the session when the socket opened.
    """
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    # get_user() reads the scope's session alone; its stub wants a whole websocket scope.
    return await get_user({"session": store})  # type: ignore[typeddict-item]


class LiveConsumer(Rechecking):
    async def connect(self) -> None:
        self.subscriptions: dict[tuple[str, Any], str] = {}  # ("runs", 7) -> "run.7"
        await self.accept()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.personal_group = user_group(user.pk)
        await self.channel_layer.group_add(self.personal_group, self.channel_name)
        self.start_rechecking()

    async def disconnect(self, code: int) -> None:
        self.stop_rechecking()
        groups = set(getattr(self, "subscriptions", {}).values())
        if hasattr(self, "personal_group"):
            groups.add(self.personal_group)
        for group in groups:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def recheck(self, message: dict[str, Any]) -> None:
        """Close the socket if its session ended; drop what its user may no longer read."""
        session = self.scope.get("session")
        key = getattr(session, "session_key", None)
        if key is None or message.get("logged_out") == session_digest(key):
            user = None  # the session ended
        else:
            user = await _session_user(key)
        current = self.scope["user"]  # connect() let only a signed-in user in
        if user is None or current is None or user.pk != current.pk:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.scope["user"] = user
        for kind, ident in list(self.subscriptions):
            try:
                await _LOOKUPS[kind][1](user, ident)
            except ApplicationError:
                await self._drop(kind, ident)

    async def _drop(self, kind: str, ident: Any) -> None:
        group = self.subscriptions.pop((kind, ident))
        if group not in self.subscriptions.values():
            await self.channel_layer.group_discard(group, self.channel_name)
        await self._error("not_found", **{ITEM_KEYS[kind]: ident})

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if not isinstance(content, dict) or not content.keys() & {"subscribe", "unsubscribe"}:
            await self._error(
                "invalid", message="Send {'subscribe': {...}} or {'unsubscribe': {...}}."
            )
            return
        if "subscribe" in content:
            await self._subscribe(content["subscribe"])
        if "unsubscribe" in content:
            await self._unsubscribe(content["unsubscribe"])

    async def _subscribe(self, spec: Any) -> None:
        joined = _answer_lists(spec)
        for kind, ident in _targets(spec):
            group = await self._group_for(kind, ident)
            if group is None:
                continue
            if (kind, ident) not in self.subscriptions:
                if len(self.subscriptions) >= MAX_SUBSCRIPTIONS:
                    await self._error("too_many_subscriptions", **{ITEM_KEYS[kind]: ident})
                    continue
                await self.channel_layer.group_add(group, self.channel_name)
                self.subscriptions[(kind, ident)] = group
            joined[kind].append(ident)
        await self.send_json({"type": "subscribed", **joined})

    async def _group_for(self, kind: str, ident: Any) -> str | None:
        """The group of something the user may read; answers the error otherwise."""
        valid, lookup = _LOOKUPS[kind]
        if not valid(ident):
            await self._error("invalid", **{ITEM_KEYS[kind]: ident})
            return None
        try:
            return await lookup(self.scope["user"], ident)
        except ApplicationError:  # a malformed project name is as unknown as a missing one
            await self._error("not_found", **{ITEM_KEYS[kind]: ident})
            return None

    async def _unsubscribe(self, spec: Any) -> None:
        left = _answer_lists(spec)
        for kind, ident in _targets(spec):
            group = self.subscriptions.pop((kind, ident), None)
            if group is not None and group not in self.subscriptions.values():
                await self.channel_layer.group_discard(group, self.channel_name)
            left[kind].append(ident)
        await self.send_json({"type": "unsubscribed", **left})

    async def _error(self, code: str, **details: Any) -> None:
        await self.send_json({"type": "error", "code": code, **details})

    # Group messages ("run.points", "run.media", "run.console", "run.status", "run.artifacts",
    # "project.run", "comment.changed") go out as is.
    async def run_points(self, message: dict[str, Any]) -> None:
        await self.send_json(message)

    async def run_console(self, message: dict[str, Any]) -> None:
        await self.send_json(message)

    async def run_media(self, message: dict[str, Any]) -> None:
        await self.send_json(message)

    async def run_status(self, message: dict[str, Any]) -> None:
        await self.send_json(message)

    async def run_artifacts(self, message: dict[str, Any]) -> None:
        await self.send_json(message)

    async def project_run(self, message: dict[str, Any]) -> None:
        await self.send_json(message)

    async def comment_changed(self, message: dict[str, Any]) -> None:
        await self.send_json(message)


def _targets(spec: Any) -> list[tuple[str, Any]]:
    """``{"runs": [...], "projects": [...], "comments": [...]}`` as (list, ident) pairs.

    Anything else is empty.
    """
    if not isinstance(spec, dict):
        return []
    pairs: list[tuple[str, Any]] = []
    for kind in ITEM_KEYS:
        idents = spec.get(kind) or []
        if isinstance(idents, list):
            pairs += [(kind, ident) for ident in idents[: MAX_SUBSCRIPTIONS + 1]]
    return pairs


def _answer_lists(spec: Any) -> dict[str, list[Any]]:
    """The lists an answer carries: runs and projects always, comments when asked about."""
    kinds = [kind for kind in ITEM_KEYS if kind != "comments"]
    if isinstance(spec, dict) and "comments" in spec:
        kinds.append("comments")
    return {kind: [] for kind in kinds}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_target(value: Any) -> bool:
    return isinstance(value, str) and TARGET_RE.fullmatch(value) is not None


# Per list: the check of an item's shape, and the lookup of its group.
# kind -> (is the item well formed, the group of an item the user may read)
_LOOKUPS: dict[str, tuple[Callable[[Any], bool], Callable[[Any, Any], Awaitable[str]]]] = {
    "runs": (_is_int, _run_group_for),
    "projects": (lambda value: isinstance(value, str), _project_group_for),
    "comments": (_is_target, _comments_group_for),
}


# --- Share links ---------------------------------------------------------------------------


@database_sync_to_async
def _share_scope(token: str):
    """What a share link's live charts need (``report_pages.ShareLiveScope``), None if dead."""
    from reports_app import report_pages, selectors
    from reports_app.models import ShareLink

    link = selectors.share_link_active(ShareLink.hash(token))
    if link is None:
        return None
    return report_pages.share_live_scope(link)


@database_sync_to_async
def _share_link_alive(token: str) -> bool:
    from reports_app import selectors
    from reports_app.models import ShareLink

    return selectors.share_link_active(ShareLink.hash(token)) is not None


class ShareConsumer(Rechecking):
    """``/ws/share/<token>/``: live chart updates for whoever holds a share link.

    The link decides the groups: the runs its report's live charts draw and the
    projects whose new runs may join them; nothing the client sends changes
    that. New-run messages are stripped to ``{"type": "project.run",
    "created": true}``, so a reader learns neither the ids nor the values of
    runs the report does not show. A dead link is closed with CLOSE_NOT_FOUND,
    also while open: on ``access.changed`` and every LIVE_ACCESS_RECHECK_SECONDS
    the link is checked and the groups and keys drawn again from the report as
    it is now (a chart taken out stops its points).

    A run's media and console messages are never forwarded: for a live media,
    table, histogram or logs block of the report that one may change, the
    socket sends only ``{"type": "block.changed", "block": <index>}``, and the
    page draws that block again through the link.
    """

    async def connect(self) -> None:
        self.groups_joined: list[str] = []
        self.keys: dict[int, set[str]] = {}
        self.blocks: tuple[media_blocks.LiveBlock, ...] = ()
        scope = await _share_scope(self.scope["url_route"]["kwargs"]["token"])
        if scope is None:
            await self.accept()
            await self.close(code=CLOSE_NOT_FOUND)
            return
        await self._join(scope)  # before accepting: nothing sent after "open" is missed
        await self.accept()
        self.start_rechecking()

    async def disconnect(self, code: int) -> None:
        self.stop_rechecking()
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def recheck(self, message: dict[str, Any]) -> None:
        """The timer only asks whether the link still opens (it expires unannounced);
        a change to the report, announced, draws the groups and keys again."""
        token = self.scope["url_route"]["kwargs"]["token"]
        if message is PERIODIC:
            if not await _share_link_alive(token):
                await self.close(code=CLOSE_NOT_FOUND)
            return
        scope = await _share_scope(token)
        if scope is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        for group in set(self.groups_joined) - set(scope.groups):
            await self.channel_layer.group_discard(group, self.channel_name)
        await self._join(scope)

    async def _join(self, scope: Any) -> None:
        for group in set(scope.groups) - set(self.groups_joined):
            await self.channel_layer.group_add(group, self.channel_name)
        self.groups_joined, self.keys, self.blocks = scope.groups, scope.keys, scope.blocks

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        await self.send_json({"type": "subscribed"})  # the link already chose the groups

    async def run_points(self, message: dict[str, Any]) -> None:
        """Only the keys the report charts of that run: a run's other metrics stay private."""
        run_id = message.get("run")
        charted = self.keys.get(run_id, set()) if isinstance(run_id, int) else set()
        series = {key: points for key, points in message["series"].items() if key in charted}
        if series:
            await self.send_json({**message, "series": series})

    async def run_console(self, message: dict[str, Any]) -> None:
        """Never forwarded: a share link shows what the report draws, not the run's console;
        a logs block the new lines may change is named, bare."""
        run, lines = message.get("run"), message.get("lines")
        truncated = bool(message.get("truncated"))
        await self._changed(
            b for b in self.blocks if media_blocks.touched_by_console(b, run, lines, truncated)
        )

    async def run_media(self, message: dict[str, Any]) -> None:
        """Never forwarded: a run's media keys and steps are not the report's to show; a
        block showing the key (at a step logged) is named, bare."""
        run, logged = message.get("run"), message.get("media")
        await self._changed(b for b in self.blocks if media_blocks.touched_by_media(b, run, logged))

    async def _changed(self, touched: Iterable[media_blocks.LiveBlock]) -> None:
        for index in sorted({block.block for block in touched}):
            await self.send_json({"type": "block.changed", "block": index})

    async def run_status(self, message: dict[str, Any]) -> None:
        await self.send_json(message)

    async def run_artifacts(self, message: dict[str, Any]) -> None:
        """Never forwarded: a share link shows what the report draws, not the run's
        artifacts; the handler only keeps the message from closing the socket."""

    async def project_run(self, message: dict[str, Any]) -> None:
        if message.get("created"):
            await self.send_json({"type": "project.run", "created": True})
