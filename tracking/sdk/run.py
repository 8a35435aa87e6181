"""``sdk.init()`` and the ``Run`` a training script logs to."""

from __future__ import annotations

import threading
import time
import traceback as tracebacks
import uuid
import weakref
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from tracking.sdk import artifacts, lifecycle, sync
from tracking.sdk.console import Console, batches
from tracking.sdk.media import Media, media_values
from tracking.sdk.sender import (
    MAX_POINTS_PER_BATCH,
    Record,
    Sender,
    encode_media,
    json_value,
    warn,
)
from tracking.sdk.settings import Settings
from tracking.sdk.spool import SpoolRun
from tracking.sdk.system import run_context
from tracking.sdk.system_metrics import PREFIX as SYSTEM_PREFIX
from tracking.sdk.system_metrics import SystemSampler, load_psutil
from tracking.sdk.transport import Transport, TransportError

STATUSES = ("finished", "failed", "killed")
LEVELS = ("info", "warn", "error")
MAX_KEY_LENGTH = 250


class LabbookError(Exception):
    """The server refused something only the user can fix (bad token, project, input)."""


def jsonable(value: Any) -> Any:
    """Config and summary values as JSON: numpy/torch scalars and arrays become Python values."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    for method in ("item", "tolist"):
        convert = getattr(value, method, None)
        if callable(convert):
            try:
                return jsonable(convert())
            except (TypeError, ValueError):
                pass
    return str(value)


def _number(key: str, value: Any) -> float:
    """A loggable value as a float; TypeError for anything that is not a number."""
    if isinstance(value, bool) or not (
        isinstance(value, int | float) or callable(getattr(value, "item", None))
    ):
        raise TypeError(
            f"run.log(): {key!r} is a {type(value).__name__}, not a number"
            " (log numbers; put text in run.config, run.summary or run.notes)"
        )
    if not isinstance(value, int | float):
        value = value.item()  # numpy scalar, 0-d tensor
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"run.log(): {key!r} holds a {type(value).__name__}, not a number")
    try:
        return float(value)
    except OverflowError:
        raise TypeError(f"run.log(): {key!r} is too large for a float") from None


def _check_key(key: Any) -> None:
    if not isinstance(key, str) or not key:
        raise TypeError(f"run.log(): metric keys are non-empty strings, got {key!r}")
    if len(key) > MAX_KEY_LENGTH or key != key.strip() or not key.isprintable():
        raise ValueError(
            f"run.log(): bad metric key {key!r} (printable, no surrounding spaces,"
            f" at most {MAX_KEY_LENGTH} characters)"
        )


class _SyncedDict(dict[str, Any]):
    """A dict whose changes are sent to the run's ``config`` or ``summary`` (merged)."""

    def __init__(self, run: Run, field: str, initial: Mapping[str, Any]) -> None:
        super().__init__(initial)
        self._run = weakref.proxy(run)
        self._field = field

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._run._change({self._field: {key: None}})

    def update(self, other: Any = (), /, **more: Any) -> None:
        changes = {str(k): jsonable(v) for k, v in dict(other, **more).items()}
        super().update(changes)
        self._run._change({self._field: changes})

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self.update({key: default})
        return self[key]


class Run:
    """A training run. Create it with ``sdk.init()``."""

    def __init__(
        self, *, settings: Settings, data: dict[str, Any] | None, create: dict[str, Any]
    ) -> None:
        data = data or {}
        self._settings = settings
        self.id: int | None = data.get("id")
        self.name: str = data.get("name") or create.get("name") or "offline run"
        self.url: str | None = data.get("url")
        self.project: str = data.get("project") or create["project"]
        self.config = _SyncedDict(self, "config", data.get("config") or create.get("config") or {})
        self.summary = _SyncedDict(self, "summary", data.get("summary") or {})
        self._tags = list(data.get("tags") or create.get("tags") or [])
        self._notes = data.get("notes") or create.get("notes") or ""
        self._step = 0
        self._keys_ok: set[str] = set()
        self._finished = False
        self._forked_child = False
        self._overflow: list[Record] = []
        self._overflow_lock = threading.Lock()
        self._spilled = False
        self._system: SystemSampler | None = None
        self._console: Console | None = None
        self._artifact_uploads: list[artifacts.ArtifactUpload] = []  # Versioned artifacts
        self._spool = SpoolRun.for_run(settings.spool_dir, self._spool_header(create))
        self._sender = self._new_sender()
        lifecycle.register(self)

    def _spool_header(self, create: dict[str, Any]) -> dict[str, Any]:
        header: dict[str, Any] = {
            "url": self._settings.url,
            "run_id": self.id,
            "project": self.project,
        }
        return header if self.id is not None else {**header, "create": create}

    def _new_sender(self) -> Sender:
        sender = Sender(settings=self._settings, run_id=self.id, spool=self._spool)
        sender.start()
        return sender

    def __repr__(self) -> str:
        return f"<Run {self.id} {self.name!r} in {self.project}>"

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: Any
    ) -> None:
        if kind is None:
            self.finish()
        else:
            if self._console is not None and not issubclass(kind, SystemExit):
                # The interpreter prints it after this run has finished: the console gets it now.
                text = "".join(tracebacks.format_exception(kind, error, tb))
                self._console.add_unprinted("stderr", text)
            status, message, tail, code = lifecycle.describe_exception(kind, error, tb)
            self.finish(status, exit_code=code, error=message, traceback=tail)

    # --- logging ---------------------------------------------------------------------

    def log(self, data: Mapping[str, Any], step: int | None = None) -> None:
        """Queue the metrics and media in ``data`` at ``step`` (the next step when omitted).

        Never waits for the network. Values that are neither numbers nor
        ``sdk.Image``/``Table``/``Histogram``/``Text`` (or lists of them) raise ``TypeError``
        here, before anything is queued.
        """
        if self._finished:
            raise RuntimeError("run.log() after run.finish()")
        values = {}
        entries: list[tuple[str, Media]] = []
        keys_ok = self._keys_ok
        for key, value in data.items():
            if key not in keys_ok:
                _check_key(key)
                keys_ok.add(key)
            kind = type(value)
            if kind is float:
                values[key] = value
            elif isinstance(value, Media | list | tuple) and (found := media_values(key, value)):
                entries.extend((key, item) for item in found)
            else:
                values[key] = _number(key, value)
        if len(values) > MAX_POINTS_PER_BATCH:
            raise ValueError(f"run.log(): at most {MAX_POINTS_PER_BATCH} metrics per call")
        step = self._next_step(step)
        if values:
            self._queue_points(("p", step, time.time(), values))
        if entries:
            self._queue_media(("m", step, time.time(), entries))

    def _queue_points(self, record: Record) -> None:
        """From log() and the system sampler's thread."""
        if not self._sender.put(record):
            self._spill(record)

    def _queue_media(self, record: Record) -> None:
        """Queue media for the sender to encode; past its memory bound, encode and spool here."""
        size = sum(item.queued_bytes for _, item in record[3])
        if self._sender.put_media(record, size):
            return
        with self._overflow_lock:
            if not self._spilled:
                self._spilled = True
                warn(f"logging faster than the server takes it; spooling to {self._spool.folder}")
        self._sender.keep_media(encode_media(record))

    def _next_step(self, step: Any) -> int:
        if step is None:
            if self._forked_child:
                lifecycle.warn_fork_auto_step()
            step = self._step
        elif isinstance(step, bool) or not hasattr(step, "__index__") or step.__index__() < 0:
            raise TypeError(f"run.log(): step must be a non-negative integer, got {step!r}")
        index: int = step.__index__()
        if index >= self._step:
            self._step = index + 1
        return index

    def _start_system_metrics(self, first_sample: int) -> None:
        psutil = load_psutil(quiet=self._settings.quiet)
        if psutil is None:
            return
        self._system = SystemSampler(
            psutil=psutil,
            put=self._queue_points,
            interval=self._settings.system_metrics_interval,
            first_sample=first_sample,
        )
        self._system.start()

    # --- console output (tracking/sdk/console.py) ----------------------------------------

    def _start_console(self, first_number: int) -> None:
        self._console = Console(
            put=self._sender.put,
            spill=self._spill_console,
            first_number=first_number,
            skip_thread=self._sender.thread_ident,
        )
        self._console.start()

    def _spill_console(self, lines: list[dict[str, Any]]) -> None:
        """Console lines the full queue could not take: to the spool, from the writing thread."""
        with self._overflow_lock:  # warn() prints, which comes back here: not under the lock
            first, self._spilled = not self._spilled, True
        if first:
            warn(f"logging faster than the server takes it; spooling to {self._spool.folder}")
        try:
            for group in batches(lines):
                self._spool.append({"kind": "console", "lines": group})
        except OSError as error:
            warn(f"LOST {len(lines)} console lines: writing {self._spool.folder} failed: {error}")

    # --- overflow -------------------------------------------------------------------------

    def _spill(self, record: Record) -> None:
        """The queue is full (the server is slower than the loop): gather, then write to disk."""
        with self._overflow_lock:
            if not self._overflow and not self._spilled:
                self._spilled = True
                warn(f"logging faster than the server takes it; spooling to {self._spool.folder}")
            self._overflow.append(record)
            if len(self._overflow) * len(record[3]) >= MAX_POINTS_PER_BATCH:
                self._write_overflow()

    def _write_overflow(self) -> None:
        """One spool line for the gathered records (the caller holds the lock)."""
        if not self._overflow:
            return
        points = [
            {"key": k, "step": step, "value": json_value(v), "timestamp": stamp}
            for _, step, stamp, values in self._overflow
            for k, v in values.items()
        ]
        self._overflow.clear()
        for start in range(0, len(points), MAX_POINTS_PER_BATCH):
            chunk = points[start : start + MAX_POINTS_PER_BATCH]
            self._spool.append({"kind": "points", "batch_id": uuid.uuid4().hex, "points": chunk})

    # --- run fields ----------------------------------------------------------------------

    @property
    def tags(self) -> list[str]:
        return list(self._tags)

    @tags.setter
    def tags(self, tags: list[str]) -> None:
        self._tags = [str(tag) for tag in tags]
        self._change({"tags": self._tags})

    @property
    def notes(self) -> str:
        return self._notes

    @notes.setter
    def notes(self, notes: str) -> None:
        self._notes = str(notes)
        self._change({"notes": self._notes})

    def _change(self, fields: dict[str, Any]) -> None:
        if not self._sender.put(("u", fields)):
            self._spool.append({"kind": "patch", "data": fields})

    def alert(
        self, title: str, text: str = "", level: str = "info", wait_duration: float | timedelta = 60
    ) -> None:
        """Alert the team (through the project's ``sdk_alert`` rules).

        The server mutes repeats of the same ``title`` on this run for
        ``wait_duration`` seconds, so calling this every step pages once.
        """
        if level not in LEVELS:
            raise ValueError(f"run.alert(): level must be one of {', '.join(LEVELS)}")
        if isinstance(wait_duration, timedelta):
            wait_duration = wait_duration.total_seconds()
        body = {
            "title": str(title),
            "text": str(text),
            "level": level,
            "wait_duration": int(wait_duration),
        }
        if not self._sender.put(("a", body)):
            self._spool.append({"kind": "alert", "data": body})

    # --- Versioned artifacts (tracking/sdk/artifacts.py) -----------------------------------

    def log_artifact(
        self,
        path: str | Path,
        name: str | None = None,
        type: str | None = None,
        description: str | None = None,
    ) -> artifacts.ArtifactUpload:
        """Log the file or folder at ``path`` as the next version of artifact ``name``.

        Hashed now, uploaded in the background: ``.wait()`` on the answer gives the
        version, and ``finish()`` waits for it. The same files as an existing version
        are that version. ``type`` (e.g. "model", "dataset"; default "artifact") is
        fixed by the artifact's first version; ``name`` defaults to the file's name.
        """
        if self.id is None:
            raise LabbookError("log_artifact(): an offline run cannot upload artifacts")
        try:
            upload = artifacts.start_upload(
                url=self._settings.url,
                token=self._settings.token,
                run_id=self.id,
                root=Path(path),
                name=name,
                type=type,
                description=description,
                budget=self._settings.retry_seconds,
                timeout=self._settings.request_timeout,
            )
        except (artifacts.ArtifactError, OSError) as error:
            raise LabbookError(str(error)) from None
        self._artifact_uploads.append(upload)
        return upload

    def use_artifact(self, reference: str, root: str | Path | None = None) -> Path:
        """Download ``"team/project/name:v3"`` (or ``:latest``) and record that this run
        used it; the folder holding its files (see ``use_artifact``)."""
        return use_artifact(reference, run=self, root=root)

    def _wait_for_artifacts(self) -> None:
        for upload in self._artifact_uploads:
            try:
                upload.wait()
            except artifacts.ArtifactError as error:
                warn(str(error))
        self._artifact_uploads = []

    # --- End of versioned artifacts ------------------------------------------------------

    # --- the end -------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything logged so far was sent (or spooled), partial lines too."""
        if self._console is not None:
            self._console.flush()
        with self._overflow_lock:
            self._write_overflow()
        return self._sender.flush(self._settings.finish_timeout if timeout is None else timeout)

    def finish(
        self,
        status: str = "finished",
        exit_code: int | None = None,
        *,
        error: str | None = None,
        traceback: str | None = None,
    ) -> None:
        """Send everything, then mark the run ``status``. Calling it again does nothing."""
        if status not in STATUSES:
            raise ValueError(f"run.finish(): status must be one of {', '.join(STATUSES)}")
        if self._finished:
            return
        self._finished = True
        lifecycle.unregister(self)
        if self._system is not None:  # before the drain, so its last sample is sent
            self._system.stop(5)
        if self._console is not None:  # its last lines go before the status change
            self._console.stop()
        self._wait_for_artifacts()  # Versioned artifacts: uploads end before the run does
        if self._forked_child:  # the parent owns the run: only send what this process logged
            self._drain(self._settings.finish_timeout)
            return
        change: dict[str, Any] = {"status": status}
        if exit_code is not None:
            change["exit_code"] = exit_code
        if error:
            change.update(error=error[:500], traceback=(traceback or "")[-50_000:])
        self._change(change)
        self._drain(self._settings.finish_timeout)
        self._goodbye(status, uploaded=self._upload_spool())

    def _drain(self, timeout: float) -> None:
        with self._overflow_lock:
            self._write_overflow()
        if not self._sender.flush(timeout):
            warn(f"could not send everything within {timeout:.0f} s; keeping the rest on disk")
            self._sender.abandon()
            self._sender.flush(10)
        self._sender.stop(5)

    def _upload_spool(self) -> bool:
        """Try to send what was spooled; False when it stays on disk."""
        if not self._spool.exists:
            return True
        transport = Transport(self._settings.url, self._settings.token, timeout=10)
        try:
            run_id = sync.sync_folder(self._spool.folder, transport, budget=5)
        except (TransportError, OSError) as problem:
            warn(
                f"{self._spool.points_written} points of this run are kept in"
                f" {self._spool.folder} ({problem}). Upload them when the server is back:"
                f" python -m tracking.sdk sync {self._spool.folder.parent}"
            )
            return False
        finally:
            transport.close()
        self.id = self.id or run_id
        return True

    def _goodbye(self, status: str, *, uploaded: bool) -> None:
        if self._settings.quiet:
            return
        if not uploaded:
            warn(f"run {self.name!r} {status} here; the server learns it when the spool is synced")
            return
        warn(f"run {self.name!r} {status}: {self.url or f'run {self.id}'}")

    def _become_fork_child(self) -> None:
        """In a forked process: a fresh, empty queue, so nothing the parent queued is sent twice."""
        self._forked_child = True
        self._system = None  # its thread did not survive the fork; the parent samples
        if self._console is not None:  # the parent numbers the lines: the child sends none
            self._console.forked()
        self._overflow, self._overflow_lock = [], threading.Lock()  # another thread may hold it
        self._spool = SpoolRun.for_run(self._settings.spool_dir, self._spool.header)
        self._sender = self._new_sender()


# --- Versioned artifacts --------------


def use_artifact(
    reference: str,
    run: Run | None = None,
    *,
    root: str | Path | None = None,
    url: str | None = None,
    token: str | None = None,
) -> Path:
    """Download artifact version ``"team/project/name:v3"`` (``:latest`` by default) into
    ``root`` (``LABBOOK_ARTIFACT_DIR``, ``~/.labbook/artifacts``), checking every file's
    SHA-256; the folder holding its files. With ``run``, the run is recorded as using it."""
    settings = run._settings if run is not None else Settings.from_env(url=url, token=token)
    if run is not None and run.id is None:
        raise LabbookError("use_artifact(): an offline run cannot record what it uses")
    transport = artifacts.FileTransport(
        settings.url, settings.token, timeout=settings.request_timeout
    )
    try:
        return artifacts.use(
            transport,
            reference,
            run_id=None if run is None else run.id,
            root=root,
            budget=settings.retry_seconds,
        )
    except (artifacts.ArtifactError, TransportError, OSError) as error:
        raise LabbookError(f"use_artifact({reference!r}): {error}") from None
    finally:
        transport.close()


# --- End of versioned artifacts ---


def init(
    project: str,
    name: str | None = None,
    config: Mapping[str, Any] | None = None,
    tags: list[str] | None = None,
    group: str | None = None,
    notes: str | None = None,
    url: str | None = None,
    token: str | None = None,
    resume: int | None = None,
    system_metrics: bool = True,
    console: bool = True,
) -> Run:
    """Start (or with ``resume=<run id>``, continue) a run in ``project`` ("team/project").

    ``url`` and ``token`` default to ``LABBOOK_URL`` and ``LABBOOK_TOKEN``.
    When the server cannot be reached, the run is logged to the spool folder
    and can be uploaded later with ``python -m tracking.sdk sync``.
    ``system_metrics=False`` (or ``LABBOOK_SYSTEM_METRICS=0``) turns off the
    ``system/*`` series (CPU, memory, disk, network, GPUs; needs psutil).
    ``console=False`` (or ``LABBOOK_CONSOLE=0``) stops the run from keeping what the
    script prints (stdout and stderr, see tracking/sdk/console.py).
    """
    settings = Settings.from_env(url=url, token=token)
    # The client_id makes a retried create (the answer was lost) return the same run.
    create = {"project": project, "client_id": uuid.uuid4().hex, **run_context()}
    for field, value in (("name", name), ("group", group), ("notes", notes)):
        if value is not None:
            create[field] = str(value)
    if config is not None:
        create["config"] = jsonable(dict(config))
    if tags is not None:
        create["tags"] = [str(tag) for tag in tags]
    transport = Transport(settings.url, settings.token, timeout=10)
    try:
        data, step, sample, line = _start(transport, create, resume)
    finally:
        transport.close()
    run = Run(settings=settings, data=data, create=create)
    run._step = step
    if system_metrics and settings.system_metrics:
        run._start_system_metrics(sample)
    _hello(run, settings)
    if console and settings.console:
        run._start_console(line)
    return run


def _start(
    transport: Transport, create: dict[str, Any], resume: int | None
) -> tuple[dict[str, Any] | None, int, int, int]:
    """The run's data, its next step, its next system sample and its next console line."""
    try:
        if resume is not None:
            return _resume(transport, int(resume))
        return transport.request_retrying("POST", "/api/v1/runs", create, budget=5), 0, 0, 0
    except TransportError as error:
        if not error.retryable:
            raise LabbookError(f"Labbook refused the run: {error}") from None
        if resume is not None:
            raise LabbookError(f"cannot resume run {resume}: {error}") from None
        warn(f"{transport.url} is not answering ({error}); logging offline to the spool")
        return None, 0, 0, 0


def _resume(transport: Transport, run_id: int) -> tuple[dict[str, Any], int, int, int]:
    data = transport.request_retrying(
        "PATCH", f"/api/v1/runs/{run_id}", {"status": "running"}, budget=5
    )
    keys = transport.request_retrying("GET", f"/api/v1/runs/{run_id}/metrics", budget=5)
    last = [(m["key"], m["last_step"]) for m in keys["metrics"] if m["last_step"] is not None]
    # The system samples count on their own: neither counter moves the other.
    steps = [step for key, step in last if not key.startswith(SYSTEM_PREFIX)]
    samples = [step for key, step in last if key.startswith(SYSTEM_PREFIX)]
    line = _next_line(transport, run_id)
    return data, max(steps, default=-1) + 1, max(samples, default=-1) + 1, line


def _next_line(transport: Transport, run_id: int) -> int:
    """The resumed run's next console line: after those stored (a line past the server's cap
    is counted, not stored). 0 from a server without console output (an older Labbook)."""
    try:
        console = transport.request_retrying(
            "GET", f"/api/v1/runs/{run_id}/console?tail=1", budget=5
        )
    except TransportError as error:
        if error.status != 404:
            raise
        return 0
    newest = max((line["number"] for line in console["lines"]), default=-1)
    return max(int(console["total"]), newest + 1)


def _hello(run: Run, settings: Settings) -> None:
    if settings.quiet:
        return
    if run.id is None:
        warn(f"run {run.name!r} is offline; its data goes to {run._spool.folder}")
    else:
        warn(f"run {run.name!r} → {run.url}")
