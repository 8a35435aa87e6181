"""Who may do what, on every URL of the site: one explicit table, checked against the URL conf.

``MATRIX`` holds, for every URL pattern (keyed by its name, or by its route
when it has none), the status each persona gets for GET and for every other
method the view accepts. The tests walk ``django.urls.get_resolver()``:

* a pattern missing from the table fails, and so does an entry naming no pattern;
* every (pattern, persona, method) is one test, requested against real objects;
* a method the table does not list is refused (``others``, 405 unless said);
* a refused request leaves the database and the artifact files exactly as they were;
* no answer to an outsider or a stranger contains text only acme's members may read,
  and nobody but its author sees anything of the editor's private report;
* the same URLs pointed at the private report, or naming the persona's own team
  with an id of acme's, find nothing (404).

Personas: ``anonymous`` (no session, no token), ``outsider`` (mallory, owner
of another team), ``viewer`` (carol, who also owns a team), ``editor`` (bob),
``owner`` (alice). Pages log in with a session; the API and the MLflow
endpoints send the persona's Bearer token. Codes read in that order:
``Codes(anonymous, outsider, viewer, editor, owner)``.

The websocket consumers are not in the URL conf: ``test_authorization_websockets``.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import resolve_url
from django.test import Client, override_settings
from django.utils import timezone

from tests.security.matrix import (
    METHODS,
    PERSONAS,
    Codes,
    Expect,
    Via,
    content,
    refused,
    request_as,
    same,
    url_for,
    url_patterns,
)
from tests.security.scene import PRIVATE, SECRET, Scene, build_scene, put_files, state

# Converter values of the route's <converter:name> parts, formatted with the scene as ``s``.
DEFAULT_KWARGS = {
    "team": "acme",
    "project": "mnist",
    "run_id": "{s.run.pk}",
    "key": "loss",
    "path": "model/weights.txt",
    "report_id": "{s.report.pk}",
    "number": "1",
    "index": "0",
    "token": "{s.share_token}",
    "link_id": "{s.share_link.pk}",
    "comment_id": "{s.comment.pk}",
    "token_id": "{s.spare_token.pk}",
    "user_id": "{s.world.editor.user.pk}",
    "destination_id": "{s.destination.pk}",
    "alert_id": "{s.alert.pk}",
    "rule_id": "{s.rule.pk}",
    "silence_id": "{s.silence.pk}",
    "invitation_id": "{s.invitation.pk}",
    "code": "{s.invitation_code}",
    "media_id": "{s.media.pk}",
}


# Versioned artifacts (issue 21): the scene's file (b"acme weights") and an upload's bytes.
WEIGHTS_SHA256 = "9a954d699b3edc65ea53a48a7ae17901110b2119122043a496eed9baa652b446"
NEW_WEIGHTS_SHA256 = "75f585ae1855ec1d1ba5e4fc9861e07fbdba3919a965042b2ba78b6fc3e9a18f"


def _until() -> str:
    return (timezone.now() + timedelta(days=2)).isoformat()


def run_args(s: Scene) -> dict[str, Any]:
    return {"run_id": str(s.run.pk)}


def experiment_args(s: Scene) -> dict[str, Any]:
    return {"experiment_id": str(s.world.project.pk)}


API_READ = Codes(401, 404, 200, 200, 200)
PAGE_READ = Codes(302, 404, 200, 200, 200)
MLFLOW_READ = API_READ
MLFLOW_WRITE = Codes(401, 404, 403, 200, 200)
POST_ONLY = same(405)  # the method is checked before the token
MLFLOW_LINK = Codes(302, 404, 302, 302, 302)  # to the login page, or to the page named
MLFLOW_EXPERIMENT = {"experiment_id": "{s.world.project.pk}"}
ANY_TOKEN = Codes(401, 200, 200, 200, 200)

# The MLflow tracking protocol, below each of MLFLOW_PREFIXES.
MLFLOW_PREFIXES = ("api/2.0/mlflow/", "ajax-api/2.0/mlflow/")
MLFLOW: dict[str, Expect] = {
    "experiments/create": Expect(
        Via.MLFLOW, get=POST_ONLY, post=MLFLOW_WRITE, body=lambda s: {"name": "acme/exp2"}
    ),
    "experiments/get": Expect(Via.MLFLOW, get=MLFLOW_READ, query=experiment_args),
    "experiments/get-by-name": Expect(
        Via.MLFLOW, get=MLFLOW_READ, query=lambda s: {"experiment_name": "acme/mnist"}
    ),
    # Searches answer what the caller may see: the outsider's own experiments.
    "experiments/search": Expect(Via.MLFLOW, get=ANY_TOKEN, post=ANY_TOKEN),
    "experiments/list": Expect(Via.MLFLOW, get=ANY_TOKEN, post=ANY_TOKEN),
    "experiments/update": Expect(
        Via.MLFLOW,
        get=POST_ONLY,
        post=MLFLOW_WRITE,
        body=lambda s: {**experiment_args(s), "new_name": "acme/renamed"},
    ),
    "experiments/delete": Expect(
        Via.MLFLOW, get=POST_ONLY, post=MLFLOW_WRITE, body=experiment_args
    ),
    "experiments/restore": Expect(
        Via.MLFLOW,
        get=POST_ONLY,
        post=MLFLOW_WRITE,
        body=lambda s: {"experiment_id": str(s.archived.pk)},
    ),
    "experiments/set-experiment-tag": Expect(
        Via.MLFLOW,
        get=POST_ONLY,
        post=MLFLOW_WRITE,
        body=lambda s: {**experiment_args(s), "key": "stage", "value": "prod"},
    ),
    "experiments/delete-experiment-tag": Expect(
        Via.MLFLOW,
        get=POST_ONLY,
        post=MLFLOW_WRITE,
        body=lambda s: {**experiment_args(s), "key": "stage"},
    ),
    "runs/create": Expect(Via.MLFLOW, get=POST_ONLY, post=MLFLOW_WRITE, body=experiment_args),
    "runs/get": Expect(Via.MLFLOW, get=MLFLOW_READ, query=run_args),
    "runs/update": Expect(
        Via.MLFLOW,
        get=POST_ONLY,
        post=MLFLOW_WRITE,
        body=lambda s: {**run_args(s), "run_name": "renamed"},
    ),
    "runs/delete": Expect(Via.MLFLOW, get=POST_ONLY, post=MLFLOW_WRITE, body=run_args),
    "runs/restore": Expect(Via.MLFLOW, get=POST_ONLY, post=MLFLOW_WRITE, body=run_args),
    "runs/search": Expect(
        Via.MLFLOW,
        get=MLFLOW_READ,
        post=MLFLOW_READ,
        query=lambda s: {"experiment_ids": str(s.world.project.pk)},
        body=lambda s: {"experiment_ids": [str(s.world.project.pk)]},
    ),
    "runs/log-batch": Expect(
        Via.MLFLOW,
        get=POST_ONLY,
        post=MLFLOW_WRITE,
        body=lambda s: {
            **run_args(s),
            "metrics": [{"key": "loss", "value": 0.5, "timestamp": 0, "step": 50}],
        },
    ),
    "runs/log-metric": Expect(
        Via.MLFLOW,
        get=POST_ONLY,
        post=MLFLOW_WRITE,
        body=lambda s: {**run_args(s), "key": "loss", "value": 0.5, "timestamp": 0, "step": 51},
    ),
    "runs/log-parameter": Expect(
        Via.MLFLOW,
        get=POST_ONLY,
        post=MLFLOW_WRITE,
        body=lambda s: {**run_args(s), "key": "lr", "value": "0.1"},
    ),
    "runs/set-tag": Expect(
        Via.MLFLOW,
        get=POST_ONLY,
        post=MLFLOW_WRITE,
        body=lambda s: {**run_args(s), "key": "stage", "value": "prod"},
    ),
    "runs/delete-tag": Expect(
        Via.MLFLOW,
        get=POST_ONLY,
        post=MLFLOW_WRITE,
        body=lambda s: {**run_args(s), "key": "stage"},
    ),
    "runs/log-inputs": Expect(
        Via.MLFLOW,
        get=POST_ONLY,
        post=MLFLOW_WRITE,
        body=lambda s: {**run_args(s), "datasets": [{"dataset": {"name": "d", "digest": "x"}}]},
    ),
    "artifacts/list": Expect(
        Via.MLFLOW, get=MLFLOW_READ, query=lambda s: {**run_args(s), "path": "model"}
    ),
    # Accepted and dropped (model outputs), from those who may write the run.
    "runs/outputs": Expect(Via.MLFLOW, get=POST_ONLY, post=MLFLOW_WRITE, body=run_args),
    "metrics/get-history": Expect(
        Via.MLFLOW, get=MLFLOW_READ, query=lambda s: {**run_args(s), "metric_key": "loss"}
    ),
    # As MLflow's store: a run one may not read has no points (an empty answer, not a 404).
    "metrics/get-history-bulk-interval": Expect(
        Via.MLFLOW,
        get=ANY_TOKEN,
        query=lambda s: {"run_ids": str(s.run.pk), "metric_key": "loss", "max_results": "5"},
    ),
    "logged-models/search": Expect(Via.MLFLOW, get=ANY_TOKEN, post=ANY_TOKEN),
    "^.*$": Expect(Via.MLFLOW, get=same(404), path="{prefix}no-such-endpoint", others=404),
}


# MLflow's proxied artifact store, below each of ARTIFACT_PREFIXES.
ARTIFACT_PREFIXES = ("api/2.0/mlflow-artifacts/", "ajax-api/2.0/mlflow-artifacts/")
ARTIFACT_FOLDER = "{s.world.project.pk}/{s.run.pk}/artifacts"
ARTIFACTS: dict[str, Expect] = {
    "artifacts": Expect(
        Via.ARTIFACT,
        get=MLFLOW_READ,
        query=lambda s: {"path": f"{s.world.project.pk}/{s.run.pk}/artifacts/model"},
    ),
    "artifacts/<path:path>": Expect(
        Via.ARTIFACT,
        get=MLFLOW_READ,
        put=Codes(401, 404, 403, 200, 200),
        delete=Codes(401, 404, 403, 200, 200),
        kwargs={"path": ARTIFACT_FOLDER + "/model/weights.txt"},
    ),
    # Multipart and presigned transfers: 501 tells the client to fall back to PUT/GET.
    "^(?:mpu/(?:create|complete|abort)|presigned)/(?P<path>.*)$": Expect(
        Via.ARTIFACT,
        get=same(501),
        path="{prefix}mpu/create/" + ARTIFACT_FOLDER + "/model/weights.txt",
        others=501,
    ),
    "^.*$": Expect(Via.ARTIFACT, get=same(404), path="{prefix}no-such-endpoint", others=404),
}


def below(prefixes: tuple[str, ...], routes: dict[str, Expect]) -> dict[str, Expect]:
    """``routes`` under each prefix, with ``{prefix}`` in their explicit paths filled in."""
    return {
        prefix + route: entry
        if entry.path is None
        else replace(entry, path=entry.path.replace("{prefix}", prefix))
        for prefix in prefixes
        for route, entry in routes.items()
    }


# Django's admin: staff only, and no persona is staff, so every page sends to its login.
ADMIN_LOGIN = "/admin/login/"
ADMIN_ONLY = Expect(Via.ADMIN, get=same(302), others=302)
ADMIN_USER = {"object_id": "{s.world.owner.user.pk}"}
ADMIN: dict[str, Expect] = {
    "admin:index": ADMIN_ONLY,
    "admin:login": Expect(
        Via.ADMIN,
        get=same(200),
        post=same(200),  # a wrong password shows the form again
        put=same(200),  # Django's form views take a PUT as a POST
        body=lambda s: {"username": "nobody", "password": "wrong"},
    ),
    "admin:logout": Expect(Via.ADMIN, get=same(302), others=302, sends_to="/admin/"),
    "admin:password_change": ADMIN_ONLY,
    "admin:password_change_done": ADMIN_ONLY,
    "admin:autocomplete": ADMIN_ONLY,
    "admin:jsi18n": ADMIN_ONLY,
    "admin:view_on_site": replace(ADMIN_ONLY, kwargs={"content_type_id": "1", "object_id": "1"}),
    "admin:auth_group_changelist": ADMIN_ONLY,
    "admin:auth_group_add": ADMIN_ONLY,
    "admin:auth_group_history": replace(ADMIN_ONLY, kwargs={"object_id": "1"}),
    "admin:auth_group_delete": replace(ADMIN_ONLY, kwargs={"object_id": "1"}),
    "admin:auth_group_change": replace(ADMIN_ONLY, kwargs={"object_id": "1"}),
    "admin/auth/group/<path:object_id>/": replace(ADMIN_ONLY, kwargs={"object_id": "1"}),
    "admin:auth_user_password_change": replace(
        ADMIN_ONLY, kwargs={"id": "{s.world.owner.user.pk}"}
    ),
    "admin:auth_user_changelist": ADMIN_ONLY,
    "admin:auth_user_add": ADMIN_ONLY,
    "admin:auth_user_history": replace(ADMIN_ONLY, kwargs=ADMIN_USER),
    "admin:auth_user_delete": replace(ADMIN_ONLY, kwargs=ADMIN_USER),
    "admin:auth_user_change": replace(ADMIN_ONLY, kwargs=ADMIN_USER),
    "admin/auth/user/<path:object_id>/": replace(ADMIN_ONLY, kwargs=ADMIN_USER),
    "admin:app_list": replace(ADMIN_ONLY, path="admin/auth/"),
    "admin/(?P<url>.*)$": replace(ADMIN_ONLY, path="admin/no-such-page/"),
}


MATRIX: dict[str, Expect] = {
    # --- Site-wide pages ---------------------------------------------------------------------
    "home": Expect(Via.PAGE, get=Codes(302, 200, 200, 200, 200)),
    "healthz": Expect(Via.PAGE, get=same(200)),
    "login": Expect(
        Via.PAGE,
        get=same(200),
        post=same(200),  # a wrong password shows the form again
        put=same(200),  # Django's form views take a PUT as a POST
        body=lambda s: {"username": "nobody", "password": "wrong"},
    ),
    "logout": Expect(Via.PAGE, get=same(405), post=same(302)),
    "password_change": Expect(
        Via.PAGE,
        get=Codes(302, 200, 200, 200, 200),
        post=Codes(302, 200, 200, 200, 200),  # the old password is wrong: the form again
        put=Codes(302, 200, 200, 200, 200),
        body=lambda s: {"old_password": "x", "new_password1": "y", "new_password2": "y"},
    ),
    "api-schema": Expect(Via.API, get=same(200)),
    "api-docs": Expect(Via.PAGE, get=same(200)),
    **ADMIN,
    # --- API: teams, projects, runs -------------------------------------------------------------
    "api-teams": Expect(
        Via.API,
        get=Codes(401, 200, 200, 200, 200),
        post=Codes(401, 201, 201, 201, 201),  # anyone may start a team
        body=lambda s: {"slug": "newteam"},
    ),
    "api-projects": Expect(
        Via.API,
        get=Codes(401, 200, 200, 200, 200),
        post=Codes(401, 404, 403, 201, 201),
        body=lambda s: {"team": "acme", "name": "cifar"},
    ),
    "api-project-detail": Expect(Via.API, get=API_READ),
    "api-runs": Expect(
        Via.API,
        get=Codes(401, 200, 200, 200, 200),
        post=Codes(401, 404, 403, 201, 201),
        body=lambda s: {"project": "acme/mnist", "name": "second"},
    ),
    "api-run-detail": Expect(
        Via.API,
        get=API_READ,
        patch=Codes(401, 404, 403, 200, 200),
        body=lambda s: {"notes": "patched"},
    ),
    "api-heartbeat": Expect(
        Via.API, get=Codes(401, 405, 405, 405, 405), post=Codes(401, 404, 403, 200, 200)
    ),
    "api-run-metrics": Expect(
        Via.API,
        get=API_READ,
        post=Codes(401, 404, 403, 200, 200),
        body=lambda s: {"points": [{"key": "loss", "step": 100, "value": 0.01}]},
    ),
    "api-run-alerts": Expect(
        Via.API,
        get=API_READ,
        post=Codes(401, 404, 403, 201, 201),
        body=lambda s: {"title": "diverged"},
    ),
    "api-metric-history": Expect(Via.API, get=API_READ),
    "api-metric-histories": Expect(
        Via.API,
        get=Codes(401, 200, 200, 200, 200),  # an outsider's answer holds no line: "missing"
        query=lambda s: {"runs": str(s.run.pk), "max_points": "10"},
    ),
    "api-run-console": Expect(
        Via.API,
        get=API_READ,
        post=Codes(401, 404, 403, 200, 200),
        body=lambda s: {"lines": [{"number": 0, "text": "epoch 1"}]},
    ),
    "api-run-console-text": Expect(Via.API, get=API_READ),
    "api-run-media": Expect(
        Via.API,
        get=API_READ,
        post=Codes(401, 404, 403, 200, 200),
        body=lambda s: {
            "items": [{"key": "w", "step": 1, "kind": "histogram", "counts": [1], "edges": [0, 1]}]
        },
    ),
    "api-media-history": Expect(Via.API, get=API_READ),
    "api-media-file": Expect(Via.API, get=API_READ),
    "api-artifacts": Expect(Via.API, get=API_READ),
    "api-artifact-file": Expect(Via.API, get=API_READ),
    # --- API: versioned artifacts (issue 21) ---
    "api-run-artifact-versions": Expect(
        Via.API,
        get=API_READ,
        post=Codes(401, 404, 403, 200, 200),  # the same files as v0: no new version
        body=lambda s: {
            "name": "model",
            "files": [{"path": "model/weights.txt", "sha256": WEIGHTS_SHA256, "size": 12}],
        },
    ),
    "api-run-artifact-uses": Expect(
        Via.API,
        get=Codes(401, 405, 405, 405, 405),
        post=Codes(401, 404, 403, 200, 200),
        body=lambda s: {"artifact": "acme/mnist/model:v0"},
    ),
    "api-artifact-version-upload": Expect(
        Via.ARTIFACT,
        get=Codes(401, 405, 405, 405, 405),
        put=Codes(401, 404, 403, 200, 200),  # b"new weights": the pending version's file
        kwargs={"version_id": "{s.versions[pending].pk}", "sha256": NEW_WEIGHTS_SHA256},
    ),
    "api-artifact-version-commit": Expect(
        Via.API,
        get=Codes(401, 405, 405, 405, 405),
        post=Codes(401, 404, 403, 200, 200),
        kwargs={"version_id": "{s.versions[ready].pk}"},
    ),
    "api-project-artifacts": Expect(Via.API, get=API_READ),
    "api-project-artifact": Expect(Via.API, get=API_READ, kwargs={"name": "model"}),
    "api-artifact-version": Expect(
        Via.API, get=API_READ, kwargs={"name": "model", "version": "v0"}
    ),
    "api-artifact-version-file": Expect(
        Via.API, get=API_READ, kwargs={"name": "model", "version": "latest"}
    ),
    # --- End of versioned artifacts ---
    "api-tokens": Expect(
        Via.API,
        get=Codes(401, 200, 200, 200, 200),  # each their own
        post=Codes(401, 201, 201, 201, 201),
        body=lambda s: {"name": "ci"},
    ),
    "api-my-alerts": Expect(  # each their own
        Via.API,
        get=Codes(401, 200, 200, 200, 200),
        put=Codes(401, 200, 200, 200, 200),
        body=lambda s: {"on_failure": True, "hang_after_seconds": 900},
    ),
    "api-team-audit-events": Expect(Via.API, get=Codes(401, 404, 403, 403, 200)),  # owners only
    "api-team-members": Expect(Via.API, get=API_READ),  # @-autocomplete: every member
    # --- API: invitations (alice invited mallory to acme: only mallory answers it) -------------
    "api-team-invitations": Expect(
        Via.API,
        get=Codes(401, 404, 403, 403, 200),  # owners only
        post=Codes(401, 404, 403, 403, 201),
        body=lambda s: {"member": "newcomer@example.com", "role": "viewer"},
    ),
    "api-team-invitation": Expect(
        Via.API, get=Codes(401, 405, 405, 405, 405), delete=Codes(401, 404, 403, 403, 204)
    ),
    "api-invitations": Expect(Via.API, get=ANY_TOKEN),  # each their own
    "api-invitation-accept": Expect(
        Via.API, get=Codes(401, 405, 405, 405, 405), post=Codes(401, 200, 404, 404, 404)
    ),
    "api-invitation-decline": Expect(
        Via.API, get=Codes(401, 405, 405, 405, 405), post=Codes(401, 204, 404, 404, 404)
    ),
    # alice's spare token: nobody else's to revoke, whatever their role.
    "api-token-detail": Expect(
        Via.API, get=Codes(401, 405, 405, 405, 405), delete=Codes(401, 404, 404, 404, 204)
    ),
    # --- API: reports (alice wrote the report: editors edit, only she or an owner shares) -------
    "api-reports": Expect(
        Via.API,
        get=Codes(401, 200, 200, 200, 200),
        post=Codes(401, 404, 403, 201, 201),
        body=lambda s: {"project": "acme/mnist", "title": "New"},
    ),
    "api-report": Expect(
        Via.API,
        get=API_READ,
        patch=Codes(401, 404, 403, 200, 200),
        delete=Codes(401, 404, 403, 403, 204),
        body=lambda s: {"revision": 2, "body": "Rewritten."},
    ),
    "api-report-revisions": Expect(Via.API, get=API_READ),
    "api-report-revision": Expect(Via.API, get=API_READ),
    "api-report-restore": Expect(
        Via.API,
        get=Codes(401, 405, 405, 405, 405),
        post=Codes(401, 404, 403, 200, 200),
        body=lambda s: {"revision": 2},
    ),
    # Drafts are per user: the viewer has none (and may not keep one).
    "api-report-draft": Expect(
        Via.API,
        get=Codes(401, 404, 404, 200, 200),
        put=Codes(401, 404, 403, 200, 200),
        delete=Codes(401, 404, 204, 204, 204),
        body=lambda s: {"title": "Draft", "body": "Words.", "revision": 2},
    ),
    "api-report-preview": Expect(
        Via.API,
        get=Codes(401, 405, 405, 405, 405),
        post=Codes(401, 404, 403, 200, 200),
        body=lambda s: {"body": "# Preview"},
    ),
    "api-report-merge": Expect(
        Via.API,
        get=Codes(401, 405, 405, 405, 405),
        post=Codes(401, 404, 403, 200, 200),
        body=lambda s: {"revision": 1, "title": "Merged", "body": "Words."},
    ),
    # Members who may not manage the links see an empty list.
    "api-report-share-links": Expect(
        Via.API, get=API_READ, post=Codes(401, 404, 403, 403, 201), body=lambda s: {}
    ),
    "api-share-link": Expect(
        Via.API, get=Codes(401, 405, 405, 405, 405), delete=Codes(401, 404, 403, 403, 204)
    ),
    # --- API: comments (alice wrote the comment; every reader may comment) ----------------------
    "api-comments": Expect(
        Via.API,
        get=API_READ,
        post=Codes(401, 404, 201, 201, 201),
        query=lambda s: {"target": f"run:{s.run.pk}"},
        body=lambda s: {"target": f"run:{s.run.pk}", "body": "Me too."},
    ),
    "api-comment-detail": Expect(
        Via.API,
        get=API_READ,
        patch=Codes(401, 404, 403, 403, 200),
        delete=Codes(401, 404, 403, 403, 200),
        body=lambda s: {"body": "Edited."},
    ),
    # --- API: alerting ----------------------------------------------------------------------------
    "api-destinations": Expect(
        Via.API,
        get=Codes(401, 200, 200, 200, 200),
        post=Codes(401, 404, 403, 201, 201),
        body=lambda s: {
            "team": "acme",
            "kind": "email",
            "name": "second",
            "config": {"addresses": ["ops@example.com"]},
        },
    ),
    "api-destination": Expect(
        Via.API,
        get=API_READ,
        patch=Codes(401, 404, 403, 200, 200),
        delete=Codes(401, 404, 403, 204, 204),
        kwargs={"pk": "{s.destination.pk}"},
        body=lambda s: {"name": "renamed"},
    ),
    "api-destination-test": Expect(
        Via.API,
        get=Codes(401, 405, 405, 405, 405),
        post=Codes(401, 404, 403, 200, 200),
        kwargs={"pk": "{s.destination.pk}"},
    ),
    "api-alert-rules": Expect(
        Via.API,
        get=Codes(401, 200, 200, 200, 200),
        post=Codes(401, 404, 403, 201, 201),
        body=lambda s: {"project": "acme/mnist", "name": "second", "trigger": "run_failed"},
    ),
    "api-alert-rule": Expect(
        Via.API,
        get=API_READ,
        patch=Codes(401, 404, 403, 200, 200),
        delete=Codes(401, 404, 403, 204, 204),
        kwargs={"pk": "{s.rule.pk}"},
        body=lambda s: {"name": "renamed"},
    ),
    "api-alerts": Expect(Via.API, get=Codes(401, 200, 200, 200, 200)),
    "api-alert-acknowledge": Expect(
        Via.API,
        get=Codes(401, 405, 405, 405, 405),
        post=Codes(401, 404, 403, 200, 200),
        kwargs={"pk": "{s.alert.pk}"},
    ),
    "api-notifications": Expect(Via.API, get=Codes(401, 200, 200, 200, 200)),
    "api-silences": Expect(
        Via.API,
        get=Codes(401, 200, 200, 200, 200),
        post=Codes(401, 404, 403, 201, 201),
        body=lambda s: {"project": "acme/mnist", "until": _until()},
    ),
    "api-silence": Expect(
        Via.API,
        get=Codes(401, 405, 405, 405, 405),
        delete=Codes(401, 404, 403, 204, 204),
        kwargs={"pk": "{s.silence.pk}"},
    ),
    **below(MLFLOW_PREFIXES, MLFLOW),
    **below(ARTIFACT_PREFIXES, ARTIFACTS),
    # MLflow serves a run's file by id at its root, outside the API prefixes.
    "get-artifact": Expect(
        Via.MLFLOW,
        get=MLFLOW_READ,
        query=lambda s: {**run_args(s), "path": "model/weights.txt"},
    ),
    # --- Settings pages -----------------------------------------------------------------------
    "settings": Expect(Via.PAGE, get=same(302), others=302, sends_to="/settings/tokens/"),
    "settings-profile": Expect(
        Via.PAGE,
        get=Codes(302, 200, 200, 200, 200),
        post=same(302),  # each their own
        body=lambda s: {"first_name": "Ada", "last_name": "Lovelace"},
    ),
    "settings-email-banner-dismiss": Expect(
        Via.PAGE, get=Codes(302, 405, 405, 405, 405), post=same(302)
    ),
    # Each their own: the page shows and saves the logged-in user's personal alerts.
    "settings-alerts": Expect(
        Via.PAGE,
        get=Codes(302, 200, 200, 200, 200),
        post=same(302),
        body=lambda s: {"on_failure": "1", "hang_minutes": "15"},
    ),
    "settings-alerts-test": Expect(  # nothing turned on: says so, back to the page
        Via.PAGE, get=Codes(302, 405, 405, 405, 405), post=same(302)
    ),
    "settings-tokens": Expect(
        Via.PAGE,
        get=Codes(302, 200, 200, 200, 200),
        post=same(302),
        body=lambda s: {"name": "laptop"},
    ),
    "settings-token-revoke": Expect(
        Via.PAGE, get=Codes(302, 405, 405, 405, 405), post=Codes(302, 404, 404, 404, 302)
    ),
    "team-new": Expect(
        Via.PAGE,
        get=Codes(302, 200, 200, 200, 200),
        post=same(302),
        body=lambda s: {"slug": "newteam"},
    ),
    "settings-team": Expect(
        Via.PAGE,
        get=PAGE_READ,
        post=Codes(302, 404, 403, 403, 302),
        body=lambda s: {"member": "newcomer@example.com", "role": "viewer"},
    ),
    "settings-invitation-revoke": Expect(
        Via.PAGE, get=Codes(302, 405, 405, 405, 405), post=Codes(302, 404, 403, 403, 302)
    ),
    "settings-invitations": Expect(Via.PAGE, get=Codes(302, 200, 200, 200, 200)),  # each their own
    "settings-invitation-accept": Expect(
        Via.PAGE, get=Codes(302, 405, 405, 405, 405), post=Codes(302, 302, 404, 404, 404)
    ),
    "settings-invitation-decline": Expect(
        Via.PAGE, get=Codes(302, 405, 405, 405, 405), post=Codes(302, 302, 404, 404, 404)
    ),
    # The emailed link of an invitation to a username: only that account sees the offer and
    # answers it; anyone else logged in is told so (test_invitations: one to an email address).
    "invitation": Expect(
        Via.PAGE,
        get=Codes(302, 200, 403, 403, 403),
        post=Codes(302, 302, 403, 403, 403),
        body=lambda s: {"answer": "accept"},
    ),
    "settings-member-role": Expect(
        Via.PAGE,
        get=Codes(302, 405, 405, 405, 405),
        post=Codes(302, 404, 403, 403, 302),
        body=lambda s: {"role": "viewer"},
    ),
    "settings-member-remove": Expect(
        Via.PAGE,
        get=Codes(302, 404, 403, 403, 200),  # the confirmation page
        post=Codes(302, 404, 403, 403, 302),
        body=lambda s: {"confirm": "yes"},
    ),
    "settings-team-audit": Expect(Via.PAGE, get=Codes(302, 404, 403, 403, 200)),  # owners only
    "settings-team-audit-csv": Expect(Via.PAGE, get=Codes(302, 404, 403, 403, 200)),
    "alert-destinations": Expect(
        Via.PAGE,
        get=PAGE_READ,
        post=Codes(302, 404, 403, 302, 302),
        body=lambda s: {"kind": "email", "name": "second", "addresses": "ops@example.com"},
    ),
    "alert-destination": Expect(
        Via.PAGE,
        get=Codes(302, 404, 403, 200, 200),  # the edit form
        post=Codes(302, 404, 403, 302, 302),
        body=lambda s: {"kind": "email", "name": "renamed", "addresses": "ops@example.com"},
    ),
    "alert-destination-test": Expect(
        Via.PAGE, get=Codes(302, 405, 405, 405, 405), post=Codes(302, 404, 403, 302, 302)
    ),
    "alert-destination-enabled": Expect(
        Via.PAGE,
        get=Codes(302, 405, 405, 405, 405),
        post=Codes(302, 404, 403, 302, 302),
        body=lambda s: {"enabled": "0"},
    ),
    "alert-destination-delete": Expect(
        Via.PAGE, get=Codes(302, 404, 403, 200, 200), post=Codes(302, 404, 403, 302, 302)
    ),
    # --- Alert pages --------------------------------------------------------------------------
    "alerts": Expect(Via.PAGE, get=Codes(302, 200, 200, 200, 200)),
    "alert": Expect(Via.PAGE, get=PAGE_READ),
    # A metric alert's chart (alerts.snapshot). The scene's alert is not a metric alert: even
    # its members find no chart (tests/alerts/test_snapshot.py draws and serves one).
    # A notification's one-click link: GET asks (viewers are told they may not), POST acts.
    "alert-act": Expect(
        Via.PAGE,
        get=Codes(302, 404, 403, 200, 200),
        post=Codes(302, 404, 403, 302, 302),
        kwargs={"token": "{s.acknowledge_token}"},
    ),
    "alert-chart": Expect(Via.PAGE, get=Codes(302, 404, 404, 404, 404)),
    # The chart's signed link in messages: no login, the token is the capability (a share
    # link's token, signed for something else, opens nothing).
    "alert-chart-link": Expect(Via.PAGE, get=same(404), shares=True),
    "project-alerts": Expect(Via.PAGE, get=PAGE_READ),
    "alert-rules": Expect(Via.PAGE, get=PAGE_READ),
    "alert-rule-new": Expect(
        Via.PAGE,
        get=Codes(302, 404, 403, 200, 200),
        post=Codes(302, 404, 403, 302, 302),
        body=lambda s: {"name": "second", "trigger": "run_finished", "group_wait": "30"},
    ),
    "alert-rule": Expect(
        Via.PAGE,
        get=PAGE_READ,
        post=Codes(302, 404, 403, 302, 302),
        body=lambda s: {"name": "renamed", "trigger": "run_finished", "group_wait": "30"},
    ),
    "alert-rule-delete": Expect(
        Via.PAGE, get=Codes(302, 404, 403, 200, 200), post=Codes(302, 404, 403, 302, 302)
    ),
    "alert-silences": Expect(
        Via.PAGE,
        get=PAGE_READ,
        post=Codes(302, 404, 403, 302, 302),
        body=lambda s: {"scope": "project", "until": "2099-01-01T00:00"},
    ),
    "alert-silence-end": Expect(
        Via.PAGE, get=Codes(302, 405, 405, 405, 405), post=Codes(302, 404, 403, 302, 302)
    ),
    # --- Report pages -------------------------------------------------------------------------
    "report": Expect(Via.PAGE, get=PAGE_READ),
    "report-block": Expect(Via.PAGE, get=PAGE_READ),
    "report-media-block": Expect(Via.PAGE, get=Codes(302, 404, 404, 404, 404)),  # issue 21
    "report-export": Expect(Via.PAGE, get=PAGE_READ),
    "report-edit": Expect(Via.PAGE, get=Codes(302, 404, 403, 200, 200)),
    "report-revisions": Expect(Via.PAGE, get=PAGE_READ),
    "report-revision": Expect(
        Via.PAGE,
        get=PAGE_READ,
        post=Codes(302, 404, 403, 302, 302),  # restores revision 1
        body=lambda s: {"revision": "2"},
    ),
    "report-diff": Expect(Via.PAGE, get=PAGE_READ),
    "report-share": Expect(
        Via.PAGE, get=Codes(302, 404, 403, 403, 200), post=Codes(302, 404, 403, 403, 302)
    ),
    "shared": Expect(Via.PAGE, get=same(200), shares=True),
    "shared-block": Expect(Via.PAGE, get=same(200), shares=True),
    # --- issue 21: an image a shared report shows. The scene's report shows no media, so
    # the link serves not even its own run's image (tests/reports_app/test_media_blocks.py).
    "shared-media": Expect(Via.PAGE, get=same(404), shares=True),
    "shared-media-block": Expect(Via.PAGE, get=same(404), shares=True),  # block 0 is a chart
    # --- end issue 21
    "project-reports": Expect(Via.PAGE, get=PAGE_READ),
    "report-new": Expect(
        Via.PAGE,
        get=Codes(302, 404, 403, 200, 200),
        post=Codes(302, 404, 403, 302, 302),
        body=lambda s: {"title": "New"},
    ),
    # --- Team, project and run pages ------------------------------------------------------------
    "team": Expect(
        Via.PAGE,
        get=PAGE_READ,
        post=Codes(302, 404, 403, 302, 302),  # creates a project
        body=lambda s: {"name": "cifar"},
    ),
    "project-settings": Expect(
        Via.PAGE,
        get=PAGE_READ,
        post=Codes(302, 404, 403, 302, 302),
        body=lambda s: {"name": "mnist", "description": "Digits."},
    ),
    "project-delete": Expect(
        Via.PAGE,
        get=Codes(302, 405, 405, 405, 405),
        post=Codes(302, 404, 403, 403, 302),
        body=lambda s: {"confirm": "acme/mnist"},
    ),
    "project": Expect(
        Via.PAGE,
        get=PAGE_READ,
        post=Codes(302, 404, 403, 302, 302),  # tags the ticked runs
        body=lambda s: {"tag_action": "add", "runs": str(s.run.pk), "tag": "checked"},
    ),
    "compare": Expect(Via.PAGE, get=PAGE_READ, query=lambda s: {"runs": str(s.run.pk)}),
    "run": Expect(
        Via.PAGE,
        get=PAGE_READ,
        post=Codes(302, 404, 403, 302, 302),  # notes and tags
        body=lambda s: {"notes": "Looks fine."},
    ),
    "run-state": Expect(Via.PAGE, get=PAGE_READ),  # what the run page applies live
    "run-artifact-cards": Expect(Via.PAGE, get=PAGE_READ),  # swapped in live (issue 21)
    "run-metric-csv": Expect(Via.PAGE, get=PAGE_READ, query=lambda s: {"key": "loss"}),
    "run-artifact": Expect(Via.PAGE, get=PAGE_READ),
    "project-artifact": Expect(Via.PAGE, get=PAGE_READ, kwargs={"name": "model"}),  # issue 21
    # --- MLflow UI links: each redirects a member to the page it names ------------------------
    "mlflow-experiment": Expect(Via.PAGE, get=MLFLOW_LINK, kwargs=MLFLOW_EXPERIMENT),
    "mlflow-experiment-tab": Expect(
        Via.PAGE,
        get=MLFLOW_LINK,
        kwargs={**MLFLOW_EXPERIMENT, "rest": "runs/{s.run.pk}/artifacts/model/weights.txt"},
    ),
    "mlflow-run": Expect(Via.PAGE, get=MLFLOW_LINK),
    "mlflow-compare-runs": Expect(
        Via.PAGE, get=MLFLOW_LINK, query=lambda s: {"runs": f'["{s.run.pk}"]'}
    ),
    "mlflow-metric": Expect(
        Via.PAGE, get=MLFLOW_LINK, query=lambda s: {"runs": f'["{s.run.pk}"]', "metric": '"loss"'}
    ),
}


# --- The tests ---------------------------------------------------------------------------------

PATTERNS = url_patterns()
# The login forms check a password (the personas have none): a second each with the real hasher.
FAST_HASHER = "django.contrib.auth.hashers.MD5PasswordHasher"


@pytest.fixture(scope="module")
def built_scene(
    django_db_setup: None, django_db_blocker: Any, tmp_path_factory: Any
) -> Iterator[Scene]:
    """Built once, in a transaction rolled back at the end; each test runs in a savepoint."""
    home = tmp_path_factory.mktemp("labbook-home")
    fast = override_settings(LABBOOK_HOME=home, PASSWORD_HASHERS=[FAST_HASHER])
    with django_db_blocker.unblock(), fast, transaction.atomic():
        built = build_scene()
        built.baseline = state()  # what every test starts from, its savepoint rolled back
        yield built
        transaction.set_rollback(True)
        cache.clear()  # no failed login of ours may lock out the tests that follow


@pytest.fixture(scope="module")
def client() -> Client:
    """One client for the module: each new one would index every static file (WhiteNoise)."""
    return Client()


@pytest.fixture
def scene(built_scene: Scene, db: None) -> Scene:
    """The scene as built: ``db``'s savepoint restores the database, this the files and counters."""
    cache.clear()  # login lockouts and token rate limits count across requests
    shutil.rmtree(Path(settings.LABBOOK_HOME) / "artifacts", ignore_errors=True)
    put_files(built_scene)
    return built_scene


def request(
    client: Client, persona: str, method: str, key: str, scene: Scene, **values: str
) -> HttpResponse:
    """``method`` on the pattern ``key`` as ``persona``; ``values`` replace route parts."""
    entry = MATRIX[key]
    values = {**DEFAULT_KWARGS, **(entry.kwargs or {}), **values}
    url = url_for(PATTERNS[key], entry, scene, values)
    return request_as(client, persona, method, url, entry, scene)


def test_it_has_a_decision_for_every_url_pattern() -> None:
    missing = sorted(set(PATTERNS) - set(MATRIX))
    assert not missing, f"URL patterns without an entry in MATRIX: {missing}"


def test_it_has_no_entry_for_a_pattern_that_is_gone() -> None:
    stale = sorted(set(MATRIX) - set(PATTERNS))
    assert not stale, f"MATRIX entries naming no URL pattern: {stale}"


def _cases() -> Iterator[Any]:
    for key, entry in MATRIX.items():
        for method in entry.methods():
            for persona in PERSONAS:
                yield pytest.param(key, persona, method, id=f"{key}-{persona}-{method}")


@pytest.mark.parametrize(("key", "persona", "method"), list(_cases()))
def test_it_answers_each_persona_as_the_matrix_says(
    client: Client, scene: Scene, key: str, persona: str, method: str
) -> None:
    entry = MATRIX[key]
    expected = getattr(entry.codes(method), persona)
    response = request(client, persona, method, key, scene)
    assert response.status_code == expected, content(response)[:300]
    if refused(persona, response.status_code):
        assert state() == scene.baseline, "a refused request changed something"
    if persona == "anonymous" and expected == 302 and entry.via in (Via.PAGE, Via.ADMIN):
        login = ADMIN_LOGIN if entry.via == Via.ADMIN else resolve_url(settings.LOGIN_URL)
        assert response["Location"].startswith(entry.sends_to or login)
    if persona in ("anonymous", "outsider") and not entry.shares:
        assert SECRET.encode() not in content(response), "acme's data leaked"
    if persona != "editor":
        assert PRIVATE.encode() not in content(response), "the private report leaked"


def _other_methods() -> Iterator[Any]:
    for key, entry in MATRIX.items():
        for method in [m for m in METHODS if m not in entry.methods()]:
            yield pytest.param(key, method, id=f"{key}-owner-{method}")


@pytest.mark.parametrize(("key", "method"), list(_other_methods()))
def test_it_refuses_the_methods_the_matrix_does_not_list(
    client: Client, scene: Scene, key: str, method: str
) -> None:
    entry = MATRIX[key]
    response = request(client, "owner", method, key, scene)
    assert response.status_code == entry.others, content(response)[:300]
    assert state() == scene.baseline, f"{method} changed something"


def _safe_methods() -> Iterator[Any]:
    for key in MATRIX:
        for method in ("HEAD", "OPTIONS"):
            yield pytest.param(key, method, id=f"{key}-{method}")


@pytest.mark.parametrize(("key", "method"), list(_safe_methods()))
def test_head_and_options_change_nothing_and_never_fail(
    client: Client, scene: Scene, key: str, method: str
) -> None:
    entry = MATRIX[key]
    for persona in PERSONAS:
        response = request(client, persona, method, key, scene)
        status = response.status_code
        assert status < 500 or status == entry.others, f"{persona}: {content(response)[:300]}"
        if persona in ("anonymous", "outsider"):
            assert SECRET.encode() not in content(response), f"{persona}: acme's data leaked"
    assert state() == scene.baseline, f"a {method} changed something"


# --- The same URLs, aimed at what the persona may not reach --------------------------------------


def refusal(key: str, method: str, persona: str) -> int:
    """404, unless the method is refused before anything is looked up (405)."""
    return 405 if getattr(MATRIX[key].codes(method), persona) == 405 else 404


def _aimed(
    route_parts: set[str], personas: tuple[str, ...], *, also: frozenset[str] = frozenset()
) -> Iterator[Any]:
    """Every method of every pattern naming one of ``route_parts`` (and all of ``also``)."""
    for key, entry in MATRIX.items():
        names = PATTERNS[key].names() if key in PATTERNS else set()
        if entry.path is not None or not names & route_parts or not also <= names:
            continue
        for method in entry.methods():
            for persona in personas:
                yield pytest.param(key, persona, method, id=f"{key}-{persona}-{method}")


# Route parts naming one of acme's objects by id, and an id that names nothing.
OBJECT_IDS = {
    *("run_id", "report_id", "link_id", "comment_id", "token_id", "user_id", "destination_id"),
    *("alert_id", "rule_id", "silence_id", "pk", "invitation_id"),
    "version_id",  # versioned artifacts (issue 21)
}
MISSING_ID = "987654321"
CSRF_TOKEN = re.compile(rb"[A-Za-z0-9]{64}")  # masked anew in every page


def _hidden() -> Iterator[Any]:
    for param in _aimed(OBJECT_IDS, ("outsider",)):
        key, persona, method = param.values
        if getattr(MATRIX[key].codes(method), persona) == 404:
            yield param


@pytest.mark.parametrize(("key", "persona", "method"), list(_hidden()))
def test_an_outsider_cannot_tell_acmes_objects_from_missing_ones(
    client: Client, scene: Scene, key: str, persona: str, method: str
) -> None:
    found = request(client, persona, method, key, scene)
    missing_ids = dict.fromkeys(PATTERNS[key].names() & OBJECT_IDS, MISSING_ID)
    missing = request(client, persona, method, key, scene, **missing_ids)
    assert found.status_code == missing.status_code == 404
    assert CSRF_TOKEN.sub(b"", content(found)) == CSRF_TOKEN.sub(b"", content(missing))


# The editor's private report, its comment and its share link, in place of the team's.
PRIVATE_KWARGS = {
    "report_id": "{s.private.report.pk}",
    "comment_id": "{s.private.comment.pk}",
    "link_id": "{s.private.share_link.pk}",
}


@pytest.mark.parametrize(
    ("key", "persona", "method"),
    list(_aimed(set(PRIVATE_KWARGS), ("outsider", "viewer", "owner"))),
)
def test_a_private_report_is_its_authors_alone(
    client: Client, scene: Scene, key: str, persona: str, method: str
) -> None:
    response = request(client, persona, method, key, scene, **PRIVATE_KWARGS)
    assert response.status_code == refusal(key, method, persona), content(response)[:300]
    assert state() == scene.baseline, "a refused request changed something"
    assert PRIVATE.encode() not in content(response)


# Each persona's own team and project ("lab") in the URL, and one of acme's ids after them.
OWN_TEAM = {"outsider": {"team": "rival", "project": "lab"}, "viewer": {"team": "carolco"}}


@pytest.mark.parametrize(
    ("key", "persona", "method"),
    list(_aimed(OBJECT_IDS, tuple(OWN_TEAM), also=frozenset({"team"}))),
)
def test_an_id_of_acmes_is_not_found_under_another_teams_url(
    client: Client, scene: Scene, key: str, persona: str, method: str
) -> None:
    values = {"project": "lab", **OWN_TEAM[persona]}
    response = request(client, persona, method, key, scene, **values)
    assert response.status_code == refusal(key, method, persona), content(response)[:300]
    assert state() == scene.baseline, "a refused request changed something"
