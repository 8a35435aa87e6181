"""Schemathesis over the schema the app serves, against a real uvicorn server.

Every operation of ``/api/schema/`` gets generated requests, valid ones
(positive mode) and invalid ones (negative mode), as the owner of a team whose
runs, reports, comments, destinations, rules, silences and alerts were made
through the services (``api_seed``): path ids, ``project``, ``target``, ...
are now and then swapped for real ones so generated requests also reach the
code behind a successful lookup. Each answer must not be a 5xx, must have a
documented status code and content type, and must match its documented schema.

The server runs on the database of the test run (PostgreSQL on CI's second
pass, with Redis) so what only one database refuses (NUL characters, 64-bit
overflows) is found. Generation is derandomized: CI sees the same requests
every time. Destructive operations go last so they do not starve the others
of real objects, and no request may point a destination at anything but
loopback: the server must never send to the network (see ``_made_safe``).
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import schemathesis
from django.conf import settings as django_settings
from django.db import connection
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.hooks import HookDispatcher, HookScope
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.reliability import api_seed
from tests.sdk.server import ROOT, LabbookServer, server_env

pytestmark = [pytest.mark.soak, pytest.mark.subprocess]

# Requests per operation and mode: ~57 operations x 2 modes x 10 = ~1,140. Raise it to dig deeper.
EXAMPLES = int(os.environ.get("LABBOOK_FUZZ_EXAMPLES", "10"))
MIN_CASES = 1_000
MIN_OPERATIONS = 50
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
SAFE_URL = "http://127.0.0.1:9/fuzz"  # loopback: netguard refuses it, nothing is ever sent
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # failures are collected, not shrunk
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@dataclass
class Seeded:
    """What ``api_seed`` made, as choices for each parameter that names an object."""

    made: dict[str, Any]

    def path_choices(self, path: str) -> dict[str, list[Any]]:
        by_prefix = {"alert-rules": "rules", "destinations": "destinations", "silences": "silences"}
        owner = next((kind for p, kind in by_prefix.items() if path.startswith(f"/api/v1/{p}")), "")
        return {
            "id": self.made.get(owner, []),
            "run_id": self.made["runs"],
            "report_id": self.made["reports"],
            "comment_id": self.made["comments"],
            "link_id": self.made["share_links"],
            "token_id": self.made["decoy_tokens"],
            "number": self.made["revisions"],
            "key": api_seed.METRIC_KEYS,
            "path": api_seed.ARTIFACTS,
            "team": [api_seed.TEAM],
            "project": ["p"],
        }

    def reference_choices(self) -> dict[str, list[Any]]:
        """Query parameters and body fields that name objects."""
        targets = [f"run:{self.made['runs'][0]}", f"report:{self.made['reports'][0]}"]
        return {
            "project": [api_seed.PROJECT],
            "team": [api_seed.TEAM],
            "target": targets,
            "alert": self.made["alerts"],
            "parent": self.made["comments"],
            "run": self.made["runs"],
            "rule": self.made["rules"],
            "destinations": [self.made["destinations"]],
            "revision": self.made["revisions"],
        }


@dataclass
class Tally:
    cases: int = 0
    statuses: dict[str, collections.Counter] = field(
        default_factory=lambda: collections.defaultdict(collections.Counter)
    )
    failures: dict[str, list[str]] = field(default_factory=lambda: collections.defaultdict(list))

    def fail(self, label: str, error: BaseException) -> None:
        if len(self.failures[label]) < 2:  # the first two say enough; the rest repeat them
            self.failures[label].append(str(error))


# --- The server and what it holds --------------------------------------------------------


def _postgres_url(database: dict[str, Any]) -> str:
    password = f":{quote(database['PASSWORD'])}" if database.get("PASSWORD") else ""
    user = quote(database.get("USER") or "")
    host = database.get("HOST") or "localhost"
    return f"postgres://{user}{password}@{host}:{database.get('PORT') or 5432}/{database['NAME']}"


def _server_env() -> dict[str, str]:
    """The test run's database (pytest-django's test database) and Redis, for the server."""
    env = {"EMAIL_URL": "console://", "ALERTS_ALLOW_PRIVATE_WEBHOOKS": "0"}
    if connection.vendor == "postgresql":
        env["DATABASE_URL"] = _postgres_url(connection.settings_dict)
    if django_settings.REDIS_URL:
        env["REDIS_URL"] = django_settings.REDIS_URL
    return env


def _seed(server: LabbookServer) -> Seeded:
    env = {
        **server_env(server.home),
        **server.env,
        "DJANGO_SETTINGS_MODULE": "labbook.settings",
    }
    done = subprocess.run(
        [sys.executable, "-m", "tests.reliability.api_seed"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"seeding failed:\n{done.stdout}{done.stderr}"
    return Seeded(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.fixture
def fuzzed(transactional_db: None, tmp_path: Path) -> Iterator[tuple[LabbookServer, Seeded]]:
    """A server on this run's database, seeded; committed rows are flushed afterwards."""
    server = LabbookServer(tmp_path / "home", env=_server_env())
    seeded = _seed(server)
    with server:
        yield server, seeded


# --- Generation -----------------------------------------------------------------------------


def _sometimes_real(values: Any, choices: dict[str, list[Any]]) -> st.SearchStrategy:
    """``values`` as generated, with each object they name now and then swapped for a real one."""
    if not isinstance(values, dict):
        return st.just(values)
    return st.fixed_dictionaries(
        {
            name: st.one_of(st.just(value), st.sampled_from(choices[name]))
            if choices.get(name)
            else st.just(value)
            for name, value in values.items()
        }
    )


def _hooks(seeded: Seeded) -> HookDispatcher:
    references = seeded.reference_choices()

    def flatmap_path_parameters(context: Any, path_parameters: Any) -> st.SearchStrategy:
        return _sometimes_real(path_parameters, seeded.path_choices(context.operation.path))

    def flatmap_query(context: Any, query: Any) -> st.SearchStrategy:
        return _sometimes_real(query, references)

    def flatmap_body(context: Any, body: Any) -> st.SearchStrategy:
        return _sometimes_real(body, references)

    hooks = HookDispatcher(scope=HookScope.TEST)
    for hook in (flatmap_path_parameters, flatmap_query, flatmap_body):
        hooks.register_hook_with_name(hook, hook.__name__)
    return hooks


def _operations(schema: Any) -> list[Any]:
    """Every operation; deletes last, and deleting tokens (maybe the fuzzer's own) very last."""
    operations = [result.ok() for result in schema.get_all_operations()]
    last = "/api/v1/tokens/{token_id}"
    return sorted(operations, key=lambda op: (op.method.upper() == "DELETE", op.path == last))


def _made_safe(case: Case) -> Case:
    """A destination URL always becomes loopback: "send a test" must never reach the network."""
    config = case.body.get("config") if isinstance(case.body, dict) else None
    is_destination = case.operation.path.startswith("/api/v1/destinations")
    if is_destination and isinstance(config, dict) and "url" in config:
        config["url"] = SAFE_URL
    return case


def _fuzz(
    operation: Any, mode: GenerationMode, *, url: str, token: str, hooks: Any, tally: Tally
) -> None:
    headers = {"Authorization": f"Bearer {token}"}

    @FUZZ_SETTINGS
    @given(case=operation.as_strategy(generation_mode=mode, hooks=hooks))
    def fuzz(case: Case) -> None:
        tally.cases += 1
        response = _made_safe(case).call(base_url=url, headers=headers)
        tally.statuses[operation.label][response.status_code] += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except (Exception, BaseExceptionGroup) as error:  # schemathesis' FailureGroup
            tally.fail(f"{operation.label} [{mode.value}]", error)

    fuzz()


# --- The test -----------------------------------------------------------------------------------


def test_it_answers_every_generated_request_as_its_schema_says(fuzzed):
    server, seeded = fuzzed
    schema = schemathesis.openapi.from_url(f"{server.url}/api/schema/")
    operations, hooks, tally = _operations(schema), _hooks(seeded), Tally()
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz(
                operation,
                mode,
                url=server.url,
                token=seeded.made["token"],
                hooks=hooks,
                tally=tally,
            )
    succeeded = [label for label, seen in tally.statuses.items() if any(s < 300 for s in seen)]
    print(f"{tally.cases} generated requests over {len(operations)} operations;")
    print(f"{len(succeeded)} operations answered 2xx to some of them")
    if tally.failures:
        pytest.fail(_report(tally.failures, server), pytrace=False)
    assert len(operations) >= MIN_OPERATIONS
    assert tally.cases >= MIN_CASES
    assert len(succeeded) >= len(operations) * 2 // 3, dict(tally.statuses)  # real ids were hit


def _report(failures: dict[str, list[str]], server: LabbookServer) -> str:
    lines = [f"{len(failures)} operations failed their checks:"]
    for label, errors in failures.items():
        lines += [f"\n=== {label}", *errors]
    return "\n".join(lines) + f"\n\nThe server's log:\n{server.output()[-6000:]}"
