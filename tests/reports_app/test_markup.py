"""Markdown to HTML on input that once broke it (found by tests/reliability/)."""

from __future__ import annotations

import sys

import pytest

from reports_app import markup


def test_half_a_surrogate_pair_shows_as_a_replacement_character():
    # nh3 (Rust) raised UnicodeEncodeError on it: a 500 for the report and its preview.
    assert markup.to_html("a \ud800 b \U0001f600") == "<p>a \ufffd b \U0001f600</p>"


def work(text: str) -> int:
    """Lines of Python run to convert ``text``: a measure of cost that no machine changes."""
    lines = 0

    def trace(frame: object, event: str, arg: object) -> object:
        nonlocal lines
        lines += event == "line"
        return trace

    sys.settrace(trace)
    try:
        markup.to_html(text)
    finally:
        sys.settrace(None)
    return lines


@pytest.mark.parametrize(
    "piece",
    [
        "[",  # every [ was scanned to the end of the paragraph
        "[a](",  # every ]( was scanned for a ) that never comes
        "[a](x ",
        "[a]('",  # a quote: python-markdown's own title reading
        "[a](')",
    ],
)
def test_the_cost_grows_linearly_with_pathological_input(piece, monkeypatch):
    # Quadratic costs doubled twice over when the input doubled: minutes at 20,000 pieces.
    # Smaller bounds than the real ones, same shape: the traced runs stay short.
    monkeypatch.setattr(markup, "SCAN_LINK_CHARS", 256)
    monkeypatch.setattr(markup, "SCANNED_LINKS", 100)
    assert work(piece * 1_000 + ")") < 2.5 * work(piece * 500 + ")")


@pytest.mark.parametrize("text", ["[" * 20_000, "[" * 20_000 + "]", "[a](" * 5_000])
def test_unclosed_brackets_stay_text(text):
    html = markup.to_html(text)
    assert html.startswith("<p>[") and html.count("[") == text.count("[")


@pytest.mark.parametrize(
    ("text", "html"),
    [
        ("[a](b) [c [d]](e)", '<a href="b"'),
        ("[" + "x" * 100 + "](long)", '<a href="long"'),  # past the short scan: the index
        ("[[x]](y) [z]", '<a href="y"'),
        ("![" + "i" * 80 + "](p.png)", '<img alt="' + "i" * 80 + '" src="p.png"'),
        ("[ref][r]\n\n[r]: http://a.example/", '<a href="http://a.example/"'),
    ],
)
def test_links_still_render_as_before(text, html):
    assert html in markup.to_html(text)


def filled(text: str) -> str:
    """``text`` rendered with run references and mentions as recognizable trusted HTML."""
    html, source = markup.convert(text)
    return markup.fill(
        html,
        source,
        block=markup.code_blocks(source),
        run_link=lambda run_id: f'<a class="run-ref" href="/runs/{run_id}">R{run_id}</a>',
        mention=lambda name: f'<span class="mention">@{name}</span>',
    )


@pytest.mark.parametrize(
    ("text", "html"),
    [
        # A reference in a link target once put a whole <a> into the href attribute.
        (
            "[x](https://h/?q=run:5)",
            '<p><a href="https://h/?q=run:5" rel="noopener noreferrer nofollow">x</a></p>',
        ),
        (
            "<a href='mailto:@bob'>m</a>",
            '<p><a href="mailto:@bob" rel="noopener noreferrer nofollow">m</a></p>',
        ),
        # In a link's text: a link inside a link is no link.
        (
            "[run:5 @bob](https://h/)",
            '<p><a href="https://h/" rel="noopener noreferrer nofollow">run:5 @bob</a></p>',
        ),
        (
            "run:5 and @bob.",
            '<p><a class="run-ref" href="/runs/5">R5</a> and'
            ' <span class="mention">@bob</span>.</p>',
        ),
        ("`run:5 @bob` a@b.co", "<p><code>run:5 @bob</code> a@b.co</p>"),
    ],
)
def test_references_and_mentions_become_html_only_in_text(text, html):
    assert filled(text) == html


def test_a_body_cannot_give_itself_the_mention_class():
    assert (
        markup.to_html('<span class="x mention">@eve</span>')
        == '<p><span class="x">@eve</span></p>'
    )
