"""The embedded broker (labbook.broker): a consumer sees whole messages, and skips bad ones.

Kombu's own filesystem transport creates a message file before writing it, so
a consumer could take an empty file, and any undecodable file stopped the
worker (and ``manage.py up``) for good. The tests with workers run real
Celery workers and real sending processes on one LABBOOK_HOME, as ``up``
does; the home comes from an unstarted ``LabbookServer``, whose environment
drops REDIS_URL and DATABASE_URL, so these tests exercise the filesystem
transport on CI's PostgreSQL + Redis pass too. The rest drive the transport
in this process through kombu's public API, on a folder of their own.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from queue import Empty

import pytest
from kombu import Connection

from labbook import broker
from labbook.broker import claim
from tests.sdk.server import ROOT, LabbookServer, server_env
from tests.support import services_free, wait_until
from tests.workers import WORKER, CeleryProcess, celery

TRANSPORT = "labbook.broker:Transport"
CONSUME_TIMEOUT = 60
STRESS_TIMEOUT = 180  # 600 tasks on a machine shared with other test runs

SENDER = """
import os
import sys
import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labbook.settings")
django.setup()
from labbook.celery import app

count, touch_folder = int(sys.argv[1]), sys.argv[2]
for index in range(count):
    print(app.send_task("labbook.ping").id, flush=True)
    if touch_folder:
        app.send_task("labbook.touch_file", args=[f"{touch_folder}/{index}"])
"""

# Files a consumer must set aside, not die on: each is named as kombu names a message.
BAD_MESSAGES = {
    "empty": b"",
    "truncated": b'{"body": "eyJ0YXNrIjogImxhYmJvb2sucGluZyJ9", "properties": {"delivery_',
    "garbage": bytes(range(256)) * 4,
    "text": b"this is not a message\n",
    "list": b"[1, 2, 3]",
    "null": b"null",
    "string": b'"a string"',
    "no-properties": b'{"body": "e30=", "headers": {}}',
    "properties-not-object": b'{"body": "e30=", "properties": "yes"}',
    "no-delivery-tag": b'{"body": "e30=", "properties": {"delivery_info": {}}}',
    "headers-not-object": b'{"body": "", "headers": ["x"], "properties": {"delivery_tag": "t"}}',
    "bad-base64": (
        b'{"body": "abc", "properties": {"delivery_tag": "t", "body_encoding": "base64"}}'
    ),
    # A whole kombu envelope whose JSON body is not JSON: Celery would log it and drop it.
    "body-not-json": (
        b'{"body": "bm90IGpzb24=", "content-type": "application/json",'
        b' "content-encoding": "utf-8", "headers": {"task": "labbook.ping", "id": "x"},'
        b' "properties": {"delivery_tag": "t", "body_encoding": "base64",'
        b' "delivery_info": {"exchange": "celery", "routing_key": "celery"}}}'
    ),
}


def message_file_name(queue: str) -> str:
    """Kombu's message file name; ``0_`` sorts before every real message."""
    return f"0_{uuid.uuid4()}.{queue}.msg"


def drop_bad_messages(folder: Path, queue: str) -> dict[str, str]:
    """Write every BAD_MESSAGES file into ``folder``: kind -> file name."""
    names = {}
    for kind, content in BAD_MESSAGES.items():
        names[kind] = message_file_name(queue)
        (folder / names[kind]).write_bytes(content)
    return names


# --- Workers -------------------------------------------------------------------------


@pytest.fixture
@services_free
def server(tmp_path: Path) -> LabbookServer:
    """A migrated embedded home; never started: only its workers and senders run."""
    return LabbookServer(tmp_path / "home")


@contextmanager
def worker(server: LabbookServer, name: str = "a") -> Iterator[CeleryProcess]:
    """A worker as ``up`` runs it (threads pool), with the diagnostic tasks loaded."""
    args = (*WORKER, "-I", "labbook.diagnostics", "--hostname", f"{name}@%h")
    env = {"LOG_LEVEL": "INFO"}  # the task lines the tests count are INFO
    with celery(server, *args, env=env, log=f"worker-{name}.log") as process:
        started = wait_until(lambda: "ready." in process.output() or exited(process), timeout=60)
        assert started and not exited(process), f"the worker did not start:\n{process.output()}"
        yield process


def exited(process: CeleryProcess) -> bool:
    return process.process.poll() is not None


def full_log(process: CeleryProcess) -> str:
    return process.log.read_text(errors="replace")


def start_sender(
    server: LabbookServer, count: int, touch_folder: Path | None = None
) -> subprocess.Popen:
    """A separate process queueing ``count`` pings (and file touches): prints the ping ids."""
    command = [sys.executable, "-c", SENDER, str(count), str(touch_folder or "")]
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=server_env(server.home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def ping_ids(sender: subprocess.Popen) -> list[str]:
    stdout, stderr = sender.communicate(timeout=STRESS_TIMEOUT)
    assert sender.returncode == 0, stderr
    return stdout.split()


def succeeded(log: str, ping_id: str) -> int:
    return log.count(f"Task labbook.ping[{ping_id}] succeeded")


def queued_files(queue: Path) -> list[str]:
    return sorted(path.name for path in queue.glob("*.msg"))


@pytest.mark.subprocess
def test_the_worker_sets_bad_messages_aside_and_goes_on(server: LabbookServer, tmp_path: Path):
    queue = server.home / "queue"
    touched = tmp_path / "touched"
    touched.mkdir()
    with worker(server) as running:
        bad = drop_bad_messages(queue, "celery")
        # Hidden files the reader must leave alone: /healthz's probe, a send in progress.
        healthz = queue / ".healthz-k3x9q1zz"
        in_flight = queue / f".{message_file_name('celery')}.tmp"
        healthz.write_bytes(b"")
        in_flight.write_bytes(b'{"body": "')
        ids = ping_ids(start_sender(server, 5, touched))

        def all_done() -> bool:
            log = full_log(running)
            files = len(list(touched.iterdir())) == len(ids)
            return files and all(succeeded(log, ping_id) for ping_id in ids)

        consumed = wait_until(lambda: all_done() or exited(running), timeout=CONSUME_TIMEOUT)
        assert not exited(running), f"the worker died:\n{running.output()}"
        assert consumed, f"the tasks were not all consumed:\n{running.output()}"
        log = full_log(running)

    assert sorted(path.name for path in (queue / "bad").iterdir()) == sorted(bad.values())
    for kind, name in bad.items():
        assert (queue / "bad" / name).read_bytes() == BAD_MESSAGES[kind], kind
        assert f"Skipped queue message {name}" in log, kind
    assert "Unrecoverable error" not in log
    assert healthz.exists() and in_flight.read_bytes() == b'{"body": "'
    assert queued_files(queue) == []


@pytest.mark.subprocess
def test_concurrent_senders_and_consumers_deliver_each_message_exactly_once(
    server: LabbookServer,
):
    senders, per_sender = 4, 150
    queue = server.home / "queue"
    with ExitStack() as stack:
        workers = [stack.enter_context(worker(server, name)) for name in ("a", "b")]
        running = [start_sender(server, per_sender) for _ in range(senders)]
        ids = [ping_id for sender in running for ping_id in ping_ids(sender)]
        assert len(set(ids)) == senders * per_sender

        def logs() -> str:
            return "".join(full_log(process) for process in workers)

        def all_done() -> bool:
            log = logs()
            return all(succeeded(log, ping_id) for ping_id in ids)

        def any_exited() -> bool:
            return any(exited(process) for process in workers)

        consumed = wait_until(lambda: all_done() or any_exited(), timeout=STRESS_TIMEOUT)
        assert not any_exited(), f"a worker died:\n{logs()[-4000:]}"
        missing = [ping_id for ping_id in ids if not succeeded(logs(), ping_id)]
        assert consumed, f"{len(missing)} of {len(ids)} pings never ran:\n{logs()[-4000:]}"
    # The workers stopped warm: anything they still held would be back in the queue.
    log = logs()
    assert [ping_id for ping_id in ids if succeeded(log, ping_id) != 1] == []
    assert queued_files(queue) == []
    assert list((queue / "processed").iterdir()) == []
    assert not (queue / "bad").exists()
    assert "Skipped queue message" not in log
    assert "JSONDecodeError" not in log


# --- The transport, in this process ----------------------------------------------------


def transport_options(folder: Path) -> dict[str, object]:
    return {
        "data_folder_in": str(folder),
        "data_folder_out": str(folder),
        "processed_folder": str(folder / "processed"),
        "bad_folder": str(folder / "bad"),
        "control_folder": str(folder / "control"),
    }


def unique_queue() -> str:
    """A queue (and exchange) name no other test used: kombu remembers declared bindings
    in a state shared by every filesystem connection of the process, whatever its folder,
    and would not write a known binding into a new folder's exchange table."""
    return f"jobs-{uuid.uuid4().hex[:12]}"


@contextmanager
def connection(folder: Path, transport: str = TRANSPORT) -> Iterator[Connection]:
    folder.mkdir(parents=True, exist_ok=True)
    options = transport_options(folder)
    with Connection("filesystem://", transport=transport, transport_options=options) as conn:
        yield conn


class ClaimingReader(threading.Thread):
    """Takes message files as kombu's consumer does (rename, then read), and parses them.

    It uses none of the code under test, so what it reads is what any
    consumer of the folder would read.
    """

    def __init__(self, folder: Path, queue: str) -> None:
        super().__init__(daemon=True)
        self.folder = folder
        self.queue = queue
        self.claimed = folder / "reader"
        self.claimed.mkdir()
        self.bodies: list[str] = []
        self.torn: list[str] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            for name in sorted(os.listdir(self.folder)):
                if name.partition(".")[2] == f"{self.queue}.msg":  # kombu's test
                    self.take(name)

    def take(self, name: str) -> None:
        target = self.claimed / name
        try:
            os.rename(self.folder / name, target)
        except FileNotFoundError:
            return
        raw = target.read_bytes()
        try:
            self.bodies.append(json.loads(raw)["body"])
        except ValueError:
            self.torn.append(f"{name}: {len(raw)} bytes")


def tears(folder: Path, transport: str, count: int = 400) -> tuple[int, list[str]]:
    """Publish ``count`` large messages while a reader takes them: (whole reads, torn reads)."""
    body = "x" * 100_000  # a write long enough for a reader to land in the middle of it
    with connection(folder, transport) as conn:
        name = unique_queue()
        queue = conn.SimpleQueue(name, serializer="json")
        reader = ClaimingReader(folder, name)
        reader.start()
        try:
            for _ in range(count):
                queue.put(body)
            wait_until(lambda: len(reader.bodies) + len(reader.torn) >= count, timeout=60)
        finally:
            reader.stopping.set()
            reader.join(timeout=30)
            queue.close()
    return len(reader.bodies), reader.torn


def test_a_reader_never_sees_a_half_written_message(tmp_path: Path):
    whole, torn = tears(tmp_path / "queue", TRANSPORT)
    assert torn == []
    assert whole == 400


def test_bad_files_are_set_aside_and_the_next_message_is_taken(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    folder = tmp_path / "queue"
    name = unique_queue()
    with connection(folder) as conn, conn.SimpleQueue(name, serializer="json") as queue:
        bad = drop_bad_messages(folder, name)
        queue.put({"n": 1})
        with caplog.at_level(logging.ERROR, logger="labbook.broker"):
            message = queue.get(block=False)
        message.ack()
        assert message.payload == {"n": 1}
        with pytest.raises(Empty):
            queue.get(block=False)
    assert sorted(path.name for path in (folder / "bad").iterdir()) == sorted(bad.values())
    for file_name in bad.values():
        assert file_name in caplog.text
    assert queued_files(folder) == []


def test_hidden_files_are_never_messages(tmp_path: Path):
    folder = tmp_path / "queue"
    name = unique_queue()
    hidden = [".healthz-abcd1234", f".{message_file_name(name)}.tmp", f".{name}.msg"]
    with connection(folder) as conn, conn.SimpleQueue(name, serializer="json") as queue:
        for hidden_name in hidden:
            (folder / hidden_name).write_bytes(b"")
        assert queue.qsize() == 0
        with pytest.raises(Empty):
            queue.get(block=False)
        assert queue.clear() == 0
    assert all((folder / hidden_name).exists() for hidden_name in hidden)
    assert not (folder / "bad").exists()


def test_a_message_another_consumer_took_is_skipped(tmp_path: Path):
    claimed = tmp_path / "processed"
    claimed.mkdir()
    assert claim(tmp_path / message_file_name("jobs"), claimed) is None
    assert list(claimed.iterdir()) == []


class QueueConsumer(threading.Thread):
    """Takes messages of ``queue`` on a connection of its own, as a worker would."""

    def __init__(self, folder: Path, queue: str) -> None:
        super().__init__(daemon=True)
        self.folder = folder
        self.queue = queue
        self.taken: list[object] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        with connection(self.folder) as conn, conn.SimpleQueue(self.queue) as queue:
            while not self.stopping.is_set():
                try:
                    message = queue.get(block=True, timeout=0.1)
                except Empty:
                    continue
                self.taken.append(message.payload)
                message.ack()


def test_two_consumers_take_each_message_once(tmp_path: Path):
    folder, count = tmp_path / "queue", 300
    name = unique_queue()
    consumers = [QueueConsumer(folder, name) for _ in range(2)]
    # Declared before the consumers start: kombu records a binding in a state
    # shared by the process before it writes it, so a publisher racing the
    # first declaration in this process could find no route.
    with connection(folder) as conn, conn.SimpleQueue(name, serializer="json") as queue:
        for consumer in consumers:
            consumer.start()
        for number in range(count):
            queue.put(number)
        wait_until(lambda: sum(len(c.taken) for c in consumers) >= count, timeout=60)
    for consumer in consumers:
        consumer.stopping.set()
        consumer.join(timeout=30)
    assert sorted(consumers[0].taken + consumers[1].taken) == list(range(count))
    assert not (folder / "bad").exists()


def test_an_exchange_table_is_never_read_half_made(tmp_path: Path):
    """Kombu made a missing table empty, then filled it: a publisher could read it empty."""
    names = [f"exchange-{index}" for index in range(1500)]
    current, errors = [0], []
    done = threading.Event()
    with connection(tmp_path / "queue") as writer, connection(tmp_path / "queue") as reader:
        reading = reader.default_channel

        def read_tables() -> None:
            while not done.is_set():
                try:
                    reading.get_table(names[current[0]])
                except Exception as error:
                    errors.append(repr(error))

        thread = threading.Thread(target=read_tables, daemon=True)
        thread.start()
        channel = writer.default_channel
        for index, name in enumerate(names):
            current[0] = index
            channel._queue_bind(name, "jobs", "", "jobs")
        done.set()
        thread.join(timeout=30)
        assert reading.get_table(names[-1])[0].queue == "jobs"
    assert errors == []


def test_a_temporary_file_left_by_a_writer_that_died_is_removed_when_a_channel_opens(
    tmp_path: Path,
):
    """A writer killed between writing and renaming leaves a hidden ``.tmp`` file; no
    consumer ever lists it, so without this the queue folder would keep it for ever."""
    folder = tmp_path / "queue"
    folder.mkdir()
    name = unique_queue()
    stale = folder / f".{message_file_name(name)}.tmp"
    fresh = folder / f".{message_file_name(name)}.tmp"
    assert stale != fresh
    for path in (stale, fresh):
        path.write_bytes(b'{"half": ')
    an_hour_and_more = time.time() - broker.STALE_TEMPORARY_SECONDS - 60
    os.utime(stale, (an_hour_and_more, an_hour_and_more))
    healthz_probe = folder / ".healthz-abcd1234"
    healthz_probe.write_bytes(b"")
    os.utime(healthz_probe, (an_hour_and_more, an_hour_and_more))
    with connection(folder) as conn, conn.SimpleQueue(name, serializer="json") as queue:
        queue.put({"n": 1})
    assert not stale.exists()
    assert fresh.exists()  # a writer may be about to rename it
    assert healthz_probe.exists()  # hidden, but not one of ours
