"""A metric alert's chart: drawn with Pillow, served by a signed link and to members, carried
inline by email (through a real SMTP server) and as an image block to Slack (a real receiver)."""

from __future__ import annotations

import dataclasses
import io
import json
import time
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from PIL import Image

from alerts import delivery, services, snapshot
from alerts.models import Alert, Destination, Notification
from alerts.snapshot import MARKER, SCALE, Frame, Window, y_range
from alerts.transports import slack, webhook
from alerts.transports.base import MAX_CHARTS
from kernel.charts import COLORS, run_color
from tests.alerts.conftest import make_rule
from tests.alerts.messages import alert_info, fired, run_info
from tests.alerts.receiver import Receiver, Reply
from tests.conftest import World
from tests.smtp import Inbox
from tracking import selectors
from tracking import services as tracking_services
from tracking.ingest import Point, metrics_ingest
from tracking.models import Run

pytestmark = pytest.mark.django_db(transaction=True)  # alerts fire after the ingest commits

SIZE = (snapshot.WIDTH * SCALE, snapshot.HEIGHT * SCALE)
LINE = "#1f77b4"
THRESHOLD_RULE = {"key": "loss", "op": ">", "value": 2.0}
BASE_URL = "https://labbook.example"  # a host Slack could fetch from


def rgb(color: str) -> tuple[int, int, int]:
    return tuple(int(color[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def decoded(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    return image.convert("RGB")


def column(image: Image.Image, x: int, color: str) -> int:
    """How many pixels of ``color`` the column ``x`` holds."""
    return sum(image.getpixel((x, y)) == rgb(color) for y in range(image.height))


def columns_with(image: Image.Image, color: str) -> set[int]:
    return {x for x in range(image.width) if column(image, x, color)}


def frame_of(window: Window, values: list[float]) -> Frame:
    return Frame(window.lo, window.hi, *y_range(values))


# --- Drawing ---------------------------------------------------------------------------------


def test_the_marker_colour_is_no_run_colour() -> None:
    assert MARKER.lower() not in COLORS


def test_it_draws_the_line_the_threshold_and_the_marker_at_the_firing_step() -> None:
    window = Window("loss", step=90, lo=0, hi=120)
    points = [(step, step / 45) for step in range(0, 121)]
    png = snapshot.draw(window, points, color=LINE, threshold=2.0, fired_value=2.0)
    image = decoded(png)
    assert image.size == SIZE
    frame = frame_of(window, [value for _s, value in points] + [2.0])
    assert column(image, round(frame.x(30)), LINE) >= 2 * SCALE  # the line crosses step 30
    marker_x = round(frame.x(90))
    assert marker_x == round(frame.left + 0.75 * (frame.right - frame.left))  # at 3/4
    assert column(image, marker_x, MARKER) > (frame.bottom - frame.top) / 2  # a line, a dot
    assert column(image, marker_x - 8 * SCALE, MARKER) == 0
    threshold_row = round(frame.y(2.0))
    greys = sum(image.getpixel((x, threshold_row)) == rgb(snapshot.THRESHOLD) for x in range(400))
    assert greys > 50  # dashed


def test_nan_points_leave_a_gap_in_the_line() -> None:
    window = Window("loss", step=50, lo=0, hi=100)
    points: list[tuple[int, float | None]] = [(s, 1.0 + (s % 7) / 10) for s in range(101)]
    for step in range(30, 70):
        points[step] = (step, None)
    image = decoded(snapshot.draw(window, points, color=LINE))
    frame = frame_of(window, [v for _s, v in points if v is not None])
    drawn = columns_with(image, LINE)
    assert round(frame.x(10)) in drawn and round(frame.x(90)) in drawn
    gap = range(round(frame.x(29)) + 3 * SCALE, round(frame.x(70)) - 3 * SCALE)
    assert not drawn & set(gap)
    assert column(image, round(frame.x(50)), MARKER) > 0  # a NaN firing point keeps its marker


def test_a_lone_point_between_gaps_is_a_dot_and_all_nan_draws_no_line() -> None:
    window = Window("loss", step=9, lo=0, hi=10)  # the marker away from the lone point
    lone = decoded(snapshot.draw(window, [(4, None), (5, 3.0), (6, None)], color=LINE))
    assert columns_with(lone, LINE)
    empty = decoded(snapshot.draw(window, [(s, None) for s in range(11)], color=LINE))
    assert not columns_with(empty, LINE)


def test_the_same_input_gives_the_same_bytes() -> None:
    window = Window("a/very/long/metric/key/" * 20, step=9, lo=0, hi=12)
    points = [(s, float(s * s)) for s in range(13)]
    assert snapshot.draw(window, points, color=LINE) == snapshot.draw(window, points, color=LINE)


# --- From the database -----------------------------------------------------------------------


def _run(world: World, name: str = "r") -> Run:
    return tracking_services.run_create(user=world.owner.user, project=world.project, name=name)


def _log(run: Run, values: dict[int, float | None], key: str = "loss") -> None:
    metrics_ingest(run=run, points=[Point(key, s, v, 1.0 + s) for s, v in values.items()])


def _crossing(world: World, hook: Destination, *, runs: int = 1) -> list[Alert]:
    """``loss`` rising past 2.0 at step 90 in each of ``runs`` runs: one alert each."""
    make_rule(world, hook, "metric_threshold", THRESHOLD_RULE)
    for n in range(runs):
        run = _run(world, f"r{n}")
        _log(run, {step: step / 45 for step in range(0, 90)})
        _log(run, {90: 2.5})
    alerts = list(Alert.objects.select_related("rule", "run").order_by("pk"))
    assert len(alerts) == runs and alerts[0].values["step"] == 90
    return alerts


def test_a_threshold_alert_draws_its_series_in_the_runs_colour(world, hook) -> None:
    (alert,) = _crossing(world, hook)
    image = decoded(snapshot.chart_png(alert) or b"")
    assert image.size == SIZE
    assert columns_with(image, run_color(alert.run.project_index))
    assert snapshot.chart_alt(alert) == (
        "Chart of loss from step 0 to 90; the alert fired at step 90"
    )


def test_a_resolved_alert_shows_what_came_after(world, hook) -> None:
    (alert,) = _crossing(world, hook)
    _log(alert.run, dict.fromkeys(range(91, 200), 1.0))  # back under: resolved by step 199
    alert.refresh_from_db()
    assert (alert.state, alert.values["resolved_with"]["step"]) == ("resolved", 199)
    window = snapshot.window_for(alert, alert.run.metric_series.get(key="loss"))
    assert window == Window("loss", step=90, lo=0, hi=199)
    assert decoded(snapshot.chart_png(alert) or b"").size == SIZE


def test_a_nan_alert_has_a_chart_and_a_failed_run_has_none(world, hook) -> None:
    make_rule(world, hook, "metric_nan", {"key": "loss"})
    make_rule(world, hook, "run_failed")
    run = _run(world)
    _log(run, {0: 1.0, 1: 0.9, 2: None})
    tracking_services.run_update(run=run, data={"status": "failed"})
    nan = Alert.objects.get(rule__trigger="metric_nan")
    failed = Alert.objects.get(rule__trigger="run_failed")
    assert decoded(snapshot.chart_png(nan) or b"").size == SIZE
    assert snapshot.chart_png(failed) is None
    assert snapshot.chart_url(failed) == ""
    assert snapshot.chart_images([failed, nan], most=MAX_CHARTS).keys() == {nan.pk}


# --- The signed link and the members' route ------------------------------------------------------


@pytest.fixture
def alert(world, hook) -> Alert:
    return _crossing(world, hook)[0]


def _path(url: str) -> str:
    return urlsplit(url).path


def test_the_signed_link_serves_the_png_without_login(alert, settings) -> None:
    settings.BASE_URL = BASE_URL
    url = snapshot.chart_url(alert)
    assert url.startswith(f"{BASE_URL}/alerts/chart/") and url.endswith(".png")
    response = Client().get(_path(url))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert "private" in response["Cache-Control"]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert decoded(response.content).size == SIZE


def test_a_second_fetch_does_not_draw_again(alert) -> None:
    path = _path(snapshot.chart_url(alert))
    assert Client().get(path).status_code == 200
    with CaptureQueriesContext(connection) as queries:
        assert Client().get(path).status_code == 200
    read = " ".join(query["sql"] for query in queries.captured_queries)
    assert "metricpoint" not in read and "metricrollup" not in read and len(queries) == 1


def test_a_tampered_link_is_a_404(alert) -> None:
    path = _path(snapshot.chart_url(alert))
    token = path.removeprefix("/alerts/chart/").removesuffix(".png")
    other = snapshot.chart_token(Alert(pk=alert.pk + 1))
    forged = ":".join([other.split(":")[0], *token.split(":")[1:]])  # another id, our signature
    for bad in (token[:-1] + ("A" if token[-1] != "A" else "B"), forged, "nonsense", "a:b:c"):
        assert Client().get(f"/alerts/chart/{bad}.png").status_code == 404


def test_an_expired_link_is_gone(alert, monkeypatch: pytest.MonkeyPatch) -> None:
    now = time.time()
    with monkeypatch.context() as past:  # the link was made eight days ago
        past.setattr(time, "time", lambda: now - 8 * 86400)
        old = snapshot.chart_url(alert)
    with monkeypatch.context() as past:
        past.setattr(time, "time", lambda: now - snapshot.URL_SECONDS + 60)
        recent = snapshot.chart_url(alert)
    assert Client().get(_path(old)).status_code == 410
    assert Client().get(_path(recent)).status_code == 200


def test_a_link_to_a_deleted_alert_is_a_404(alert) -> None:
    path = _path(snapshot.chart_url(alert))
    Alert.objects.filter(pk=alert.pk).delete()
    assert Client().get(path).status_code == 404


def _page_client(persona: Any) -> Client:
    client = Client()
    client.force_login(persona.user)
    return client


def test_the_alert_page_shows_the_chart_to_members_only(world, alert) -> None:
    path = f"/alerts/{alert.pk}/chart.png"
    page = _page_client(world.viewer).get(f"/alerts/{alert.pk}/").content.decode()
    assert f'src="{path}"' in page
    assert 'alt="Chart of loss from step 0 to 90; the alert fired at step 90"' in page
    image = _page_client(world.viewer).get(path)
    assert image.status_code == 200 and image["Content-Type"] == "image/png"
    assert Client().get(path).status_code == 302  # to the login page
    assert _page_client(world.outsider).get(path).status_code == 404


# --- In messages -----------------------------------------------------------------------------


def _parts(message: EmailMessage) -> Iterator[EmailMessage]:
    yield from message.walk()  # type: ignore[misc]


def _related(message: EmailMessage) -> EmailMessage:
    (related,) = [
        part for part in _parts(message) if part.get_content_type() == "multipart/related"
    ]
    return related


def test_an_email_carries_the_chart_inline_next_to_its_html(world, hook, smtp: Inbox) -> None:
    _crossing(world, hook)
    (notification,) = Notification.objects.all()
    assert delivery.deliver(notification.pk) == "sent 1"
    [(_to, received)] = smtp.messages
    assert received.get_content_type() == "multipart/alternative"
    related = _related(received)
    html, png = list(related.iter_parts())
    assert html.get_content_type() == "text/html" and png.get_content_type() == "image/png"
    cid = png["Content-ID"].strip("<>")
    assert f'src="cid:{cid}"' in html.get_content()
    assert png.get_content_disposition() == "inline"
    assert decoded(png.get_content()).size == SIZE
    text = received.get_body(preferencelist=("plain",)).get_content()
    assert "Chart:   http" in text and "/alerts/chart/" in text


def test_a_grouped_email_shows_at_most_a_few_charts(world, hook, smtp: Inbox) -> None:
    alerts = _crossing(world, hook, runs=MAX_CHARTS + 2)
    first = Notification.objects.order_by("pk").first()
    assert first is not None
    assert delivery.deliver(first.pk) == f"sent {len(alerts)}"
    [(_to, received)] = smtp.messages
    images = [p for p in _parts(received) if p.get_content_type() == "image/png"]
    assert len(images) == MAX_CHARTS
    text = received.get_body(preferencelist=("plain",)).get_content()
    assert text.count("Chart:   http") == len(alerts)  # every alert links its chart


def test_the_webhook_payload_has_the_chart_url_and_no_bytes() -> None:
    info = alert_info(chart_url=f"{BASE_URL}/alerts/chart/t.png")
    message = dataclasses.replace(fired(info), charts={info.id: b"\x89PNG" * 1000})
    payload = json.loads(webhook.payload_bytes(message))
    assert payload["alert"]["chart_url"] == f"{BASE_URL}/alerts/chart/t.png"
    assert "charts" not in payload and len(orjson.dumps(payload)) < 4000


@pytest.fixture
def slack_hook(world: World, receiver: Receiver, allow_private: Any) -> Destination:
    team, role = selectors.team_get_for_user(world.owner.user, "acme")
    return services.destination_create(
        user=world.owner.user,
        team=team,
        role=role,
        kind="slack",
        name="slack",
        config={"url": receiver.url("/services/T0/B0/xyz")},
    )


def _blocks(received: Any) -> list[dict[str, Any]]:
    return json.loads(received.body)["blocks"]


def test_slack_gets_an_image_block_whose_url_serves_the_chart(
    world, slack_hook, receiver: Receiver, settings
) -> None:
    settings.BASE_URL = BASE_URL
    _crossing(world, slack_hook)
    (notification,) = Notification.objects.all()
    assert delivery.deliver(notification.pk) == "sent 1"
    (request,) = receiver.requests
    blocks = _blocks(request)
    (image,) = [block for block in blocks if block["type"] == "image"]
    assert blocks[blocks.index(image) - 1]["type"] == "section"  # right after its alert
    assert image["alt_text"] == "Chart of loss around step 90, where the alert fired"
    served = Client().get(_path(image["image_url"]))
    assert served.status_code == 200 and decoded(served.content).size == SIZE


def test_forty_metric_alerts_with_charts_and_buttons_fit_slacks_50_blocks(
    receiver: Receiver, allow_private: Any
) -> None:
    links = {"acknowledge": f"{BASE_URL}/a", "silence_1h": f"{BASE_URL}/s", "run": f"{BASE_URL}/r"}
    alerts = [
        alert_info(
            n,
            run=run_info(n, name=f"sweep-{n}"),
            values={"key": "loss", "step": 90},
            chart_url=f"{BASE_URL}/alerts/chart/t{n}.png",
            links=links,
        )
        for n in range(40)
    ]
    slack.SlackTransport().send(fired(*alerts), {"url": receiver.url("/services/T0/B0/xyz")})
    blocks = _blocks(receiver.requests[0])
    assert len(blocks) <= 50
    assert sum(block["type"] == "image" for block in blocks) == MAX_CHARTS


def test_slack_refusing_the_image_still_gets_the_alert(
    world, slack_hook, receiver: Receiver, settings
) -> None:
    settings.BASE_URL = BASE_URL
    receiver.script(Reply(400, "invalid_blocks"), Reply(200))
    _crossing(world, slack_hook)
    (notification,) = Notification.objects.all()
    assert delivery.deliver(notification.pk) == "sent 1"
    first, second = receiver.requests
    assert any(block["type"] == "image" for block in _blocks(first))
    assert not any(block["type"] == "image" for block in _blocks(second))


def test_slack_gets_no_image_from_a_local_base_url(
    world, slack_hook, receiver: Receiver, settings
) -> None:
    settings.BASE_URL = "http://127.0.0.1:8000"  # Slack could never fetch it
    _crossing(world, slack_hook)
    delivery.deliver(Notification.objects.get().pk)
    (request,) = receiver.requests
    assert not any(block["type"] == "image" for block in _blocks(request))
