"""A run's console output: the tee of sys.stdout/sys.stderr, its lines, their delivery."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.sdk.server import LabbookServer
from tests.sdk.test_lifecycle import Lines, finish, run_id_of
from tests.support import wait_until
from tracking import console as server_console
from tracking import sdk
from tracking.models import ConsoleLine
from tracking.sdk import console
from tracking.sdk.sync import REFUSED_FILE, sync_folder
from tracking.sdk.transport import Transport

pytestmark = [pytest.mark.subprocess, pytest.mark.timeout(120)]

Launch = Callable[..., subprocess.Popen]
CEILING = 60.0
ESC = "\x1b"


@pytest.fixture(autouse=True)
def console_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """tests/conftest.py turns the tee off for the suite; these tests are about it."""
    monkeypatch.delenv("LABBOOK_CONSOLE", raising=False)


def stored(server: LabbookServer, run_id: int) -> dict[str, Any]:
    return server.get(f"/api/v1/runs/{run_id}/console", limit=server_console.MAX_READ)


def texts(server: LabbookServer, run_id: int) -> list[str]:
    return [line["text"] for line in stored(server, run_id)["lines"]]


class Queued:
    """A Console whose sender is a list: what the writer queues, in order."""

    def __init__(self, first_number: int = 0) -> None:
        self.records: list[tuple[Any, ...]] = []
        self.console = console.Console(
            put=self.put, spill=lambda lines: None, first_number=first_number
        )
        self.console.active = True
        self.out = io.StringIO()
        self.tee = console.Tee(self.out, self.console, self.console._lines["stdout"])

    def put(self, record: tuple[Any, ...]) -> bool:
        self.records.append(record)
        return True

    def write(self, *pieces: str) -> list[str]:
        for piece in pieces:
            self.tee.write(piece)
        return [record[3] for record in self.records]


# --- Splitting into lines --------------------------------------------------------------------


def test_the_limits_are_the_servers() -> None:
    assert console.MAX_LINES_PER_REQUEST == server_console.MAX_LINES_PER_REQUEST
    assert ConsoleLine._meta.get_field("text").max_length == console.MAX_LINE_CHARS


def test_lines_end_at_newlines_and_a_partial_line_waits_for_flush() -> None:
    queued = Queued()
    assert queued.write("epoch 1", " loss 0.5\nepoch 2\n", "part") == [
        "epoch 1 loss 0.5",
        "epoch 2",
    ]
    queued.console.flush()
    assert [record[3] for record in queued.records][-1] == "part"
    assert [record[1] for record in queued.records] == [0, 1, 2]
    assert queued.out.getvalue() == "epoch 1 loss 0.5\nepoch 2\npart", "the terminal got it all"


def test_a_carriage_return_redraws_the_line_and_only_its_last_state_is_kept() -> None:
    queued = Queued()
    bar = [f"\r{percent:3d}%|{'#' * (percent // 10):<10}|" for percent in range(0, 101, 5)]
    assert queued.write("start\n", *bar, "\n", "crlf line\r\n", "done\r") == [
        "start",
        "100%|##########|",
        "crlf line",
    ]
    queued.console.flush()
    assert queued.records[-1][3] == "done"


def test_a_long_redrawn_line_sends_its_state_now_and_then(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console, "PROGRESS_EVERY", 0.0)
    assert Queued().write("\r10%", "\r20%", "\r30%\n") == ["10%", "20%", "30%"]


def test_long_lines_are_split_at_the_servers_limit() -> None:
    limit = console.MAX_LINE_CHARS
    queued = Queued()
    assert queued.write("x" * limit + "\n") == ["x" * limit]
    lines = queued.write("y" * (2 * limit + 5), "\n")[1:]
    assert lines == ["y" * limit, "y" * limit, "y" * 5]


def test_colour_codes_are_kept_and_nul_and_lone_surrogates_made_sendable() -> None:
    queued = Queued()
    assert queued.write(f"{ESC}[31mred{ESC}[0m\n") == [f"{ESC}[31mred{ESC}[0m"]
    line = console.line_dict(0, "stdout", "a\x00b\udc80", 1.0)
    assert line["text"] == "a\ufffdb?"
    json.dumps(line).encode()


def test_printing_from_many_threads_keeps_every_line_whole_and_numbered_once() -> None:
    queued = Queued()

    def chatter(name: int) -> None:
        for index in range(500):
            queued.tee.write(f"thread {name} line {index}\n")

    threads = [threading.Thread(target=chatter, args=(name,)) for name in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    numbers = [record[1] for record in queued.records]
    assert numbers == list(range(4000))
    expected = {f"thread {n} line {i}" for n in range(8) for i in range(500)}
    assert sorted(record[3] for record in queued.records) == sorted(expected)


# --- A run in this process -------------------------------------------------------------------


def test_a_run_keeps_what_is_printed_and_puts_the_streams_back(
    server: LabbookServer, start_run: Callable[..., Any]
) -> None:
    before = sys.stdout, sys.stderr
    run = start_run()
    assert sys.stdout is not before[0] and sys.stdout.isatty() == before[0].isatty()
    print("hello")
    print(f"{ESC}[32mgreen{ESC}[0m", file=sys.stderr)
    print("no newline yet", end="")
    run.finish()
    assert (sys.stdout, sys.stderr) == before
    lines = stored(server, run.id)["lines"]
    assert [(line["stream"], line["text"]) for line in lines] == [
        ("stdout", "hello"),
        ("stderr", f"{ESC}[32mgreen{ESC}[0m"),
        ("stdout", "no newline yet"),
    ]
    assert [line["number"] for line in lines] == [0, 1, 2]


def test_a_logging_handler_set_up_before_init_is_teed_and_put_back(
    server: LabbookServer, start_run: Callable[..., Any]
) -> None:
    handler = logging.StreamHandler(sys.stderr)  # what logging.basicConfig() does
    logger = logging.getLogger("tests.console.training")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # the suite's own root handler writes to stderr too
    try:
        run = start_run()
        logger.info("logged through a handler made before init")
        run.finish()
        assert handler.stream is sys.stderr
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    assert texts(server, run.id)[-1] == "logged through a handler made before init"


def test_lines_a_full_queue_cannot_take_are_spooled_and_arrive_once(
    server: LabbookServer, start_run: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LABBOOK_QUEUE_SIZE", "1")
    monkeypatch.setenv("LABBOOK_QUIET", "1")
    run = start_run()
    for index in range(2_500):
        print(f"line {index}")
    run.finish()
    lines = stored(server, run.id)["lines"]
    assert [line["number"] for line in lines] == list(range(len(lines)))
    printed = [line["text"] for line in lines if not line["text"].startswith("labbook: ")]
    assert printed == [f"line {index}" for index in range(2_500)]


def test_finish_leaves_a_stream_someone_else_replaced(start_run: Callable[..., Any]) -> None:
    original = sys.stdout
    run = start_run()
    theirs = io.StringIO()
    sys.stdout = theirs
    try:
        run.finish()
        assert sys.stdout is theirs
    finally:
        sys.stdout = original


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_the_console_can_be_turned_off(
    server: LabbookServer,
    start_run: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    how: str,
) -> None:
    before = sys.stdout
    if how == "environment":
        monkeypatch.setenv("LABBOOK_CONSOLE", "0")
        run = start_run()
    else:
        run = start_run(console=False)
    assert sys.stdout is before
    print("not kept")
    run.finish()
    assert stored(server, run.id)["total"] == 0


def test_a_resumed_run_numbers_on_from_the_servers_count(
    server: LabbookServer, start_run: Callable[..., Any]
) -> None:
    first = start_run()
    print("one\ntwo")
    first.finish()
    again = start_run(resume=first.id)
    print("three")
    again.finish()
    lines = stored(server, first.id)["lines"]
    assert [(line["number"], line["text"]) for line in lines] == [
        (0, "one"),
        (1, "two"),
        (2, "three"),
    ]


def test_an_exception_leaving_the_with_block_puts_its_traceback_in_the_console(
    server: LabbookServer, project: str
) -> None:
    with pytest.raises(ValueError, match="boom in a with block"), sdk.init(project=project):
        print("training")
        raise ValueError("boom in a with block")
    [run] = server.runs(project)
    run_id = run["id"]
    lines = texts(server, run_id)
    assert lines[0] == "training"
    assert lines[1] == "Traceback (most recent call last):"
    assert lines[-1] == "ValueError: boom in a with block"
    assert server.run(run_id)["status"] == "failed"


def test_a_line_the_server_refuses_is_set_aside_and_the_rest_goes_on(
    server: LabbookServer, proxy: Any, start_run: Callable[..., Any], spool_dir: Path
) -> None:
    run = start_run(url=proxy.url)
    proxy.fail("status", 1, status=400, path=r"/console$")
    print("refused")
    run.flush(30)
    print("accepted")
    run.log({"loss": 1.0})
    run.finish()
    assert texts(server, run.id) == ["accepted"]
    assert server.metric_keys(run.id) == {"loss": 1}
    [refused] = spool_dir.glob(f"*/{REFUSED_FILE}")
    kept = json.loads(refused.read_text())
    assert [line["text"] for line in kept["lines"]] == ["refused"]


def test_sync_sets_aside_console_lines_the_server_refuses(
    server: LabbookServer, project: str, tmp_path: Path
) -> None:
    run_id = server.create_run(project)
    folder = tmp_path / "spooled"
    folder.mkdir()
    (folder / "run.json").write_text(json.dumps({"url": server.url, "run_id": run_id}))
    bad = [console.line_dict(0, "stdout", "x" * (console.MAX_LINE_CHARS + 1), 1.0)]
    good = [console.line_dict(1, "stdout", "kept", 1.0)]
    records = [{"kind": "console", "lines": bad}, {"kind": "console", "lines": good}]
    (folder / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    transport = Transport(server.url, server.token)
    try:
        assert sync_folder(folder, transport, budget=10) == run_id
    finally:
        transport.close()
    assert texts(server, run_id) == ["kept"]
    assert "400" in (folder / REFUSED_FILE).read_text()


# --- Training scripts ------------------------------------------------------------------------

CRASHING = """
import os, sys, time
from tracking import sdk

run = sdk.init(project=os.environ["PROJECT"])
print("run", run.id, flush=True)
print("\\x1b[1;31mred alert\\x1b[0m and \\x1b[32mgreen\\x1b[0m")
for percent in range(0, 101, 2):
    sys.stderr.write(f"\\rtraining {percent:3d}%|" + "#" * (percent // 10))
    sys.stderr.flush()
sys.stderr.write("\\n")
print("epoch done")

def train():
    raise ValueError("boom from the script")

train()
"""


def test_a_crashing_script_keeps_its_colours_one_progress_line_and_its_traceback(
    server: LabbookServer, launch: Launch, project: str
) -> None:
    process = launch(CRASHING, PROJECT=project)
    run_id = run_id_of(Lines(process))
    code, stderr = finish(process)
    assert code == 1
    # (text mode reads each \r as a line end)
    assert "training  50%|#####\ntraining  52%" in stderr, "the terminal got every redraw"
    assert server.run(run_id)["status"] == "failed"
    lines = texts(server, run_id)
    assert lines[:4] == [
        f"run {run_id}",
        f"{ESC}[1;31mred alert{ESC}[0m and {ESC}[32mgreen{ESC}[0m",
        "training 100%|" + "#" * 10,
        "epoch done",
    ]
    assert lines[4] == "Traceback (most recent call last):"
    assert lines[-1] == "ValueError: boom from the script"
    assert not any("training  50%" in line for line in lines)


FORKING = """
import os, sys
from tracking import sdk

run = sdk.init(project=os.environ["PROJECT"])
print("run", run.id, flush=True)
print("parent before")
pid = os.fork()
if pid == 0:
    print("child says hi", flush=True)
    sys.stderr.write("child partial")
    run.finish()
    os._exit(0)
os.waitpid(pid, 0)
print("parent after")
"""


def test_a_forked_child_adds_no_lines(server: LabbookServer, launch: Launch, project: str) -> None:
    process = launch(FORKING, PROJECT=project)
    lines = Lines(process)
    run_id = run_id_of(lines)
    lines.wait_for("child says hi")
    code, stderr = finish(process)
    assert code == 0, stderr
    assert texts(server, run_id) == [f"run {run_id}", "parent before", "parent after"]


OUTAGE = """
import os, time
from pathlib import Path
from tracking import sdk

run = sdk.init(project=os.environ["PROJECT"])
print("run", run.id, flush=True)
for phase in range(3):
    if phase:
        gate = Path(os.environ["GATES"]) / str(phase)
        while not gate.exists():
            time.sleep(0.05)
    for index in range(100):
        print(f"{ESC}[33mline {phase * 100 + index}{ESC}[0m")
    print("phase", phase, "printed", flush=True)
"""


def test_an_outage_loses_and_doubles_no_line(
    own_server: LabbookServer, launch: Launch, project: str, tmp_path: Path, spool_dir: Path
) -> None:
    gates = tmp_path / "gates"
    gates.mkdir()
    process = launch(
        OUTAGE.replace("{ESC}", "\\x1b"),
        PROJECT=project,
        GATES=str(gates),
        LABBOOK_URL=own_server.url,
        LABBOOK_TOKEN=own_server.token,
        LABBOOK_RETRY_SECONDS="1",
    )
    output = Lines(process)
    run_id = run_id_of(output)
    assert wait_until(lambda: stored(own_server, run_id)["total"] >= 101, timeout=CEILING)
    own_server.stop()
    (gates / "1").touch()
    output.wait_for("phase 1 printed")

    def spooled() -> bool:
        return any('"console"' in p.read_text() for p in spool_dir.glob("*/records.jsonl"))

    assert wait_until(spooled, timeout=CEILING), "nothing was spooled while the server was down"
    own_server.start()
    (gates / "2").touch()
    code, stderr = finish(process)
    assert code == 0, stderr
    answer = stored(own_server, run_id)
    numbers = [line["number"] for line in answer["lines"]]
    assert numbers == list(range(len(numbers))), "no gaps"
    printed = [line["text"] for line in answer["lines"] if "line " in line["text"]]
    assert printed == [f"{ESC}[33mline {n}{ESC}[0m" for n in range(300)]
    assert answer["dropped"] == 0
