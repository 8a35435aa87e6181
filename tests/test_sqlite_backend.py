"""The embedded database's write-ahead log is checkpointed by Labbook, never by SQLite's
automatic passive checkpoint (the WAL-reset bug, see labbook/sqlite/base.py).

Each test opens its own SQLite file through the settings' own DATABASE_URL
handling, so what is checked is what ``manage.py up`` runs with.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from django.db.utils import ConnectionHandler

from labbook import settings as labbook_settings
from labbook.sqlite.base import CHECKPOINT_BYTES

ROW_BYTES = 4000


@pytest.fixture(autouse=True)
def own_databases(django_db_blocker):
    """These tests open files of their own, not the test database: let them."""
    with django_db_blocker.unblock():
        yield


def open_database(path: Path, **changes):
    """A Django connection to a SQLite file, configured as settings configure DATABASE_URL."""
    config = labbook_settings._database(f"sqlite:///{path}")
    config.update(changes)
    return ConnectionHandler({"default": config})["default"]


def wal_size(path: Path) -> int:
    wal = Path(f"{path}-wal")
    return wal.stat().st_size if wal.exists() else 0


def write(connection, rows: int) -> None:
    """One transaction of ``rows`` rows of ROW_BYTES, committed with ``connection.commit()``."""
    connection.set_autocommit(False)
    with connection.cursor() as cursor:
        cursor.executemany("INSERT INTO blob (body) VALUES (randomblob(%s))", [(ROW_BYTES,)] * rows)
    connection.commit()
    connection.set_autocommit(True)


def create_table(connection) -> None:
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE blob (id INTEGER PRIMARY KEY, body BLOB)")


def pragma(connection, name: str):
    with connection.cursor() as cursor:
        cursor.execute(f"PRAGMA {name}")
        return cursor.fetchone()[0]


def test_every_connection_has_the_automatic_checkpoint_and_memory_mapping_off(tmp_path):
    connection = open_database(tmp_path / "labbook.sqlite3")
    try:
        assert connection.vendor == "sqlite"
        assert pragma(connection, "journal_mode") == "wal"
        assert pragma(connection, "wal_autocheckpoint") == 0
        assert pragma(connection, "mmap_size") == 0
    finally:
        connection.close()


def test_a_commit_that_leaves_the_log_over_the_threshold_empties_it(tmp_path):
    path = tmp_path / "labbook.sqlite3"
    connection = open_database(path)
    try:
        create_table(connection)
        write(connection, 10)
        small = wal_size(path)
        assert 0 < small < CHECKPOINT_BYTES  # under the threshold: left alone
        write(connection, CHECKPOINT_BYTES // ROW_BYTES + 50)
        assert wal_size(path) == 0
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM blob")
            assert cursor.fetchone()[0] == 10 + CHECKPOINT_BYTES // ROW_BYTES + 50
    finally:
        connection.close()


def test_without_labbooks_backend_the_log_would_only_grow(tmp_path):
    """The control: Django's own backend with the same options never checkpoints."""
    path = tmp_path / "labbook.sqlite3"
    connection = open_database(path, ENGINE="django.db.backends.sqlite3")
    try:
        create_table(connection)
        write(connection, CHECKPOINT_BYTES // ROW_BYTES + 50)
        assert wal_size(path) > CHECKPOINT_BYTES
    finally:
        connection.close()


def test_a_reader_holding_an_old_snapshot_delays_the_checkpoint_without_failing_the_commit(
    tmp_path,
):
    path = tmp_path / "labbook.sqlite3"
    writer = open_database(path)
    create_table(writer)
    write(writer, 5)
    reading, release = threading.Event(), threading.Event()

    def hold_a_snapshot() -> None:
        reader = open_database(path)
        try:
            reader.ensure_connection()
            raw = reader.connection
            raw.execute("BEGIN DEFERRED")
            raw.execute("SELECT count(*) FROM blob").fetchone()  # the snapshot is taken here
            reading.set()
            release.wait(timeout=120)
            raw.execute("COMMIT")
        finally:
            reader.close()

    thread = threading.Thread(target=hold_a_snapshot)
    thread.start()
    try:
        assert reading.wait(timeout=120)
        write(writer, CHECKPOINT_BYTES // ROW_BYTES + 50)  # commits; the checkpoint cannot finish
        assert wal_size(path) > 0
        release.set()
        thread.join(timeout=120)
        write(writer, 1)  # the next commit checkpoints what was left
        assert wal_size(path) == 0
        with writer.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM blob")
            assert cursor.fetchone()[0] == 5 + CHECKPOINT_BYTES // ROW_BYTES + 50 + 1
    finally:
        release.set()
        thread.join(timeout=120)
        writer.close()


def test_the_database_and_its_log_are_private_to_their_owner(tmp_path):
    path = tmp_path / "labbook.sqlite3"
    path.touch(mode=0o644)
    path.chmod(0o644)  # as SQLite creates it under the usual umask
    connection = open_database(path)
    try:
        create_table(connection)
        write(connection, 3)
        for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            assert name.stat().st_mode & 0o777 == 0o600, name
    finally:
        connection.close()
