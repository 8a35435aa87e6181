"""User-supplied patterns match in polynomial time: no request can hold the server.

The security review froze a server for 136 s with one MLflow experiments
search (``name LIKE '%%%%%%%%#'``: each extra ``%`` multiplied the time by
about 18) and for 41 s with a report block (``runs: {name: '**********#'}``),
which every share-link view of the report triggered again. The inputs here
carry far more wildcards than those (30): with the old translation they would
not finish in any test's lifetime, so a regression shows as a timeout; the
answers are checked too, so a matcher that is fast and wrong fails as well.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reports_app import render, services
from tests.conftest import World
from tests.tracking.mlflow.test_protocol import Caller, bearer, ok
from tracking import patterns
from tracking import services as tracking_services

WILDCARDS = 30
LONG = "a" * 60  # as long as a project or run name an attacker can create


# --- Semantics ---------------------------------------------------------------------------


def like_reference(pattern: str, text: str) -> bool:
    """SQL LIKE by dynamic programming over (pattern token, text position): obviously right,
    and polynomial, so it can judge the fast matcher on any input."""
    tokens: list[str | None] = []  # a character, "_" as None, "%" as the string "%%"
    chars = iter(pattern)
    for char in chars:
        if char == "\\":
            tokens.append(next(chars, "\\"))
        elif char == "%":
            tokens.append("%%")
        else:
            tokens.append(None if char == "_" else char)
    reachable = {0}
    for token in tokens:
        if token == "%%":
            reachable = set(range(min(reachable), len(text) + 1)) if reachable else set()
        else:
            reachable = {
                i + 1 for i in reachable if i < len(text) and (token is None or text[i] == token)
            }
    return len(text) in reachable


@settings(max_examples=400, deadline=None)
@given(st.text("ab%_\\", max_size=8), st.text("ab%_\\", max_size=8))
def test_like_matches_what_sql_like_means(pattern, text):
    assert patterns.like_matcher(pattern)(text) == like_reference(pattern, text)


@settings(max_examples=200, deadline=None)
@given(st.text("aB%_", max_size=6), st.text("Ab", max_size=6))
def test_ilike_ignores_case(pattern, text):
    expected = like_reference(pattern.lower(), text.lower())
    assert patterns.like_matcher(pattern, ignore_case=True)(text) == expected


@pytest.mark.parametrize(
    ("glob", "text", "matches"),
    [
        ("resnet-*", "resnet-50", True),
        ("resnet-?", "resnet-50", False),
        ("resnet-??", "resnet-50", True),
        ("100%", "100%", True),
        ("100%", "1000", False),  # a glob's % is a literal percent sign
        ("a_b", "axb", False),  # ... and its _ a literal underscore
        ("a_b", "a_b", True),
        ("back\\slash", "back\\slash", True),
        ("*", "", True),
    ],
)
def test_a_glob_means_what_it_says(glob, text, matches):
    assert patterns.like_matcher(patterns.glob_to_like(glob))(text) is matches


def test_the_regex_has_no_nested_or_repeated_unbounded_wildcards():
    regex = patterns.like_regex("%" * WILDCARDS + "#", ignore_case=False, python=True)
    assert regex.count(".*") == 1
    assert regex == r"(?s)\A.*\#\Z"


# --- Through the server ------------------------------------------------------------------


@pytest.fixture
def long_names(world: World) -> None:
    """A project and runs with names as long as the review used."""
    tracking_services.project_create(user=world.owner.user, team_slug="acme", slug=LONG)
    for name in (LONG, LONG + "b", "short#"):
        tracking_services.run_create(user=world.owner.user, project=world.project, name=name)


def test_an_experiments_search_full_of_wildcards_answers_at_once(world, client, long_names):
    viewer = Caller(client, bearer(world.viewer.user))
    wild = "%" * WILDCARDS

    def names(filter_string: str) -> list[str]:
        body = {"filter": filter_string, "max_results": 100}
        answer = ok(viewer.post("experiments/search", body))
        return sorted(e["name"] for e in answer.get("experiments", []))

    assert names(f"name LIKE '{wild}#'") == []
    assert names(f"name LIKE '{wild}a'") == [f"acme/{LONG}"]
    assert names(f"name ILIKE '{wild}A{wild}A{wild}A{wild}b'") == []
    assert names(f"name LIKE 'acme/{'_' * 59}%'") == [f"acme/{LONG}"]


def test_a_runs_search_full_of_wildcards_answers_at_once(world, client, long_names):
    viewer = Caller(client, bearer(world.viewer.user))
    wild = "%" * WILDCARDS
    body = {"experiment_ids": [str(world.project.pk)], "filter": f"run_name LIKE '{wild}#'"}
    runs = ok(viewer.post("runs/search", body)).get("runs", [])
    assert [run["info"]["run_name"] for run in runs] == ["short#"]


def test_a_report_block_full_of_wildcards_renders_at_once(world, long_names):
    body = f"```runs\nruns: {{name: '{'*' * WILDCARDS}#'}}\n```\n\n" + (
        f"```runs\nruns: {{name: '{'*' * WILDCARDS}b'}}\n```"
    )
    report = services.report_create(
        user=world.owner.user, project=world.project, title="Wild", body=body
    )
    html = render.render_report(report).html
    assert ">short#</a>" in html
    assert f">{LONG}b</a>" in html
    assert f">{LONG}</a>" not in html


def test_an_overlong_experiments_filter_is_refused_naming_the_limit(world, client):
    viewer = Caller(client, bearer(world.viewer.user))
    pattern = "%" * (patterns.MAX_PATTERN_LENGTH + 200)
    answer = viewer.post("experiments/search", {"filter": f"name LIKE '{pattern}'"})
    assert answer.status_code == 400
    assert answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "longer than" in answer.json()["message"]


@pytest.mark.parametrize("bad", [123, ["name = 'x'"], {"name": "x"}])
def test_an_experiments_filter_that_is_not_a_string_is_a_400(world, client, bad):
    viewer = Caller(client, bearer(world.viewer.user))
    answer = viewer.post("experiments/search", {"filter": bad})
    assert answer.status_code == 400
    assert answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"
