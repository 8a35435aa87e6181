"""Report blocks of media and console lines: media, table, histogram and logs (issue 21).

Real runs log real images (decoded by Pillow), tables, histograms and console lines;
reports are rendered for a member, through a share link (whose media URL serves
exactly the images the report shows) and as the offline export.
"""

from __future__ import annotations

import base64
import io
import re
from html import unescape

import orjson
import pytest
from django.test import Client
from PIL import Image

from reports_app import media_blocks, render, report_pages, selectors, services
from reports_app.blocks import BlockError
from reports_app.models import Report
from tests.conftest import World
from tracking import console, media
from tracking import selectors as tracking_selectors
from tracking import services as tracking_services
from tracking.models import MediaItem, Run


def _run(world: World, name: str) -> Run:
    return tracking_services.run_create(user=world.owner.user, project=world.project, name=name)


def _png(shade: int, size: int = 6) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (shade, 40, 200 - shade)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _images(run: Run, step: int, count: int = 2, key: str = "samples") -> list[MediaItem]:
    items = [
        {"key": key, "step": step, "kind": "image", "caption": f"s{step}#{i}", "image": _png(i)}
        for i in range(count)
    ]
    return media.media_ingest(run=run, items=media.parse_items(items)).items


def _table(run: Run, step: int, rows: int = 30) -> None:
    item = {
        "key": "preds",
        "step": step,
        "kind": "table",
        "columns": ["id", "label", "p"],
        "rows": [[i, f"label-{step}-{i}", round(i / 100, 2)] for i in range(rows)],
    }
    media.media_ingest(run=run, items=media.parse_items([item]))


def _histograms(run: Run, steps: range) -> None:
    items = [
        {
            "key": "grad/w1",
            "step": step,
            "kind": "histogram",
            "counts": [1 + step, 5, 2],
            "edges": [-1.0 - step / 10, 0.0, 0.5, 1.0 + step / 10],
        }
        for step in steps
    ]
    media.media_ingest(run=run, items=media.parse_items(items))


def _console(run: Run, texts: list[str]) -> None:
    lines = [{"number": n, "stream": "stdout", "text": t} for n, t in enumerate(texts)]
    console.console_append(run=run, lines=console.parse_lines(lines))


def _report(world: World, body: str) -> Report:
    project = tracking_selectors.project_get_for_user(world.owner.user, "acme/mnist")
    report = services.report_create(user=world.owner.user, project=project, title="M", body=body)
    return selectors.report_get_for_user(world.owner.user, report.pk)


def _share(world: World, report: Report) -> str:
    return services.share_link_create(report=report, user=world.owner.user)[1]


def _errors(html: str) -> list[str]:
    boxes = re.findall(r'class="block-error[^"]*"[^>]*>(.*?)</div>', html, re.S)
    return [unescape(re.sub(r"<[^>]+>", "", box)) for box in boxes]


# --- Parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "text", "message"),
    [
        ("media", "key: samples", "Say which runs"),
        ("media", "runs: [1]", "`key` is required"),
        ("media", "runs: [1]\nkey: s\nstep: soon", "`step` must be `latest`"),
        ("media", "runs: [1]\nkey: s\nmax_images: 99", "`max_images` must be a whole number"),
        ("media", "runs: [1]\nkey: s\ncaption: sometimes", "`caption` must be true or false"),
        ("media", "runs: [1]\nkey: s\ncolour: red", "Unknown media option `colour`"),
        ("media", "runs: [1, 2, 3, 4, 5, 6, 7, 8, 9]\nkey: s", "At most 8 runs"),
        ("table", "key: preds", "Say which run"),
        ("table", "run: [1, 2]\nkey: preds", "`run` is one run id"),
        ("table", "run: 1\nkey: preds\nmax_rows: 201", "`max_rows` must be a whole number"),
        ("table", "run: 1\nkey: preds\nruns: [1]", "Unknown table option `runs`"),
        ("histogram", "runs: [1]\nkey: g\nstep: 3", "Unknown histogram option `step`"),
        ("logs", "run: 1\ntail: 501", "`tail` must be a whole number from 1 to 500"),
        ("logs", "run: 1\nlines: [10]", "`lines` must be `[start, end]`"),
        ("logs", "run: 1\nlines: [0, 600]", "`lines` spans at most 500"),
        ("logs", "run: 1\nlines: [0, 5]\ntail: 3", "`lines` or `tail`, not both"),
        ("logs", "run: 1\nsearch: " + "x" * 201, "`search` has at most 200"),
    ],
)
def test_a_wrong_option_is_named(kind: str, text: str, message: str) -> None:
    with pytest.raises(BlockError) as raised:
        media_blocks.parse(kind, text)
    assert message in raised.value.message


def test_options_are_read_with_their_defaults() -> None:
    block = media_blocks.parse("media", "runs: [3, 4]\nkey: samples")
    assert isinstance(block, media_blocks.MediaBlock)
    assert (block.runs.ids, block.step, block.max_images, block.caption) == ((3, 4), None, 4, True)
    logs = media_blocks.parse("logs", "run: 5\nsearch: loss")
    assert isinstance(logs, media_blocks.LogsBlock)
    assert (logs.tail, logs.search) == (media_blocks.DEFAULT_TAIL, "loss")


def test_a_wrong_option_is_an_error_box_on_the_page(world: World) -> None:
    html = render.render_report(_report(world, "```table\nrun: 1\nkey: x\nrows: 3\n```")).html
    assert _errors(html) == [
        "table block, line 1: Unknown table option `rows`; use columns, key, live, max_rows, "
        "run, step."
    ]


# --- Rendering for a member ------------------------------------------------------------------


def test_a_media_block_shows_each_runs_newest_images_side_by_side(world: World) -> None:
    a, b = _run(world, "alpha"), _run(world, "beta")
    _images(a, 1)
    newest = _images(a, 5, count=3)
    other = _images(b, 2, count=1)
    body = f"```media\nruns: [{a.pk}, {b.pk}]\nkey: samples\nmax_images: 2\n```"
    rendered = render.render_report(_report(world, body))
    assert rendered.errors == []
    assert rendered.media == {newest[0].pk, newest[1].pk, other[0].pk}
    html = rendered.html
    assert f'src="/api/v1/media/{newest[0].pk}"' in html
    assert f"/api/v1/media/{newest[2].pk}" not in html  # max_images
    assert "step 5" in html and "step 2" in html and "s5#0" in html
    assert f'href="{a.get_absolute_url()}">alpha</a>' in html


def test_a_media_block_at_a_step_and_without_captions(world: World) -> None:
    run = _run(world, "a")
    first = _images(run, 1)
    _images(run, 5)
    body = f"```media\nruns: [{run.pk}]\nkey: samples\nstep: 1\ncaption: false\n```"
    html = render.render_report(_report(world, body)).html
    assert f"/api/v1/media/{first[0].pk}" in html and "<figcaption>" not in html


def test_a_key_of_another_kind_or_of_nothing_is_an_error(world: World) -> None:
    run = _run(world, "a")
    _table(run, 0)
    body = (
        f"```media\nruns: [{run.pk}]\nkey: preds\n```\n\n"
        f"```media\nruns: [{run.pk}]\nkey: nothing\n```\n\n"
        f"```table\nrun: {run.pk}\nkey: preds\nstep: 9\n```"
    )
    assert render.render_report(_report(world, body)).errors == [
        "media block, line 1: `preds` holds tables, not images: use a table block.",
        "media block, line 6: None of these runs logged media under `nothing`.",
        "table block, line 11: Run a logged no table under `preds` at step 9.",
    ]


def test_a_table_block_shows_the_first_rows_of_the_chosen_columns(world: World) -> None:
    run = _run(world, "a")
    _table(run, 1)
    _table(run, 4)
    body = f"```table\nrun: {run.pk}\nkey: preds\nmax_rows: 5\ncolumns: [label, id]\n```"
    html = render.render_report(_report(world, body)).html
    assert '<th scope="col">label</th><th scope="col">id</th>' in html
    assert "<td>label-4-4</td><td>4</td>" in html and "label-4-5" not in html
    assert "label-1-" not in html and "The first 5 of 30 rows." in html
    bad = f"```table\nrun: {run.pk}\nkey: preds\ncolumns: [loss]\n```"
    assert "`columns` names `loss`; this table has id, label, p." in " ".join(
        render.render_report(_report(world, bad)).errors
    )


def test_a_histogram_block_is_a_heatmap_per_run(world: World) -> None:
    a, b = _run(world, "a"), _run(world, "b")
    _histograms(a, range(100))
    _histograms(b, range(3))
    body = f"```histogram\nruns: [{a.pk}, {b.pk}]\nkey: grad/w1\n```"
    rendered = render.render_report(_report(world, body))
    (figure,) = rendered.figures
    assert figure.kind == "histogram" and not figure.live
    first, second = figure.figure["data"]
    assert first["type"] == "heatmap" and second["yaxis"] == "y2"
    assert len(first["x"]) == media_blocks.HISTOGRAM_STEPS and first["x"][-1] == 99
    assert len(first["z"]) == media_blocks.HISTOGRAM_BINS
    assert second["x"] == [0, 1, 2]
    column = [row[0] for row in second["z"]]  # step 0: 1 + 5 + 2 counts spread, none lost
    assert sum(column) == pytest.approx(8, abs=0.05)
    assert 'data-figure="0"' in rendered.html and rendered.live_runs == []


def test_a_logs_block_shows_numbered_plain_lines(world: World) -> None:
    run = _run(world, "a")
    _console(run, [f"\x1b[32mepoch {n}\x1b[0m loss {n / 10}" for n in range(40)])
    body = (
        f"```logs\nrun: {run.pk}\ntail: 3\n```\n\n"
        f"```logs\nrun: {run.pk}\nlines: [5, 7]\n```\n\n"
        f"```logs\nrun: {run.pk}\nsearch: epoch 1\n```"
    )
    html = render.render_report(_report(world, body)).html
    assert "\x1b" not in html and "[32m" not in html
    numbers = re.findall(r'data-line="(\d+)"', html)
    assert numbers[:3] == ["37", "38", "39"] and numbers[3:6] == ["5", "6", "7"]
    assert numbers[6:] == ["1", *map(str, range(10, 20))]
    assert "epoch 39</span>" not in html and "epoch 39 loss 3.9" in html


def test_media_blocks_cost_the_same_queries_for_1_and_40(
    world: World, django_assert_max_num_queries
) -> None:
    run = _run(world, "a")
    _images(run, 1)
    _table(run, 1)
    _histograms(run, range(3))
    _console(run, ["hello"])
    one = (
        f"```media\nruns: [{run.pk}]\nkey: samples\n```\n\n"
        f"```table\nrun: {run.pk}\nkey: preds\n```\n\n"
        f"```histogram\nruns: [{run.pk}]\nkey: grad/w1\n```\n\n"
    )
    small, large = _report(world, one), _report(world, one * 13)
    with django_assert_max_num_queries(40) as few:
        render.render_report(small)
    with django_assert_max_num_queries(len(few.captured_queries) + 2):
        rendered = render.render_report(large)
    assert rendered.errors == [] and len(rendered.figures) == 13


def test_past_the_page_budget_a_media_block_is_a_note(world: World, monkeypatch) -> None:
    run = _run(world, "a")
    _images(run, 1, count=4)
    monkeypatch.setattr(media_blocks, "PAGE_IMAGES", 6)
    block = f"```media\nruns: [{run.pk}]\nkey: samples\n```\n\n"
    rendered = render.render_report(_report(world, block * 3))
    assert rendered.html.count('class="report-media-img"') == 4
    assert rendered.html.count("Not drawn: this page already shows 6 images") == 2


# --- Frozen ------------------------------------------------------------------------------------


def test_frozen_blocks_show_what_they_showed_when_saved(world: World) -> None:
    run = _run(world, "a")
    saved = _images(run, 1)
    _table(run, 1)
    _histograms(run, range(2))
    _console(run, [f"line {n}" for n in range(5)])
    body = (
        f"```media\nruns: [{run.pk}]\nkey: samples\nlive: false\n```\n\n"
        f"```table\nrun: {run.pk}\nkey: preds\nlive: false\n```\n\n"
        f"```histogram\nruns: [{run.pk}]\nkey: grad/w1\nlive: false\n```\n\n"
        f"```logs\nrun: {run.pk}\ntail: 2\nlive: false\n```"
    )
    report = _report(world, body)
    later = _images(run, 9)
    _table(run, 9)
    _histograms(run, range(2, 6))
    lines = [{"number": n, "stream": "stdout", "text": f"line {n}"} for n in range(5, 9)]
    console.console_append(run=run, lines=console.parse_lines(lines))
    frozen = report.revisions.get(number=1).frozen
    rendered = render.render_report(report, frozen=frozen)
    assert rendered.media == {item.pk for item in saved}
    assert f"/api/v1/media/{later[0].pk}" not in rendered.html
    assert "label-1-0" in rendered.html and "label-9-0" not in rendered.html
    assert rendered.figures[0].figure["data"][0]["x"] == [0, 1]
    assert re.findall(r'data-line="(\d+)"', rendered.html) == ["3", "4"]
    assert rendered.html.count("Frozen when the report was saved.") == 4
    live = render.render_report(report)  # without the revision's data: drawn now
    assert f"/api/v1/media/{later[0].pk}" in live.html


# --- Share links and the export ------------------------------------------------------------------


def test_a_share_link_serves_the_images_it_shows_and_nothing_else(world: World) -> None:
    run = _run(world, "a")
    shown = _images(run, 3, count=1)
    hidden = _images(run, 1, count=1)  # same run and key, a step the report does not show
    other = _images(run, 3, count=1, key="other")
    body = f"```media\nruns: [{run.pk}]\nkey: samples\n```"
    token = _share(world, _report(world, body))
    reader = Client()
    page = reader.get(f"/s/{token}")
    assert page.status_code == 200
    html = page.content.decode()
    assert f'src="/s/{token}/media/{shown[0].pk}"' in html
    assert "/api/v1/media/" not in html and "labbook-media:" not in html
    image = reader.get(f"/s/{token}/media/{shown[0].pk}")
    assert image.status_code == 200 and image["Content-Type"] == "image/png"
    assert b"".join(image.streaming_content).startswith(b"\x89PNG")
    for item in (hidden[0], other[0]):
        assert reader.get(f"/s/{token}/media/{item.pk}").status_code == 404
    assert reader.get(f"/s/not-a-token/media/{shown[0].pk}").status_code == 404


def test_a_revoked_link_serves_no_image(world: World) -> None:
    run = _run(world, "a")
    shown = _images(run, 3, count=1)
    report = _report(world, f"```media\nruns: [{run.pk}]\nkey: samples\n```")
    token = _share(world, report)
    link = report.share_links.get()
    services.share_link_revoke(link=link, user=world.owner.user)
    assert Client().get(f"/s/{token}/media/{shown[0].pk}").status_code == 404


def test_the_export_holds_images_as_data_uris_and_the_console_text(world: World) -> None:
    run = _run(world, "a")
    _images(run, 2)
    _console(run, ["\x1b[1mready\x1b[0m", "training done"])
    body = f"```media\nruns: [{run.pk}]\nkey: samples\n```\n\n```logs\nrun: {run.pk}\ntail: 5\n```"
    report = _report(world, body)
    html = report_pages.export_html(report)
    assert len(re.findall(r'<img class="report-media-img" src="data:image/png;base64,', html)) == 2
    assert "labbook-media:" not in html and "/api/v1/media/" not in html
    assert "ready" in html and "training done" in html and "\x1b" not in html


def test_past_its_cap_the_export_names_the_images_it_left_out(world: World) -> None:
    run = _run(world, "a")
    items = _images(run, 2, count=3)
    rendered = render.render_report(
        _report(world, f"```media\nruns: [{run.pk}]\nkey: samples\n```"), public=True
    )
    html = media_blocks.inline_images(rendered.html, rendered.media, cap=items[0].size + 1)
    assert html.count("data:image/png;base64,") == 1
    assert html.count("Not in this file: samples at step 2") == 2


def test_an_image_the_render_did_not_show_gets_no_source(world: World) -> None:
    html = '<img class="report-media-img" src="labbook-media:77" alt="x">'
    assert media_blocks.fill_sources(html, {5}, lambda i: f"/x/{i}") == (
        '<img class="report-media-img" src="" alt="x">'
    )


def test_a_project_import_points_a_run_option_at_the_imported_run() -> None:
    from reports_app import portability

    text = "run: 12   # the baseline\nkey: preds\n"
    assert portability.retarget_run(text, {"run": 12, "key": "preds"}, {12: 40}) == (
        "run: 40   # the baseline\nkey: preds\n"
    )
    assert portability.retarget_run(text, {"run": 12, "key": "preds"}, {7: 9}) == text


def test_fifty_blocks_of_eight_runs_stay_within_the_page_budgets(
    world: World, django_assert_max_num_queries
) -> None:
    runs = [_run(world, f"r{i}") for i in range(8)]
    for run in runs:
        _images(run, 1, count=4)
        _histograms(run, range(80))
        _console(run, [f"line {n}" for n in range(600)])
    ids = ", ".join(str(run.pk) for run in runs)
    kinds = [
        f"```media\nruns: [{ids}]\nkey: samples\nmax_images: 16\n```",
        f"```histogram\nruns: [{ids}]\nkey: grad/w1\n```",
        f"```logs\nrun: {runs[0].pk}\ntail: 500\n```",
    ]
    report = _report(world, "\n\n".join(kinds[i % 3] for i in range(50)))
    with django_assert_max_num_queries(60):
        rendered = render.render_report(report)
    assert rendered.errors == []
    assert len(rendered.media) <= media_blocks.PAGE_IMAGES
    assert rendered.html.count('class="report-media-img"') <= media_blocks.PAGE_IMAGES
    assert len(re.findall(r'data-line="', rendered.html)) <= media_blocks.PAGE_LOG_LINES
    assert "Not drawn: this page already shows" in rendered.html
    assert sum(len(orjson.dumps(f.figure)) for f in rendered.figures) <= 4_000_000
