"""The newest stored points of watched series, kept in this process between batches.

Windowed rules read the newest points stored before each batch (up to 1,000 a
key for a time window): most of what a rule-heavy project costs its ingest.
A process that judged a series' last batch already holds those points, plus
the batch it just judged, so it keeps them and reads the database only when
they may be wrong.

They are right exactly when the series grew by this batch alone since: the
series' point count after the batch (the ingest's own summary, read inside
its transaction) is the count kept plus the batch's new points, and the batch
comes after the last point kept. Another process's batch, or a batch whose
transaction rolled back after it was judged, breaks the first, and the next
batch reads again; a batch stored before the end of the series is not kept
at all (what comes after it is not in hand). Kept for the most recently
judged series, up to a number of points in all; thread-safe (the ASGI server
runs ingest in a thread pool).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

Row = tuple[int, float | None, float]  # a stored point's (step, value, timestamp)
Place = tuple[int, float, int]  # a point's place in its series: (step, timestamp, seq)

MAX_POINTS = 200_000  # in all, across series: about 20 MB of tuples


@dataclass(frozen=True)
class Kept:
    rows: list[Row]  # the newest points, oldest first
    count: int  # the series' point count they go with
    last: Place  # the place of the last of them
    whole: bool  # they are every point of the series


_kept: OrderedDict[int, Kept] = OrderedDict()
_total = 0
_lock = threading.Lock()


def before(
    series_id: int,
    *,
    first: Place,
    count_before: int,
    limit: int,
    read: Callable[[int], list[Row]],
) -> list[Row]:
    """The newest ``limit`` points of the series before ``first``, oldest first: fewer only
    when that is all of them.

    ``count_before``: the series' point count without the batch being judged.
    ``read(limit)`` reads them from the database when what is kept may be wrong.
    """
    with _lock:
        kept = _kept.get(series_id)
        if kept is not None:
            _kept.move_to_end(series_id)
    right = kept is not None and kept.count == count_before and kept.last < first
    if right and kept is not None and (len(kept.rows) >= limit or kept.whole):
        return kept.rows[-limit:]
    return read(limit)


def keep(
    series_id: int, *, rows: list[Row], batch: list[Row], count: int, last: Place, limit: int
) -> None:
    """After reading ``rows`` (:func:`before`, asked for ``limit``) for a batch: keep the newest
    ``limit`` of them and the batch's points, with the series' count and last place after it."""
    global _total
    merged = [*rows, *batch]
    kept = Kept(merged[-limit:], count, last, whole=len(rows) < limit and len(merged) <= limit)
    with _lock:
        old = _kept.pop(series_id, None)
        _total -= len(old.rows) if old is not None else 0
        _kept[series_id] = kept
        _total += len(kept.rows)
        while _total > MAX_POINTS and len(_kept) > 1:
            _gone, dropped = _kept.popitem(last=False)
            _total -= len(dropped.rows)


def drop(series_id: int) -> None:
    """Forget the series: its batch was stored before its end, so what follows is unknown."""
    global _total
    with _lock:
        old = _kept.pop(series_id, None)
        _total -= len(old.rows) if old is not None else 0


def forget() -> None:
    """Drop everything kept (tests, and a process that wants its memory back)."""
    global _total
    with _lock:
        _kept.clear()
        _total = 0
