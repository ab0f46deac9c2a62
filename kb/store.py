"""The one way the edges open a knowledge base: migrated, and seeded unless asked not to be."""

from __future__ import annotations

import tempfile
from pathlib import Path

import sqlite_utils

from .db import open_kb
from .seeds import load_seeds


def open_store(path: Path | None = None, seed: bool = True) -> sqlite_utils.Database:
    """Open the knowledge base at `path` (default location if None), with the shipped seed entries."""
    db = open_kb(path)
    if seed:
        load_seeds(db)
    return db


def fresh_store(folder: Path | None = None, seed: bool = True) -> tuple[sqlite_utils.Database, Path]:
    """A new, isolated knowledge base (a reproducibility run learns nothing from, and leaks nothing to, others)."""
    folder = Path(folder or tempfile.mkdtemp(prefix="arbor-kb-"))
    path = folder / "kb.sqlite"
    if path.exists():
        raise FileExistsError(f"{path} already exists; a fresh knowledge base needs a new place")
    return open_store(path, seed), path
