from __future__ import annotations

import base64

import pytest

from tracking import events
from tracking.models import Project, Run


def create_run(client, **fields):
    body = {"project": "acme/mnist", **fields}
    response = client.post("/api/v1/runs", body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def test_it_creates_a_run_with_everything_a_training_script_knows(world):
    run = create_run(
        world.editor.client(),
        name="resnet-lr3e-4",
        group="sweep-1",
        tags=["baseline", "resnet", "baseline"],
        config={"lr": 3e-4, "optimizer": {"name": "adam", "betas": [0.9, 0.999]}},
        notes="first try",
        host="gpu-01",
        command="python train.py --lr 3e-4",
        git={"commit": "abc123", "branch": "main", "dirty": False},
    )
    assert run["status"] == "running"
    assert run["project"] == "acme/mnist"
    assert run["tags"] == ["baseline", "resnet"]
    assert run["config"]["optimizer"]["betas"] == [0.9, 0.999]
    assert run["url"].endswith(f"/acme/mnist/runs/{run['id']}")
    assert Run.objects.get(pk=run["id"]).created_by == world.editor.user


def test_it_names_an_unnamed_run(world):
    run = create_run(world.owner.client())
    assert run["name"].endswith(f"-{run['id']}")


def test_it_creates_the_project_on_first_use_by_an_editor(world):
    run = create_run(world.editor.client(), project="acme/new-idea")
    assert run["project"] == "acme/new-idea"
    assert Project.objects.filter(team=world.team, slug="new-idea").exists()


def test_it_does_not_let_a_viewer_create_runs_or_projects(world):
    client = world.viewer.client()
    existing = client.post("/api/v1/runs", {"project": "acme/mnist"}, format="json")
    assert existing.status_code == 403
    missing = client.post("/api/v1/runs", {"project": "acme/new-idea"}, format="json")
    assert missing.status_code == 404
    assert not Project.objects.filter(slug="new-idea").exists()
    assert Run.objects.count() == 0


def test_it_hides_other_teams_projects_from_run_creation(world):
    response = world.outsider.client().post(
        "/api/v1/runs", {"project": "acme/mnist"}, format="json"
    )
    assert response.status_code == 404
    assert response.json()["error"]["field"] == "project"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "project"),
        ({"project": "mnist"}, "project"),
        ({"project": "acme/"}, "project"),
        ({"project": "acme/a/b"}, "project"),
        ({"project": "acme/bad name"}, "project"),
        ({"project": "acme/mnist", "name": "x" * 201}, "name"),
        ({"project": "acme/mnist", "name": 12}, "name"),
        ({"project": "acme/mnist", "tags": "resnet"}, "tags"),
        ({"project": "acme/mnist", "tags": ["ok", 3]}, "tags[1]"),
        ({"project": "acme/mnist", "tags": [""]}, "tags[0]"),
        ({"project": "acme/mnist", "config": [1, 2]}, "config"),
        ({"project": "acme/mnist", "status": "finished"}, "status"),
        ({"project": "acme/mnist", "colour": "red"}, "colour"),
    ],
)
def test_it_rejects_bad_run_input_naming_the_field(world, body, field):
    response = world.owner.client().post("/api/v1/runs", body, format="json")
    assert response.status_code == 400, response.json()
    assert response.json()["error"]["field"] == field
    assert Run.objects.count() == 0


def test_it_rejects_deeply_nested_config(world):
    deep: dict = {}
    node = deep
    for _ in range(30):
        node["x"] = {}
        node = node["x"]
    response = world.owner.client().post(
        "/api/v1/runs", {"project": "acme/mnist", "config": deep}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "config"


def test_it_answers_malformed_json_with_400(world):
    response = world.owner.client().post(
        "/api/v1/runs", '{"project": "acme/mnist",', content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_json"


def test_it_answers_a_non_object_body_with_400(world):
    response = world.owner.client().post("/api/v1/runs", [1, 2], format="json")
    assert response.status_code == 400


def test_it_keeps_nan_in_config_as_a_string(world):
    body = '{"project": "acme/mnist", "config": {"eps": NaN, "clip": Infinity}}'
    response = world.owner.client().post("/api/v1/runs", body, content_type="application/json")
    assert response.status_code == 201
    assert response.json()["config"] == {"eps": "NaN", "clip": "Infinity"}


def test_it_survives_integers_beyond_64_bits_in_config(world):
    body = '{"project": "acme/mnist", "config": {"seed": 123456789012345678901234567890, "x": NaN}}'
    response = world.owner.client().post("/api/v1/runs", body, content_type="application/json")
    assert response.status_code == 201
    assert response.json()["config"]["x"] == "NaN"


class TestPatch:
    def test_it_finishes_a_run_with_exit_code(self, world):
        run = create_run(world.editor.client())
        response = world.editor.client().patch(
            f"/api/v1/runs/{run['id']}", {"status": "failed", "exit_code": 137}, format="json"
        )
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "failed"
        assert body["exit_code"] == 137
        assert body["ended_at"] is not None

    def test_it_merges_summary_and_config_and_replaces_tags(self, world):
        client = world.owner.client()
        run = create_run(client, config={"lr": 0.1, "bs": 32}, tags=["a"])
        response = client.patch(
            f"/api/v1/runs/{run['id']}",
            {
                "config": {"bs": None, "wd": 0.01},
                "summary": {"best_acc": 0.98},
                "tags": ["b"],
                "notes": "better",
            },
            format="json",
        )
        body = response.json()
        assert body["config"] == {"lr": 0.1, "wd": 0.01}
        assert body["summary"] == {"best_acc": 0.98}
        assert body["tags"] == ["b"]
        assert body["notes"] == "better"

    def test_it_refuses_viewers_and_hides_from_outsiders(self, world):
        run = create_run(world.owner.client())
        url = f"/api/v1/runs/{run['id']}"
        assert world.viewer.client().patch(url, {"notes": "x"}, format="json").status_code == 403
        assert world.outsider.client().patch(url, {"notes": "x"}, format="json").status_code == 404
        assert Run.objects.get(pk=run["id"]).notes == ""

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"status": "exploded"}, "status"),
            ({"exit_code": "one"}, "exit_code"),
            ({"exit_code": 2**40}, "exit_code"),
            ({"summary": "high"}, "summary"),
            ({"id": 5}, "id"),
        ],
    )
    def test_it_rejects_bad_patches_and_writes_nothing(self, world, body, field):
        client = world.owner.client()
        run = create_run(client, notes="keep")
        response = client.patch(
            f"/api/v1/runs/{run['id']}", {**body, "notes": "changed"}, format="json"
        )
        assert response.status_code == 400
        assert response.json()["error"]["field"] == field
        assert Run.objects.get(pk=run["id"]).notes == "keep"

    def test_it_publishes_status_changes_after_commit(
        self, world, django_capture_on_commit_callbacks
    ):
        seen = []
        events.subscribe(events.RunStatusChanged, seen.append)
        try:
            run = create_run(world.owner.client())
            with django_capture_on_commit_callbacks(execute=True):
                world.owner.client().patch(
                    f"/api/v1/runs/{run['id']}", {"status": "finished"}, format="json"
                )
        finally:
            events.unsubscribe(events.RunStatusChanged, seen.append)
        assert [(e.run_id, e.old, e.new) for e in seen] == [(run["id"], "running", "finished")]


class TestList:
    @pytest.fixture
    def runs(self, world):
        client = world.owner.client()
        made = [
            create_run(client, name="alpha", tags=["resnet", "baseline"], notes="good lr"),
            create_run(client, name="beta", tags=["resnet"], group="sweep"),
            create_run(client, name="gamma", tags=["vit"], group="sweep"),
        ]
        client.patch(f"/api/v1/runs/{made[1]['id']}", {"status": "failed"}, format="json")
        create_run(world.outsider.client(), project="rival/secret", name="alpha-secret")
        return made

    def names(self, client, query=""):
        response = client.get(f"/api/v1/runs{query}")
        assert response.status_code == 200, response.json()
        return [run["name"] for run in response.json()["results"]]

    def test_it_lists_newest_first_and_only_my_teams(self, world, runs):
        assert self.names(world.viewer.client()) == ["gamma", "beta", "alpha"]
        assert self.names(world.outsider.client()) == ["alpha-secret"]

    def test_it_filters(self, world, runs):
        client = world.viewer.client()
        assert self.names(client, "?project=acme/mnist&status=failed") == ["beta"]
        assert self.names(client, "?status=running,failed") == ["gamma", "beta", "alpha"]
        assert self.names(client, "?tag=resnet&tag=baseline") == ["alpha"]
        assert self.names(client, "?group=sweep&ordering=name") == ["beta", "gamma"]
        assert self.names(client, "?search=GOOD") == ["alpha"]
        assert self.names(client, "?search=alpha") == ["alpha"]

    def test_it_lists_only_the_runs_named_by_ids(self, world, runs):
        client = world.viewer.client()
        secret = Run.objects.get(name="alpha-secret").pk
        ids = f"{runs[0]['id']}, {runs[2]['id']},{secret},"
        assert self.names(client, f"?ids={ids}") == ["gamma", "alpha"]  # never another team's
        assert self.names(client, "?ids=") == []
        assert self.names(client, f"?ids={runs[1]['id']}&status=running") == []

    @pytest.mark.parametrize(
        "ids",
        [
            "abc",
            "0",
            "-1",
            "1.5",
            "9" * 20,
            "9" * 5000,
            "\N{ARABIC-INDIC DIGIT ONE}",
            ",".join(["1"] * 501),
        ],
    )
    def test_a_bad_ids_list_names_the_field(self, world, runs, ids):
        answer = world.viewer.client().get("/api/v1/runs", {"ids": ids})
        assert answer.status_code == 400, answer.content
        assert answer.json()["error"]["field"] == "ids"

    def test_it_paginates_with_a_cursor(self, world, runs):
        client = world.viewer.client()
        first = client.get("/api/v1/runs?page_size=2&ordering=name").json()
        assert [r["name"] for r in first["results"]] == ["alpha", "beta"]
        second = client.get(first["next"]).json()
        assert [r["name"] for r in second["results"]] == ["gamma"]
        assert second["next"] is None

    @pytest.mark.parametrize("position", ["garbage", "2027-02-30T00:00:00Z", "9" * 40, "\x00"])
    def test_a_forged_cursor_is_never_a_500(self, world, runs, position):
        forged = base64.b64encode(f"o=0&p={position}".encode()).decode()
        for ordering in ("", "&ordering=name", "&ordering=-created_at"):
            answer = world.viewer.client().get(f"/api/v1/runs?cursor={forged}{ordering}")
            assert answer.status_code in (200, 404), (
                ordering,
                answer.content,
            )  # a name may be anything
        by_date = world.viewer.client().get(f"/api/v1/runs?cursor={forged}")
        assert by_date.status_code == 404 and by_date.json()["error"]["code"] == "not_found"

    def test_it_rejects_bad_filters(self, world, runs):
        client = world.viewer.client()
        assert client.get("/api/v1/runs?ordering=evil").json()["error"]["field"] == "ordering"
        assert client.get("/api/v1/runs?status=weird").json()["error"]["field"] == "status"
        other = client.get("/api/v1/runs?project=rival/secret")
        assert other.status_code == 404

    def test_it_lists_a_page_in_a_fixed_number_of_queries(
        self, world, runs, django_assert_max_num_queries
    ):
        client = world.viewer.client()
        with django_assert_max_num_queries(6):
            response = client.get("/api/v1/runs")
        assert len(response.json()["results"]) == 3


class TestHeartbeat:
    def test_it_marks_the_run_alive(self, world):
        run = create_run(world.editor.client())
        before = Run.objects.get(pk=run["id"]).last_seen_at
        response = world.editor.client().post(f"/api/v1/runs/{run['id']}/heartbeat")
        assert response.status_code == 200
        assert response.json()["status"] == "running"
        assert Run.objects.get(pk=run["id"]).last_seen_at > before

    def test_it_revives_a_crashed_run(self, world):
        run = create_run(world.editor.client())
        Run.objects.filter(pk=run["id"]).update(status="crashed")
        response = world.editor.client().post(f"/api/v1/runs/{run['id']}/heartbeat")
        assert response.json()["status"] == "running"

    def test_it_hides_the_run_from_outsiders(self, world):
        run = create_run(world.editor.client())
        assert (
            world.outsider.client().post(f"/api/v1/runs/{run['id']}/heartbeat").status_code == 404
        )
        assert world.viewer.client().post(f"/api/v1/runs/{run['id']}/heartbeat").status_code == 403


def test_an_unknown_or_absurd_run_id_is_404(world):
    client = world.owner.client()
    assert client.get("/api/v1/runs/999999").status_code == 404
    assert client.get(f"/api/v1/runs/{2**70}").status_code == 404
    assert client.get("/api/v1/runs/999999/metrics").status_code == 404


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/runs?search=a%00b",
        "/api/v1/runs?project=acme%00/mnist",
        "/api/v1/projects/acme%00/mnist",
        "/api/v1/runs/1/metrics/lo%00ss",
    ],
)
def test_nul_characters_in_urls_are_a_400_not_a_500(world, url):
    response = world.owner.client().get(url)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"


@pytest.mark.parametrize(
    "body",
    [
        {"project": "acme/mnist", "config": {"a\x00": 1}},
        {"project": "acme/mnist", "config": {"a": ["x\x00"]}},
        {"project": "acme/mnist", "name": "a\x00b"},
        {"project": "acme/mnist", "tags": ["a\x00"]},
    ],
)
def test_nul_characters_in_bodies_are_a_400_not_a_500(world, body):
    response = world.owner.client().post("/api/v1/runs", body, format="json")
    assert response.status_code == 400
    assert Run.objects.count() == 0


def test_deleting_a_run_removes_its_metrics(world):
    from tracking.ingest import Point, metrics_ingest
    from tracking.models import MetricPoint, MetricRollup, MetricSeries
    from tracking.services import run_create

    run = run_create(user=world.owner.user, project=world.project)
    keep = run_create(user=world.owner.user, project=world.project)
    for target in (run, keep):
        metrics_ingest(run=target, points=[Point("loss", s, 1.0, 1.0) for s in range(100)])
    run.delete()
    assert MetricSeries.objects.filter(run_id=run.pk).count() == 0
    assert MetricPoint.objects.count() == 100
    assert MetricRollup.objects.exclude(series__run=keep).count() == 0


def test_a_retried_create_with_the_same_client_id_returns_the_same_run(world):
    client = world.editor.client()
    body = {"project": "acme/mnist", "client_id": "c0ffee", "name": "once"}
    first = client.post("/api/v1/runs", body, format="json")
    again = client.post("/api/v1/runs", body, format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert Run.objects.count() == 1
    other_user = world.owner.client().post("/api/v1/runs", body, format="json")
    assert other_user.status_code == 201
    elsewhere = client.post("/api/v1/runs", {**body, "project": "acme/other"}, format="json")
    assert elsewhere.status_code == 409
    assert elsewhere.json()["error"]["field"] == "client_id"
