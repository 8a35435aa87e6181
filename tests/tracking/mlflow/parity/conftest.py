"""Labbook and a real ``mlflow server``, asked the same raw REST calls in the same test.

``pair`` sends one call to both: Labbook in process (Django's test client, CSRF
checks on, as a browser-less client meets them), MLflow over loopback. Tests compare
the two answers: status, ``error_code`` and ``message``, with each side's own ids put
back to a placeholder (``Pair.same``), since ids are the one difference on purpose
(Labbook's are integers; its experiment names carry the team).

One ``mlflow server`` serves the whole package: its modules share an xdist group, so
they run on one worker, after each other.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from django.db import connection
from django.db.models import Model
from django.test import Client

from tests.tracking.mlflow.reference_server import running_mlflow_server
from tracking import services
from tracking.models import Project, Run

API = "api/2.0/mlflow"


@pytest.fixture(scope="package")
def mlflow_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_mlflow_server(tmp_path_factory.mktemp("mlflow-reference")) as url:
        yield url


@dataclass
class Answer:
    """One side's answer: its status and its JSON body (``None`` if it was not JSON)."""

    status: int
    body: Any
    content: bytes
    content_type: str

    @property
    def error(self) -> tuple[int, str | None, str | None]:
        body = self.body if isinstance(self.body, dict) else {}
        return self.status, body.get("error_code"), body.get("message")


@dataclass
class Pair:
    """The same call to Labbook and to MLflow; the ids each side gave the same thing."""

    labbook_client: Client
    headers: dict[str, str]
    mlflow_client: httpx.Client
    # Appended to experiment names: the reference server keeps what every test made.
    suffix: str = ""
    # placeholder -> (labbook's id, mlflow's id), for bodies and for messages
    ids: dict[str, tuple[str, str]] = field(default_factory=dict)

    def call(self, method: str, path: str, body: Any = None) -> tuple[Answer, Answer]:
        """``body`` may hold placeholders (``"{run}"``), put in with each side's id."""
        return self.labbook(method, path, body), self.mlflow(method, path, body)

    def labbook(self, method: str, path: str, body: Any = None) -> Answer:
        url = f"/{API}/{path}"
        sent = self._fill(body, side=0)
        if method == "GET":
            response = self.labbook_client.get(url, sent or {}, **self.headers)
        else:
            payload = sent if isinstance(sent, str | bytes) else json.dumps(sent or {})
            response = self.labbook_client.generic(
                method, url, payload, content_type="application/json", **self.headers
            )
        return _answer(response.status_code, response.content, response.get("Content-Type", ""))

    def mlflow(self, method: str, path: str, body: Any = None) -> Answer:
        sent = self._fill(body, side=1)
        if method == "GET":
            response = self.mlflow_client.get(f"/{API}/{path}", params=sent or {})
        else:
            payload = sent if isinstance(sent, str | bytes) else json.dumps(sent or {})
            response = self.mlflow_client.request(
                method,
                f"/{API}/{path}",
                content=payload,
                headers={"Content-Type": "application/json"},
            )
        return _answer(
            response.status_code, response.content, response.headers.get("Content-Type", "")
        )

    def remember(self, placeholder: str, labbook_id: Any, mlflow_id: Any) -> None:
        self.ids[placeholder] = (str(labbook_id), str(mlflow_id))

    def experiment(self, placeholder: str, name: str) -> None:
        """An experiment named ``name`` + ``suffix`` on both sides, known afterwards as
        ``{placeholder}`` (and its name as ``{placeholder.name}``)."""
        name = f"{name}{self.suffix}"
        ours, theirs = self.call("POST", "experiments/create", {"name": name})
        assert ours.status == theirs.status == 200, (ours.body, theirs.body)
        self.remember(placeholder, ours.body["experiment_id"], theirs.body["experiment_id"])
        self.remember(f"{placeholder}.name", name, name)

    def run(self, placeholder: str, experiment: str, **body: Any) -> None:
        """A run in ``{experiment}`` on both sides, known afterwards as ``{placeholder}``."""
        sent = {"experiment_id": slot(experiment), **body}
        ours, theirs = self.call("POST", "runs/create", sent)
        assert ours.status == theirs.status == 200, (ours.body, theirs.body)
        self.remember(
            placeholder, ours.body["run"]["info"]["run_id"], theirs.body["run"]["info"]["run_id"]
        )

    def neutral(self, text: str | None, *, side: int) -> str | None:
        """``text`` with this side's ids put back to their placeholders."""
        if text is None:
            return None
        for placeholder, ids in sorted(self.ids.items(), key=lambda kv: -len(kv[1][side])):
            # Whole ids only: Labbook's are small integers, found inside other numbers too.
            pattern = rf"(?<![\w.-]){re.escape(ids[side])}(?![\w-]|\.\d)"
            text = re.sub(pattern, slot(placeholder).replace("\\", "\\\\"), text)
        return text

    def same(self, ours: Answer, theirs: Answer) -> tuple[int, str | None, str | None]:
        """Assert both answered the same error (status, code, message up to ids); return it."""
        status, code, message = ours.error
        expected = theirs.error
        mine = (status, code, self.neutral(message, side=0))
        reference = (expected[0], expected[1], self.neutral(expected[2], side=1))
        assert mine == reference, f"\nLabbook: {mine}\nMLflow:  {reference}"
        return mine

    def _fill(self, body: Any, *, side: int) -> Any:
        if isinstance(body, str):
            for placeholder, ids in self.ids.items():
                if body == slot(placeholder):
                    return ids[side]
            return body
        if isinstance(body, dict):
            return {key: self._fill(value, side=side) for key, value in body.items()}
        if isinstance(body, list):
            return [self._fill(value, side=side) for value in body]
        return body


def slot(placeholder: str) -> str:
    """How a body or a message names ``placeholder``'s id: ``{placeholder}``."""
    return "{" + placeholder + "}"


def _answer(status: int, content: bytes, content_type: str) -> Answer:
    try:
        body = json.loads(content) if content else None
    except ValueError:
        body = None
    return Answer(status, body, content, content_type)


# Labbook's new experiments and runs get ids from here on in a parity test, each model a
# range of its own: small integers would also be found in messages ("at most 1 ..."), and an
# experiment and a run with the same id could not be told apart, where neutral() puts placeholders.
FIRST_ID = 900_001
ID_RANGE = 100_000


def start_ids_high(*models: type[Model]) -> None:
    """The next row of the n-th model gets an id of at least FIRST_ID + n * ID_RANGE (undone
    with the test's transaction on SQLite; a PostgreSQL sequence keeps it, harming no test)."""
    with connection.cursor() as cursor:
        for index, model in enumerate(models):
            table = model._meta.db_table
            start = FIRST_ID + index * ID_RANGE - 1
            if connection.vendor == "postgresql":
                cursor.execute(
                    "SELECT setval(pg_get_serial_sequence(%s, 'id'),"
                    " GREATEST(%s, (SELECT COALESCE(MAX(id), 0) FROM " + table + ")))",
                    [table, start],
                )
            else:
                cursor.execute("DELETE FROM sqlite_sequence WHERE name = %s", [table])
                cursor.execute(
                    "INSERT INTO sqlite_sequence (name, seq)"
                    " SELECT %s, MAX(%s, COALESCE(MAX(id), 0)) FROM " + table,
                    [table, start],
                )


@pytest.fixture
def pair(world, mlflow_url: str) -> Iterator[Pair]:
    """The owner of ``acme`` on Labbook, and an anonymous client of the reference server."""
    start_ids_high(Project, Run)
    _, raw = services.token_create(user=world.owner.user, name="parity")
    with httpx.Client(base_url=mlflow_url, timeout=60, trust_env=False) as reference:
        yield Pair(
            Client(enforce_csrf_checks=True),
            {"HTTP_AUTHORIZATION": f"Bearer {raw}"},
            reference,
            suffix=f"-{uuid.uuid4().hex[:8]}",
        )
