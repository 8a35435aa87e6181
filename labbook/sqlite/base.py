"""Django's SQLite backend, with the write-ahead log checkpointed safely.

SQLite up to 3.51.2 has the "WAL-reset bug" (fixed in 3.51.3, March 2026):
when one connection checkpoints a write-ahead log that another checkpoint
has just emptied, while a third connection commits and so starts the log
over, the second checkpoint records frames as copied that never were, and
committed transactions are lost or the file corrupted. The automatic
checkpoint sets that up under Labbook's load: every commit that finds the
log over 1,000 pages runs a *passive* checkpoint, which takes no lock
against writers, in the web server, the worker and beat at once. Python's
``sqlite3`` links whatever SQLite the system has (Debian 12: 3.40.1), so the
fix cannot be assumed.

So the automatic checkpoint is off on every connection (``wal_autocheckpoint=0``
in settings), and a commit that leaves the log over ``CHECKPOINT_BYTES``
checkpoints it in ``TRUNCATE`` mode instead. That mode holds the writer lock
from start to end, so no commit can start the log over while it copies, and
it leaves the log empty, so the next checkpoint always has new frames to copy.
Its busy timeout is short (``CHECKPOINT_WAIT_MS``): writers wait at most that
long for it, and a checkpoint that cannot get its locks in time is simply
tried again after a later commit.

The files are made readable by their owner only when a connection opens
(SQLite creates them as the umask allows, usually readable by every local user).

Memory-mapped reads (``mmap_size``) stay off for the same reason: SQLite's
documentation warns that they turn such transient inconsistencies into a
corrupt file, and a soak of ``manage.py up`` with them on saw "disk I/O
error" within minutes.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from typing import Any

from django.db.backends.sqlite3 import base

log = logging.getLogger(__name__)

CHECKPOINT_BYTES = 4 * 1024 * 1024  # SQLite's own default threshold: 1,000 pages of 4 KiB
CHECKPOINT_WAIT_MS = 2000


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params: dict[str, Any]) -> sqlite3.Connection:
        connection = super().get_new_connection(conn_params)
        wal = self._wal_path()
        if wal:  # the database, its log and index, all private to this user
            for path in (str(self.settings_dict["NAME"]), wal, wal[: -len("-wal")] + "-shm"):
                make_private(path)
        return connection

    def commit(self) -> None:
        super().commit()
        wal = self._wal_path()
        if wal and _size(wal) >= CHECKPOINT_BYTES:
            self.checkpoint()

    def checkpoint(self) -> tuple[int, int, int] | None:
        """Copy the write-ahead log into the database and empty it.

        Answers SQLite's (busy, frames in the log, frames copied), or None when it failed.
        """
        cursor = self.connection.cursor()
        try:
            (timeout,) = cursor.execute("PRAGMA busy_timeout").fetchone()
            cursor.execute(f"PRAGMA busy_timeout = {CHECKPOINT_WAIT_MS}")
            try:
                return cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            finally:
                cursor.execute(f"PRAGMA busy_timeout = {int(timeout)}")
        except sqlite3.Error as error:  # committed already: never fail the caller
            log.warning("SQLite checkpoint failed, tried again after a later commit: %s", error)
            return None
        finally:
            cursor.close()

    def _wal_path(self) -> str | None:
        name = str(self.settings_dict["NAME"])
        if self.is_in_memory_db() or not name:
            return None
        return f"{name}-wal"


def make_private(path: str) -> None:
    """Readable and writable by its owner only (SQLite creates files as the umask allows:
    usually readable by every local user)."""
    try:
        mode = os.stat(path).st_mode
        if mode & 0o077:
            os.chmod(path, mode & 0o700)
    except FileNotFoundError:
        pass  # the log and index come and go


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0
