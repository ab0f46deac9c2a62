"""Numbered SQL migrations for an SQLite file, recorded in a schema_migrations table.

Used by the knowledge base and the campaign store: files named NNNN_name.sql in a
package folder, applied in order inside BEGIN IMMEDIATE, each all or nothing; a file
whose recorded schema is newer than the code is refused and left untouched.
"""

from __future__ import annotations

import fcntl
import re
import sqlite3
import time
from importlib import resources
from pathlib import Path

from .errors import ArborError

MIGRATION = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(ArborError):
    """A database could not be brought to the current schema; it was not changed."""


def load(package: str, folder: str = "migrations") -> list[tuple[int, str, str]]:
    """(version, name, sql) of the migrations shipped in `package/folder`, in order."""
    found = []
    for item in resources.files(package).joinpath(folder).iterdir():
        match = MIGRATION.match(item.name)
        if match:
            found.append((int(match[1]), match[2], item.read_text()))
    return sorted(found)


def applied(conn: sqlite3.Connection) -> dict[int, str]:
    """Migrations recorded in the database."""
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_migrations'").fetchone()
    return dict(conn.execute("SELECT version, name FROM schema_migrations").fetchall()) if exists else {}


def migrate(conn: sqlite3.Connection, path: Path, known: list[tuple[int, str, str]], what: str,
            upto: int | None = None) -> list[int]:
    """Apply pending migrations (up to `upto`); returns the versions applied."""
    done = applied(conn)
    newest_known = known[-1][0]
    if done and max(done) > newest_known:
        raise MigrationError(f"{path} has schema version {max(done)}, newer than this Arbor knows "
                             f"({newest_known}); upgrade Arbor or use another {what}. The file was not changed.")
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
            raise MigrationError(f"migration {version:04d}_{name} failed on {path}: {exc}; nothing of it was "
                                 "applied") from exc
        ran.append(version)
    return ran


def connect(path: Path, known: list[tuple[int, str, str]], what: str, upto: int | None = None) -> sqlite3.Connection:
    """Open `path` in WAL mode with a busy timeout and bring it to the current schema."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Two processes opening a fresh file at once must not both switch it to WAL or run migration 1.
    with open(str(path) + ".migrate.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.DatabaseError as exc:
            raise MigrationError(f"{path} is not a {what} (SQLite said: {exc})") from exc
        try:
            migrate(conn, path, known, what, upto)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise MigrationError(f"{path} is not a {what} (SQLite said: {exc})") from exc
        except MigrationError:
            conn.close()
            raise
    return conn
