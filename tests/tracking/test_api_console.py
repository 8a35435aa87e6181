"""A run's console output through the REST API (tracking/console.py)."""

from __future__ import annotations

import json

import pytest
from django.conf import settings
from django.test import override_settings

from alerts.delivery import run_info
from tracking import console, services
from tracking.models import ConsoleLine, Run

RED = "\x1b[31m"
RESET = "\x1b[0m"


@pytest.fixture
def run(world):
    response = world.editor.client().post("/api/v1/runs", {"project": "acme/mnist"}, format="json")
    return Run.objects.get(pk=response.json()["id"])


def lines(texts, *, start=0, stream="stdout"):
    return [
        {"number": start + i, "stream": stream, "text": text, "timestamp": 1_700_000_000.0 + i}
        for i, text in enumerate(texts)
    ]


def post(client, run, body):
    return client.post(
        f"/api/v1/runs/{run.pk}/console", json.dumps(body), content_type="application/json"
    )


def read(client, run, **query):
    return client.get(f"/api/v1/runs/{run.pk}/console", query).json()


def test_lines_are_stored_once_in_order_and_read_back(world, run):
    client = world.editor.client()
    first = post(client, run, {"lines": lines(["epoch 1", f"{RED}loss 0.5{RESET}"])})
    assert first.json() == {"accepted": 2, "duplicates": 0, "dropped": 0}
    retried = post(client, run, {"lines": lines(["epoch 1", "changed?", "epoch 2"])})
    assert retried.json() == {"accepted": 1, "duplicates": 2, "dropped": 0}
    body = read(client, run)
    assert [line["text"] for line in body["lines"]] == [
        "epoch 1",
        f"{RED}loss 0.5{RESET}",
        "epoch 2",
    ]
    assert body["total"] == 3
    assert body["bytes"] == sum(
        len(t.encode()) + 1 for t in ("epoch 1", f"{RED}loss 0.5{RESET}", "epoch 2")
    )


def test_tail_start_and_search_read_parts(world, run):
    client = world.editor.client()
    post(client, run, {"lines": lines([f"step {i}" for i in range(50)])})
    tail = read(client, run, tail=3)["lines"]
    assert [line["number"] for line in tail] == [47, 48, 49]
    assert [line["number"] for line in read(client, run, start=10, limit=2)["lines"]] == [10, 11]
    found = read(client, run, search="STEP 4")["lines"]
    assert [line["text"] for line in found] == ["step 4", *[f"step {i}" for i in range(40, 50)]]
    assert read(client, run, search="100%_")["lines"] == []  # LIKE's wildcards are plain text


def test_the_download_is_the_whole_text_without_colour_codes(world, run):
    client = world.editor.client()
    bar = "\r 10%|#  |\r 50%|## |\r100%|###|"
    post(client, run, {"lines": lines([f"{RED}red{RESET} line", "\x1b]0;title\x07plain", bar])})
    response = client.get(f"/api/v1/runs/{run.pk}/console.txt")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert "attachment" in response["Content-Disposition"]
    assert b"".join(response.streaming_content).decode() == "red line\nplain\n100%|###|\n"


def test_past_the_cap_lines_are_counted_not_kept_and_the_request_succeeds(world, run):
    client = world.editor.client()
    with override_settings(LABBOOK={**settings.LABBOOK, "CONSOLE_MAX_BYTES": 20}):
        answer = post(client, run, {"lines": lines(["123456789", "123456789", "x"])}).json()
        assert answer == {"accepted": 2, "duplicates": 0, "dropped": 1}
        assert post(client, run, {"lines": lines(["more"], start=3)}).json()["dropped"] == 1
    body = read(client, run)
    assert (body["total"], body["bytes"], body["dropped"]) == (2, 20, 2)


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ({"number": -1, "text": "x"}, "lines[1].number"),
        ({"number": 2**31, "text": "x"}, "lines[1].number"),
        ({"number": 1, "text": "x", "stream": "stdin"}, "lines[1].stream"),
        ({"number": 1, "text": 5}, "lines[1].text"),
        ({"number": 1, "text": "x" * 10_001}, "lines[1].text"),
        ({"number": 1, "text": "a\x00b"}, "lines[1].text"),
        ({"number": 1, "text": "x", "timestamp": "soon"}, "lines[1].timestamp"),
        ({"number": 1, "text": "x", "colour": "red"}, "lines[1].colour"),
    ],
)
def test_a_bad_line_is_a_400_naming_it_and_nothing_is_stored(world, run, line, field):
    response = post(world.editor.client(), run, {"lines": [{"number": 0, "text": "ok"}, line]})
    assert response.status_code == 400
    assert response.json()["error"]["field"] == field
    assert not ConsoleLine.objects.filter(run=run).exists()


def test_too_many_lines_or_a_long_search_are_refused(world, run):
    client = world.editor.client()
    many = lines(["x"] * (console.MAX_LINES_PER_REQUEST + 1))
    assert post(client, run, {"lines": many}).json()["error"]["field"] == "lines"
    long = client.get(f"/api/v1/runs/{run.pk}/console", {"search": "x" * 201})
    assert long.status_code == 400
    assert long.json()["error"]["field"] == "search"


def test_viewers_read_but_cannot_write_and_outsiders_see_nothing(world, run):
    post(world.editor.client(), run, {"lines": lines(["secret"])})
    assert post(world.viewer.client(), run, {"lines": lines(["x"], start=1)}).status_code == 403
    assert read(world.viewer.client(), run)["total"] == 1
    outsider = world.outsider.client()
    assert outsider.get(f"/api/v1/runs/{run.pk}/console").status_code == 404
    assert outsider.get(f"/api/v1/runs/{run.pk}/console.txt").status_code == 404


def test_an_alert_about_a_failed_run_carries_its_last_lines_without_colours(world, run):
    texts = [f"{RED}line {i}{RESET}" for i in range(30)]
    console.console_append(run=run, lines=console.parse_lines(lines(texts)))
    assert run_info(Run.objects.get(pk=run.pk)).console_tail == ""  # still running
    services.run_update(run=run, data={"status": "failed"})
    tail = run_info(Run.objects.get(pk=run.pk)).console_tail.splitlines()
    assert tail == [f"line {i}" for i in range(10, 30)]
