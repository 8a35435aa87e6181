"""Parameter importance: how much of a metric's spread across runs one config key explains.

For one summary metric and one config key, over the runs that have both:

- **importance** is epsilon-squared (ε²), the share of the metric's variance between the
  groups of runs that share a value of the key, corrected for the number of groups:
  ``(SS_between - (k - 1) * SS_within / (n - k)) / SS_total``, clipped to 0..1. A numeric
  key with more than ``BINS`` distinct values is cut into ``BINS`` groups of about equal
  size (by rank), so a key that gives every run its own value cannot explain everything
  by chance, and a non-monotonic effect (a learning rate best in the middle) still shows.
- **correlation** is Pearson's r between the key and the metric, for numeric keys: its
  sign says which way the metric moves as the key grows.

Both are plain statistics on the runs at hand, computed without a model: with a few dozen
runs they are a guide to what to try next, not a proof. Pure functions, no Django.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

BINS = 5
MIN_RUNS = 3  # fewer runs say nothing about a key


@dataclass(frozen=True)
class Importance:
    key: str
    runs: int  # runs with both the key and the metric
    importance: float | None  # epsilon-squared, 0..1; None when it cannot be computed
    correlation: float | None  # Pearson's r, -1..1; None for a non-numeric key


def of_key(key: str, xs: Sequence[float | str], ys: Sequence[float]) -> Importance:
    """The importance of ``key`` whose values over the runs are ``xs``, the metric's ``ys``."""
    numeric = all(isinstance(x, float) for x in xs)
    if len(xs) < MIN_RUNS:
        return Importance(key, len(xs), None, None)
    labels = _bins([float(x) for x in xs]) if numeric else [str(x) for x in xs]
    correlation = pearson([float(x) for x in xs], ys) if numeric else None
    return Importance(key, len(xs), epsilon_squared(labels, ys), correlation)


def _bins(xs: list[float]) -> list[str]:
    """Each value's group: itself while there are at most ``BINS`` values, else its rank's
    fifth (equal values always share a group)."""
    distinct = sorted(set(xs))
    if len(distinct) <= BINS:
        return [repr(x) for x in xs]
    rank = {value: index for index, value in enumerate(distinct)}
    return [str(rank[x] * BINS // len(distinct)) for x in xs]


def epsilon_squared(labels: Sequence[str], ys: Sequence[float]) -> float | None:
    n = len(ys)
    groups: dict[str, list[float]] = {}
    for label, y in zip(labels, ys, strict=True):
        groups.setdefault(label, []).append(y)
    k = len(groups)
    if k < 2 or n <= k:
        return None  # one group explains nothing; a run per group leaves no error term
    mean = math.fsum(ys) / n
    total = math.fsum((y - mean) ** 2 for y in ys)
    if total == 0:
        return None  # the metric does not vary
    within = math.fsum(
        (y - group_mean) ** 2
        for group in groups.values()
        for group_mean in (math.fsum(group) / len(group),)
        for y in group
    )
    between = total - within
    value = (between - (k - 1) * within / (n - k)) / total
    return min(max(value, 0.0), 1.0)


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    n = len(xs)
    if n < MIN_RUNS:
        return None
    mx, my = math.fsum(xs) / n, math.fsum(ys) / n
    sxx = math.fsum((x - mx) ** 2 for x in xs)
    syy = math.fsum((y - my) ** 2 for y in ys)
    if sxx == 0 or syy == 0:
        return None
    sxy = math.fsum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    return max(-1.0, min(1.0, sxy / math.sqrt(sxx * syy)))
