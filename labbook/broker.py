"""The embedded Celery broker: kombu's filesystem transport, made safe to share a folder.

Kombu's filesystem transport has two flaws that a busy ``manage.py up`` meets:

* Its enqueue creates the message file under its final name, then locks it,
  then writes it. A consumer listing the folder in between takes an empty or
  half-written file (the lock does not stop a rename, and the consumer never
  asks for it), and ``json.loads`` fails.
* Kombu treats any error while taking a message as fatal: one undecodable
  file stops the worker, and ``up`` with it, and it is still there on restart.

Here a producer writes each message under a hidden temporary name that no
consumer lists, then renames it onto its final name, so a consumer sees a
whole file or none. A consumer claims a file by renaming it out of the queue
folder (atomic, so exactly one consumer wins it; the others skip it), and a
file it cannot turn into a kombu message is logged and moved to a ``bad``
folder, kept for a human to look at, while consumption goes on.

Kombu also creates a missing exchange table empty before filling it, so a
publisher could read it empty and fail; here it is created whole.

Message names, the folders and the exchange tables stay kombu's, so a queue
written by plain kombu is read here, and the other way round.

Settings name this module's ``Transport`` as Celery's ``broker_transport``;
the broker URL stays ``filesystem://``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from pathlib import Path
from queue import Empty
from time import monotonic, time
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

logger = logging.getLogger(__name__)

TEMPORARY_SUFFIX = ".tmp"
# A temporary file this old was left by a writer that died before its rename:
# writes take milliseconds, so an hour leaves room for any stalled disk.
STALE_TEMPORARY_SECONDS = 3600
JSON = "application/json"


class BadMessage(Exception):
    """A queue file that kombu could not turn into a message."""


# --- Names --------------------------------------------------------------------------


def message_name(queue: str) -> str:
    """Kombu's name for a message file: ``<ms>_<uuid>.<queue>.msg``, oldest sorting first."""
    return f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"


def temporary_name(name: str) -> str:
    """Hidden and not ending in ``.msg``: no consumer (ours or kombu's) ever lists it."""
    return f".{name}{TEMPORARY_SUFFIX}"


def is_message(name: str, queue: str) -> bool:
    """Is ``name`` a message of ``queue``? Hidden files (temporary, /healthz's) never are."""
    return not name.startswith(".") and name.partition(".")[2] == f"{queue}.msg"


def queued_messages(folder: Path, queue: str) -> list[str]:
    return sorted(name for name in os.listdir(folder) if is_message(name, queue))


# --- Files --------------------------------------------------------------------------


def write_synced(path: Path, data: bytes) -> None:
    """Create ``path`` (never an existing file) holding ``data``, flushed to the disk."""
    with open(path, "xb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees all of it or no file at all.

    The data is fsynced before the rename, so after a power cut the file is
    whole or absent, never an empty name. The folder is not fsynced: a message
    queued just before a power cut may be lost, which the alert outbox's sweep
    makes good; messages are few (alerts, emails, beat), so one fsync each is cheap.
    """
    temporary = path.with_name(temporary_name(path.name))
    try:
        write_synced(temporary, data)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


def remove_stale_temporaries(folder: Path, *, now: float | None = None) -> list[str]:
    """Delete the temporary files of writers that died before their rename; answers their names."""
    limit = (time() if now is None else now) - STALE_TEMPORARY_SECONDS
    removed = []
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(folder):
            if not (entry.name.startswith(".") and entry.name.endswith(TEMPORARY_SUFFIX)):
                continue
            with contextlib.suppress(FileNotFoundError):  # another process removed it first
                if entry.stat().st_mtime < limit:
                    os.unlink(entry.path)
                    removed.append(entry.name)
    if removed:
        logger.warning("removed %d unfinished queue files left by a writer that died", len(removed))
    return removed


def create_if_absent(path: Path, data: bytes) -> None:
    """Create ``path`` holding ``data``, atomically; leave an existing file alone."""
    temporary = path.with_name(temporary_name(f"{path.name}.{uuid.uuid4().hex}"))
    write_synced(temporary, data)
    try:
        os.link(temporary, path)  # unlike a rename, never replaces a file that exists
    except FileExistsError:
        pass
    finally:
        temporary.unlink()


def claim(path: Path, claimed_folder: Path) -> Path | None:
    """Move a message out of the queue into ``claimed_folder``; None if another consumer won.

    A rename within one filesystem is atomic: of several consumers renaming
    the same file exactly one succeeds, and the others find it gone.
    """
    target = claimed_folder / path.name
    try:
        os.rename(path, target)
    except FileNotFoundError:
        if claimed_folder.is_dir():
            return None  # the file is gone: another consumer took it
        claimed_folder.mkdir(parents=True, exist_ok=True)  # someone removed the folder
        return claim(path, claimed_folder)
    except OSError as error:
        raise ChannelError(f"Cannot move {path} to {claimed_folder}: {error}") from error
    return target


def set_aside(path: Path, bad_folder: Path, reason: str) -> None:
    """Keep a message no consumer can read in ``bad_folder``, and say so in the log."""
    target = bad_folder / path.name
    try:
        bad_folder.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
    except OSError as error:
        # Consumption goes on: the file is out of the queue already, so it stays where it is.
        target, reason = path, f"{reason}; not moved to {bad_folder}: {error}"
    logger.error("Skipped queue message %s (%s); it is kept at %s", path.name, reason, target)


def read_message(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as error:  # a directory, no permission: as unreadable as garbage
        raise BadMessage(f"unreadable: {error}") from error


# --- Decoding -----------------------------------------------------------------------


def parse(raw: bytes) -> Any:
    try:
        return loads(bytes_to_str(raw))
    except Exception as error:  # json's errors, and kombu's type hooks' on odd JSON
        raise BadMessage(f"not JSON: {type(error).__name__}: {error}") from error


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    names = {bool: "true/false", int: "number", float: "number", str: "string", list: "array"}
    return names.get(type(value), type(value).__name__)


def check_envelope(payload: Any) -> None:
    """What kombu and Celery index without checking, checked: a wrong shape is fatal there."""
    if not isinstance(payload, dict):
        raise BadMessage(f"JSON {json_type(payload)}, not an object")
    properties = payload.get("properties")
    if not isinstance(properties, dict):
        raise BadMessage("no 'properties' object")
    if not isinstance(properties.get("delivery_tag"), str):
        raise BadMessage("no 'delivery_tag' string in 'properties'")
    if not isinstance(properties.get("delivery_info") or {}, dict):
        raise BadMessage("'delivery_info' is not an object")
    if not isinstance(payload.get("headers") or {}, dict):
        raise BadMessage("'headers' is not an object")
    if not isinstance(payload.get("body") or "", str):
        raise BadMessage("'body' is not a string")


# --- Kombu --------------------------------------------------------------------------


class Channel(filesystem.Channel):
    """Kombu's filesystem channel with an atomic enqueue and a consumer that skips bad files.

    ``_put`` and ``_get`` keep the filesystem channel's signatures, which differ from
    the virtual channel's: kombu's stub ignores that override, and so must these.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        remove_stale_temporaries(Path(self.data_folder_out))

    @property
    def queue_folder(self) -> Path:
        return Path(self.data_folder_in)

    @property
    def claimed_folder(self) -> Path:
        """Where a consumer moves the messages it takes: beside the queue, for an atomic rename."""
        return Path(self.transport_options.get("processed_folder", self.queue_folder / "processed"))

    @property
    def bad_folder(self) -> Path:
        return Path(self.transport_options.get("bad_folder", self.queue_folder / "bad"))

    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        path = Path(self.data_folder_out) / message_name(queue)
        try:
            write_atomically(path, str_to_bytes(dumps(payload)))
        except OSError as error:
            raise ChannelError(f"Cannot add file {str(path)!r} to directory") from error

    def _get(self, queue: str) -> dict[str, Any]:  # type: ignore[override]
        for name in queued_messages(self.queue_folder, queue):
            payload = self._take(name)
            if payload is not None:
                return payload
        raise Empty()

    def _take(self, name: str) -> dict[str, Any] | None:
        """Claim and read one message; None if another consumer won it, or it was bad."""
        path = claim(self.queue_folder / name, self.claimed_folder)
        if path is None:
            return None
        try:
            payload = self._decode(read_message(path))
        except FileNotFoundError:
            return None  # someone emptied the claimed folder under us
        except BadMessage as error:
            set_aside(path, self.bad_folder, str(error))
            return None
        if not self.store_processed:
            path.unlink(missing_ok=True)
        return payload

    def _decode(self, raw: bytes) -> dict[str, Any]:
        payload = parse(raw)
        check_envelope(payload)
        try:
            message = self.Message(payload, channel=self)  # what kombu does with it next
        except Exception as error:  # e.g. a body that is not the base64 it claims to be
            raise BadMessage(f"not a kombu message: {type(error).__name__}: {error}") from error
        if message.content_type == JSON:
            # Celery would log an undecodable body and drop it: keep the file instead.
            # Only JSON is tried here: decoding another serializer (pickle) runs code.
            try:
                message.decode()
            except Exception as error:
                raise BadMessage(f"body is not JSON: {error}") from error
        return payload

    def _purge(self, queue: str) -> int:
        count = 0
        for name in queued_messages(self.queue_folder, queue):
            with contextlib.suppress(FileNotFoundError):  # a consumer took it meanwhile
                (self.queue_folder / name).unlink()
                count += 1
        return count

    def _size(self, queue: str) -> int:
        return len(queued_messages(self.queue_folder, queue))

    def _queue_bind(self, exchange: str, routing_key: str, pattern: str | None, queue: str) -> None:
        # Kombu creates a missing exchange table empty, then locks and fills it:
        # a publisher reading it in between fails to parse it. Create it whole.
        # (_exchange_file also refuses a bad name; kombu's private helper, not in the stub.)
        table: Path = self._exchange_file(exchange)  # type: ignore[attr-defined]
        table.parent.mkdir(parents=True, exist_ok=True)
        create_if_absent(table, b"[]")
        super()._queue_bind(exchange, routing_key, pattern, queue)


class Transport(filesystem.Transport):
    """Kombu's filesystem transport, with :class:`Channel` above."""

    Channel = Channel
    # The URL carries nothing (the folders are transport options). Keeping it
    # whole makes Celery show ``filesystem://...`` rather than this import path.
    can_parse_url = True
