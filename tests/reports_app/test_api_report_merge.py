"""``POST /api/v1/reports/{id}/merge``: an editor's stale text merged with the newest revision."""

from __future__ import annotations

import pytest

from reports_app.models import ReportRevision
from tests.conftest import World

REPORTS = "/api/v1/reports"
BODY = "# Notes\nline 2\nline 3\nline 4\nline 5"


def _report(world: World) -> int:
    body = {"project": "acme/mnist", "title": "Sweep notes", "body": BODY}
    response = world.owner.client().post(REPORTS, body, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def _save(world: World, persona: str, report_id: int, **body) -> dict:
    client = world.persona(persona).client()
    response = client.patch(f"{REPORTS}/{report_id}", body, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def _merge(world: World, report_id: int, persona: str = "owner", **body):
    client = world.persona(persona).client()
    return client.post(f"{REPORTS}/{report_id}/merge", body, format="json")


def test_it_merges_edits_to_different_lines_and_names_who_saved(world):
    report_id = _report(world)
    _save(world, "editor", report_id, revision=1, body=BODY.replace("# Notes", "# Notes (bob)"))
    mine = BODY.replace("line 5", "line 5 (alice)")
    response = _merge(world, report_id, revision=1, title="Sweep notes", body=mine + "\n")
    assert response.status_code == 200, response.content
    merged = response.json()
    assert (merged["base"], merged["revision"], merged["authors"]) == (1, 2, ["bob"])
    assert merged["clean"] is True
    assert [chunk["kind"] for chunk in merged["body"]] == ["theirs", "unchanged", "mine"]
    lines = [line for chunk in merged["body"] for line in chunk["lines"]]
    assert "\n".join(lines) == "# Notes (bob)\nline 2\nline 3\nline 4\nline 5 (alice)"
    assert merged["body"][0] == {
        "kind": "theirs",
        "lines": ["# Notes (bob)"],
        "base": ["# Notes"],
        "mine": ["# Notes"],
        "theirs": ["# Notes (bob)"],
    }
    assert merged["title"] == [
        {"kind": "unchanged", "lines": ["Sweep notes"], "base": [], "mine": [], "theirs": []}
    ]
    assert ReportRevision.objects.filter(report_id=report_id).count() == 2  # saved nothing


def test_overlapping_edits_come_back_as_conflicts_with_all_three_versions(world):
    report_id = _report(world)
    _save(world, "editor", report_id, revision=1, title="Bob's title", body="bob's text")
    _save(world, "owner", report_id, revision=2, body="bob's text, and alice's")
    response = _merge(world, report_id, revision=1, title="Carol's title", body="carol's text")
    merged = response.json()
    assert merged["clean"] is False and merged["authors"] == ["bob", "alice"]
    assert merged["title"] == [
        {
            "kind": "conflict",
            "lines": [],
            "base": ["Sweep notes"],
            "mine": ["Carol's title"],
            "theirs": ["Bob's title"],
        }
    ]
    (chunk,) = merged["body"]
    assert (chunk["kind"], chunk["theirs"]) == ("conflict", ["bob's text, and alice's"])


def test_text_based_on_the_newest_revision_merges_to_itself(world):
    report_id = _report(world)
    merged = _merge(world, report_id, revision=1, title="Sweep notes", body="new").json()
    assert merged["clean"] and merged["authors"] == []
    assert [chunk["kind"] for chunk in merged["body"]] == ["mine"]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"title": "t", "body": ""}, 400, "revision"),
        ({"revision": "1", "title": "t", "body": ""}, 400, "revision"),
        ({"revision": 9, "title": "t", "body": ""}, 404, "revision"),
        ({"revision": 1, "title": "", "body": ""}, 400, "title"),
        ({"revision": 1, "title": "t", "body": 5}, 400, "body"),
        ({"revision": 1, "title": "t"}, 400, "body"),
        ({"revision": 1, "title": "t", "body": "", "visibility": "team"}, 400, "visibility"),
    ],
)
def test_a_bad_merge_request_names_the_field(world, body, status, field):
    response = _merge(world, _report(world), **body)
    assert response.status_code == status, response.content
    assert response.json()["error"]["field"] == field


@pytest.mark.parametrize(("persona", "status"), [("viewer", 403), ("outsider", 404)])
def test_only_those_who_may_edit_get_a_merge(world, persona, status):
    response = _merge(world, _report(world), persona, revision=1, title="t", body="x")
    assert response.status_code == status
