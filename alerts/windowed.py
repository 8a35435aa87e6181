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

A batch rarely needs every verdict: only those from its last point back to
where the outcome is known (the latest deciding point within, or enough
beyond in a row). A :class:`Judge` computes those one at a time from the end,
each window with C-speed builtins over a list slice, and gives up past a
bounded amount of work; the caller then slides over all points as above.
"""

from __future__ import annotations

import math
import operator
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import islice, repeat
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


NOTHING = Verdict(None)


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
    judge = ChangeJudge(points, params, best)
    return [judge.verdict(index) for index in range(len(points))]


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


# --- Verdicts from the end -------------------------------------------------------------------

# A lazy verdict touches its window's values at C speed; once the values touched pass this many
# per point given, sliding the Window over every point (a few Python steps each) is cheaper.
LAZY_WORK_PER_POINT = 64
LAZY_BATCH = 64  # a batch of more points is judged in one slide when every point must be


@dataclass(frozen=True)
class Trail:
    """The end of the verdicts: what :func:`streak` says, and the latest deciding verdict."""

    count: int
    latest: int | None
    verdict: Verdict | None
    through: bool = False  # the streak goes back to the first point given: it may go on before


class Judge:
    """One rule's verdicts on its points, computed one at a time from the last point backward.

    :meth:`trail` stops as soon as the outcome is known and counts the values
    it touched (``work``); :meth:`slide` is every verdict, in one linear pass.
    Both give the same verdicts.
    """

    length = 0
    work = 0
    lazy = True  # False: only the slide knows the verdicts (a time window out of time order)

    def point(self, index: int) -> Seen:
        raise NotImplementedError

    def verdict(self, index: int) -> Verdict:
        raise NotImplementedError

    def slide(self) -> list[Verdict]:
        raise NotImplementedError

    def trail(self, start: int, enough: int) -> Trail | None:
        """:func:`streak` read from the end, as far back as needed; None past the work budget.

        Stops at the latest deciding point when it is within, once ``enough``
        beyond points are counted, and when no point from ``start`` on decides
        (``latest`` is then None: the batch changes nothing). The count is
        exact when it is below ``enough``.
        """
        if not self.lazy:
            return None
        budget = self.work + LAZY_WORK_PER_POINT * self.length
        count, latest, last = 0, None, None
        for index in range(self.length - 1, -1, -1):
            if latest is None and index < start:
                break
            verdict = self.verdict(index)
            self.work += 1
            if self.work > budget:
                return None
            if verdict.beyond is None:
                continue
            if latest is None:
                latest, last = index, verdict
            if not verdict.beyond:
                break
            count += 1
            if count >= enough:
                break
        else:
            return Trail(count, latest, last, through=True)
        return Trail(count, latest, last)

    def inner_run(self, start: int, needed: int) -> tuple[int, Verdict] | None:
        """The first point from ``start`` on that ends ``needed`` deciding points in a row
        beyond (the run may begin before ``start``), with its verdict; None when none does.

        A few points are judged one by one; a long batch in one linear slide.
        """
        if not self.lazy or self.length - start > LAZY_BATCH:
            verdicts = self.slide()
            judged: Callable[[int], Verdict] = verdicts.__getitem__
        else:
            judged = self.verdict
        run = 0
        for index in range(start - 1, -1, -1):  # the run reaching into the batch
            if run >= needed - 1:
                break
            before = judged(index)
            if before.beyond is None:
                continue
            if not before.beyond:
                break
            run += 1
        for index in range(start, self.length):
            verdict = judged(index)
            if verdict.beyond is None:
                continue
            run = run + 1 if verdict.beyond else 0
            if run >= needed:
                return index, verdict
        return None


class ChangeJudge(Judge):
    """``metric_change``: each point against ``best`` (see :func:`change_verdicts`)."""

    def __init__(self, points: Sequence[Seen], params: dict[str, Any], best: float) -> None:
        self.points, self.best, self.length = points, best, len(points)
        self.allowed = margin(best, params["percent"])
        self.lower_is_better = params["mode"] == "min"

    def point(self, index: int) -> Seen:
        return self.points[index]

    def verdict(self, index: int) -> Verdict:
        value = self.points[index].value
        if value is None or not math.isfinite(value):
            return NOTHING
        if self.lower_is_better:
            return Verdict(value > self.best + self.allowed, self.best)
        return Verdict(value < self.best - self.allowed, self.best)

    def slide(self) -> list[Verdict]:
        return [self.verdict(index) for index in range(self.length)]


class Stretch:
    """A key's points as a batch sees them (the newest stored before it, then the batch).

    Their values (NaN for None) and times are kept as plain lists once for
    all the key's rules, for the judges to slice; a rule that reads fewer
    stored points judges a tail of the stretch (``offset``). ``rows`` are
    (step, value, timestamp) tuples as read, oldest first: :class:`Seen` is
    made of them only for the points a decision names, or for a slide.
    """

    def __init__(self, rows: Sequence[tuple[int, float | None, float]]) -> None:
        self.rows = rows
        self.values = [math.nan if value is None else value for _step, value, _time in rows]
        self.times = [time for _step, _value, time in rows]

    def __len__(self) -> int:
        return len(self.rows)

    def point(self, index: int) -> Seen:
        return Seen(*self.rows[index])

    @cached_property
    def points(self) -> list[Seen]:
        return [Seen(*row) for row in self.rows]

    @cached_property
    def finite(self) -> bool:
        """Every value is finite: a window's values are then its slice as it is."""
        return all(map(math.isfinite, self.values))

    @cached_property
    def in_time_order(self) -> bool:
        """The timestamps never go back: a time window then starts where a bisection says."""
        return all(map(operator.le, self.times, islice(self.times, 1, None)))


class _OnStretch(Judge):
    def __init__(self, stretch: Stretch, offset: int, params: dict[str, Any]) -> None:
        self.stretch, self.offset, self.params = stretch, offset, params
        self.length = len(stretch) - offset

    @property
    def points(self) -> Sequence[Seen]:
        return self.stretch.points[self.offset :]

    def point(self, index: int) -> Seen:
        return self.stretch.point(self.offset + index)

    def value(self, index: int) -> float:
        return self.stretch.values[self.offset + index]

    def finite_between(self, low: int, high: int) -> list[float]:
        """The finite values of points ``low`` to ``high - 1``: one slice, filtered in C."""
        self.work += high - low
        values = self.stretch.values[self.offset + low : self.offset + high]
        return values if self.stretch.finite else list(filter(math.isfinite, values))


class WindowJudge(_OnStretch):
    """``metric_window``: the verdicts of :func:`window_verdicts`, one at a time."""

    def __init__(
        self,
        stretch: Stretch,
        offset: int,
        params: dict[str, Any],
        beyond: Callable[[float], bool],
        *,
        whole: bool,
    ) -> None:
        super().__init__(stretch, offset, params)
        self.beyond, self.whole = beyond, whole
        self.size, self.seconds = window_size(params), params.get("window_seconds")
        self.lazy = not self.seconds or stretch.in_time_order

    def inner_run(self, start: int, needed: int) -> tuple[int, Verdict] | None:
        """As :meth:`Judge.inner_run`, after one bound: a window's mean, min or max lies
        between the lowest and highest value it holds, so when neither the lowest nor the
        highest value the batch's windows reach is beyond, no verdict is (the usual batch)."""
        reach = self.finite_between(max(start - self.size + 1, 0), self.length)
        if not reach or not (self.beyond(max(reach)) or self.beyond(min(reach))):
            return None
        return super().inner_run(start, needed)

    def first(self, index: int) -> int:
        """Where the window ending at ``index`` starts, as the sliding Window would have it."""
        first = max(0, index - self.size + 1)
        if self.seconds:
            times, offset = self.stretch.times, self.offset
            recent = bisect_right(
                times, times[offset + index] - self.seconds, offset, offset + index + 1
            )
            first = max(first, recent - offset)  # the first point less than ``seconds`` older
        return first

    def verdict(self, index: int) -> Verdict:
        if not math.isfinite(self.value(index)):
            return NOTHING
        first = self.first(index)
        cut_off = not self.whole and first == 0
        if cut_off if self.seconds else index - first + 1 < self.size:  # not full
            return NOTHING
        figure = aggregate(self.finite_between(first, index + 1), self.params["agg"])
        return Verdict(self.beyond(figure), figure) if math.isfinite(figure) else NOTHING

    def slide(self) -> list[Verdict]:
        return window_verdicts(self.points, self.params, self.beyond, whole=self.whole)


class ZscoreJudge(_OnStretch):
    """``metric_zscore``: the verdicts of :func:`zscore_verdicts`, one at a time."""

    def verdict(self, index: int) -> Verdict:
        size = self.params["window_points"]
        value = self.value(index)
        if index < size or not math.isfinite(value):
            return NOTHING
        window = self.finite_between(index - size, index)
        if not window:
            return NOTHING
        mean, std = spread(window)
        z = 0.0 if std == 0 else (value - mean) / std
        limit, direction = self.params["z"], self.params["direction"]
        return Verdict(outlier(z, limit, direction) if math.isfinite(z) else None, z)

    def slide(self) -> list[Verdict]:
        return zscore_verdicts(self.points, self.params)


def mean(values: list[float]) -> float:
    """The mean of finite values, about the first one: equal values give exactly that value."""
    shift = values[0]
    try:
        return shift + math.fsum(map(operator.sub, values, repeat(shift))) / len(values)
    except (OverflowError, ValueError):  # beyond the floats: decides nothing
        return math.inf


def spread(values: list[float]) -> tuple[float, float]:
    """The mean and population deviation of finite values; the deviation of equal values is 0."""
    middle = mean(values)
    if len(values) < 2 or min(values) == max(values):
        return middle, 0.0
    deviations = list(map(operator.sub, values, repeat(middle)))
    try:
        return middle, math.sqrt(math.fsum(map(operator.mul, deviations, deviations)) / len(values))
    except (OverflowError, ValueError):
        return middle, math.nan


def aggregate(values: list[float], agg: str) -> float:
    if agg == "min":
        return min(values)
    if agg == "max":
        return max(values)
    return mean(values)
