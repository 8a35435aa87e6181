"""The block parser on input that once escaped it: every problem is a BlockError naming it.

Found by tests/reliability/test_markdown_fuzz.py; before the fixes each of these
raised something else (RecursionError, ValueError), which failed the whole report
page, its share link and the editor's preview with a 500.
"""

from __future__ import annotations

import pytest

from reports_app import blocks

BOMB = "a0: &a0 [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10)
)


def _problem(kind: str, text: str) -> str:
    with pytest.raises(blocks.BlockError) as raised:
        blocks.parse(kind, text)
    return raised.value.message


@pytest.mark.parametrize("loader", [None, "pure Python"])
def test_it_refuses_deep_nesting(monkeypatch, loader):
    if loader:  # without libyaml, PyYAML's parser recurses once per level
        monkeypatch.setattr(blocks, "SAFE_LOADER", blocks.yaml.SafeLoader)
    deep = _problem("runs", "runs: " + "[" * 3000 + "]" * 3000)
    assert "nests more than" in deep or "not valid YAML" in deep  # libyaml has its own limit
    assert "nests more than" in _problem("runs", "runs: " + "[" * 20 + "1" + "]" * 20)


@pytest.mark.parametrize(
    "text",
    [
        "runs: [0x" + "f" * 5000 + "]",  # hex has no digit limit, and str() refuses it
        "title: 1:2:3:4:5:6:7:8:9:" + "59:" * 900 + "1",  # so has base 60
        "0x" + "f" * 200 + ": 1",  # as a key, quoted back when unknown
    ],
)
def test_it_refuses_numbers_too_large_to_print(text):
    assert "too large" in _problem("chart", text)


@pytest.mark.parametrize("text", ["runs: [" + "9" * 5000 + "]", "title: 2024-13-45"])
def test_it_refuses_values_yaml_cannot_build(text):
    assert "out of range or a number too long" in _problem("chart", text)


def test_it_stops_a_yaml_bomb_early():
    assert "nests more than" in _problem("chart", BOMB)
    wide = "a: &a [" + "x, " * 500 + "]\nb: [*a, *a, *a]\n"  # shallow, and still too much
    assert "more than 1000 values" in _problem("chart", wide)


@pytest.mark.parametrize("field", ["project", "tags", "group", "name", "status"])
def test_it_refuses_a_nul_in_text_the_database_would_compare(field):
    assert "NUL" in _problem("runs", f'runs: {{{field}: "a\\0b"}}')


def test_it_quotes_a_long_bad_value_briefly():
    message = _problem("chart", f"runs: [{'k' * 10_000}]")
    assert len(message) < 300 and "…" in message
