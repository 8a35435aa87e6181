"""The arithmetic of the windowed metric triggers: one verdict per point, in one pass.

``metric_window``, ``metric_change`` and ``metric_zscore`` look at a stretch of
a series (the newest points stored before a batch, then the batch) and say of
each point whether it is *beyond* (True), *within* (False) or decides nothing
(None): a NaN or infinite point, or a point whose window is not full yet.
:func:`streak` then counts the beyond points at the end, the same debounce as
``metric_threshold``'s ``for_points``.

Windows count logged points, in the points' one order (step, timestamp, seq);
non-finite values take a place in a window but are left out of its mean,
min, max and deviation (``metric_nan`` is the trigger for them). Counting
places rather than finite values is what lets a batch read a bounded number of
stored points, however long a run has been logging NaN.

Nothing here touches the database: :mod:`alerts.evaluation` reads the points
and fires. Each function runs in time linear in the points given (a sliding
:class:`Window` with running sums and monotonic deques), never points times window.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

# The most points one window holds; a ``window_seconds`` window is cut to the newest this many.
MAX_WINDOW_POINTS = 1000


class Seen(NamedTuple):
    """One stored point, in the points' order; value None is NaN."""

    step: int
    value: float | None
    timestamp: float


@dataclass(frozen=True)
class Verdict:
    """What one point decided, and the number the alert reports with it."""

    beyond: bool | None  # None: decides nothing
    figure: float | None = None  # the aggregate, the best, or the z-score


def finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


class Window:
    """The last points of a series: their mean, deviation, min and max in O(1) amortized.

    Sums are kept of the values less a shift, re-summed exactly once a
    window's worth of points has gone through: a long run does not pile up
    rounding, and a window of equal values has a deviation of exactly 0.
    """

    def __init__(self) -> None:
        self.places: deque[tuple[int, float | None, float]] = deque()  # (position, value, time)
        self.lows: deque[tuple[int, float]] = deque()  # increasing values: the min first
        self.highs: deque[tuple[int, float]] = deque()  # decreasing values: the max first
        self.count = 0  # finite values in the window
        self.shift = 0.0
        self.total = 0.0  # of value - shift
        self.squares = 0.0
        self.since_resum = 0

    def __len__(self) -> int:
        return len(self.places)

    @property
    def first_position(self) -> int:
        return self.places[0][0]

    @property
    def first_time(self) -> float:
        return self.places[0][2]

    def push(self, position: int, point: Seen) -> None:
        value = point.value
        self.places.append((position, value, point.timestamp))
        if value is None or not math.isfinite(value):
            return
        if self.count == 0:
            self.shift, self.total, self.squares = value, 0.0, 0.0
        self.count += 1
        self.total += value - self.shift
        self.squares += (value - self.shift) ** 2
        while self.lows and self.lows[-1][1] >= value:
            self.lows.pop()
        self.lows.append((position, value))
        while self.highs and self.highs[-1][1] <= value:
            self.highs.pop()
        self.highs.append((position, value))
        self.since_resum += 1
        if self.since_resum > max(len(self.places), 16):
            self._resum()

    def pop(self) -> None:
        position, value, _time = self.places.popleft()
        if value is None or not math.isfinite(value):
            return
        self.count -= 1
        self.total -= value - self.shift
        self.squares -= (value - self.shift) ** 2
        if self.lows and self.lows[0][0] == position:
            self.lows.popleft()
        if self.highs and self.highs[0][0] == position:
            self.highs.popleft()

    def _resum(self) -> None:
        values = [v for _p, v, _t in self.places if v is not None and math.isfinite(v)]
        self.shift = math.fsum(values) / len(values)
        self.total = math.fsum(v - self.shift for v in values)
        self.squares = math.fsum((v - self.shift) ** 2 for v in values)
        self.since_resum = 0

    def mean(self) -> float:
        return self.shift + self.total / self.count

    def min(self) -> float:
        return self.lows[0][1]

    def max(self) -> float:
        return self.highs[0][1]

    def std(self) -> float:
        """The population standard deviation; exactly 0 when every value is the same."""
        if self.count < 2 or self.min() == self.max():
            return 0.0
        mean = self.total / self.count
        return math.sqrt(max(self.squares / self.count - mean * mean, 0.0))

    def aggregate(self, agg: str) -> float:
        return {"mean": self.mean, "min": self.min, "max": self.max}[agg]()


def streak(verdicts: Sequence[Verdict]) -> tuple[int, int | None]:
    """How many deciding points at the end are beyond in a row, and where the latest one is.

    Points that decide nothing neither extend nor break the streak: a NaN
    between two points beyond the threshold is not a recovery.
    """
    count, latest = 0, None
    for index in range(len(verdicts) - 1, -1, -1):
        beyond = verdicts[index].beyond
        if beyond is None:
            continue
        if latest is None:
            latest = index
        if not beyond:
            break
        count += 1
    return count, latest


# --- metric_window ---------------------------------------------------------------------------


def window_size(params: dict[str, Any]) -> int:
    """How many points a window may hold: window_points, or the cap of a time window."""
    return params.get("window_points") or MAX_WINDOW_POINTS


def window_verdicts(
    points: Sequence[Seen], params: dict[str, Any], beyond: Callable[[float], bool], *, whole: bool
) -> list[Verdict]:
    """Each point's verdict on the aggregate of the window ending at it.

    ``whole``: ``points`` start at the series' first point. Otherwise the
    earliest windows may be cut off by the read; they decide nothing.
    A ``window_points`` window decides once it holds that many points; a
    ``window_seconds`` window holds the points less than that many seconds
    older than its last one (at most :data:`MAX_WINDOW_POINTS`).
    """
    size, seconds, agg = window_size(params), params.get("window_seconds"), params["agg"]
    window = Window()
    verdicts = []
    for position, point in enumerate(points):
        window.push(position, point)
        while len(window) > size or (seconds and window.first_time <= point.timestamp - seconds):
            window.pop()
        cut_off = not whole and window.first_position == 0
        full = len(window) == size if not seconds else not cut_off
        if not finite(point.value) or not full or window.count == 0:
            verdicts.append(Verdict(None))
            continue
        figure = window.aggregate(agg)
        verdicts.append(Verdict(beyond(figure), figure) if math.isfinite(figure) else Verdict(None))
    return verdicts


# --- metric_change ---------------------------------------------------------------------------


def margin(best: float, percent: float) -> float:
    """How far from ``best`` a value may be: ``percent`` of its size; 0 when the best is 0."""
    return abs(best) * percent / 100


def change_verdicts(points: Sequence[Seen], params: dict[str, Any], best: float) -> list[Verdict]:
    """Each point against ``best``: beyond when worse than it by more than the margin.

    Lower is better with mode min: worse is above ``best + margin``. The
    series' best so far is the right best for every point of a trailing
    streak: the point that set it is never beyond it, so the streak stops
    there, and every point after it had that same best.
    """
    allowed = margin(best, params["percent"])
    worse = params["mode"] == "min"
    verdicts = []
    for point in points:
        value = point.value
        if value is None or not math.isfinite(value):
            verdicts.append(Verdict(None))
        elif worse:
            verdicts.append(Verdict(value > best + allowed, best))
        else:
            verdicts.append(Verdict(value < best - allowed, best))
    return verdicts


def change_percent(value: float, best: float) -> float | None:
    """How much worse than ``best`` in percent of it; None when the best is 0."""
    return None if best == 0 else abs(value - best) / abs(best) * 100


# --- metric_zscore ---------------------------------------------------------------------------


def zscore_verdicts(points: Sequence[Seen], params: dict[str, Any]) -> list[Verdict]:
    """Each point's z against the ``window_points`` points before it.

    A point decides once that many points come before it (and at least one of
    them is finite); a window of equal values (deviation 0) makes no outlier.
    """
    size, limit, direction = params["window_points"], params["z"], params["direction"]
    window = Window()
    verdicts = []
    for position, point in enumerate(points):
        value = point.value
        if len(window) < size or window.count == 0 or value is None or not math.isfinite(value):
            verdicts.append(Verdict(None))
        else:
            std = window.std()
            z = 0.0 if std == 0 else (value - window.mean()) / std
            decided = outlier(z, limit, direction) if math.isfinite(z) else None
            verdicts.append(Verdict(decided, z))
        window.push(position, point)
        if len(window) > size:
            window.pop()
    return verdicts


def outlier(z: float, limit: float, direction: str) -> bool:
    if direction == "above":
        return z > limit
    if direction == "below":
        return z < -limit
    return abs(z) > limit
