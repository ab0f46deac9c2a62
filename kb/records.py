"""Writing and reading outcomes and entries."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import sqlite_utils

from .db import transaction
from .errors import KBInputError
from .models import Entry, EntryIn, Outcome, OutcomeIn, canonical

ENTRY_JSON = ("stats", "outcome_ids")


def record_outcome(db: sqlite_utils.Database, outcome: OutcomeIn) -> Outcome:
    """Store one evaluated action; the same id twice is stored once."""
    row = {
        "id": outcome.id or uuid.uuid4().hex,
        "campaign": outcome.campaign,
        **outcome.context.model_dump(),
        "category": outcome.change.category,
        "layer": outcome.change.layer,
        "knob": outcome.change.knob,
        "value": canonical(outcome.change.value),
        "patch_summary": outcome.change.patch_summary,
        "result": outcome.result,
        "gain": outcome.gain,
        "gain_low": outcome.gain_low,
        "gain_high": outcome.gain_high,
        "cost_s": outcome.cost_s,
        "diagnosis": outcome.diagnosis,
        "created_at": time.time(),
    }
    with transaction(db):
        db["outcomes"].insert(row, ignore=True)
    return get_outcome(db, row["id"])


def get_outcome(db: sqlite_utils.Database, outcome_id: str) -> Outcome:
    """One outcome by id."""
    rows = list(db.query("SELECT * FROM outcomes WHERE id = ?", [outcome_id]))
    if not rows:
        raise KBInputError(f"no outcome {outcome_id!r}")
    return Outcome.model_validate(rows[0])


def outcomes(db: sqlite_utils.Database, campaign: str | None = None, limit: int = 1000) -> list[Outcome]:
    """Outcomes, newest first, optionally of one campaign."""
    where, args = ("WHERE campaign = ?", [campaign]) if campaign else ("", [])
    sql = f"SELECT * FROM outcomes {where} ORDER BY created_at DESC LIMIT ?"
    return [Outcome.model_validate(r) for r in db.query(sql, [*args, limit])]


def _entry(row: dict[str, Any]) -> Entry:
    return Entry.model_validate({k: json.loads(v) if k in ENTRY_JSON else v for k, v in row.items()})


def upsert_entry(db: sqlite_utils.Database, entry: EntryIn) -> Entry:
    """Insert an entry, or merge it into the one with the same natural key (outcomes unioned, text refreshed)."""
    key = entry.natural_key()
    now = time.time()
    with transaction(db):
        existing = list(db.query("SELECT * FROM entries WHERE key = ?", [key]))
        if existing:
            old = _entry(existing[0])
            ids = list(dict.fromkeys([*old.outcome_ids, *entry.outcome_ids]))
            db["entries"].update(old.id, {
                "title": entry.title, "body": entry.body, "stats": json.dumps(entry.stats or old.stats),
                "outcome_ids": json.dumps(ids), "constraint_text": entry.constraint_text or old.constraint_text,
                "framework_version": entry.framework_version or old.framework_version,
                "driver_version": entry.driver_version or old.driver_version, "updated_at": now})
            entry_id = old.id
        else:
            entry_id = uuid.uuid4().hex
            data = entry.model_dump(exclude={"key", "value"})
            data |= {"id": entry_id, "key": key, "value": canonical(entry.value), "stats": json.dumps(entry.stats),
                     "outcome_ids": json.dumps(entry.outcome_ids), "created_at": now, "updated_at": now}
            db["entries"].insert(data)
    return get_entry(db, entry_id)


def get_entry(db: sqlite_utils.Database, entry_id: str) -> Entry:
    """One entry by id (or unique id prefix of at least 6 characters)."""
    rows = list(db.query("SELECT * FROM entries WHERE id = ?", [entry_id]))
    if not rows and len(entry_id) >= 6:
        rows = list(db.query("SELECT * FROM entries WHERE id LIKE ? LIMIT 2", [entry_id + "%"]))
        if len(rows) > 1:
            raise KBInputError(f"entry id prefix {entry_id!r} is ambiguous")
    if not rows:
        raise KBInputError(f"no entry {entry_id!r}")
    return _entry(rows[0])


def entries(db: sqlite_utils.Database, kind: str | None = None, stack: str | None = None,
            limit: int = 100) -> list[Entry]:
    """Entries, most recently updated first, optionally filtered."""
    clauses, args = [], []
    if kind:
        clauses.append("kind = ?")
        args.append(kind)
    if stack:
        clauses.append("stack = ?")
        args.append(stack)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    sql = f"SELECT * FROM entries {where} ORDER BY updated_at DESC LIMIT ?"
    return [_entry(r) for r in db.query(sql, [*args, limit])]


def stats(db: sqlite_utils.Database) -> dict[str, Any]:
    """Counts by result and by entry kind, campaigns, schema version."""
    by_result = dict(db.execute("SELECT result, COUNT(*) FROM outcomes GROUP BY result").fetchall())
    by_kind = dict(db.execute("SELECT kind, COUNT(*) FROM entries GROUP BY kind").fetchall())
    campaigns = db.execute("SELECT COUNT(DISTINCT campaign) FROM outcomes").fetchone()[0]
    version = db.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0]
    return {"outcomes": sum(by_result.values()), "outcomes_by_result": by_result, "entries": sum(by_kind.values()),
            "entries_by_kind": by_kind, "campaigns": campaigns, "schema_version": version}
