"""Markdown to HTML on input that once broke it (found by tests/reliability/)."""

from __future__ import annotations

import time

import pytest

from reports_app import markup

SLOW = 10.0  # seconds; each case below took minutes before its fix, and well under 1 s after


def test_half_a_surrogate_pair_shows_as_a_replacement_character():
    # nh3 (Rust) raised UnicodeEncodeError on it: a 500 for the report and its preview.
    assert markup.to_html("a \ud800 b \U0001f600") == "<p>a \ufffd b \U0001f600</p>"


@pytest.mark.parametrize(
    "text",
    [
        "[" * 20_000,  # every [ was scanned to the end of the paragraph: quadratic
        "[" * 20_000 + "]",
        "[a](" * 20_000,  # every ]( was scanned for a ) that never comes
    ],
)
def test_unclosed_brackets_take_linear_time(text):
    started = time.monotonic()
    html = markup.to_html(text)
    assert time.monotonic() - started < SLOW
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
