"""`manage.py export_project` / `import_project`: a project leaves and comes back whole."""

from __future__ import annotations

import base64
import gzip
import io
import json
import math
import re
import sys
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from PIL import Image as PILImage

from alerts import services as alert_services
from alerts.models import Alert, AlertRule, Notification
from reports_app import comments
from reports_app import services as report_services
from reports_app.models import Comment, Report, ReportRevision
from reports_app.selectors import report_get_for_user
from tracking import console, ingest, media, services
from tracking.mlflow import experiments, inputs
from tracking.mlflow import runs as mlflow_runs
from tracking.models import (
    ConsoleLine,
    MediaItem,
    MetricPoint,
    MetricRollup,
    MetricSeries,
    Project,
    Role,
    Run,
    RunStatus,
    SdkAlert,
)
from tracking.rollups import CELL_COLUMNS
from tracking.selectors import run_get_for_user

MB = 1024 * 1024
# The chart block freezes its data (live: false), so revision 2 stores a figure naming runs.
BODY = """# Sweep

The baseline is run:{a}; run:{b} went NaN.

```chart
# the two that matter
runs: [{a}, {b}]
metrics: [loss]
title: Loss
live: false
```

```runs
runs: {{project: {project}, tags: [baseline]}}
columns: [config.lr]
```
"""
# Where alice's and carol's things land in team "lab" (they are not members); bob is one.
AUTHORS_IN_LAB = {"alice": "mallory", "bob": "bob", "carol": "mallory", None: None}


def export(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("export_project", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def load(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("import_project", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def lines_of(path: Path) -> list[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as stream:
        return [json.loads(line) for line in stream]


def points(*rows: tuple[str, int, Any]) -> list[ingest.Point]:
    raw = [{"key": k, "step": s, "value": v, "timestamp": 1_700_000_000.0 + s} for k, s, v in rows]
    return ingest.parse_points(raw)


@dataclass
class Source:
    project: Project
    runs: dict[str, Run]


@pytest.fixture
def lab(world):
    """The team the project moves to: mallory owns it, bob is an editor, alice is absent."""
    team = services.team_create(slug="lab", owner=world.outsider.user)
    services.membership_set(team=team, user=world.editor.user, role=Role.EDITOR)
    alert_services.destination_create(
        user=world.outsider.user,
        team=team,
        role=Role.OWNER,
        kind="email",
        name="ops",
        config={"addresses": ["ops@lab.example"]},
    )
    return team


@pytest.fixture
def source(world) -> Source:
    """acme/mnist with runs in every state, NaN and infinite points, a report, comments, a rule."""
    alice, bob = world.owner.user, world.editor.user
    project = world.project
    services.project_update(project=project, description="Digits, again.")
    experiments.set_tag(project, "dataset", "mnist-v2")
    runs = {
        "baseline": services.run_create(
            user=alice,
            project=project,
            client_id="sweep-0",
            name="baseline",
            group="sweep",
            config={"lr": 0.1, "optimizer": {"name": "adam", "betas": [0.9, 0.999]}},
            summary={"val/acc": 0.98},
            notes="The one to beat.",
            tags=["baseline", "sweep"],
            host="gpu-1",
            command="python train.py --lr 0.1",
            git={"commit": "abc123", "branch": "main", "dirty": False},
            metadata={"python": "3.12.1", "sdk": "labbook-sdk/1"},
        ),
        "diverged": services.run_create(user=bob, project=project, name="diverged", tags=["sweep"]),
        "crashed": services.run_create(user=alice, project=project, name="crashed"),
        "gone": services.run_create(user=alice, project=project, name="gone"),
        "live": services.run_create(user=bob, project=project, name="live"),
    }
    log_points(runs)
    log_datasets(runs)
    log_media_and_console(runs)
    finish_runs(world, runs)
    write_report(world, project, runs)
    write_comments(world, runs)
    services.sdk_alert_raise(
        run=runs["diverged"], title="Loss is NaN", text="step 3", level="error"
    )
    add_rule(world, project)
    return Source(Project.objects.get(pk=project.pk), runs)


def log_points(runs: dict[str, Run]) -> None:
    loss = [("loss", step, 2.0 / (step + 1)) for step in range(40)]
    acc = [("acc", step, step / 40) for step in range(0, 40, 4)]
    ingest.metrics_ingest(run=runs["baseline"], points=points(*loss, *acc))
    odd = [("loss", 0, 1.5), ("loss", 1, "NaN"), ("loss", 2, "Infinity"), ("loss", 3, "-Infinity")]
    ingest.metrics_ingest(run=runs["diverged"], points=points(*odd, ("loss", 4, 0.5)))
    ingest.metrics_ingest(run=runs["crashed"], points=points(("loss", 0, 3.0), ("loss", 7, 2.0)))


def log_media_and_console(runs: dict[str, Run]) -> None:
    """An image, a table, histograms and a text on one run; console lines with colours on
    another."""
    buffer = io.BytesIO()
    PILImage.new("RGB", (5, 4), (10, 200, 30)).save(buffer, format="PNG")
    image = base64.b64encode(buffer.getvalue()).decode()
    items = [
        {"key": "samples", "step": 3, "kind": "image", "caption": "a frog", "image": image},
        {"key": "preds", "step": 3, "kind": "table", "columns": ["id", "p"], "rows": [[1, 0.5]]},
        *[
            {"key": "w", "step": s, "kind": "histogram", "counts": [s, 1], "edges": [0, 1, 2.5]}
            for s in range(3)
        ],
        {"key": "config", "step": 0, "kind": "text", "format": "yaml", "text": "lr: 0.1\n✓\n"},
    ]
    media.media_ingest(run=runs["baseline"], items=media.parse_items(items))
    lines = [
        {"number": n, "stream": "stderr" if n % 3 else "stdout", "text": f"\x1b[31mline {n}\x1b[0m"}
        for n in range(2_500)
    ]
    console.console_append(run=runs["diverged"], lines=console.parse_lines(lines))


def log_datasets(runs: dict[str, Run]) -> None:
    """Two datasets (one with a name that ends in a space: kept exactly), used by two runs."""
    train = {"name": "mnist ", "digest": "d1", "source_type": "local", "source": "/data/train"}
    evaluation = {**train, "name": "mnist-test", "digest": "d2", "schema": '{"x": "int"}\n'}
    for run, used in ((runs["baseline"], [(train, "train"), (evaluation, "eval")]),
                      (runs["diverged"], [(train, "training")])):  # fmt: skip
        sent = [
            {"dataset": d, "tags": [{"key": "mlflow.data.context", "value": context}]}
            for d, context in used
        ]
        inputs.log_inputs(run, entries=inputs.parse(sent))


def finish_runs(world, runs: dict[str, Run]) -> None:
    services.run_update(run=runs["baseline"], data={"status": "finished", "exit_code": 0})
    services.run_update(
        run=runs["diverged"],
        data={"status": "failed", "exit_code": 1, "error": "ValueError: NaN loss"},
    )
    later = timezone.now() + timedelta(seconds=1)
    assert services.run_mark_crashed(run=runs["crashed"], silent_since=later)
    gone = run_get_for_user(world.owner.user, runs["gone"].pk)
    mlflow_runs.set_deleted(gone, True)
    for name, run in runs.items():
        runs[name] = Run.objects.get(pk=run.pk)


def write_report(world, project: Project, runs: dict[str, Run]) -> None:
    ids = {"a": runs["baseline"].pk, "b": runs["diverged"].pk, "project": "acme/mnist"}
    report = report_services.report_create(
        user=world.owner.user, project=project, title="Sweep results", body="Draft."
    )
    as_bob = report_get_for_user(world.editor.user, report.pk)
    report_services.report_save(
        report=as_bob, user=world.editor.user, revision=1, body=BODY.format(**ids)
    )


def write_comments(world, runs: dict[str, Run]) -> None:
    alice, bob, carol = world.owner.user, world.editor.user, world.viewer.user
    on_run = comments.target_get_for_user(bob, f"run:{runs['baseline'].pk}")
    thread = comments.comment_create(
        user=bob, target=on_run, body=f"@alice compare with run:{runs['diverged'].pk}"
    )
    comments.comment_create(
        user=carol,
        target=comments.target_get_for_user(carol, f"run:{runs['baseline'].pk}"),
        body="Agreed.",
        parent=thread.pk,
    )
    comments.comment_resolve(user=alice, comment=comments.comment_get_for_user(alice, thread.pk))
    report = Report.objects.get(project__slug="mnist")
    on_report = comments.target_get_for_user(carol, f"report:{report.pk}")
    note = comments.comment_create(user=carol, target=on_report, body="Typo", anchor="r-sweep")
    comments.comment_delete(user=carol, comment=comments.comment_get_for_user(carol, note.pk))


def add_rule(world, project: Project) -> None:
    ops = alert_services.destination_create(
        user=world.owner.user,
        team=world.team,
        role=Role.OWNER,
        kind="email",
        name="ops",
        config={"addresses": ["ops@acme.example"]},
    )
    pager = alert_services.destination_create(
        user=world.owner.user,
        team=world.team,
        role=Role.OWNER,
        kind="email",
        name="pager",
        config={"team_members": True},
    )
    alert_services.rule_create(
        user=world.owner.user,
        project=project,
        data={
            "name": "NaN watch",
            "trigger": "metric_nan",
            "params": {"key": "loss"},
            "tags": ["sweep"],
            "repeat_interval": 600,
            "destinations": [ops.pk, pager.pk],
        },
    )


# --- A snapshot of everything a project holds, ids replaced by positions ---------------------


def snapshot(project: Project, who: Callable[[Any], str | None]) -> dict[str, Any]:
    runs = list(Run.objects.filter(project=project).order_by("id"))
    run_index = {run.pk: i for i, run in enumerate(runs)}
    reports = list(Report.objects.filter(project=project).order_by("id"))
    report_index = {report.pk: i for i, report in enumerate(reports)}
    return {
        "project": fields_of(
            project, ["description", "metadata", "created_at", "deleted_at"], who, "created_by"
        ),
        "runs": [run_snapshot(run, who) for run in runs],
        "reports": [report_snapshot(report, run_index, who) for report in reports],
        "comments": comment_snapshot(project, run_index, report_index, who),
        "rules": rule_snapshot(project, who),
    }


def fields_of(obj: Any, names: list[str], who: Callable, *people: str) -> dict[str, Any]:
    found = {name: getattr(obj, name) for name in names}
    return found | {name: who(getattr(obj, name)) for name in people}


RUN_FIELDS = [
    "name", "group", "config", "summary", "notes", "status", "exit_code", "error", "traceback",
    "host", "command", "git", "metadata", "created_at", "ended_at", "last_seen_at", "client_id",
    "deleted_at",
]  # fmt: skip
SERIES_FIELDS = [
    "key", "count", "nonfinite_count", "first_step", "first_timestamp", "first_value",
    "last_step", "last_timestamp", "last_seq", "last_value", "min_value", "max_value",
]  # fmt: skip


def run_snapshot(run: Run, who: Callable) -> dict[str, Any]:
    series = MetricSeries.objects.filter(run=run).order_by("key")
    alerts = SdkAlert.objects.filter(run=run).values("title", "text", "level", "created_at")
    return fields_of(run, RUN_FIELDS, who, "created_by") | {
        "tags": sorted(run.tag_rows.values_list("name", flat=True)),
        "inputs": [
            (fields_of(used.dataset, list(inputs.DATASET_FIELDS), who), used.tags)
            for used in run.inputs.select_related("dataset").order_by("id")
        ],
        "series": [series_snapshot(s) for s in series],
        "sdk_alerts": list(alerts),
        "media": [
            (item.key, item.step, item.kind, item.caption, item.timestamp, item.digest, item.size)
            for item in MediaItem.objects.filter(run=run).order_by("key", "step", "id")
        ],
        "media_formats": [  # an image's format, or how a text is shown (issue 21)
            item.meta.get("format")
            for item in MediaItem.objects.filter(run=run).order_by("key", "step", "id")
        ],
        "console": list(
            ConsoleLine.objects.filter(run=run)
            .order_by("number")
            .values_list("number", "stream", "text", "timestamp")
        ),
    }


def series_snapshot(series: MetricSeries) -> dict[str, Any]:
    stored = MetricPoint.objects.filter(series=series).order_by("step", "timestamp", "seq")
    rollups = MetricRollup.objects.filter(series=series).order_by("level", "bucket")
    return {name: getattr(series, name) for name in SERIES_FIELDS} | {
        "points": list(stored.values_list("step", "timestamp", "seq", "value")),
        "rollups": list(rollups.values_list("level", "bucket", *CELL_COLUMNS)),
    }


def report_snapshot(report: Report, run_index: dict[int, int], who: Callable) -> dict[str, Any]:
    revisions = ReportRevision.objects.filter(report=report).order_by("number")
    return fields_of(
        report,
        ["title", "slug", "revision", "visibility", "created_at", "updated_at"],
        who,
        "author",
    ) | {
        "body": positional(report.body, run_index),
        "revisions": [
            fields_of(rev, ["number", "title", "created_at", "restored_from"], who, "author")
            | {"body": positional(rev.body, run_index), "frozen": frozen_runs(rev, run_index)}
            for rev in revisions
        ],
    }


def frozen_runs(revision: ReportRevision, run_index: dict[int, int]) -> list[Any]:
    figures = revision.frozen.values()
    return [
        [(run_index[trace["meta"]["run"]], trace["y"]) for trace in figure["data"]]
        for figure in figures
    ]


def positional(text: str, run_index: dict[int, int]) -> str:
    """Run ids in ``text`` (in ``run:N`` and ``runs: [N, M]``) as positions; team names out."""

    def ids(match: re.Match[str]) -> str:
        numbers = re.sub(r"\d+", lambda m: f"#{run_index[int(m[0])]}", match[2])
        return match[1] + numbers

    text = re.sub(r"(run:|runs: \[)(\d+(?:, \d+)*)", ids, text)
    return re.sub(r"\b(acme|lab)/", "TEAM/", text)


def comment_snapshot(project, run_index, report_index, who) -> list[dict[str, Any]]:
    found = Comment.objects.filter(run__project=project) | Comment.objects.filter(
        report__project=project
    )
    ordered = list(found.order_by("id"))
    index = {c.pk: i for i, c in enumerate(ordered)}
    names = ["anchor", "created_at", "edited_at", "deleted_at", "resolved_at"]
    return [
        fields_of(c, names, who, "author", "resolved_by")
        | {
            "body": positional(c.body, run_index),
            "run": run_index.get(c.run_id),
            "report": report_index.get(c.report_id),
            "parent": index.get(c.parent_id),
        }
        for c in ordered
    ]


def rule_snapshot(project: Project, who: Callable) -> list[dict[str, Any]]:
    names = [*alert_services.RULE_DEFAULTS, "created_at"]
    return [
        fields_of(rule, names, who, "created_by")
        | {"destinations": sorted(d.name for d in rule.destinations.all())}
        for rule in AlertRule.objects.filter(project=project).order_by("id")
    ]


def in_lab(user: Any) -> str | None:
    return AUTHORS_IN_LAB[None if user is None else user.username]


def as_is(user: Any) -> str | None:
    return None if user is None else user.username


# --- The round trip ----------------------------------------------------------------------------


def test_it_moves_a_project_to_another_team_field_by_field(
    source, lab, tmp_path, django_capture_on_commit_callbacks
):
    path = tmp_path / "mnist.jsonl"
    out, _ = export("acme/mnist", str(path))
    assert out.strip() == (
        f"Exported acme/mnist to {path}: 5 runs, 57 metric points, 1 report (2 revisions),"
        " 3 comments, 1 alert rule."
    )
    with django_capture_on_commit_callbacks() as callbacks:
        out, err = load(str(path), "--team", "lab")
    assert out.strip() == (
        f"Imported lab/mnist from {path}: 5 runs, 57 metric points, 1 report (2 revisions),"
        " 3 comments, 1 alert rule."
    )
    assert callbacks == []  # no event, no live message, no mention email
    assert "lab has no email destination 'pager'" in err
    copy = Project.objects.get(team=lab, slug="mnist")
    expected = snapshot(source.project, in_lab)
    expected["rules"][0]["destinations"] = ["ops"]
    assert snapshot(copy, as_is) == expected
    assert Alert.objects.count() == Notification.objects.count() == 0


def test_it_keeps_nan_and_infinities_and_every_status(source, lab, tmp_path):
    path = tmp_path / "mnist.jsonl"
    export("acme/mnist", str(path))
    load(str(path), "--team", "lab")
    runs = {run.name: run for run in Run.objects.filter(project__team=lab)}
    values = MetricPoint.objects.filter(series__run=runs["diverged"]).order_by("step")
    stored = list(values.values_list("value", flat=True))
    assert stored[0] == 1.5 and stored[1] is None and stored[2:4] == [math.inf, -math.inf]
    assert {name: run.status for name, run in runs.items()} == {
        "baseline": RunStatus.FINISHED,
        "diverged": RunStatus.FAILED,
        "crashed": RunStatus.CRASHED,  # storing its points did not revive it
        "gone": RunStatus.RUNNING,
        "live": RunStatus.RUNNING,
    }
    assert runs["gone"].deleted_at == source.runs["gone"].deleted_at is not None
    file_values = [
        line["values"]
        for line in lines_of(path)
        if line.get("run") == source.runs["diverged"].pk and line["type"] == "points"
    ]
    assert file_values == [[1.5, "NaN", "Infinity", "-Infinity", 0.5]]


def test_it_points_the_imported_report_at_the_imported_runs(source, lab, tmp_path):
    path = tmp_path / "mnist.jsonl"
    export("acme/mnist", str(path))
    load(str(path), "--team", "lab")
    runs = {run.name: run.pk for run in Run.objects.filter(project__team=lab)}
    report = Report.objects.get(project__team=lab)
    assert (
        report.body
        == BODY.format(a=runs["baseline"], b=runs["diverged"], project="lab/mnist").strip()
    )
    figure = report.revisions.get(number=2).frozen["0"]
    assert [trace["meta"]["run"] for trace in figure["data"]] == [
        runs["baseline"],
        runs["diverged"],
    ]
    thread = Comment.objects.get(run__project__team=lab, parent=None)
    assert thread.body == f"@alice compare with run:{runs['diverged']}"


def test_it_writes_the_same_file_again_from_the_imported_copy(source, lab, world, tmp_path):
    first, second = tmp_path / "acme.jsonl", tmp_path / "lab.jsonl"
    export("acme/mnist", str(first))
    alert_services.destination_create(
        user=world.outsider.user,
        team=lab,
        role=Role.OWNER,
        kind="email",
        name="pager",
        config={"team_members": True},
    )
    load(str(first), "--team", "lab")
    export("lab/mnist", str(second))
    assert comparable(lines_of(first), translate=AUTHORS_IN_LAB) == comparable(lines_of(second))


def comparable(lines: list[dict], translate: dict | None = None) -> list[dict]:
    """The lines with file ids as positions, team names out, authors translated."""
    positions: dict[str, dict[int, int]] = {"run": {}, "report": {}, "comment": {}, "dataset": {}}
    positions["media"] = {}  # issue 21: media lines carry their id (frozen report blocks)
    out = []
    for line in lines[1:]:
        line = dict(line)
        kind = line.get("type")
        if kind in positions:
            positions[kind][line.pop("id")] = len(positions[kind])
        refs = (("run", "run"), ("report", "report"), ("parent", "comment"), ("dataset", "dataset"))
        for name, kind_of in refs:
            if line.get(name) is not None:
                line[name] = positions[kind_of][line[name]]
        for name in ("created_by", "author", "resolved_by"):
            if name in line and translate is not None:
                line[name] = translate[line[name]]
        if "body" in line:
            line["body"] = positional(line["body"], positions["run"])
        for figure in (line.get("frozen") or {}).values():
            for trace in figure["data"]:
                trace["meta"]["run"] = positions["run"][trace["meta"]["run"]]
        out.append(line)
    assert lines[0]["kind"] == "labbook-export" and lines[0]["version"] == 1
    return out


def test_it_writes_gzip_when_the_name_ends_in_gz(source, lab, tmp_path):
    plain, packed = tmp_path / "mnist.jsonl", tmp_path / "mnist.jsonl.gz"
    export("acme/mnist", str(plain))
    export("acme/mnist", str(packed))
    assert packed.read_bytes()[:2] == b"\x1f\x8b"
    assert comparable(lines_of(packed)) == comparable(lines_of(plain))
    out, _ = load(str(packed), "--team", "lab", "--project", "from-gzip")
    assert "Imported lab/from-gzip" in out
    assert Run.objects.filter(project__slug="from-gzip").count() == 5


def test_it_writes_to_stdout_and_reads_from_stdin(source, lab, monkeypatch):
    out, err = export("acme/mnist", "-")
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines[0]["project"] == "acme/mnist" and lines[-1]["type"] == "end"
    assert "Exported acme/mnist to -: 5 runs" in err  # stdout holds the file alone
    monkeypatch.setattr(sys, "stdin", io.StringIO(out))
    out, _ = load("-", "--team", "lab", "--project", "piped")
    assert "Imported lab/piped from -: 5 runs, 57 metric points" in out


def test_it_counts_plainly_when_tqdm_is_missing(source, lab, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm now raises ImportError
    path = tmp_path / "mnist.jsonl"
    _, err = export("acme/mnist", str(path))
    assert "export acme/mnist: 2,582 of 2,582 records" in err  # 76, 6 media, 2,500 console lines
    _, err = load(str(path), "--team", "lab")
    size = path.stat().st_size
    assert f"import {path}: {size:,} of {size:,} bytes" in err


# --- Authors ----------------------------------------------------------------------------------


def test_it_gives_authors_outside_the_team_to_the_user_named(source, lab, world, tmp_path):
    path = tmp_path / "mnist.jsonl"
    export("acme/mnist", str(path))
    load(str(path), "--team", "lab", "--user", "bob")
    runs = Run.objects.filter(project__team=lab).select_related("created_by")
    assert {run.name: run.created_by.username for run in runs} == {
        "baseline": "bob",
        "diverged": "bob",
        "crashed": "bob",
        "gone": "bob",
        "live": "bob",
    }
    assert Project.objects.get(team=lab).created_by == world.editor.user


def test_it_drops_a_client_id_its_author_already_uses(source, world, tmp_path):
    path = tmp_path / "mnist.jsonl"
    export("acme/mnist", str(path))
    out, err = load(str(path), "--team", "acme", "--project", "mnist-copy")
    copy = Run.objects.get(project__slug="mnist-copy", name="baseline")
    assert copy.created_by == world.owner.user and copy.client_id == ""
    assert "'baseline' was imported without its client_id 'sweep-0'" in err
    assert "Imported acme/mnist-copy" in out


# --- Refusals: clear errors, nothing half-imported ----------------------------------------------


@pytest.fixture
def exported(source, tmp_path) -> Path:
    path = tmp_path / "mnist.jsonl"
    export("acme/mnist", str(path))
    return path


def rows() -> dict[str, int]:
    return {
        "projects": Project.objects.count(),
        "runs": Run.objects.count(),
        "points": MetricPoint.objects.count(),
        "series": MetricSeries.objects.count(),
        "reports": Report.objects.count(),
        "comments": Comment.objects.count(),
        "rules": AlertRule.objects.count(),
    }


def refused(path: Path, *args: str) -> str:
    before = rows()
    with pytest.raises(CommandError) as error:
        load(str(path), "--team", "lab", *args)
    assert rows() == before
    return str(error.value)


def rewritten(path: Path, change: Callable[[list[str]], list[str]]) -> Path:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(change(lines)), encoding="utf-8")
    return path


def line_number(path: Path, kind: str) -> int:
    return next(n for n, line in enumerate(lines_of(path), 1) if line.get("type") == kind)


def test_it_refuses_another_format_version(exported, lab):
    header = json.loads(exported.read_text().splitlines()[0])
    bumped = json.dumps({**header, "version": 2}) + "\n"
    rewritten(exported, lambda lines: [bumped, *lines[1:]])
    assert refused(exported) == (
        "line 1: export format version 2 is not supported (this Labbook reads version 1)."
    )


def test_it_refuses_a_file_that_is_no_export(lab, tmp_path):
    path = tmp_path / "other.jsonl"
    path.write_text('{"kind": "wandb-export", "version": 1}\n')
    assert refused(path) == 'line 1: not a Labbook export (expected "kind": "labbook-export").'


def test_it_names_a_malformed_line_and_imports_nothing(exported, lab):
    number = line_number(exported, "comment")
    rewritten(
        exported, lambda lines: [*lines[: number - 1], '{"type": "comment",\n', *lines[number:]]
    )
    assert refused(exported) == f"line {number}: not valid JSON."


def test_it_names_a_bad_field_and_imports_nothing(exported, lab):
    number = line_number(exported, "alert_rule")

    def bad_trigger(lines: list[str]) -> list[str]:
        rule = json.loads(lines[number - 1])
        lines[number - 1] = json.dumps({**rule, "trigger": "solar_flare"}) + "\n"
        return lines

    rewritten(exported, bad_trigger)
    message = refused(exported)
    assert message.startswith(f"line {number}: alert_rule.trigger: Trigger must be one of")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"dataset": 10**9}, "run_input.dataset: No dataset with id 1000000000 earlier"),
        ({"tags": [{"key": "k", "value": 5}]}, "run_input.value: Must be a string."),
        ({"tags": [{"key": "k", "value": "a"}] * 2}, "run_input.tags: The key 'k' is there twice."),
    ],
)
def test_it_names_a_bad_run_input_and_imports_nothing(exported, lab, change, expected):
    number = line_number(exported, "run_input")

    def bad_input(lines: list[str]) -> list[str]:
        used = json.loads(lines[number - 1])
        lines[number - 1] = json.dumps({**used, **change}) + "\n"
        return lines

    rewritten(exported, bad_input)
    assert refused(exported).startswith(f"line {number}: {expected}")


def test_it_notices_a_file_cut_in_the_middle_of_a_line(exported, lab):
    data = exported.read_bytes()
    exported.write_bytes(data[: data.rindex(b'"type":"comment"') + 20])
    number = line_number_of_last(data, b'"type":"comment"')
    assert refused(exported) == (
        f"line {number}: not valid JSON (the file ends in the middle of it)."
    )


def line_number_of_last(data: bytes, marker: bytes) -> int:
    return data[: data.rindex(marker)].count(b"\n") + 1


def test_it_notices_a_file_cut_between_lines(exported, lab):
    total = len(exported.read_text().splitlines())
    rewritten(exported, lambda lines: lines[:-1])
    assert refused(exported) == (
        f"line {total}: the file ends early, without its end line (was it cut short?)."
    )


def test_it_notices_a_lost_line_by_the_end_counts(exported, lab):
    number = line_number(exported, "sdk_alert")
    rewritten(exported, lambda lines: [*lines[: number - 1], *lines[number:]])
    assert "but the file holds" in refused(exported)


def test_it_notices_a_cut_gzip_file(source, lab, tmp_path):
    path = tmp_path / "mnist.jsonl.gz"
    export("acme/mnist", str(path))
    path.write_bytes(path.read_bytes()[:-40])
    assert "cannot be read (Compressed file ended" in refused(path)


def test_it_never_overwrites_an_existing_project(exported, lab):
    load(str(exported), "--team", "lab")
    message = refused(exported)
    assert message == (
        "line 2: Project lab/mnist already exists; nothing was imported."
        " Import under another name with --project NEW_SLUG."
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--team", "nope"], "--team: there is no team 'nope'."),
        (["--team", "lab", "--user", "alice"], "--user: 'alice' is not a member of lab."),
        (["--team", "acme", "--user", "carol"], "--user: 'carol' is only a viewer of acme."),
        (["--team", "lab", "--project", "no/slash"], "--project: Use letters, digits,"),
    ],
)
def test_it_refuses_a_bad_target(exported, lab, args, message):
    with pytest.raises(CommandError, match=re.escape(message)):
        load(str(exported), *args)


def test_it_says_when_the_file_cannot_be_read(lab, tmp_path):
    missing = tmp_path / "missing.jsonl"
    with pytest.raises(CommandError, match=f"Cannot read {missing}: No such file or directory"):
        load(str(missing), "--team", "lab")


def test_it_says_when_there_is_no_such_project_to_export(world, tmp_path):
    for name, message in [
        ("acme/nope", "Team 'acme' has no project 'nope'."),
        ("nope/mnist", "There is no team 'nope'."),
        ("mnist", "Name a project as 'team/project'."),
    ]:
        with pytest.raises(CommandError, match=re.escape(message)):
            export(name, str(tmp_path / "x.jsonl"))
    assert list(tmp_path.iterdir()) == []


def test_it_leaves_no_file_when_it_cannot_write(source, tmp_path):
    target = tmp_path / "missing-folder" / "mnist.jsonl"
    with pytest.raises(CommandError, match=r"Cannot write .*: No such file or directory"):
        export("acme/mnist", str(target))
    assert list(tmp_path.iterdir()) == []


# --- Big projects stream -------------------------------------------------------------------------


def test_it_streams_a_big_project_in_bounded_memory(world, lab, tmp_path):
    run = services.run_create(user=world.owner.user, project=world.project, name="long")
    for start in range(0, 100_000, 10_000):
        batch = [
            ingest.Point(key, step, math.sin(step), 1.7e9 + step)
            for step in range(start, start + 10_000)
            for key in ("train/loss", "train/acc")
        ]
        ingest.metrics_ingest(run=run, points=batch[:10_000])
        ingest.metrics_ingest(run=run, points=batch[10_000:])
    path = tmp_path / "long.jsonl"
    export_peak = peak_memory(lambda: export("acme/mnist", str(path)))
    lines = lines_of(path)
    chunks = [len(line["steps"]) for line in lines if line.get("type") == "points"]
    assert chunks == [10_000] * 20
    import_peak = peak_memory(lambda: load(str(path), "--team", "lab"))
    # 200,000 points read at once take ~30 MB as Python objects; one line at a time, the
    # export peaks at ~5 MB and the import at ~8 MB.
    assert export_peak < 8 * MB, export_peak
    assert import_peak < 12 * MB, import_peak
    copy = MetricSeries.objects.get(run__project__team=lab, key="train/acc")
    assert (copy.count, copy.first_step, copy.last_step) == (100_000, 0, 99_999)


def peak_memory(work: Callable[[], Any]) -> int:
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
