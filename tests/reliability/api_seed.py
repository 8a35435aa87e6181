"""Objects for the API fuzzer to find, made through the services in the server's database.

Run as ``python -m tests.reliability.api_seed`` with the fuzzed server's
environment (its LABBOOK_HOME and DATABASE_URL): it prints, as JSON, the token
of the fuzzing user and the ids of everything it made, so generated requests
can name real runs, reports, comments, ... and not only ids that do not exist.

The fuzzing user owns team ``fuzz`` (projects ``p`` and ``q``); an editor
teammate gives ``@mentions`` someone to reach. Decoy tokens exist so that
``DELETE /tokens/{id}`` has real targets besides the token in use.
"""

from __future__ import annotations

import io
import json
from datetime import timedelta
from typing import Any

TEAM = "fuzz"
PROJECT = f"{TEAM}/p"
METRIC_KEYS = ["loss", "acc", "eval/loss"]
ARTIFACTS = ["model/notes.txt", "config.yaml"]
REPORT_BODY = (
    "# Findings\n\nBest so far: run:{run}, thanks @fuzz-mate.\n\n"
    "```chart\nruns: {{project: fuzz/p}}\nmetrics: [loss, acc]\nlive: false\n```\n\n"
    "```runs\nruns: [{run}]\ncolumns: [config.lr, summary.loss]\n```\n\n"
    "```compare\nruns: {{tags: [sweep]}}\n```\n"
)


def seed() -> dict[str, Any]:
    """Everything the fuzzer may name, by kind; ``token`` authenticates the fuzzer."""
    from tracking import selectors, services

    user, _ = services.user_get_or_create(username="fuzzer")
    mate, _ = services.user_get_or_create(username="fuzz-mate")
    team = services.team_create(slug=TEAM, owner=user)
    services.membership_set(team=team, user=mate, role="editor")
    for slug in ("p", "q"):
        services.project_create(user=user, team_slug=TEAM, slug=slug)
    project = selectors.project_get_for_user(user, PROJECT)
    runs = [_run(user, project, index) for index in range(3)]
    made: dict[str, Any] = {"runs": [run.pk for run in runs], **_reports(user, project, runs[0])}
    made["comments"] = _comments(user, runs[0].pk, made["reports"][0])
    made.update(_alerting(user, team, project, runs[-1]))
    made["decoy_tokens"] = [services.token_create(user=user, name=f"decoy {n}")[0].pk for n in "ab"]
    made["token"] = services.token_create(user=user, name="fuzzer")[1]
    return made


def _run(user: Any, project: Any, index: int) -> Any:
    """A run with three metrics of 20 steps, an SDK alert and two artifact files."""
    from tracking import services
    from tracking.ingest import Point, metrics_ingest
    from tracking.mlflow import artifacts

    run = services.run_create(
        user=user, project=project, name=f"run-{index}", tags=["sweep"], config={"lr": 0.1}
    )
    points = [
        Point(key, step, 1 / (step + 1), 1e9 + step) for key in METRIC_KEYS for step in range(20)
    ]
    metrics_ingest(run=run, points=points)
    services.sdk_alert_raise(run=run, title="diverging", text="the loss went up")
    for path in ARTIFACTS:
        location = artifacts.run_location(run, path)
        artifacts.artifact_write(location=location, stream=io.BytesIO(b"lr: 0.1\n"), max_bytes=99)
    return run


def _reports(user: Any, project: Any, run: Any) -> dict[str, list[int]]:
    """Two reports with three revisions each, a draft and a share link."""
    from django.utils import timezone

    from reports_app import selectors, services

    reports, links = [], []
    for title in ("Findings", "Notes"):
        body = REPORT_BODY.format(run=run.pk)
        report = services.report_create(user=user, project=project, title=title, body=body)
        for revision in (1, 2):
            report = selectors.report_get_for_user(user, report.pk)
            body += f"\nRevision {revision + 1}.\n"
            services.report_save(report=report, user=user, revision=revision, body=body)
        services.draft_save(report=report, user=user, title=title, body="draft", base_revision=3)
        expires = timezone.now() + timedelta(days=30)
        links.append(services.share_link_create(report=report, user=user, expires_at=expires)[0].pk)
        reports.append(report.pk)
    return {"reports": reports, "revisions": [1, 2, 3], "share_links": links}


def _comments(user: Any, run_id: int, report_id: int) -> list[int]:
    """A thread (a comment and a reply) on a run and one on a report."""
    from reports_app import comments

    made = []
    for target in (f"run:{run_id}", f"report:{report_id}"):
        where = comments.target_get_for_user(user, target)
        first = comments.comment_create(user=user, target=where, body="Why *this* lr, @fuzz-mate?")
        reply = comments.comment_create(user=user, target=where, body="Because.", parent=first.pk)
        made += [first.pk, reply.pk]
    return made


def _alerting(user: Any, team: Any, project: Any, run: Any) -> dict[str, list[int]]:
    """An email destination, a rule that fires (the run fails: an alert), a silence."""
    from django.utils import timezone

    from alerts import services
    from alerts.models import Alert
    from tracking import services as tracking_services

    destination = services.destination_create(
        user=user, team=team, role="owner", kind="email", name="mail",
        config={"addresses": ["fuzz@example.com"]},
    )  # fmt: skip
    rule = services.rule_create(
        user=user,
        project=project,
        data={"name": "failures", "trigger": "run_failed", "destinations": [destination.pk]},
    )
    tracking_services.run_update(run=run, data={"status": "failed"})
    until = timezone.now() + timedelta(days=1)
    silence = services.silence_create(user=user, role="owner", until=until, rule=rule)
    return {
        "destinations": [destination.pk],
        "rules": [rule.pk],
        "silences": [silence.pk],
        "alerts": list(Alert.objects.filter(rule=rule).values_list("pk", flat=True)),
    }


if __name__ == "__main__":
    import django

    django.setup()
    print(json.dumps(seed()))
