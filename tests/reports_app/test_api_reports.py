"""The reports API: who may read and write, revisions and conflicts, drafts, share links."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from reports_app.blocks import MAX_BLOCKS
from reports_app.models import Report, ReportRevision, ShareLink
from tests.conftest import World

REPORTS = "/api/v1/reports"


def _create(world: World, persona: str = "owner", **fields) -> dict:
    body = {"project": "acme/mnist", "title": "Sweep notes", "body": "# Hi", **fields}
    response = world.persona(persona).client().post(REPORTS, body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def _error(response) -> dict:
    return response.json()["error"]


# --- Create and read -------------------------------------------------------------------


def test_it_creates_a_report_with_its_first_revision(world):
    report = _create(world)
    assert report["revision"] == 1 and report["slug"] == "sweep-notes"
    assert report["url"].endswith(f"/reports/{report['id']}/")
    assert report["author"] == "alice" and report["visibility"] == "team"
    revision = ReportRevision.objects.get(report_id=report["id"])
    assert (revision.number, revision.body) == (1, "# Hi")


def test_titles_make_unique_slugs_per_project(world):
    assert [_create(world)["slug"] for _ in range(3)] == [
        "sweep-notes",
        "sweep-notes-2",
        "sweep-notes-3",
    ]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"title": 7}, "title"),
        ({"body": ["no"]}, "body"),
        ({"visibility": "world"}, "visibility"),
        ({"colour": "red"}, "colour"),
        ({"project": ""}, "project"),
    ],
)
def test_it_names_the_bad_field_and_writes_nothing(world, fields, field):
    body = {"project": "acme/mnist", "title": "ok", **fields}
    response = world.owner.client().post(REPORTS, body, format="json")
    assert response.status_code == 400
    assert _error(response)["field"] == field
    assert not Report.objects.exists() and not ReportRevision.objects.exists()


def test_a_report_holds_at_most_max_blocks_charts(world):
    chart = "```chart\nruns: {project: acme/mnist}\nmetrics: [loss]\n```\n"
    body = {"project": "acme/mnist", "title": "Charts", "body": chart * (MAX_BLOCKS + 1)}
    response = world.owner.client().post(REPORTS, body, format="json")
    assert response.status_code == 400 and _error(response)["field"] == "body"
    assert not Report.objects.exists()
    assert _create(world, body=chart * MAX_BLOCKS)["title"] == "Sweep notes"


@pytest.mark.parametrize(("persona", "status"), [("viewer", 403), ("outsider", 404)])
def test_only_editors_and_owners_create_reports(world, persona, status):
    body = {"project": "acme/mnist", "title": "x"}
    response = world.persona(persona).client().post(REPORTS, body, format="json")
    assert response.status_code == status
    assert not Report.objects.exists()


@pytest.mark.parametrize(
    ("persona", "status"),
    [("owner", 200), ("editor", 200), ("viewer", 200), ("outsider", 404)],
)
def test_team_members_read_a_team_report(world, persona, status):
    report = _create(world)
    response = world.persona(persona).client().get(f"{REPORTS}/{report['id']}")
    assert response.status_code == status


def test_anonymous_callers_are_refused(world):
    report = _create(world)
    assert APIClient().get(f"{REPORTS}/{report['id']}").status_code == 401
    assert APIClient().get(REPORTS).status_code == 401


def test_a_private_report_is_its_authors_alone(world):
    report = _create(world, "editor", visibility="private")
    for persona in ("owner", "viewer", "outsider"):
        client = world.persona(persona).client()
        assert client.get(f"{REPORTS}/{report['id']}").status_code == 404, persona
        assert client.get(REPORTS).json()["results"] == [], persona
    assert world.editor.client().get(f"{REPORTS}/{report['id']}").status_code == 200


def test_it_lists_and_searches_the_reports_a_user_may_read(world):
    _create(world, title="Learning rate sweep")
    _create(world, title="Augmentations", body="mixup helps")
    client = world.viewer.client()
    titles = [r["title"] for r in client.get(REPORTS, {"project": "acme/mnist"}).json()["results"]]
    assert sorted(titles) == ["Augmentations", "Learning rate sweep"]
    found = client.get(REPORTS, {"search": "mixup"}).json()["results"]
    assert [r["title"] for r in found] == ["Augmentations"]
    assert "body" not in found[0]
    assert world.outsider.client().get(REPORTS).json()["results"] == []


# --- Saving, conflicts, revisions ---------------------------------------------------------


def _patch(world: World, persona: str, report_id: int, **body):
    return world.persona(persona).client().patch(f"{REPORTS}/{report_id}", body, format="json")


def test_each_save_is_a_revision_and_a_stale_one_gets_409_with_the_current(world):
    report = _create(world)
    first = _patch(world, "editor", report["id"], revision=1, body="bob's text")
    assert first.status_code == 200 and first.json()["revision"] == 2
    stale = _patch(world, "owner", report["id"], revision=1, body="alice's text")
    assert stale.status_code == 409
    error = _error(stale)
    assert error["field"] == "revision"
    assert error["details"]["current"] == {
        "revision": 2,
        "title": "Sweep notes",
        "body": "bob's text",
    }
    assert Report.objects.get().body == "bob's text"
    assert ReportRevision.objects.count() == 2


def test_it_requires_the_revision_edited(world):
    report = _create(world)
    response = _patch(world, "owner", report["id"], body="x")
    assert response.status_code == 400 and _error(response)["field"] == "revision"
    response = _patch(world, "owner", report["id"], revision="1", body="x")
    assert response.status_code == 400 and _error(response)["field"] == "revision"


@pytest.mark.parametrize(("persona", "status"), [("viewer", 403), ("outsider", 404)])
def test_viewers_and_outsiders_cannot_save(world, persona, status):
    report = _create(world)
    assert _patch(world, persona, report["id"], revision=1, body="x").status_code == status
    assert Report.objects.get().revision == 1


def test_only_the_author_or_an_owner_changes_visibility(world):
    report = _create(world, "editor")
    refused = _patch(world, "viewer", report["id"], revision=1, visibility="private")
    assert refused.status_code == 403
    by_author = _patch(world, "editor", report["id"], revision=1, visibility="private")
    assert by_author.status_code == 200
    other = _create(world, "owner")
    assert _patch(world, "editor", other["id"], revision=1, visibility="private").status_code == 403


def test_revisions_are_listed_shown_and_restored(world):
    report = _create(world)
    _patch(world, "editor", report["id"], revision=1, body="second", title="Renamed")
    client = world.viewer.client()
    listed = client.get(f"{REPORTS}/{report['id']}/revisions").json()
    assert [(r["number"], r["author"], r["title"]) for r in listed] == [
        (2, "bob", "Renamed"),
        (1, "alice", "Sweep notes"),
    ]
    first = client.get(f"{REPORTS}/{report['id']}/revisions/1").json()
    assert first["body"] == "# Hi"
    assert client.get(f"{REPORTS}/{report['id']}/revisions/9").status_code == 404
    restore = f"{REPORTS}/{report['id']}/revisions/1/restore"
    assert client.post(restore, {"revision": 2}, format="json").status_code == 403
    restored = world.editor.client().post(restore, {"revision": 2}, format="json")
    assert restored.status_code == 200 and restored.json()["revision"] == 3
    newest = ReportRevision.objects.get(report_id=report["id"], number=3)
    assert (newest.body, newest.title, newest.restored_from) == ("# Hi", "Sweep notes", 1)
    stale = world.editor.client().post(restore, {"revision": 2}, format="json")
    assert stale.status_code == 409


def test_the_author_or_an_owner_deletes_a_report(world):
    report = _create(world, "editor")
    assert world.viewer.client().delete(f"{REPORTS}/{report['id']}").status_code == 403
    other = _create(world, "owner")
    assert world.editor.client().delete(f"{REPORTS}/{other['id']}").status_code == 403
    assert world.owner.client().delete(f"{REPORTS}/{report['id']}").status_code == 204
    assert list(Report.objects.values_list("pk", flat=True)) == [other["id"]]


# --- Drafts and preview ---------------------------------------------------------------------


def test_a_draft_is_kept_per_user_until_they_save(world):
    report = _create(world)
    url = f"{REPORTS}/{report['id']}/draft"
    editor = world.editor.client()
    assert editor.get(url).status_code == 404
    saved = editor.put(url, {"title": "T", "body": "half written", "revision": 1}, format="json")
    assert saved.status_code == 200 and saved.json()["body"] == "half written"
    assert world.owner.client().get(url).status_code == 404  # drafts are private
    assert Report.objects.get().revision == 1  # autosave makes no revision
    _patch(world, "editor", report["id"], revision=1, body="done")
    assert editor.get(url).status_code == 404  # saving clears the draft
    editor.put(url, {"title": "T", "body": "again", "revision": 2}, format="json")
    assert editor.delete(url).status_code == 204
    assert editor.get(url).status_code == 404


@pytest.mark.parametrize("revision", [0, -152_593, 2**31, 2**63])
def test_a_draft_names_a_revision_out_of_range(world, revision):
    # Found by tests/reliability/test_api_schema_fuzz.py: the database refused it (a 500).
    report = _create(world)
    body = {"title": "T", "body": "half written", "revision": revision}
    response = world.editor.client().put(f"{REPORTS}/{report['id']}/draft", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["field"] == "revision"


def test_saving_unchanged_text_makes_no_revision(world):
    report = _create(world)
    response = _patch(world, "editor", report["id"], revision=1, body="# Hi", title="Sweep notes")
    assert response.status_code == 200 and response.json()["revision"] == 1
    assert ReportRevision.objects.count() == 1


def test_preview_renders_without_saving_and_only_for_editors(world):
    report = _create(world)
    url = f"{REPORTS}/{report['id']}/preview"
    body = {"body": "**bold** <script>x</script>\n\n```chart\nruns: [1]\n```"}
    response = world.editor.client().post(url, body, format="json")
    assert response.status_code == 200
    answer = response.json()
    assert "<strong>bold</strong>" in answer["html"] and "<script" not in answer["html"]
    assert answer["errors"] == ["chart block, line 3: `metrics` is required: name at least one."]
    assert world.viewer.client().post(url, body, format="json").status_code == 403
    assert Report.objects.get().body == "# Hi"


# --- Share links -------------------------------------------------------------------------------


def test_the_author_shares_and_revokes_a_link(world):
    report = _create(world, "editor")
    url = f"{REPORTS}/{report['id']}/share-links"
    created = world.editor.client().post(
        url, {"hide_authors": True, "expires_at": "2099-01-01T00:00:00Z"}, format="json"
    )
    assert created.status_code == 201
    link = created.json()
    assert link["url"].endswith(f"/s/{link['token']}") and link["hide_authors"] is True
    stored = ShareLink.objects.get()
    assert stored.token_hash == ShareLink.hash(link["token"]) and link["token"] not in stored.prefix
    listed = world.editor.client().get(url).json()
    assert [item["id"] for item in listed] == [link["id"]] and "token" not in listed[0]
    assert world.viewer.client().post(url, {}, format="json").status_code == 403
    assert world.viewer.client().get(url).json() == []
    assert world.outsider.client().get(url).status_code == 404
    revoke = f"/api/v1/share-links/{link['id']}"
    assert world.viewer.client().delete(revoke).status_code == 403
    assert world.outsider.client().delete(revoke).status_code == 404
    assert world.owner.client().delete(revoke).status_code == 204
    assert ShareLink.objects.get().revoked_at is not None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"expires_at": "tomorrow"}, "expires_at"),
        ({"expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        ({"expires_at": "2027-02-30T00:00:00Z"}, "expires_at"),  # well formed, impossible
        ({"hide_authors": "yes"}, "hide_authors"),
        ({"token": "mine"}, "token"),
    ],
)
def test_a_bad_share_link_request_names_the_field(world, body, field):
    report = _create(world)
    url = f"{REPORTS}/{report['id']}/share-links"
    response = world.owner.client().post(url, body, format="json")
    assert response.status_code == 400 and _error(response)["field"] == field
    assert not ShareLink.objects.exists()


def test_listing_reports_costs_the_same_queries_for_3_and_30(world, django_assert_max_num_queries):
    client = world.viewer.client()
    client.get(REPORTS)  # the token's first use of the minute records itself: not measured
    counts = []
    for total in (3, 30):
        while Report.objects.count() < total:
            _create(world)
        with django_assert_max_num_queries(6) as queries:
            assert len(client.get(REPORTS).json()["results"]) == total
        counts.append(len(queries))
    assert counts[0] == counts[1]
