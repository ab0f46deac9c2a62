"""Retrieval: BM25 over entry text plus structured similarity of context, with the reasons for each hit."""

from __future__ import annotations

import re

import sqlite_utils

from .models import Context, Hit
from .records import _entry
from .staleness import stale_reason

WEIGHTS = {"stack": 0.5, "hardware": 0.5, "model_family": 0.3, "category": 0.4, "knob": 0.6}
TEXT_WEIGHT = 2.0
CANDIDATES = 300
TOKEN = re.compile(r"[A-Za-z0-9_]+")


def fts_query(text: str) -> str | None:
    """A safe FTS5 query: every word quoted (no operators from the caller), any may match."""
    words = TOKEN.findall(text)
    return " OR ".join(f'"{w}"' for w in words[:32]) or None


def retrieve(db: sqlite_utils.Database, query: str | None = None, context: Context | None = None,
             category: str | None = None, knob: str | None = None, limit: int = 10) -> list[Hit]:
    """Entries ranked by text relevance and context similarity; each hit says why it matched."""
    wanted = {"stack": context.stack if context else None, "hardware": context.hardware if context else None,
              "model_family": context.model_family if context else None, "category": category, "knob": knob}
    text_scores: dict[int, float] = {}
    match = fts_query(query) if query else None
    if match:
        rows = db.execute("SELECT rowid, bm25(entries_fts) FROM entries_fts WHERE entries_fts MATCH ? "
                          "ORDER BY bm25(entries_fts) LIMIT ?", [match, CANDIDATES]).fetchall()
        best = max((-score for _, score in rows), default=0.0) or 1.0
        text_scores = {rowid: -score / best for rowid, score in rows}
    # Structured similarity is scored in SQL, so only the best candidates come back to Python.
    given = {k: v for k, v in wanted.items() if v is not None}
    structured: dict[int, float] = {}
    if given:
        score_sql = " + ".join(f"({k} IS ?) * {WEIGHTS[k]}" for k in given)
        where = " OR ".join(f"{k} = ?" for k in given)
        sql = f"SELECT rowid, {score_sql} AS s FROM entries WHERE {where} ORDER BY s DESC LIMIT ?"
        structured = dict(db.execute(sql, [*given.values(), *given.values(), CANDIDATES]).fetchall())
    if text_scores:
        # Text hits need their structured part too (it may be outside the structured top list).
        missing = [r for r in text_scores if r not in structured]
        if missing and given:
            score_sql = " + ".join(f"({k} IS ?) * {WEIGHTS[k]}" for k in given)
            marks = ",".join("?" * len(missing))
            structured |= dict(db.execute(f"SELECT rowid, {score_sql} FROM entries WHERE rowid IN ({marks})",
                                          [*given.values(), *missing]).fetchall())
    totals = {r: TEXT_WEIGHT * text_scores.get(r, 0.0) + structured.get(r, 0.0)
              for r in set(text_scores) | set(structured)}
    ranked = sorted((r for r, score in totals.items() if score > 0), key=lambda r: -totals[r])[: limit * 3]
    if not ranked:
        return []
    marks = ",".join("?" * len(ranked))
    rows = {row["rowid"]: row for row in db.query(f"SELECT rowid, * FROM entries WHERE rowid IN ({marks})", ranked)}
    hits = []
    for rowid in ranked:
        row = dict(rows[rowid])
        row.pop("rowid")
        reasons = [f"text match ({text_scores[rowid]:.2f})"] if rowid in text_scores else []
        reasons += [f"same {field.replace('_', ' ')} ({value})" for field, value in given.items()
                    if row.get(field) == value]
        stale = stale_reason(row.get("framework_version"), row.get("driver_version"), context) if context else None
        if stale:
            reasons.append(stale)
        hits.append(Hit(entry=_entry(row), score=totals[rowid], reasons=reasons, stale=stale is not None))
    hits.sort(key=lambda h: (-h.score, h.entry.title))
    return hits[:limit]
