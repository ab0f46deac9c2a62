"""Opening a knowledge base: SQLite in WAL mode, numbered migrations recorded in the database."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils

from arbor.tools.migrations import MigrationError, connect, load
from arbor.tools.paths import data_dir

from .errors import KBError


def default_path() -> Path:
    """ARBOR_KB, else kb.sqlite in the user data directory."""
    return Path(os.environ.get("ARBOR_KB") or data_dir() / "kb.sqlite")


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) of every shipped migration, in order."""
    return load(__package__)


def latest_version() -> int:
    """The schema version this code writes."""
    return migrations()[-1][0]


def open_kb(path: Path | None = None, upto: int | None = None) -> sqlite_utils.Database:
    """Open (creating if needed) and migrate the knowledge base at `path`."""
    path = Path(path or default_path())
    try:
        conn = connect(path, migrations(), "knowledge base", upto)
    except MigrationError as exc:
        raise KBError(str(exc)) from exc
    return sqlite_utils.Database(conn)


@contextmanager
def transaction(db: sqlite_utils.Database) -> Iterator[None]:
    """One write transaction (BEGIN IMMEDIATE ... COMMIT, ROLLBACK on error); nested uses join the outer one."""
    conn = db.conn
    if conn.in_transaction:
        yield
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
