"""JSON request bodies: what the parser accepts, and the text no database could store."""

from __future__ import annotations

import pytest

from tracking.models import Run


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"project": "acme/mnist", "name": "a\\ud800b"}', "name"),
        (b'{"project": "acme/mnist", "config": {"lr": ["\\udfff"]}}', "config.lr[0]"),
        (b'{"project": "acme/mnist", "config": {"\\uDBFF": 1}}', "config.\udbff"),
    ],
)
def test_it_refuses_half_a_surrogate_pair_naming_the_field(world, raw, field):
    # Found by tests/reliability/test_markdown_fuzz.py: such text failed deep in the
    # database driver (a 500), and nh3 could not render it.
    response = world.owner.client().post("/api/v1/runs", raw, content_type="application/json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["field"] == field
    assert Run.objects.count() == 0


def test_it_accepts_an_escaped_surrogate_pair_and_nan(world):
    raw = b'{"project": "acme/mnist", "name": "\\ud83d\\ude00", "config": {"x": NaN}}'
    response = world.owner.client().post("/api/v1/runs", raw, content_type="application/json")
    assert response.status_code == 201, response.content
    assert response.json()["name"] == "\U0001f600"


def test_a_comment_with_half_a_surrogate_pair_is_refused(world):
    run = world.owner.client().post("/api/v1/runs", {"project": "acme/mnist"}, format="json")
    raw = b'{"target": "run:%d", "body": "hi \\ud800"}' % run.json()["id"]
    response = world.owner.client().post("/api/v1/comments", raw, content_type="application/json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["field"] == "body"
