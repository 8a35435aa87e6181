"""No single request holds the server: the worst inputs from 4 clients, /healthz polled beside.

Issue 16: ``name LIKE '%%%%%%%%#'`` held a server for 136 s, during which
``/healthz`` waited as long; a report of the allowed maximum took minutes and
a gigabyte. ``tests/reliability/worst_input.py`` seeds a real server (uvicorn
on the embedded default, as ``up`` runs it) with what makes each of those
requests expensive, and sends them from 4 clients for LOAD_SECONDS while a process
of its own polls ``/healthz``.

The issue sets the bar as a latency: /healthz's p99 under 200 ms on the
embedded default. It is the one wall-clock assertion of the suite, asked for
by name; the other assertions are that every answer came, none was a 5xx, and
every /healthz poll said 200.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.reliability import worst_input
from tests.sdk.server import LabbookServer

pytestmark = [pytest.mark.soak, pytest.mark.alone, pytest.mark.subprocess]

LOAD_SECONDS = 30.0
HEALTH_P99 = 0.200  # seconds: the bar


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabbookServer]:
    with LabbookServer(tmp_path_factory.mktemp("worst") / "home") as running:
        yield running


def test_the_worst_inputs_from_4_clients_do_not_hold_healthz(server: LabbookServer) -> None:
    seeded = worst_input.seed(server, progress=lambda line: None)
    outcome = worst_input.load(server, seeded, seconds=LOAD_SECONDS)
    print(outcome.summary())
    labels = {label for label, _, _, _ in worst_input.worst_requests(seeded)}
    assert {label for label, _ in outcome.statuses} == labels  # every kind was sent and answered
    assert outcome.server_errors() == []
    assert outcome.health_failures == 0
    assert outcome.percentile(0.99) < HEALTH_P99, outcome.summary()
