"""Migrations, records, import/export and concurrent writers on real SQLite files."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from arbor.kb import jsonl, records
from arbor.kb.db import latest_version, open_kb
from arbor.kb.errors import KBError, KBInputError
from arbor.kb.models import Change, Context, EntryIn, OutcomeIn
from arbor.kb.retrieve import retrieve
from arbor.kb.store import fresh_store, open_store

CTX = Context(stack="llamacpp", hardware="cpu:test", model_family="smollm2")


def outcome(result: str = "kept", knob: str = "parallel", value: object = 16, gain: float | None = 0.2,
            campaign: str = "c1", **extra: object) -> OutcomeIn:
    return OutcomeIn(campaign=campaign, context=extra.pop("context", CTX),
                     change=Change(category="config", knob=knob, value=value), result=result, gain=gain, **extra)


def test_migrations_on_an_empty_file(tmp_path: Path) -> None:
    db = open_kb(tmp_path / "kb.sqlite")
    versions = [r[0] for r in db.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()]
    assert versions == list(range(1, latest_version() + 1))
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_migrations_bring_an_older_file_forward_keeping_its_data(tmp_path: Path) -> None:
    path = tmp_path / "kb.sqlite"
    old = open_kb(path, upto=1)
    assert "entries_fts" not in old.table_names()
    old.execute("INSERT INTO entries (id, key, kind, title, body, source, created_at, updated_at) VALUES "
                "('e1', 'k1', 'technique', 'Ancient wisdom about batching', 'bigger batches', 'doc', 0, 0)")
    old.conn.close()
    db = open_kb(path)
    assert db.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0] == latest_version()
    assert [h.entry.id for h in retrieve(db, "ancient batching")] == ["e1"], "the FTS index covers old rows"


def test_a_newer_database_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "kb.sqlite"
    db = open_kb(path)
    db.execute("INSERT INTO schema_migrations VALUES (99, 'from_the_future', 0)")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.conn.close()
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(KBError, match="schema version 99, newer than this Arbor knows"):
        open_kb(path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "kb.sqlite"
    path.write_text("this is a text file, not SQLite" * 100)
    with pytest.raises(KBError, match="is not a knowledge base"):
        open_kb(path)


def test_records_validate_and_store_once(tmp_path: Path) -> None:
    db = open_store(tmp_path / "kb.sqlite", seed=False)
    stored = records.record_outcome(db, outcome(id="fixed-id"))
    records.record_outcome(db, outcome(id="fixed-id"))
    assert records.stats(db)["outcomes"] == 1 and stored.value == "16"
    with pytest.raises(ValueError, match="gain_high is below gain_low"):
        outcome(gain_low=0.3, gain_high=0.1)
    with pytest.raises(ValueError):
        OutcomeIn(campaign="c", context=CTX, change=Change(category="config"), result="maybe")


def test_entries_merge_on_their_natural_key(tmp_path: Path) -> None:
    db = open_store(tmp_path / "kb.sqlite", seed=False)
    first = records.upsert_entry(db, EntryIn(kind="technique", title="tip one", body="body one", stack="vllm",
                                             knob="x", value=1, source="c1", outcome_ids=["a"]))
    second = records.upsert_entry(db, EntryIn(kind="technique", title="tip two", body="body two", stack="vllm",
                                              knob="x", value=1, source="c2", outcome_ids=["b", "a"]))
    assert first.id == second.id and second.outcome_ids == ["a", "b"] and second.title == "tip two"
    assert records.stats(db)["entries"] == 1


def test_export_import_merges_without_duplicates(tmp_path: Path) -> None:
    a = open_store(tmp_path / "a.sqlite")
    for i in range(3):
        records.record_outcome(a, outcome(id=f"o{i}", value=8 * (i + 1)))
    jsonl.export_file(a, tmp_path / "a.jsonl")
    b = open_store(tmp_path / "b.sqlite")
    records.record_outcome(b, outcome(id="b-only"))
    first = jsonl.import_file(b, tmp_path / "a.jsonl")
    again = jsonl.import_file(b, tmp_path / "a.jsonl")
    assert first["outcomes"] == 3 and again["outcomes"] == 0 and again["outcomes_skipped"] == 3
    assert records.stats(b)["outcomes"] == 4
    assert records.stats(b)["entries"] == records.stats(a)["entries"], "seed entries merged, not doubled"


def test_a_bad_line_imports_nothing(tmp_path: Path) -> None:
    a = open_store(tmp_path / "a.sqlite", seed=False)
    records.record_outcome(a, outcome(id="o1"))
    lines = list(jsonl.export_lines(a))
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join([*lines, json.dumps({"type": "outcome", "id": "x"})]) + "\n")
    b = open_store(tmp_path / "b.sqlite", seed=False)
    with pytest.raises(KBInputError, match=r"bad.jsonl:2: not an outcome or entry"):
        jsonl.import_file(b, bad)
    assert records.stats(b)["outcomes"] == 0


def test_fresh_stores_are_isolated(tmp_path: Path) -> None:
    one, path_one = fresh_store(tmp_path / "one")
    two, path_two = fresh_store(tmp_path / "two")
    records.record_outcome(one, outcome())
    assert records.stats(two)["outcomes"] == 0 and path_one != path_two
    with pytest.raises(FileExistsError):
        fresh_store(tmp_path / "one")


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "kb.sqlite"
    writer = textwrap.dedent(f"""
        import sys
        sys.path[:0] = {sys.path!r}
        from arbor.kb.store import open_store
        from arbor.kb.records import record_outcome
        from arbor.kb.models import OutcomeIn, Context, Change
        db = open_store({str(path)!r})
        ctx = Context(stack="vllm", hardware="MI300X")
        for i in range(150):
            record_outcome(db, OutcomeIn(campaign="w" + sys.argv[1], context=ctx,
                           change=Change(category="config", knob="max_num_seqs", value=i), result="reverted"))
    """)
    procs = [subprocess.Popen([sys.executable, "-c", writer, str(n)], stderr=subprocess.PIPE, text=True)
             for n in (1, 2)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    db = open_store(path)
    assert records.stats(db)["outcomes"] == 300
    assert {c: n for c, n in db.execute("SELECT campaign, COUNT(*) FROM outcomes GROUP BY campaign")} == {
        "w1": 150, "w2": 150}
