"""Training scripts as real processes: how they end decides the run's status; fork is safe."""

from __future__ import annotations

import queue
import signal
import subprocess
import threading
from collections.abc import Callable

import pytest

from tests.sdk.server import LabbookServer

pytestmark = [pytest.mark.subprocess, pytest.mark.timeout(60)]

Launch = Callable[..., subprocess.Popen]
EXIT_TIMEOUT = 30

PRELUDE = """
import os, signal, sys, time
from tracking import sdk

# Ctrl-C as in a terminal, even when the test run itself was started with SIGINT
# ignored (a background job of a non-interactive shell), which children inherit.
signal.signal(signal.SIGINT, signal.default_int_handler)

run = sdk.init(project=os.environ["PROJECT"], name=os.environ.get("NAME"))
print("run", run.id, flush=True)
"""

NORMAL = (
    PRELUDE
    + """
for step in range(20):
    run.log({"loss": 1 / (step + 1)})
print("django imported:", "django" in sys.modules, flush=True)
"""
)

FAILING = (
    PRELUDE
    + """
def train():
    for step in range(10):
        run.log({"loss": 1 / (step + 1)})
    raise ValueError("boom")

train()
"""
)

ENDLESS = (
    PRELUDE
    + """
step = 0
while True:
    run.log({"loss": 1 / (step + 1)}, step=step)
    print("step", step, flush=True)
    step += 1
    time.sleep(0.02)
"""
)

FORKING = (
    PRELUDE
    + """
api = sdk.Api(os.environ["LABBOOK_URL"], os.environ["LABBOOK_TOKEN"])
for step in range(10):
    run.log({"parent": step}, step=step)
pid = os.fork()
if pid == 0:
    for step in range(5):
        run.log({"child": step * 10}, step=step)
    if os.environ["CHILD_EXIT"] == "os._exit":
        time.sleep(1.5)  # several flush intervals: the child's points can leave
        os._exit(0)
    sys.exit(0)
_, status = os.waitpid(pid, 0)
print("child exit", os.waitstatus_to_exitcode(status), flush=True)
print("status after child", api.run(run.id)["status"], flush=True)
for step in range(10, 20):
    run.log({"parent": step}, step=step)
"""
)


class Lines:
    """The script's stdout, line by line, with bounded waits."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.queue: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self.pump, args=(process,), daemon=True).start()

    def pump(self, process: subprocess.Popen) -> None:
        for line in process.stdout:
            self.queue.put(line.rstrip("\n"))

    def wait_for(self, prefix: str, timeout: float = 30) -> str:
        while True:
            try:
                line = self.queue.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(
                    f"no {prefix!r} line within {timeout} s: {self.seen}"
                ) from None
            self.seen.append(line)
            if line.startswith(prefix):
                return line


def finish(process: subprocess.Popen) -> tuple[int, str]:
    """Wait for the exit; answer the exit code and stderr."""
    process.wait(timeout=EXIT_TIMEOUT)
    return process.returncode, process.stderr.read()


def run_id_of(lines: Lines) -> int:
    return int(lines.wait_for("run ").split()[1])


def loss_history(steps: range) -> tuple[list[int], list[float]]:
    return list(steps), [1 / (s + 1) for s in steps]


def test_it_finishes_a_run_that_ends_normally(
    server: LabbookServer, launch: Launch, project: str
) -> None:
    process = launch(NORMAL, PROJECT=project)
    lines = Lines(process)
    run_id = run_id_of(lines)
    assert lines.wait_for("django imported:") == "django imported: False"
    code, stderr = finish(process)
    assert code == 0, stderr
    stored = server.run(run_id)
    assert stored["status"] == "finished"
    assert server.history(run_id, "loss") == loss_history(range(20))


def test_it_fails_a_run_on_an_uncaught_exception(
    server: LabbookServer, launch: Launch, project: str
) -> None:
    process = launch(FAILING, PROJECT=project)
    run_id = run_id_of(Lines(process))
    code, stderr = finish(process)
    assert code == 1 and "ValueError: boom" in stderr  # the user still sees the traceback
    stored = server.run(run_id)
    assert stored["status"] == "failed"
    assert "ValueError: boom" in stored.get("error", ""), stored
    assert "ValueError" in stored.get("traceback", "") and "train()" in stored["traceback"]
    assert server.history(run_id, "loss") == loss_history(range(10))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_it_marks_a_signalled_run_killed(
    server: LabbookServer, launch: Launch, project: str, signum: signal.Signals
) -> None:
    process = launch(ENDLESS, PROJECT=project)
    lines = Lines(process)
    run_id = run_id_of(lines)
    lines.wait_for("step 10")
    process.send_signal(signum)
    code, stderr = finish(process)
    last = int(lines.seen[-1].split()[1])
    assert code != 0, stderr
    assert server.run(run_id)["status"] == "killed"
    steps, values = server.history(run_id, "loss")
    assert steps[: last + 1] == list(range(last + 1)), "points logged before the signal"
    assert values[: last + 1] == loss_history(range(last + 1))[1]


@pytest.mark.parametrize("child_exit", ["sys.exit", "os._exit"])
def test_it_survives_fork(
    server: LabbookServer, launch: Launch, project: str, child_exit: str
) -> None:
    process = launch(FORKING, PROJECT=project, CHILD_EXIT=child_exit)
    lines = Lines(process)
    run_id = run_id_of(lines)
    assert lines.wait_for("child exit") == "child exit 0"
    assert lines.wait_for("status after child") == "status after child running"
    code, stderr = finish(process)
    assert code == 0, stderr
    assert server.run(run_id)["status"] == "finished"
    assert server.history(run_id, "parent") == (list(range(20)), [float(s) for s in range(20)])
    assert server.history(run_id, "child") == ([0, 1, 2, 3, 4], [0.0, 10.0, 20.0, 30.0, 40.0])
