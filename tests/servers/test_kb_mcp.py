"""The knowledge-base MCP server in-process: record, priors, distill, query, export, and bad inputs."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client

from arbor.servers.kb import create_server

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
