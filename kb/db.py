"""Opening a knowledge base: SQLite in WAL mode, numbered migrations recorded in the database."""

from __future__ import annotations

import fcntl
import os
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

import sqlite_utils

from arbor.tools.paths import data_dir

from .errors import KBError

MIGRATION = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


def default_path() -> Path:
    """ARBOR_KB, else kb.sqlite in the user data directory."""
    return Path(os.environ.get("ARBOR_KB") or data_dir() / "kb.sqlite")


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) of every shipped migration, in order."""
    found = []
    for item in resources.files(__package__).joinpath("migrations").iterdir():
        match = MIGRATION.match(item.name)
        if match:
            found.append((int(match[1]), match[2], item.read_text()))
    return sorted(found)


def latest_version() -> int:
    """The schema version this code writes."""
    return migrations()[-1][0]


def applied(conn: sqlite3.Connection) -> dict[int, str]:
    """Migrations recorded in the database."""
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_migrations'").fetchone()
    if not exists:
        return {}
    return dict(conn.execute("SELECT version, name FROM schema_migrations").fetchall())


def migrate(conn: sqlite3.Connection, path: Path, upto: int | None = None) -> list[int]:
    """Apply pending migrations (up to `upto`); refuse a database from a newer schema. Returns versions applied."""
    known = migrations()
    done = applied(conn)
    newest_known = known[-1][0]
    if done and max(done) > newest_known:
        raise KBError(f"{path} has schema version {max(done)}, newer than this Arbor knows ({newest_known}); "
                      "upgrade Arbor or point --kb elsewhere. The file was not changed.")
    ran = []
    for version, name, sql in known:
        if version in done or (upto is not None and version > upto):
            continue
        script = (f"BEGIN IMMEDIATE;\nCREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                  f"name TEXT NOT NULL, applied_at REAL NOT NULL);\n{sql}\n"
                  f"INSERT INTO schema_migrations VALUES ({version}, '{name}', {time.time()});\nCOMMIT;")
        try:
            conn.executescript(script)
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise KBError(f"migration {version:04d}_{name} failed on {path}: {exc}; nothing of it was applied") from exc
        ran.append(version)
    return ran


def open_kb(path: Path | None = None, upto: int | None = None) -> sqlite_utils.Database:
    """Open (creating if needed) and migrate the knowledge base at `path`."""
    path = Path(path or default_path())
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA synchronous=NORMAL")
    except sqlite3.DatabaseError as exc:
        raise KBError(f"{path} is not a knowledge base (SQLite said: {exc})") from exc
    # Two processes opening a fresh file at once must not both run migration 1.
    with open(str(path) + ".migrate.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            migrate(conn, path, upto)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise KBError(f"{path} is not a knowledge base (SQLite said: {exc})") from exc
        except KBError:
            conn.close()
            raise
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
