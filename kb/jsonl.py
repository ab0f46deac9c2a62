"""Export and import a knowledge base as JSON lines; merging two without duplicates."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlite_utils
from pydantic import ValidationError

from .db import transaction
from .errors import KBInputError
from .models import Entry, EntryIn, Outcome
from .records import _entry, upsert_entry


def export_lines(db: sqlite_utils.Database) -> Iterator[str]:
    """Every outcome, then every entry, one JSON object per line with a "type" field."""
    for row in db.query("SELECT * FROM outcomes ORDER BY created_at, id"):
        yield json.dumps({"type": "outcome", **row}, sort_keys=True)
    for row in db.query("SELECT * FROM entries ORDER BY created_at, id"):
        yield json.dumps({"type": "entry", **_entry(row).model_dump()}, sort_keys=True)


def export_file(db: sqlite_utils.Database, path: Path) -> int:
    """Write the export to `path`; returns lines written."""
    count = 0
    with open(path, "w") as out:
        for line in export_lines(db):
            out.write(line + "\n")
            count += 1
    return count


def _entry_in(data: dict[str, Any]) -> EntryIn:
    # An exported entry as the input upsert_entry merges: stored fields only, its value decoded again.
    value = None if data["value"] is None else json.loads(data["value"])
    fields = {k: v for k, v in data.items() if k in EntryIn.model_fields and k != "value"}
    return EntryIn.model_validate(fields | {"value": value})


def _parse(path: Path) -> list[tuple[str, dict[str, Any]]]:
    try:
        text = path.read_text()
    except UnicodeDecodeError as exc:
        raise KBInputError(f"{path}: not a UTF-8 text file") from exc
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            kind = data.pop("type")
            if kind == "outcome":
                Outcome.model_validate(data)
                unknown = sorted(set(data) - set(Outcome.model_fields))
                if unknown:  # the insert would fail on them half way through the file
                    raise ValueError(f"unknown fields {unknown}")
            elif kind == "entry":
                Entry.model_validate(data)
                _entry_in(data)  # what the merge will write must be valid too, not only what was stored
            else:
                raise ValueError(f"unknown type {kind!r}")
        except (ValueError, KeyError, AttributeError, TypeError, ValidationError) as exc:
            raise KBInputError(f"{path}:{number}: not an outcome or entry record: {str(exc)[:300]}") from exc
        records.append((kind, data))
    return records


def import_file(db: sqlite_utils.Database, path: Path) -> dict[str, int]:
    """Merge an export into this knowledge base: outcomes by id, entries by natural key. All or nothing."""
    records = _parse(path)  # validate every line before writing any
    added = {"outcomes": 0, "entries_added": 0, "entries_merged": 0, "outcomes_skipped": 0}
    with transaction(db):
        for kind, data in records:
            if kind == "outcome":
                db["outcomes"].insert(data, ignore=True)
                inserted = db.execute("SELECT changes()").fetchone()[0]
                added["outcomes" if inserted else "outcomes_skipped"] += 1
                continue
            exists = db.execute("SELECT 1 FROM entries WHERE key = ?", [data["key"]]).fetchone()
            upsert_entry(db, _entry_in(data))
            added["entries_merged" if exists else "entries_added"] += 1
    return added
