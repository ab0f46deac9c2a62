"""Seed knowledge shipped with the package: cited, qualitative, with no invented measurements."""

from __future__ import annotations

import json
from importlib import resources

import sqlite_utils

from .db import transaction
from .models import EntryIn
from .records import upsert_entry

SEEDS_VERSION = "1"


def seed_entries() -> list[EntryIn]:
    """The shipped seed entries."""
    text = resources.files(__package__).joinpath("seeds.jsonl").read_text()
    return [EntryIn.model_validate(json.loads(line)) for line in text.splitlines() if line.strip()]


def load_seeds(db: sqlite_utils.Database) -> int:
    """Add or refresh the seed entries once per seeds version; returns how many were written."""
    current = db.execute("SELECT value FROM meta WHERE name = 'seeds_version'").fetchone()
    if current and current[0] == SEEDS_VERSION:
        return 0
    seeds = seed_entries()
    with transaction(db):
        for entry in seeds:
            upsert_entry(db, entry)
        db.execute("INSERT OR REPLACE INTO meta (name, value) VALUES ('seeds_version', ?)", [SEEDS_VERSION])
    return len(seeds)
