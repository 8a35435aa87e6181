"""A metric alert's small chart around its firing point: a PNG drawn on the server with Pillow.

Messages carry it (inline in emails, by URL in Slack) and the alert page shows
it, so whoever is paged sees the curve without opening anything: the series
from its first step to a third past the firing step (the firing point sits at
3/4 of the width; a resolved alert's window reaches its resolving step too),
read downsampled by ``tracking.history.metric_history`` (min, max and NaN of
each bucket kept, so a spike or a divergence never vanishes), drawn in the
run's colour with the rule's threshold and a marker at the firing step.

The cost is bounded whatever the series: ``MAX_POINTS`` points read from the
rollups, one small image drawn. Renders are cached by alert and state (an
unfurl storm, a page reloaded, one message to many destinations draw once).

Slack fetches images from a public URL, so ``chart_url`` signs the alert's id
(its own salt, valid ``URL_SECONDS``): the token is the capability, and it
shows this alert's chart and nothing else.
"""

from __future__ import annotations

import functools
import io
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.core import signing
from django.core.cache import cache
from django.urls import reverse
from PIL import Image, ImageDraw, ImageFont

from alerts.models import Alert, AlertState, Trigger
from alerts.windowed import margin
from kernel.charts import run_color
from kernel.http import absolute_url
from tracking.history import metric_history
from tracking.models import MetricSeries

logger = logging.getLogger(__name__)

WIDTH, HEIGHT = 600, 200  # as shown, in CSS pixels
SCALE = 2  # drawn at twice that: crisp on high-density screens, shown at WIDTH x HEIGHT
MAX_POINTS = 300  # the line's point budget: bounds the read and the drawing
AFTER_SHARE = 1 / 3  # steps shown past the firing step, as a share of those before it
MIN_AFTER_STEPS = 4  # a series firing at its first point still shows a few steps after it
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 64, 16, 28, 24
FONT_SIZE = 11
LINE_WIDTH = 2
MARKER_RADIUS = 4
DASH = 6
BACKGROUND = "#ffffff"
INK = "#333333"  # title and labels
GRID = "#e3e3e3"
THRESHOLD = "#7f7f7f"
MARKER = "#d0021b"  # not one of the run colours (kernel.charts.COLORS)

URL_SECONDS = 7 * 86400  # how long a chart link in a message keeps working
SALT = "alerts.snapshot.chart-link"
CACHE_SECONDS = 300  # a firing alert's chart catches up with new points after this
NO_CHART = b""  # cached for "this alert has no chart"


# --- Which alerts have a chart ----------------------------------------------------------------


def charted_point(values: dict[str, Any]) -> tuple[str, int] | None:
    """The (key, step) a metric trigger recorded when it fired; None for other alerts."""
    key, step = values.get("key"), values.get("step")
    if isinstance(key, str) and key and isinstance(step, int) and not isinstance(step, bool):
        return key, step
    return None


def has_chart(alert: Alert) -> bool:
    return charted_point(alert.values) is not None


@dataclass(frozen=True)
class Window:
    """The steps a chart shows, and where its alert fired."""

    key: str
    step: int  # the firing step
    lo: int
    hi: int


def window_for(alert: Alert, series: MetricSeries) -> Window | None:
    point = charted_point(alert.values)
    if point is None or series.first_step is None:
        return None
    key, step = point
    lo = min(series.first_step, step)
    hi = step + max(math.ceil((step - lo) * AFTER_SHARE), MIN_AFTER_STEPS)
    if series.last_step is not None:  # no empty room past the newest point
        hi = max(min(hi, series.last_step), step)
    resolved = alert.values.get("resolved_with")
    if alert.state == AlertState.RESOLVED and isinstance(resolved, dict):
        at = resolved.get("step")
        if isinstance(at, int) and not isinstance(at, bool):
            hi = max(hi, at)
    return Window(key, step, lo, hi)


def chart_alt(alert: Alert) -> str:
    """Words for the image: the key, the steps it shows and the firing step."""
    point = charted_point(alert.values)
    if point is None:
        return ""
    key, step = point
    series = _series(alert, key)
    window = window_for(alert, series) if series is not None else None
    if window is None:
        return f"Chart of {key} around step {step}, where the alert fired"
    return f"Chart of {key} from step {window.lo} to {window.hi}; the alert fired at step {step}"


# --- Reading and drawing ----------------------------------------------------------------------


def _series(alert: Alert, key: str) -> MetricSeries | None:
    if alert.run_id is None:
        return None
    return MetricSeries.objects.filter(run_id=alert.run_id, key=key).first()


def chart_png(alert: Alert) -> bytes | None:
    """The chart of a metric alert, drawn now; None for other alerts or an empty series."""
    point = charted_point(alert.values)
    if point is None:
        return None
    series = _series(alert, point[0])
    window = window_for(alert, series) if series is not None else None
    if series is None or window is None:
        return None
    history = metric_history(series, max_points=MAX_POINTS, step_min=window.lo, step_max=window.hi)
    values = [
        v if isinstance(v, int | float) and math.isfinite(v) else None for v in history.values
    ]
    return draw(
        window,
        list(zip(history.steps, values, strict=True)),
        color=run_color(alert.run.project_index if alert.run is not None else 0),
        threshold=threshold_of(alert),
        fired_value=fired_value(alert),
    )


def threshold_of(alert: Alert) -> float | None:
    """The line the rule compares with: its threshold (for a window, the threshold of the
    window's aggregate), or for a change the best value's margin."""
    params = alert.rule.params
    if alert.rule.trigger in (Trigger.METRIC_THRESHOLD, Trigger.METRIC_WINDOW):
        value = params.get("value")
        return float(value) if _number(value) else None
    best, percent = alert.values.get("best"), params.get("percent")
    if alert.rule.trigger == Trigger.METRIC_CHANGE and _number(best) and _number(percent):
        allowed = margin(float(best), float(percent))
        return float(best) + allowed if params.get("mode") == "min" else float(best) - allowed
    return None


def fired_value(alert: Alert) -> float | None:
    value = alert.values.get("value")
    return float(value) if _number(value) else None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


Point = tuple[int, float | None]  # (step, value); None is NaN or infinite: a gap


@dataclass(frozen=True)
class Frame:
    """Maps steps and values to pixels of the drawn (scaled) image."""

    lo: int
    hi: int
    low: float
    high: float

    @property
    def left(self) -> int:
        return MARGIN_LEFT * SCALE

    @property
    def right(self) -> int:
        return (WIDTH - MARGIN_RIGHT) * SCALE

    @property
    def top(self) -> int:
        return MARGIN_TOP * SCALE

    @property
    def bottom(self) -> int:
        return (HEIGHT - MARGIN_BOTTOM) * SCALE

    def x(self, step: int) -> float:
        return self.left + (step - self.lo) / max(self.hi - self.lo, 1) * (self.right - self.left)

    def y(self, value: float) -> float:
        share = (value - self.low) / (self.high - self.low)
        if not math.isfinite(share):  # values near the float limits: their span overflows
            share = 0.5
        return self.bottom - share * (self.bottom - self.top)


def y_range(values: Iterable[float]) -> tuple[float, float]:
    """Lowest and highest value shown: the data's (and the threshold's), a little apart."""
    finite = list(values)
    if not finite:
        return 0.0, 1.0
    low, high = min(finite), max(finite)
    if high - low <= abs(high) * 1e-12:
        pad = abs(high) * 0.1 or 1.0
        return low - pad, high + pad
    return low, high


def draw(
    window: Window,
    points: Sequence[Point],
    *,
    color: str,
    threshold: float | None = None,
    fired_value: float | None = None,
) -> bytes:
    """The PNG: title, min/max and first/last step labels, the line with NaN gaps, the
    threshold dashed, the firing step marked. The same input gives the same bytes."""
    shown = [value for _step, value in points if value is not None]
    extra = [value for value in (threshold, fired_value) if value is not None]
    low, high = y_range([*shown, *extra])
    frame = Frame(window.lo, window.hi, low, high)
    image = Image.new("RGB", (WIDTH * SCALE, HEIGHT * SCALE), BACKGROUND)
    canvas = ImageDraw.Draw(image)
    font = _font()
    _frame(canvas, frame, font, title=window.key)
    if threshold is not None:
        _dashed(canvas, frame.left, frame.right, frame.y(threshold), THRESHOLD)
    for run in _runs(points):
        _line(canvas, [(frame.x(step), frame.y(value)) for step, value in run], color)
    _marker(canvas, frame, window.step, _marker_value(points, window.step, fired_value))
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=False)
    return out.getvalue()


def _runs(points: Sequence[Point]) -> list[list[tuple[int, float]]]:
    """Stretches of finite points: a NaN or an infinity breaks the line."""
    runs: list[list[tuple[int, float]]] = [[]]
    for step, value in points:
        if value is None:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append((step, value))
    return [run for run in runs if run]


def _marker_value(points: Sequence[Point], step: int, fired: float | None) -> float | None:
    """Where the firing point's dot goes: the value the trigger saw, else the point at that
    step; None (no dot, the marker line alone) when it is NaN."""
    if fired is not None:
        return fired
    at_step = [value for s, value in points if s == step]
    return at_step[-1] if at_step else None


def _line(canvas: ImageDraw.ImageDraw, xy: list[tuple[float, float]], color: str) -> None:
    width = LINE_WIDTH * SCALE
    if len(xy) == 1:  # a lone point between gaps is a dot
        (x, y), r = xy[0], width
        canvas.ellipse((x - r, y - r, x + r, y + r), fill=color)
    else:
        canvas.line(xy, fill=color, width=width, joint="curve")


def _dashed(canvas: ImageDraw.ImageDraw, x0: float, x1: float, y: float, color: str) -> None:
    dash = DASH * SCALE
    x = x0
    while x < x1:
        canvas.line([(x, y), (min(x + dash, x1), y)], fill=color, width=SCALE)
        x += 2 * dash


def _marker(canvas: ImageDraw.ImageDraw, frame: Frame, step: int, value: float | None) -> None:
    x = round(frame.x(step))
    canvas.line([(x, frame.top), (x, frame.bottom)], fill=MARKER, width=SCALE)
    if value is not None:
        y, r = frame.y(value), MARKER_RADIUS * SCALE
        canvas.ellipse((x - r, y - r, x + r, y + r), fill=MARKER, outline=BACKGROUND, width=SCALE)


def _frame(
    canvas: ImageDraw.ImageDraw,
    frame: Frame,
    font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
    *,
    title: str,
) -> None:
    """Grid lines at the top and bottom of the plot, the labels, the title."""
    for y in (frame.top, frame.bottom):
        canvas.line([(frame.left, y), (frame.right, y)], fill=GRID, width=SCALE)
    pad = 4 * SCALE
    size = FONT_SIZE * SCALE
    _text(canvas, (frame.left - pad, frame.top - size // 2), _number_label(frame.high), font, "r")
    _text(canvas, (frame.left - pad, frame.bottom - size // 2), _number_label(frame.low), font, "r")
    below = frame.bottom + pad
    _text(canvas, (frame.left, below), f"step {frame.lo}", font, "l")
    _text(canvas, (frame.right, below), f"step {frame.hi}", font, "r")
    room = frame.right - frame.left
    _text(canvas, (frame.left, pad), _fitted(canvas, title, font, room), font, "l")


def _number_label(value: float) -> str:
    return f"{value:.4g}"


def _text(
    canvas: ImageDraw.ImageDraw,
    at: tuple[float, float],
    text: str,
    font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
    align: str,
) -> None:
    """``text`` starting at ``at`` ("l") or ending there ("r"): measured, for any font."""
    x, y = at
    if align == "r":
        x -= canvas.textlength(text, font=font)
    canvas.text((x, y), text, fill=INK, font=font)


def _fitted(
    canvas: ImageDraw.ImageDraw,
    text: str,
    font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
    room: float,
) -> str:
    """``text`` cut with an ellipsis to fit ``room`` pixels (a metric key may be long)."""
    if canvas.textlength(text, font=font) <= room:
        return text
    low, high = 0, len(text)  # the longest prefix that fits, by bisection
    while low < high:
        middle = (low + high + 1) // 2
        if canvas.textlength(text[:middle] + "…", font=font) <= room:
            low = middle
        else:
            high = middle - 1
    return text[:low] + "…"


@functools.cache
def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's own font, no system font needed: scalable on Pillow >= 10.1 built with
    FreeType, else its small bitmap font."""
    try:
        return ImageFont.load_default(size=FONT_SIZE * SCALE)
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()


# --- Cached renders, for pages, links and messages --------------------------------------------


def _cache_key(alert: Alert) -> str:
    return f"alerts:chart:{alert.pk}:{alert.state}"


def cached_chart_png(alert: Alert) -> bytes | None:
    """``chart_png`` through the cache: drawn at most once per alert state and CACHE_SECONDS."""
    key = _cache_key(alert)
    found = cache.get(key)
    if isinstance(found, bytes):
        return found or None
    drawn = chart_png(alert)
    cache.set(key, drawn or NO_CHART, CACHE_SECONDS)
    return drawn


def chart_images(alerts: Iterable[Alert], *, most: int) -> dict[int, bytes]:
    """The charts of the first ``most`` metric alerts, by alert id, for a message.

    A chart that cannot be drawn is left out and logged: it must never hold up the alert.
    """
    images: dict[int, bytes] = {}
    for alert in alerts:
        if len(images) >= most:
            break
        if not has_chart(alert):
            continue
        try:
            png = cached_chart_png(alert)
        except Exception:  # the message goes out without its picture
            logger.exception("could not draw the chart of alert %s", alert.pk)
            continue
        if png:
            images[alert.pk] = png
    return images


# --- Signed links -------------------------------------------------------------------------------


class ChartLinkError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def chart_token(alert: Alert) -> str:
    return signing.dumps(alert.pk, salt=SALT)


def chart_url(alert: Alert) -> str:
    """The alert's chart for whoever holds this link (Slack, an email client): absolute,
    valid URL_SECONDS. Empty for an alert without a chart."""
    if not has_chart(alert):
        return ""
    return absolute_url(reverse("alert-chart-link", kwargs={"token": chart_token(alert)}))


def alert_id_for(token: str) -> int:
    """The alert a link's token names; ChartLinkError 410 once expired, 404 if not ours."""
    try:
        alert_id = signing.loads(token, salt=SALT, max_age=URL_SECONDS)
    except signing.SignatureExpired:
        raise ChartLinkError(410, "This chart link has expired.") from None
    except signing.BadSignature:
        raise ChartLinkError(404, "No such chart.") from None
    if not isinstance(alert_id, int) or isinstance(alert_id, bool):
        raise ChartLinkError(404, "No such chart.")
    return alert_id


def linked_chart(token: str) -> bytes:
    """The PNG a link shows; ChartLinkError when the link or the chart is not there."""
    alert = Alert.objects.select_related("rule", "run").filter(pk=alert_id_for(token)).first()
    png = cached_chart_png(alert) if alert is not None else None
    if png is None:
        raise ChartLinkError(404, "No such chart.")
    return png
