"""The system/* series: sampled every second here, against a real server.

GPUs: this machine has none, so the real pynvml fails its nvmlInit (the no-driver
path); a small fake module stands in for pynvml where GPU readings are the point.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from tests.sdk.conftest import script_env
from tests.sdk.server import ROOT, LabbookServer
from tests.support import wait_until
from tracking import sdk
from tracking.sdk.system_metrics import gpu_values, load_nvml

pytestmark = [pytest.mark.subprocess, pytest.mark.timeout(120)]

HOST_KEYS = {
    "system/cpu_percent",
    "system/proc_cpu_percent",
    "system/memory_percent",
    "system/proc_memory_rss_mb",
    "system/disk_read_mb",
    "system/disk_write_mb",
    "system/net_sent_mb",
    "system/net_recv_mb",
}
CEILING = 60.0  # seconds to wait for samples a 1 s interval takes


@pytest.fixture(autouse=True)
def every_second(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABBOOK_SYSTEM_METRICS_INTERVAL", "1")
    monkeypatch.delenv("LABBOOK_SYSTEM_METRICS", raising=False)


def samples_arrived(server: LabbookServer, run_id: int) -> int:
    return server.metric_keys(run_id).get("system/cpu_percent", 0)


def system_keys(server: LabbookServer, run_id: int) -> set[str]:
    return {key for key in server.metric_keys(run_id) if key.startswith("system/")}


def wait_for_samples(server: LabbookServer, run_id: int, count: int) -> None:
    assert wait_until(lambda: samples_arrived(server, run_id) >= count, timeout=CEILING)


# --- The series ------------------------------------------------------------------------


def test_it_sends_the_host_series_with_sensible_values(
    server: LabbookServer, start_run: Callable[..., Any], capfd: pytest.CaptureFixture[str]
) -> None:
    run = start_run()
    for step in range(10):
        run.log({"loss": 1 / (step + 1)})
    wait_for_samples(server, run.id, 3)
    for step in range(10, 20):
        run.log({"loss": 1 / (step + 1)})
    run.finish()

    sampled = run._system.samples
    assert system_keys(server, run.id) == HOST_KEYS  # no GPU here: no GPU keys
    history = {key: server.history(run.id, key) for key in HOST_KEYS}
    assert all(steps == list(range(sampled)) for steps, _ in history.values()), history
    assert all(0 <= v <= 100 for v in history["system/cpu_percent"][1])
    cores = os.cpu_count() or 1
    assert all(0 <= v <= 100 * cores for v in history["system/proc_cpu_percent"][1])
    assert all(0 < v <= 100 for v in history["system/memory_percent"][1])
    assert all(v > 1 for v in history["system/proc_memory_rss_mb"][1])  # a Python process
    for key in ("disk_read_mb", "disk_write_mb", "net_sent_mb", "net_recv_mb"):
        values = history[f"system/{key}"][1]
        assert values[0] >= 0 and values == sorted(values), (key, values)  # totals since start
    # The samples count on their own: the training loop's auto-step went 0..19 regardless.
    assert server.history(run.id, "loss")[0] == list(range(20))
    if load_nvml() is None:  # no driver: no GPU keys, and not a word about it
        assert "system metrics" not in capfd.readouterr().err


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_it_sends_none_when_turned_off(
    server: LabbookServer,
    start_run: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    how: str,
) -> None:
    sampling = start_run()
    if how == "argument":
        quiet = start_run(system_metrics=False)
    else:
        monkeypatch.setenv("LABBOOK_SYSTEM_METRICS", "0")
        quiet = start_run()
    quiet.log({"loss": 1.0})
    wait_for_samples(server, sampling.id, 2)  # long enough for the other to have sampled too
    quiet.finish()
    assert server.metric_keys(quiet.id) == {"loss": 1}


def test_it_refuses_an_interval_under_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABBOOK_SYSTEM_METRICS_INTERVAL", "0.5")
    with pytest.raises(ValueError, match="LABBOOK_SYSTEM_METRICS_INTERVAL must be at least 1"):
        sdk.init(project="lab/never-created")


def test_it_continues_the_samples_of_a_resumed_run(
    server: LabbookServer, start_run: Callable[..., Any]
) -> None:
    first = start_run()
    for step in range(2):
        first.log({"loss": float(step)})
    wait_for_samples(server, first.id, 4)  # samples reach further than the training steps
    first.finish()
    before = first._system.samples

    again = start_run(resume=first.id)
    assert again._step == 2, "the samples moved the training step"
    again.log({"loss": 2.0})
    wait_for_samples(server, first.id, before + 2)
    again.finish()

    steps, _ = server.history(first.id, "system/cpu_percent")
    assert steps == list(range(again._system.samples))
    assert server.history(first.id, "loss")[0] == [0, 1, 2]


# --- An outage -------------------------------------------------------------------------


def sync(server: LabbookServer, spool_dir: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tracking.sdk", "sync", str(spool_dir)],
        cwd=ROOT,
        env=script_env(server, spool_dir),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_it_spools_samples_while_the_server_is_down_and_they_arrive_once(
    own_server: LabbookServer, project: str, spool_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LABBOOK_RETRY_SECONDS", "1")
    monkeypatch.setenv("LABBOOK_FINISH_TIMEOUT", "5")
    run = sdk.init(project=project, url=own_server.url, token=own_server.token)
    try:
        wait_for_samples(own_server, run.id, 1)
        own_server.stop()
        # Only samples are logged from here: two of them on disk is the outage recorded.
        spooled = 2 * len(HOST_KEYS)
        assert wait_until(lambda: run._spool.points_written >= spooled, timeout=CEILING)
    finally:
        run.finish()
    sampled = run._system.samples

    own_server.start()
    for _ in range(2):
        sync(own_server, spool_dir)
        assert own_server.metric_keys(run.id) == dict.fromkeys(HOST_KEYS, sampled)
    assert own_server.history(run.id, "system/cpu_percent")[0] == list(range(sampled))


# --- GPUs, through a stand-in for pynvml --------------------------------------------------


class NVMLError(Exception):
    pass


def fake_nvml(*, utilization: Callable[[int], float] = lambda index: 37.0 + index) -> ModuleType:
    """pynvml's calls the sampler makes: two GPUs; the second has no temperature sensor."""

    def temperature(handle: int, sensor: int) -> int:
        if handle == 1:
            raise NVMLError("Not Supported")
        return 61

    module = ModuleType("pynvml")
    module.__dict__.update(
        NVMLError=NVMLError,
        NVML_TEMPERATURE_GPU=0,
        nvmlInit=lambda: None,
        nvmlShutdown=lambda: None,
        nvmlDeviceGetCount=lambda: 2,
        nvmlDeviceGetHandleByIndex=lambda index: index,
        nvmlDeviceGetUtilizationRates=lambda h: SimpleNamespace(gpu=utilization(h), memory=5),
        nvmlDeviceGetMemoryInfo=lambda h: SimpleNamespace(used=2 * 2**30, total=8 * 2**30),
        nvmlDeviceGetTemperature=temperature,
    )
    return module


@pytest.fixture
def nvml(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., ModuleType]]:
    def install(**kwargs: Any) -> ModuleType:
        module = fake_nvml(**kwargs)
        monkeypatch.setitem(sys.modules, "pynvml", module)
        return module

    yield install


def test_it_reads_each_gpu_and_leaves_out_what_a_gpu_does_not_offer() -> None:
    assert gpu_values(fake_nvml()) == {
        "system/gpu.0.utilization": 37.0,
        "system/gpu.0.memory_percent": 25.0,
        "system/gpu.0.temperature_c": 61.0,
        "system/gpu.1.utilization": 38.0,
        "system/gpu.1.memory_percent": 25.0,
    }


def test_it_sends_the_gpu_series(
    server: LabbookServer, start_run: Callable[..., Any], nvml: Callable[..., ModuleType]
) -> None:
    nvml()
    run = start_run()
    wait_for_samples(server, run.id, 2)
    run.finish()
    assert system_keys(server, run.id) == HOST_KEYS | set(gpu_values(fake_nvml()))
    assert set(server.history(run.id, "system/gpu.1.utilization")[1]) == {38.0}


def test_it_keeps_sampling_when_a_gpu_reading_fails(
    server: LabbookServer,
    start_run: Callable[..., Any],
    nvml: Callable[..., ModuleType],
    capfd: pytest.CaptureFixture[str],
) -> None:
    def broken(index: int) -> float:
        raise RuntimeError("GPU is lost")

    nvml(utilization=broken)
    run = start_run()
    for step in range(3):
        run.log({"loss": float(step)})  # the training code never sees the error
    wait_for_samples(server, run.id, 3)
    run.finish()
    assert system_keys(server, run.id) == HOST_KEYS
    assert capfd.readouterr().err.count("system metrics: RuntimeError: GPU is lost") == 1


# --- Scripts: no psutil; fork ----------------------------------------------------------

WITHOUT_PSUTIL = """
import os, sys, threading
sys.modules["psutil"] = None  # as on a machine without it: importing it fails
from tracking import sdk

runs = [sdk.init(project=os.environ["PROJECT"]) for _ in range(2)]
print("samplers", [run._system for run in runs])
print("threads", sorted(thread.name for thread in threading.enumerate()))
for run in runs:
    run.finish()
"""

FORKING = """
import os, threading
from tracking import sdk

run = sdk.init(project=os.environ["PROJECT"])
print("run", run.id, flush=True)
pid = os.fork()
if pid == 0:
    print("child", run._system, sorted(t.name for t in threading.enumerate()), flush=True)
    run.finish()
    os._exit(0)
os.waitpid(pid, 0)
print("parent", run._system is not None, flush=True)
"""


def test_it_says_once_that_psutil_is_missing_and_samples_nothing(
    launch: Callable[..., subprocess.Popen], project: str
) -> None:
    out, err = launch(WITHOUT_PSUTIL, PROJECT=project).communicate(timeout=60)
    assert "samplers [None, None]" in out, out + err
    assert "labbook-system" not in out
    assert err.count("system metrics are off: psutil is not installed") == 1, err
    assert "labbook-sdk[system]" in err


def test_it_does_not_sample_in_a_forked_child(
    server: LabbookServer, launch: Callable[..., subprocess.Popen], project: str
) -> None:
    out, err = launch(FORKING, PROJECT=project).communicate(timeout=60)
    assert "parent True" in out, out + err
    [child] = [line for line in out.splitlines() if line.startswith("child")]
    assert child.startswith("child None") and "labbook-system" not in child, child
