"""`arbor-host kb …` on a real knowledge-base file."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from arbor.host.cli import app
from arbor.kb.records import record_outcome
from arbor.kb.store import open_store
from tests.kb.test_store import outcome

runner = CliRunner()


def kb(*args: str, path: Path) -> object:
    return runner.invoke(app, ["kb", *args, "--kb", str(path)])


def test_stats_list_search_show(tmp_path: Path) -> None:
    path = tmp_path / "kb.sqlite"
    stats = kb("stats", path=path)
    assert stats.exit_code == 0 and json.loads(stats.stdout)["entries"] >= 10
    listed = kb("list", "--kind", "failure_mode", path=path)
    assert listed.exit_code == 0 and "quantized V cache" in listed.stdout
    found = kb("search", "preemption KV cache", "--stack", "vllm", "--hardware", "MI300X", path=path)
    assert found.exit_code == 0 and "vLLM: frequent preemption" in found.stdout.splitlines()[0]
    entry_id = found.stdout.split()[1]
    shown = kb("show", entry_id, path=path)
    assert shown.exit_code == 0 and json.loads(shown.stdout)["source"].startswith("https://docs.vllm.ai")


def test_export_import_between_files(tmp_path: Path) -> None:
    a, b = tmp_path / "a.sqlite", tmp_path / "b.sqlite"
    record_outcome(open_store(a), outcome(id="shared"))
    assert kb("export", str(tmp_path / "a.jsonl"), path=a).exit_code == 0
    first = kb("import", str(tmp_path / "a.jsonl"), path=b)
    second = kb("import", str(tmp_path / "a.jsonl"), path=b)
    assert json.loads(first.stdout)["outcomes"] == 1 and json.loads(second.stdout)["outcomes"] == 0


def test_clear_errors(tmp_path: Path) -> None:
    path = tmp_path / "kb.sqlite"
    assert "no entry 'nope'" in kb("show", "nope", path=path).output
    assert "no file" in kb("import", str(tmp_path / "missing.jsonl"), path=path).output
    assert "unknown kind" in kb("list", "--kind", "rumour", path=path).output
    bogus = tmp_path / "bogus.sqlite"
    bogus.write_text("not sqlite" * 200)
    result = kb("stats", path=bogus)
    assert result.exit_code == 1 and "is not a knowledge base" in result.output and "Traceback" not in result.output


def test_export_anywhere_and_a_bad_import_changes_nothing(tmp_path: Path, monkeypatch) -> None:
    path, elsewhere = tmp_path / "kb.sqlite", tmp_path / "elsewhere"
    record_outcome(open_store(path), outcome(id="mine"))
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # neither file below is under the default runs root (./runs)
    deep = tmp_path / "out" / "deep" / "kb.jsonl"
    assert kb("export", str(deep), path=path).exit_code == 0 and deep.is_file()
    relative = kb("export", "here.jsonl", path=path)
    assert relative.exit_code == 0 and "to here.jsonl" in relative.stdout and (elsewhere / "here.jsonl").is_file()
    bad = tmp_path / "bad.jsonl"
    bad.write_text(deep.read_text().replace('"mine"', '"other"') + "not json\n")
    before = kb("stats", path=path).stdout
    result = kb("import", str(bad), path=path)
    assert result.exit_code == 1 and result.output.startswith("error: ") and "bad.jsonl:" in result.output
    assert "Traceback" not in result.output and kb("stats", path=path).stdout == before
