"""The objects the authorization matrix points its URLs at, built once per test module.

Team ``acme`` (owner alice, editor bob, viewer carol) with project ``mnist``,
and the outsider mallory who owns ``rival`` — the personas of
``tests/conftest.py`` — plus one of everything a URL can name: a run with
points, an MLflow tag and an artifact, a report (two revisions, a chart block,
drafts, a share link), a comment, a destination, a rule with an alert, a
silence, a spare API token; bob's private report with its comment and link;
a project ``lab`` in ``rival`` and in ``carolco``, a team carol owns. Every
object is made through the services.

Text only members may read carries the ``SECRET`` marker, and text of the
private report the ``PRIVATE`` one, so a test can check who never sees it.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import sys
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.apps import AppConfig, apps
from django.conf import settings
from django.db import connection
from django.test import Client
from django.utils import timezone

from alerts import actions, firing
from alerts import selectors as alert_selectors
from alerts import services as alert_services
from alerts.models import Alert, AlertRule, Destination, Silence
from reports_app import comments
from reports_app import selectors as report_selectors
from reports_app import services as report_services
from reports_app.models import Comment, Report, ShareLink
from tests.conftest import Persona, World, make_persona
from tracking import artifact_versions, invitations, media, selectors, services, storage
from tracking.ingest import Point, metrics_ingest
from tracking.mlflow import artifacts
from tracking.mlflow import experiments as mlflow_experiments
from tracking.mlflow import runs as mlflow_runs
from tracking.models import ApiToken, MediaItem, Project, Role, Run, TeamInvitation

SECRET = "zz-acme-secret"  # in every name only acme's members may read
PRIVATE = "zz-private-secret"  # in the names of what the editor keeps to himself
ARTIFACT = "model/weights.txt"
ARTIFACT_BYTES = b"acme weights"


@dataclass
class Private:
    report: Report
    comment: Comment
    share_link: ShareLink


@dataclass
class Scene:
    world: World
    run: Run
    report: Report
    share_token: str
    share_link: ShareLink
    comment: Comment
    destination: Destination
    rule: AlertRule
    alert: Alert
    silence: Silence
    spare_token: ApiToken
    private: Private
    invitation: TeamInvitation  # alice invited mallory (the outsider) to acme
    invitation_code: str  # its emailed link's token
    archived: Project  # a deleted project of acme's (MLflow's restore finds only deleted ones)
    media: MediaItem  # an image the run logged under 'loss' at step 0
    sessions: dict[str, str] = field(default_factory=dict)  # persona -> session cookie
    baseline: dict[str, Any] = field(default_factory=dict)  # ``state()`` once built
    # Versioned artifacts (issue 21): "model" v0 (committed, holding ARTIFACT_BYTES), "pending"
    # (a new file, not uploaded) and "ready" (its one file stored: it commits).
    versions: dict[str, Any] = field(default_factory=dict)

    def persona(self, name: str) -> Persona | None:
        return None if name == "anonymous" else self.world.persona(name)

    @property
    def acknowledge_token(self) -> str:
        """A notification's signed link to acknowledge the scene's alert (alerts.actions)."""
        return actions.token_for(self.alert.pk, "acknowledge")


def build_world() -> World:
    """The same personas as the ``world`` fixture (which is function-scoped)."""
    owner, editor, viewer = make_persona("alice"), make_persona("bob"), make_persona("carol")
    outsider = make_persona("mallory")
    team = services.team_create(slug="acme", owner=owner.user)
    services.membership_set(team=team, user=editor.user, role=Role.EDITOR)
    services.membership_set(team=team, user=viewer.user, role=Role.VIEWER)
    rival = services.team_create(slug="rival", owner=outsider.user)
    project = services.project_create(
        user=owner.user, team_slug="acme", slug="mnist", description=f"{SECRET} project"
    )
    return World(team, rival, project, owner, editor, viewer, outsider)


def build_scene() -> Scene:
    world = build_world()
    alice = world.owner.user
    run = _run(world)
    report = _report(world, run)
    link, token = report_services.share_link_create(report=report, user=alice)
    destination, rule, alert, silence = _alerting(world, run)
    _other_teams(world)
    scene = Scene(
        world=world,
        run=run,
        report=report,
        share_token=token,
        share_link=link,
        comment=_comment(alice, f"run:{run.pk}", f"{SECRET} comment"),
        destination=destination,
        rule=rule,
        alert=alert,
        silence=silence,
        spare_token=services.token_create(user=alice, name="alice's spare")[0],
        private=_private(world),
        **_invitation(world),
        archived=_archived(world),
        media=_media(run),
    )
    scene.sessions = {name: _session(scene.persona(name)) for name in MEMBERS_AND_OUTSIDER}
    scene.versions = _artifact_versions(run)  # Versioned artifacts (issue 21)
    return scene


def _archived(world: World) -> Project:
    project = services.project_create(
        user=world.owner.user, team_slug="acme", slug="archived", description=f"{SECRET} old"
    )
    Project.objects.filter(pk=project.pk).update(deleted_at=timezone.now())
    return project


def _invitation(world: World) -> dict[str, Any]:
    """An invitation only the outsider may answer: to them by username, as viewer of acme."""
    invitation, code = invitations.invitation_create(
        team=world.team, invitee="mallory", role=Role.VIEWER, actor=world.owner.user
    )
    return {"invitation": invitation, "invitation_code": code}


def _comment(author: Any, target: str, body: str) -> Comment:
    found = comments.target_get_for_user(author, target)
    return comments.comment_create(user=author, target=found, body=body)


def _other_teams(world: World) -> None:
    """A project ``lab`` in the outsider's team and in ``carolco``, which the viewer owns.

    A URL naming one of these with an id of acme's must find nothing.
    """
    carol, mallory = world.viewer.user, world.outsider.user
    services.team_create(slug="carolco", owner=carol)
    services.project_create(user=carol, team_slug="carolco", slug="lab")
    services.project_create(user=mallory, team_slug="rival", slug="lab")


def _private(world: World) -> Private:
    """The editor's private report: nobody else may see it, owners included."""
    bob = world.editor.user
    project = selectors.project_get_for_user(bob, "acme/mnist")
    report = report_services.report_create(
        user=bob, project=project, title=f"{PRIVATE} report", visibility="private"
    )
    report = report_selectors.report_get_for_user(bob, report.pk)
    link, _ = report_services.share_link_create(report=report, user=bob)
    comment = _comment(bob, f"report:{report.pk}", f"{PRIVATE} comment")
    return Private(report, comment, link)


MEMBERS_AND_OUTSIDER = ("outsider", "viewer", "editor", "owner")


def _session(persona: Persona) -> str:
    """A logged-in session, made once: a login per request would double the matrix's time."""
    client = Client()
    client.force_login(persona.user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def _run(world: World) -> Run:
    alice = world.owner.user
    run = services.run_create(user=alice, project=world.project, name=f"{SECRET}-run")
    points = [Point("loss", step, 1.0 / (step + 1), 1_700_000_000.0 + step) for step in range(20)]
    metrics_ingest(run=run, points=points)
    tag = [{"key": "stage", "value": "test"}]  # an MLflow tag, for delete-tag
    mlflow_runs.log_batch(
        mlflow_runs.get(alice, run.pk, write=True), metrics=None, params=None, tags=tag
    )
    # An MLflow experiment tag, for delete-experiment-tag.
    mlflow_experiments.set_tag(mlflow_experiments.by_id(alice, world.project.pk), "stage", "test")
    put_artifact(run)
    return run


# The smallest PNG that decodes: 1x1, one grey pixel.
PNG_1X1 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg=="
)


def _media(run: Run) -> MediaItem:
    item = {"key": "loss", "step": 0, "kind": "image", "caption": f"{SECRET} image"}
    stored = media.media_ingest(run=run, items=media.parse_items([{**item, "image": PNG_1X1}]))
    return stored.items[0]


def put_files(scene: Scene) -> None:
    """The scene's files as built: the run's artifact and its image."""
    put_artifact(scene.run)
    storage.save(scene.media.file, io.BytesIO(base64.b64decode(PNG_1X1)))
    put_blob(scene.run.project_id)  # Versioned artifacts (issue 21)


# --- Versioned artifacts (issue 21) ---


def _file(path: str, data: bytes) -> Any:
    return {"path": path, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def _artifact_versions(run: Run) -> dict[str, Any]:
    def create(name: str, files: list[Any]) -> Any:
        return artifact_versions.version_create(
            run=run, name=name, type="model", description=f"{SECRET} model", files=files
        ).version

    put_blob(run.project_id)
    model = artifact_versions.version_commit(create("model", [_file(ARTIFACT, ARTIFACT_BYTES)]))
    pending = create("model", [_file("new.bin", b"new weights")])
    ready = create("model", [_file("copy.txt", ARTIFACT_BYTES)])
    return {"model": model, "pending": pending, "ready": ready}


def put_blob(project_id: int) -> None:
    sha256 = hashlib.sha256(ARTIFACT_BYTES).hexdigest()
    storage.save(artifact_versions.blob_key(project_id, sha256), io.BytesIO(ARTIFACT_BYTES))


# --- End of versioned artifacts ---


def put_artifact(run: Run) -> None:
    """The run's one artifact, as logged by the mlflow client (and nothing else there)."""
    path = artifacts.run_root(run) / ARTIFACT
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(ARTIFACT_BYTES)


def _report(world: World, run: Run) -> Report:
    alice, bob = world.owner.user, world.editor.user
    project = selectors.project_get_for_user(alice, "acme/mnist")
    chart = f"```chart\nruns: [{run.pk}]\nmetrics: [loss]\n```\n"
    report = report_services.report_create(
        user=alice, project=project, title=f"{SECRET} report", body=chart
    )
    report = report_selectors.report_get_for_user(alice, report.pk)
    report = report_services.report_save(
        report=report, user=alice, revision=1, body=chart + "More words."
    )
    for author in (alice, bob):  # viewers cannot keep drafts
        report_services.draft_save(
            report=report_selectors.report_get_for_user(author, report.pk),
            user=author,
            title=f"{SECRET} draft",
            body=chart,
            base_revision=2,
        )
    return report_selectors.report_get_for_user(alice, report.pk)


def _alerting(world: World, run: Run) -> tuple[Destination, AlertRule, Alert, Silence]:
    alice = world.owner.user
    project = selectors.project_get_for_user(alice, "acme/mnist")
    destination = alert_services.destination_create(
        user=alice,
        team=world.team,
        role=Role.OWNER,
        kind="email",
        name=f"{SECRET}-pager",
        config={"addresses": ["oncall@example.com"]},
    )
    rule = alert_services.rule_create(
        user=alice,
        project=project,
        data={"name": f"{SECRET}-rule", "trigger": "run_failed", "destinations": [destination.pk]},
    )
    rule = alert_selectors.rule_get_for_user(alice, rule.pk)
    alert = firing.fire(rule=rule, run=run, summary=f"{SECRET} alert", values={})
    silence = alert_services.silence_create(
        user=alice, role=Role.OWNER, until=timezone.now() + timedelta(days=1), project=project
    )
    return destination, rule, alert, silence


# --- What a refused request must leave as it was ---------------------------------------------


def watched_apps() -> list[AppConfig]:
    """Users and the admin's log, and every app of this project (a new one included)."""
    ours = [c for c in apps.get_app_configs() if _ours(Path(c.path))]
    return [apps.get_app_config("auth"), apps.get_app_config("admin"), *ours]


def _ours(path: Path) -> bool:
    return path.is_relative_to(settings.BASE_DIR) and not path.is_relative_to(sys.prefix)


# Columns a request touches without changing anything: a token's or a user's last use.
VOLATILE = {
    "tracking.apitoken": {"last_used_at"},
    "auth.user": {"last_login"},
    "reports_app.sharelink": {"access_count", "last_accessed_at"},
}


@functools.cache
def _dumps() -> tuple[str, ...]:
    """One SELECT of every watched column per table, in primary-key order (plain SQL: fast)."""
    quote = connection.ops.quote_name
    queries = []
    for config in watched_apps():
        for model in config.get_models(include_auto_created=True):
            meta = model._meta
            skip = VOLATILE.get(meta.label_lower, set())
            fields = [f for f in meta.concrete_fields if f.column and f.attname not in skip]
            columns = ", ".join(quote(f.column) for f in fields)
            order = ", ".join(quote(f.column) for f in meta.pk_fields)  # composite keys too
            queries.append(f"SELECT {columns} FROM {quote(meta.db_table)} ORDER BY {order}")
    return tuple(queries)


def database_state() -> dict[str, str]:
    """Every row of every model of ours (and of auth), as text: a cheap, exact fingerprint."""
    with connection.cursor() as cursor:
        state = {}
        for query in _dumps():
            cursor.execute(query)
            state[query] = repr(cursor.fetchall())
    return state


def artifact_state() -> dict[str, bytes]:
    root = Path(settings.LABBOOK_HOME) / "artifacts"
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def state() -> dict[str, Any]:
    return {"database": database_state(), "artifacts": artifact_state()}
