"""Domain events: how ``tracking`` tells the rest of Labbook what happened to runs and teams.

``tracking`` never imports ``alerts`` or the reports feature. They subscribe
here in their ``AppConfig.ready()``, in one of two ways:

- ``decide_with``: the handler makes a decision that must not be lost (alert
  rules). It runs inside the publishing transaction, in a savepoint: what it
  writes (an alert and its notifications, the outbox of deliveries) commits or
  rolls back with the change that caused it. A process that dies right after
  the commit has already recorded the decision; one that dies before it
  recorded neither. A failing handler is logged and rolled back to its
  savepoint; the change itself still commits.
- ``subscribe``: the handler only tells someone (live screens). It runs once
  the transaction commits, so it never shows data that was rolled back, and
  may be lost with the process: the next update corrects the screen.
"""

from __future__ import annotations

import logging
import os
import signal
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PointsIngested:
    run_id: int
    project_id: int
    # The points actually stored, as (series id, Point) sorted by series and step;
    # ``keys`` names the series. Kept as ingest built them: a 10,000-point batch
    # is not copied for an event nobody may need in full.
    rows: Sequence[tuple[int, Any]] = field(repr=False)
    keys: dict[int, str] = field(repr=False)
    # The series summaries after the batch, keyed by metric key.
    series: Mapping[str, Mapping[str, Any]] = field(repr=False)

    def points(self) -> Iterator[tuple[str, int, float | None, float]]:
        """(key, step, value, timestamp) of every stored point; value None is NaN."""
        keys = self.keys
        for series_id, point in self.rows:
            yield keys[series_id], point.step, point.value, point.timestamp


@dataclass(frozen=True)
class MediaLogged:
    run_id: int
    project_id: int
    # {key: {"kind": "image", "steps": [300, 400]}} of the items stored.
    media: Mapping[str, Mapping[str, Any]] = field(repr=False)


@dataclass(frozen=True)
class ConsoleAppended:
    run_id: int
    project_id: int
    lines: Sequence[Any] = field(repr=False)  # tracking.console.Line, in order


@dataclass(frozen=True)
class RunStatusChanged:
    run_id: int
    project_id: int
    old: str
    new: str


@dataclass(frozen=True)
class RunArtifactsChanged:
    """The run's artifacts changed: a version it logged was committed, it used a version,
    or an MLflow artifact file of it was stored or deleted."""

    run_id: int
    project_id: int


@dataclass(frozen=True)
class RunCreated:
    run_id: int
    project_id: int


@dataclass(frozen=True)
class SdkAlertRaised:
    run_id: int
    project_id: int
    alert_id: int


@dataclass(frozen=True)
class MembershipRemoved:
    """A user left a team: what they could read through it is no longer theirs."""

    team_id: int
    user_id: int


Event = (
    PointsIngested
    | MediaLogged
    | ConsoleAppended
    | RunStatusChanged
    | RunArtifactsChanged
    | RunCreated
    | SdkAlertRaised
    | MembershipRemoved
)
Handler = Callable[[Any], None]

_handlers: dict[type, list[Handler]] = defaultdict(list)  # after commit
_deciders: dict[type, list[Handler]] = defaultdict(list)  # inside the transaction


def subscribe(event_type: type, handler: Handler) -> None:
    """Call ``handler`` once the publishing transaction has committed."""
    if handler not in _handlers[event_type]:
        _handlers[event_type].append(handler)


def decide_with(event_type: type, handler: Handler) -> None:
    """Call ``handler`` inside the publishing transaction: its writes commit with the change."""
    if handler not in _deciders[event_type]:
        _deciders[event_type].append(handler)


def unsubscribe(event_type: type, handler: Handler) -> None:
    for registry in (_handlers, _deciders):
        if handler in registry[event_type]:
            registry[event_type].remove(handler)


def has_subscribers(event_type: type) -> bool:
    """Lets a hot path skip building an event nobody listens to."""
    return bool(_handlers[event_type] or _deciders[event_type]) and not _quiet.get()


_quiet: ContextVar[bool] = ContextVar("quiet_events", default=False)


@contextmanager
def quiet() -> Iterator[None]:
    """Publish nothing inside the block: copying history (an import) is not news.

    An imported failed run must not page anyone, and nobody watches a run live
    while it is being copied.
    """
    token = _quiet.set(True)
    try:
        yield
    finally:
        _quiet.reset(token)


def publish(event: Event) -> None:
    """Decide on ``event`` now, inside the caller's transaction; tell subscribers after commit.

    Called from inside ``transaction.atomic``: outside one the deciders' writes
    could not be tied to the change, so that is a programming error.
    """
    if _quiet.get():
        return
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError(f"publish({type(event).__name__}) outside a transaction")
    _arm_fault_point(event)
    for handler in list(_deciders[type(event)]):
        _decide(handler, event)
    transaction.on_commit(lambda: dispatch(event))


def _decide(handler: Handler, event: Event) -> None:
    try:
        with transaction.atomic():  # a savepoint: a failing decider undoes only itself
            handler(event)
    except Exception:
        logger.exception("event decider %r failed on %r", handler, event)


def dispatch(event: Event) -> None:
    for handler in list(_handlers[type(event)]):
        try:
            handler(event)
        except Exception:
            logger.exception("event handler %r failed on %r", handler, event)


# --- A fault point for the tests ----------------------------------------------------------

# ``LABBOOK_FAULT_KILL_AFTER_COMMIT=RunStatusChanged`` makes this process SIGKILL
# itself the moment a transaction that published such an event commits, before any
# after-commit work (queueing deliveries, live updates): how the tests prove that a
# decision survives a web process dying there. Unset in every real deployment.
_KILL_AFTER_COMMIT = os.environ.get("LABBOOK_FAULT_KILL_AFTER_COMMIT", "")


def _arm_fault_point(event: Event) -> None:
    if _KILL_AFTER_COMMIT and type(event).__name__ == _KILL_AFTER_COMMIT:
        transaction.on_commit(lambda: os.kill(os.getpid(), signal.SIGKILL))
