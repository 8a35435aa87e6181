"""Live media, table, histogram and logs blocks (issue 21): which run messages touch a block,
the endpoints that draw one block again (a member's, a share link's), the share socket's bare
``block.changed``, the share link's light image check, and frozen pins across an import."""

from __future__ import annotations

import io
import json
import re

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.core.management import call_command
from django.test import Client

from labbook.asgi import application
from reports_app import media_blocks, render, report_pages, services
from reports_app.media_blocks import LiveBlock
from reports_app.models import Report
from tests.conftest import World
from tests.reports_app.test_live import QUIET, fresh_layer, scenario, socket_headers
from tests.reports_app.test_media_blocks import _console, _histograms, _images, _report, _run
from tracking import console, media
from tracking import services as tracking_services
from tracking.models import MediaItem, Run

__all__ = ["fresh_layer"]  # the autouse fixture: a new channel layer per test


def _config(html: str) -> dict:
    found = re.search(
        r'<script id="report-config" type="application/json">(.*?)</script>', html, re.S
    )
    assert found, "the page has no report config"
    return json.loads(found[1])


# --- Which messages touch a block ---------------------------------------------------------------


def test_a_media_message_touches_the_blocks_of_its_run_key_and_step() -> None:
    newest = LiveBlock(1, "media", (7,), key="samples")
    fixed = LiveBlock(2, "table", (7,), key="preds", step=300)
    heat = LiveBlock(3, "histogram", (7, 8), key="grad/w", step=None)
    logged = {"samples": {"kind": "image", "steps": [5]}, "preds": {"kind": "table", "steps": [5]}}
    assert media_blocks.touched_by_media(newest, 7, logged)
    assert not media_blocks.touched_by_media(newest, 8, logged)  # another run
    assert not media_blocks.touched_by_media(fixed, 7, logged)  # not the step it shows
    assert media_blocks.touched_by_media(fixed, 7, {"preds": {"kind": "table", "steps": [300]}})
    assert media_blocks.touched_by_media(heat, 8, {"grad/w": {"kind": "histogram", "steps": [1]}})
    assert not media_blocks.touched_by_media(heat, 8, {"other": {"kind": "histogram"}})


def test_console_lines_touch_a_logs_block_only_where_they_could_show() -> None:
    tail = LiveBlock(1, "logs", (7,))
    span = LiveBlock(2, "logs", (7,), start=10, end=20)
    search = LiveBlock(3, "logs", (7,), search="Epoch")
    lines = [{"number": 30, "stream": "stdout", "text": "loss 0.3"}]
    assert media_blocks.touched_by_console(tail, 7, lines)
    assert not media_blocks.touched_by_console(tail, 8, lines)
    assert not media_blocks.touched_by_console(span, 7, lines)  # past the span
    assert media_blocks.touched_by_console(span, 7, [{"number": 12, "text": "x"}])
    assert not media_blocks.touched_by_console(search, 7, lines)
    assert media_blocks.touched_by_console(search, 7, [{"number": 31, "text": "epoch 4 done"}])
    assert media_blocks.touched_by_console(search, 7, lines, truncated=True)  # lines were dropped
    assert not media_blocks.touched_by_console(LiveBlock(4, "media", (7,), key="k"), 7, lines)


# --- The pages and the endpoints ------------------------------------------------------------------


def _body(run: Run) -> str:
    return (
        "# Samples\n\n"
        f"```media\nruns: [{run.pk}]\nkey: samples\nmax_images: 1\n```\n\n"
        f"```logs\nrun: {run.pk}\ntail: 5\nsearch: epoch\n```\n\n"
        f"```media\nruns: [{run.pk}]\nkey: samples\nlive: false\n```"
    )


def test_a_members_page_watches_its_live_media_blocks(world: World) -> None:
    run = _run(world, "a")
    _images(run, 1)
    report = _report(world, _body(run))
    client = Client()
    client.force_login(world.viewer.user)
    page = client.get(f"/reports/{report.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert re.findall(r'data-drawn-block="(\d+)"', html) == ["0", "1", "2"]
    config = _config(html)
    assert run.pk in config["live"]["runs"]
    watched = {block["block"]: block for block in config["mediaBlocks"]}
    assert set(watched) == {0, 1}  # the frozen block never changes
    assert watched[0]["key"] == "samples" and watched[1]["search"] == "epoch"
    assert config["mediaBlockUrl"] == f"/reports/{report.pk}/media-blocks/0"


def test_a_member_gets_one_block_drawn_again_with_its_new_image(world: World) -> None:
    run = _run(world, "a")
    _images(run, 1)
    report = _report(world, _body(run))
    later = _images(run, 5, count=1)
    client = Client()
    client.force_login(world.viewer.user)
    drawn = client.get(f"/reports/{report.pk}/media-blocks/0").json()
    assert drawn["block"] == 0 and drawn["figure"] is None
    assert drawn["html"].startswith('<div class="report-media-block" data-drawn-block="0">')
    assert f'src="/api/v1/media/{later[0].pk}"' in drawn["html"]
    assert client.get(f"/reports/{report.pk}/media-blocks/9").status_code == 404
    outsider = Client()
    outsider.force_login(world.outsider.user)
    assert outsider.get(f"/reports/{report.pk}/media-blocks/0").status_code == 404
    assert Client().get(f"/reports/{report.pk}/media-blocks/0").status_code == 302


def test_a_histogram_block_is_drawn_again_with_its_figure(world: World) -> None:
    run = _run(world, "a")
    _histograms(run, range(3))
    report = _report(world, f"Text\n\n```histogram\nruns: [{run.pk}]\nkey: grad/w1\n```")
    _histograms(run, range(3, 5))
    drawn = report_pages.media_block(report, 0)
    assert drawn is not None and drawn["figure"]["data"][0]["x"] == [0, 1, 2, 3, 4]
    assert 'data-figure="0"' in drawn["html"]


def test_a_block_with_nothing_yet_is_an_error_box_that_fills_in(world: World) -> None:
    run = _run(world, "a")
    report = _report(world, f"```media\nruns: [{run.pk}]\nkey: samples\n```")
    first = report_pages.media_block(report, 0)
    assert first is not None and "block-error" in first["html"]
    assert 'data-drawn-block="0"' in first["html"]
    item = _images(run, 2, count=1)[0]
    assert f"/api/v1/media/{item.pk}" in report_pages.media_block(report, 0)["html"]


def test_a_share_link_draws_a_block_again_with_images_served_through_it(world: World) -> None:
    run = _run(world, "a")
    _images(run, 1)
    report = _report(world, _body(run))
    token = services.share_link_create(report=report, user=world.owner.user)[1]
    reader = Client()
    config = _config(reader.get(f"/s/{token}").content.decode())
    assert [b["runs"] for b in config["mediaBlocks"]] == [[], []]  # nothing of the runs
    assert all(b["key"] == b["search"] == "" for b in config["mediaBlocks"])
    later = _images(run, 5, count=1)
    drawn = reader.get(f"/s/{token}/media-blocks/0")
    assert drawn.status_code == 200 and drawn["Referrer-Policy"] == "no-referrer"
    html = drawn.json()["html"]
    assert f'src="/s/{token}/media/{later[0].pk}"' in html
    assert "/api/v1/" not in html and "labbook-media:" not in html and "/runs/" not in html
    assert reader.get(f"/s/{token}/media/{later[0].pk}").status_code == 200
    assert reader.get(f"/s/{token}/media-blocks/7").status_code == 404
    assert reader.get("/s/nope/media-blocks/0").status_code == 404


# --- The share link's image check: the block specs, not a render ---------------------------------


def test_the_share_links_image_check_follows_the_block_rules_exactly(
    world: World, django_assert_max_num_queries
) -> None:
    run = _run(world, "a")
    pinned = _images(run, 1, count=2)
    body = (
        f"```chart\nruns: [{run.pk}]\nmetrics: [loss]\n```\n\n"
        f"```media\nruns: [{run.pk}]\nkey: samples\nmax_images: 1\n```\n\n"
        f"```media\nruns: [{run.pk}]\nkey: samples\nstep: 1\nmax_images: 2\nlive: false\n```\n\n"
        f"```media\nruns: [{run.pk}]\nkey: other\nstep: 4\n```"
    )
    report = _report(world, body)
    newest = _images(run, 3, count=2)
    fixed = _images(run, 4, count=1, key="other")
    _images(run, 5, count=1, key="other")
    services.share_link_create(report=report, user=world.owner.user)
    link = report.share_links.get()
    with django_assert_max_num_queries(8):
        assert report_pages.shared_media_item(link, newest[0].pk) == newest[0]
    shown = {newest[0].pk, pinned[0].pk, pinned[1].pk, fixed[0].pk}
    every = MediaItem.objects.filter(run=run).values_list("pk", flat=True)
    served = {pk for pk in every if report_pages.shared_media_item(link, pk) is not None}
    assert served == shown
    assert served == set(
        render.render_report(report, frozen=report_pages._frozen(report), public=True).media
    )


# --- The share socket: a bare block.changed ------------------------------------------------------


@pytest.mark.django_db(transaction=True)  # on_commit publishing, as in test_live
def test_a_share_socket_names_a_changed_block_and_nothing_else(world: World) -> None:
    run = _run(world, "a")
    _images(run, 1)
    report = _report(
        world,
        f"```media\nruns: [{run.pk}]\nkey: samples\n```\n\n"
        f"```logs\nrun: {run.pk}\ntail: 5\nsearch: epoch\n```",
    )
    token = services.share_link_create(report=report, user=world.owner.user)[1]

    def log(key: str) -> None:
        item = {"key": key, "step": 9, "kind": "histogram", "counts": [1], "edges": [0, 1]}
        if key == "samples":
            _images(run, 9, count=1)
        else:
            media.media_ingest(run=run, items=media.parse_items([item]))

    def say(number: int, text: str) -> None:
        lines = [{"number": number, "stream": "stdout", "text": text}]
        console.console_append(run=run, lines=console.parse_lines(lines))

    async def body() -> None:
        socket = WebsocketCommunicator(
            application, f"/ws/share/{token}/", headers=socket_headers(None)
        )
        connected, _ = await socket.connect()
        assert connected
        await sync_to_async(log)("secret/w")  # a key no block shows
        await sync_to_async(say)(0, "SECRET token=abc")  # a line the search does not show
        assert await socket.receive_nothing(timeout=QUIET)
        await sync_to_async(log)("samples")
        assert await socket.receive_json_from(timeout=10) == {"type": "block.changed", "block": 0}
        await sync_to_async(say)(1, "Epoch 2 done")
        assert await socket.receive_json_from(timeout=10) == {"type": "block.changed", "block": 1}
        assert await socket.receive_nothing(timeout=QUIET)
        await socket.disconnect()

    scenario(body)


# --- Import: frozen pins follow their runs and items ----------------------------------------------


def test_an_imported_report_shows_the_imported_images_of_its_frozen_block(
    world: World, tmp_path
) -> None:
    run = _run(world, "a")
    saved = _images(run, 1, count=2)
    _histograms(run, range(2))
    _console(run, ["one", "two", "three"])
    body = (
        f"```media\nruns: [{run.pk}]\nkey: samples\nlive: false\n```\n\n"
        f"```histogram\nruns: [{run.pk}]\nkey: grad/w1\nlive: false\n```\n\n"
        f"```logs\nrun: {run.pk}\ntail: 2\nlive: false\n```"
    )
    _report(world, body)
    _images(run, 2, count=2)  # newer: a frozen block does not show them
    path = tmp_path / "mnist.jsonl"
    call_command("export_project", "acme/mnist", str(path), stdout=io.StringIO())
    lab = tracking_services.team_create(slug="lab", owner=world.owner.user)
    call_command("import_project", str(path), "--team", "lab", stdout=io.StringIO())
    imported = Report.objects.get(project__team=lab)
    new_run = Run.objects.get(project__team=lab)
    frozen = imported.revisions.get(number=1).frozen
    rendered = render.render_report(imported, frozen=frozen)
    copies = MediaItem.objects.filter(run=new_run, key="samples", step=1)
    assert rendered.media == {item.pk for item in copies} and len(copies) == len(saved)
    assert frozen["0"]["pins"] == {str(new_run.pk): sorted(item.pk for item in copies)}
    assert frozen["1"]["pins"] == {str(new_run.pk): [0, 1]}  # steps stay steps
    assert frozen["2"]["pins"] == {str(new_run.pk): [1, 2]}  # line numbers stay
    assert rendered.figures[0].figure["data"][0]["x"] == [0, 1]
    assert re.findall(r'data-line="(\d+)"', rendered.html) == ["1", "2"]
    assert "Frozen when the report was saved." in rendered.html
