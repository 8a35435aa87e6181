"""run.log, config, summary, tags, notes and finish, in this process against a real server."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from tests.sdk.proxy import FaultProxy, Record
from tests.sdk.server import LabbookServer
from tests.support import wait_until
from tracking import sdk

pytestmark = [pytest.mark.subprocess, pytest.mark.timeout(60)]

KEYS = ("train/loss", "train/acc", "lr")


def expected_value(key: str, step: int) -> float:
    return {"train/loss": 1 / (step + 1), "train/acc": step / 200, "lr": 0.1 * 0.99**step}[key]


def assert_history(server: LabbookServer, run_id: int, key: str, expected: dict[int, float]):
    steps, values = server.history(run_id, key)
    assert steps == sorted(expected), f"{key}: steps differ"
    for step, value in zip(steps, values, strict=True):
        want = expected[step]
        assert value == want or (math.isnan(value) and math.isnan(want)), (key, step, value)


def test_it_stores_every_point_once_with_config_summary_tags_notes(
    server: LabbookServer, start_run: Callable[..., Any]
) -> None:
    run = start_run(name="happy", config={"lr": 0.1}, tags=["baseline"], notes="first")
    for step in range(200):
        run.log({key: expected_value(key, step) for key in KEYS})
    run.config.update({"batch_size": 32, "optimizer": "adam"})
    run.summary["best"] = 0.9
    run.tags = ["baseline", "sdk"]
    run.notes = "second thoughts"
    run.finish()
    for key in KEYS:
        assert_history(server, run.id, key, {s: expected_value(key, s) for s in range(200)})
    stored = server.run(run.id)
    assert stored["status"] == "finished" and stored["name"] == "happy"
    assert stored["config"] == {"lr": 0.1, "batch_size": 32, "optimizer": "adam"}
    assert stored["summary"]["best"] == 0.9
    assert sorted(stored["tags"]) == ["baseline", "sdk"]
    assert stored["notes"] == "second thoughts"


def test_it_creates_the_run_with_group_and_reports_its_server_id(
    server: LabbookServer, start_run: Callable[..., Any], project: str
) -> None:
    run = start_run(name="grouped", group="sweep-1")
    assert isinstance(run.id, int)
    assert [r["id"] for r in server.runs(project)] == [run.id]
    assert server.run(run.id)["group"] == "sweep-1"


def test_it_finishes_a_context_managed_run(server: LabbookServer, project: str) -> None:
    with sdk.init(project=project) as run:
        run.log({"loss": 0.5})
    assert server.run(run.id)["status"] == "finished"
    assert server.history(run.id, "loss") == ([0], [0.5])


def test_it_fails_a_context_managed_run_when_an_exception_escapes(
    server: LabbookServer, project: str
) -> None:
    with pytest.raises(ValueError, match="boom"), sdk.init(project=project) as run:
        run.log({"loss": 0.5})
        raise ValueError("boom")
    stored = server.run(run.id)
    assert stored["status"] == "failed" and "ValueError: boom" in stored["error"]
    assert server.history(run.id, "loss") == ([0], [0.5])


def test_it_finishes_once(server: LabbookServer, start_run: Callable[..., Any]) -> None:
    run = start_run()
    run.finish(status="killed", exit_code=3)
    run.finish()  # idempotent: the first status stands
    stored = server.run(run.id)
    assert (stored["status"], stored["exit_code"]) == ("killed", 3)


def test_it_counts_steps_from_zero_when_none_is_given(
    server: LabbookServer, start_run: Callable[..., Any]
) -> None:
    run = start_run()
    run.log({"a": 1.0, "b": 10.0})
    run.log({"a": 2.0})
    run.log({"a": 3.0, "b": 30.0})
    run.finish()
    assert server.history(run.id, "a") == ([0, 1, 2], [1.0, 2.0, 3.0])
    assert server.history(run.id, "b") == ([0, 2], [10.0, 30.0])


def test_it_keeps_explicit_steps(server: LabbookServer, start_run: Callable[..., Any]) -> None:
    run = start_run()
    for step in (5, 7, 100, 2**40):
        run.log({"val/acc": step / 2**41}, step=step)
    run.finish()
    steps, _ = server.history(run.id, "val/acc")
    assert steps == [5, 7, 100, 2**40]


class Tensor:
    """What torch and numpy have in common: a scalar answered by .item()."""

    def __init__(self, value: float) -> None:
        self.value = value

    def item(self) -> float:
        return self.value


def test_it_takes_ints_floats_nan_and_objects_with_item(
    server: LabbookServer, start_run: Callable[..., Any]
) -> None:
    run = start_run()
    run.log({"int": 3, "float": 0.25, "nan": math.nan, "tensor": Tensor(1.5)})
    run.finish()
    assert server.history(run.id, "int") == ([0], [3.0])
    assert server.history(run.id, "float") == ([0], [0.25])
    assert server.history(run.id, "tensor") == ([0], [1.5])
    steps, values = server.history(run.id, "nan")
    assert steps == [0] and math.isnan(values[0])


def test_it_takes_numpy_scalars(server: LabbookServer, start_run: Callable[..., Any]) -> None:
    np = pytest.importorskip("numpy", reason="numpy is not installed in this venv")
    run = start_run()
    run.log({"f32": np.float32(0.5), "f64": np.float64(0.25), "i64": np.int64(7)})
    run.finish()
    assert server.metric_keys(run.id) == {"f32": 1, "f64": 1, "i64": 1}
    assert server.history(run.id, "i64") == ([0], [7.0])


@pytest.mark.parametrize("bad", ["high", None, [1.0], {"x": 1}])
def test_it_refuses_a_non_numeric_value_and_queues_nothing(
    server: LabbookServer, start_run: Callable[..., Any], bad: object
) -> None:
    run = start_run()
    with pytest.raises(TypeError):
        run.log({"fine": 1.0, "bad": bad})
    run.log({"after": 2.0}, step=1)
    run.finish()
    assert server.metric_keys(run.id) == {"after": 1}


def test_it_delivers_fifty_thousand_calls_exactly_once(
    server: LabbookServer, start_run: Callable[..., Any]
) -> None:
    run = start_run()
    for step in range(50_000):
        run.log({"loss": step / 50_000, "step_mod": step % 7})
    run.finish()
    assert_history(server, run.id, "loss", {s: s / 50_000 for s in range(50_000)})
    assert_history(server, run.id, "step_mod", {s: float(s % 7) for s in range(50_000)})


def test_it_reads_back_through_the_api_client(
    server: LabbookServer, start_run: Callable[..., Any], project: str
) -> None:
    run = start_run(tags=["api"])
    for step in range(50):
        run.log({"loss": 1 / (step + 1)})
    run.finish()
    api = sdk.Api(server.url, server.token)
    assert [r["id"] for r in api.runs(project)] == [run.id]
    assert [r["id"] for r in api.runs(project, status="finished", tag="api")] == [run.id]
    assert api.runs(project, status="running") == []
    assert api.run(run.id)["status"] == "finished"
    history = api.history(run.id, "loss")
    assert history["steps"] == list(range(50))
    assert history["values"] == [1 / (s + 1) for s in range(50)]
    assert len(history["timestamps"]) == 50
    assert len(api.history(run.id, "loss", max_points=10)["steps"]) <= 12


def test_it_sends_heartbeats_while_idle(
    proxy: FaultProxy, start_run: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LABBOOK_HEARTBEAT_SECONDS", "0.3")
    run = start_run(url=proxy.url)

    def beats() -> list[Record]:
        return proxy.forwarded(method="POST", path=r"/heartbeat$")

    assert wait_until(lambda: len(beats()) >= 2, timeout=30)
    assert all(beat.status == 200 for beat in beats())
    run.finish()
