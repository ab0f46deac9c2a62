"""The knowledge-base MCP server in-process: record, priors, distill, query, list, show, export, import, bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mcp import Client

from arbor.kb.jsonl import export_file
from arbor.kb.models import Entry
from arbor.kb.records import record_outcome
from arbor.kb.store import open_store
from arbor.servers.kb import create_server
from tests.kb.test_store import outcome

pytestmark = pytest.mark.anyio
CTX = {"stack": "llamacpp", "hardware": "cpu:test", "model_family": "smollm2"}


async def test_record_priors_distill_query_export(tmp_path: Path) -> None:
    async with Client(create_server(tmp_path / "kb.sqlite", tmp_path)) as client:
        before = (await client.call_tool("action_priors", {"context": CTX, "change": {
            "category": "config", "knob": "parallel", "value": 16}})).structured_content
        for value, result, gain in ((16, "kept", 0.4), (32, "crashed", None)):
            out = await client.call_tool("record_outcome", {"campaign": "c1", "context": CTX, "change": {
                "category": "config", "knob": "parallel", "value": value}, "result": result, "gain": gain})
            assert not out.is_error, out.content
        after = (await client.call_tool("action_priors", {"context": CTX, "change": {
            "category": "config", "knob": "parallel", "value": 16}})).structured_content
        assert before["level"] in ("global", "category") and after["level"] == "exact"
        assert after["speedup"] > before["speedup"]
        distilled = (await client.call_tool("distill_campaign", {"campaign": "c1"})).structured_content
        assert {e["kind"] for e in distilled["entries"]} == {"technique", "failure_mode", "campaign_summary"}
        hits = (await client.call_tool("query", {"query": "parallel crashes", "context": CTX})).structured_content
        assert hits["hits"][0]["entry"]["kind"] == "failure_mode"
        exported = (await client.call_tool("export", {"path": "kb.jsonl"})).structured_content
        assert exported["records"] >= 2 + 3 and Path(exported["path"]).is_file()
        stats = (await client.call_tool("kb_stats", {})).structured_content["stats"]
        assert stats["outcomes"] == 2


@pytest.mark.parametrize(("tool", "args", "message"), [
    ("record_outcome", {"campaign": "c", "context": CTX, "change": {"category": "config"}, "result": "maybe"},
     "result"),
    ("record_outcome", {"campaign": "c", "context": CTX, "change": {"category": "config"}, "result": "kept",
                        "gain": 500}, "gain"),
    ("record_outcome", {"campaign": "c", "context": {"stack": "vllm"}, "change": {"category": "config"},
                        "result": "kept"}, "hardware"),
    ("action_priors", {"context": CTX, "change": {"category": "Config Stuff!"}}, "category"),
    ("export", {"path": "../../escape.jsonl"}, "outside the run folder"),
    ("query", {"limit": 0}, "limit"),
])
async def test_bad_inputs(tmp_path: Path, tool: str, args: dict, message: str) -> None:
    async with Client(create_server(tmp_path / "kb.sqlite", tmp_path)) as client:
        out = await client.call_tool(tool, args)
        stats = (await client.call_tool("kb_stats", {})).structured_content["stats"]
    assert out.is_error and message in out.content[0].text
    assert stats["outcomes"] == 0


async def test_list_get_export_import(tmp_path: Path) -> None:
    async with Client(create_server(tmp_path / "a.sqlite", tmp_path)) as a:
        out = await a.call_tool("record_outcome", {"id": "o1", "campaign": "c1", "context": CTX, "change": {
            "category": "config", "knob": "parallel", "value": 16}, "result": "kept", "gain": 0.3})
        assert not out.is_error, out.content
        listed = (await a.call_tool("list_entries", {"kind": "technique", "stack": "vllm", "limit": 2}))
        entries = [Entry.model_validate(e) for e in listed.structured_content["entries"]]
        assert len(entries) == 2 and all(e.kind == "technique" and e.stack == "vllm" for e in entries)
        got = (await a.call_tool("get_entry", {"id": entries[0].id[:8]})).structured_content
        assert Entry.model_validate(got) == entries[0]
        assert not (await a.call_tool("export", {"path": "a.jsonl"})).is_error
    async with Client(create_server(tmp_path / "b.sqlite", tmp_path)) as b:
        first = (await b.call_tool("import_records", {"path": "a.jsonl"})).structured_content
        again = (await b.call_tool("import_records", {"path": "a.jsonl"})).structured_content
        stats = (await b.call_tool("kb_stats", {})).structured_content["stats"]
    assert first["outcomes"] == 1 and first["entries_merged"] >= 10 and first["entries_added"] == 0
    assert again["outcomes"] == 0 and again["outcomes_skipped"] == 1 and stats["outcomes"] == 1


def _export_lines(tmp_path: Path) -> tuple[str, dict]:
    """One exported outcome line, and one exported entry as a dict."""
    db = open_store(tmp_path / "source.sqlite")
    record_outcome(db, outcome(id="o1"))
    export_file(db, tmp_path / "source.jsonl")
    lines = (tmp_path / "source.jsonl").read_text().splitlines()
    entry = next(json.loads(line) for line in lines if json.loads(line)["type"] == "entry")
    return next(line for line in lines if json.loads(line)["type"] == "outcome"), entry


@pytest.mark.parametrize(("bad", "message"), [
    (lambda entry: json.dumps(entry | {"title": "ab", "key": "new"}), "a.jsonl:2: not an outcome or entry"),
    (lambda entry: json.dumps(entry | {"value": "{not json", "key": "new"}), "a.jsonl:2:"),
    (lambda entry: json.dumps({"type": "rumour"}), "unknown type 'rumour'"),
    (lambda entry: "not json at all", "a.jsonl:2:"),
])
async def test_a_bad_import_writes_nothing(tmp_path: Path, bad, message: str) -> None:
    good_outcome, entry = _export_lines(tmp_path)
    (tmp_path / "a.jsonl").write_text(f"{good_outcome}\n{bad(entry)}\n")
    async with Client(create_server(tmp_path / "kb.sqlite", tmp_path)) as client:
        before = (await client.call_tool("kb_stats", {})).structured_content["stats"]
        listed = (await client.call_tool("list_entries", {"limit": 1000})).structured_content
        out = await client.call_tool("import_records", {"path": "a.jsonl"})
        after = (await client.call_tool("kb_stats", {})).structured_content["stats"]
        relisted = (await client.call_tool("list_entries", {"limit": 1000})).structured_content
    assert out.is_error and message in out.content[0].text
    assert after == before and after["outcomes"] == 0 and relisted == listed


async def test_an_outcome_with_unknown_fields_or_binary_file_writes_nothing(tmp_path: Path) -> None:
    good_outcome, _ = _export_lines(tmp_path)
    extra = json.loads(good_outcome) | {"id": "o2", "surprise": 1}
    (tmp_path / "extra.jsonl").write_text(f"{good_outcome}\n{json.dumps(extra)}\n")
    (tmp_path / "binary.jsonl").write_bytes(b"\xff\xfe\x00garbage")
    async with Client(create_server(tmp_path / "kb.sqlite", tmp_path)) as client:
        unknown = await client.call_tool("import_records", {"path": "extra.jsonl"})
        binary = await client.call_tool("import_records", {"path": "binary.jsonl"})
        stats = (await client.call_tool("kb_stats", {})).structured_content["stats"]
    assert unknown.is_error and "unknown fields ['surprise']" in unknown.content[0].text
    assert binary.is_error and "not a UTF-8 text file" in binary.content[0].text
    assert stats["outcomes"] == 0


@pytest.mark.parametrize(("tool", "args", "message"), [
    ("list_entries", {"kind": "rumour"}, "kind"),
    ("list_entries", {"limit": 0}, "limit"),
    ("list_entries", {"colour": "red"}, "colour"),
    ("get_entry", {"id": "nope"}, "no entry 'nope'"),
    ("get_entry", {"id": ""}, "id"),
    ("import_records", {"path": "missing.jsonl"}, "no file"),
    ("import_records", {"path": "../../etc/passwd"}, "outside the run folder"),
    ("export", {"path": "."}, "cannot write"),
])
async def test_bad_inputs_of_the_new_tools(tmp_path: Path, tool: str, args: dict, message: str) -> None:
    async with Client(create_server(tmp_path / "kb.sqlite", tmp_path)) as client:
        before = (await client.call_tool("kb_stats", {})).structured_content["stats"]
        out = await client.call_tool(tool, args)
        after = (await client.call_tool("kb_stats", {})).structured_content["stats"]
    assert out.is_error and message in out.content[0].text
    assert after == before
