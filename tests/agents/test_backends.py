"""Both backends on the wire: the Anthropic SDK against the local fake, the OpenAI path against llama-server."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client

from arbor.host.agents.anthropic_backend import AnthropicBackend
from arbor.host.agents.backend import BackendError, ToolSpec
from arbor.host.agents.bridge import Bridge, local_tool
from arbor.host.agents.ledger import Ledger
from arbor.host.agents.loop import run_agent
from arbor.host.agents.openai_backend import OpenAIBackend
from arbor.host.agents.workspace import ListFiles
from arbor.host.store import CampaignStore
from arbor.servers import kb as kb_server
from tests.support.fake_llm import FakeLLM, Reply, Turn

pytestmark = pytest.mark.anyio
KEY = "sk-ant-test-0123456789abcdef"
TOOL = ToolSpec(name="echo", description="echo", input_schema={"type": "object", "properties": {
    "x": {"type": "integer"}}, "required": ["x"]})


def echo_script(turn: Turn) -> Reply:
    if turn.n_assistant == 0:
        return Reply("calling", [("echo", {"x": 7})])
    return Reply(f"got {turn.results[0]['content']}")


async def test_anthropic_tool_use_caching_and_no_sampling_params() -> None:
    with FakeLLM(echo_script, KEY) as fake:
        backend = AnthropicBackend(KEY, fake.url, timeout_s=10, max_retries=0)
        first = await backend.complete("orchestrator", "claude-opus-5-5", "You are the Orchestrator of Arbor.",
                                       [{"role": "user", "content": "go"}], [TOOL], 256)
        assert first.stop_reason == "tool_use" and first.tool_calls[0].name == "echo"
        assert first.tool_calls[0].input == {"x": 7} and first.text == "calling"
        assert first.usage.cache_write_tokens > 0 and first.usage.cache_read_tokens == 0
        again = await backend.complete("orchestrator", "claude-opus-5-5", "You are the Orchestrator of Arbor.",
                                       [{"role": "user", "content": "go"}], [TOOL], 256)
        assert again.usage.cache_read_tokens > 0 and again.usage.cache_write_tokens == 0, "the prefix was cached"
        await backend.aclose()
        body, headers = fake.requests[0]["body"], fake.requests[0]["headers"]
        assert not {"temperature", "top_p", "top_k"} & set(body), "sampling parameters are refused by the API"
        assert body["system"][0]["cache_control"] == {"type": "ephemeral"}
        assert body["tools"][-1]["cache_control"] == {"type": "ephemeral"}
        assert headers["anthropic-version"]


async def test_anthropic_retries_overload_and_reports_failures_without_the_key() -> None:
    with FakeLLM(echo_script, KEY, fail_first=1) as fake:
        backend = AnthropicBackend(KEY, fake.url, timeout_s=10, max_retries=2)
        reply = await backend.complete("critic", "m", "x", [{"role": "user", "content": "go"}], [], 64)
        assert reply.tool_calls and len(fake.requests) == 1, "the 529 was retried by the SDK"
        wrong = AnthropicBackend("sk-ant-wrong-key-000000000000", fake.url, timeout_s=10, max_retries=0)
        with pytest.raises(BackendError, match="401") as info:
            await wrong.complete("critic", "m", "x", [{"role": "user", "content": "go"}], [], 64)
        assert "sk-ant-wrong" not in str(info.value)
        await backend.aclose()
        await wrong.aclose()


async def test_openai_tool_calls_through_the_loop_and_an_mcp_server(tmp_path: Path) -> None:
    """A scripted model calls an MCP tool (kb_stats is not the orchestrator's: refused) and a local one."""
    def script(turn: Turn) -> Reply:
        return [Reply("", [("kb__kb_stats", {}), ("kb__query", {"query": "flash attention", "limit": 2}),
                           ("workspace_list", {})]),
                Reply("", [("kb__query", {"nonsense": 1})]),
                Reply("finished")][turn.n_assistant]

    store = CampaignStore(tmp_path / "run")
    with FakeLLM(script, "local-token-123456") as fake:
        backend = OpenAIBackend(fake.url, "local-token-123456", timeout_s=10, max_retries=0)
        async with Client(kb_server.create_server(tmp_path / "kb.sqlite", tmp_path)) as kb:
            bridge = Bridge({"kb": kb}, "orchestrator", [local_tool("workspace_list", "files", ListFiles,
                                                                    lambda _: ["a.c"])])
            names = [s.name for s in await bridge.load()]
            assert "kb__query" in names and "kb__kb_stats" not in names and "kb__record_outcome" not in names
            run = await run_agent(backend, Ledger(store, 0.0), "orchestrator", "local", "You are the Orchestrator "
                                  "of Arbor.", "go", bridge)
        await backend.aclose()
    assert run.text == "finished" and run.turns == 3
    stats, query, files, bad = run.calls
    assert stats["is_error"] and "no tool 'kb__kb_stats'" in stats["result"]
    assert not query["is_error"] and "hits" in query["result"]
    assert files["result"] == '["a.c"]'
    assert bad["is_error"] and "nonsense" in bad["result"]
    second = fake.requests[1]["body"]["messages"]
    assert [m["role"] for m in second[-3:]] == ["tool", "tool", "tool"], "results go back as tool messages"
    rows = store.conn.execute("SELECT role, transcript FROM llm_calls").fetchall()
    assert len(rows) == 3 and all(r[0] == "orchestrator" for r in rows)
    assert all("local-token-123456" not in r[1] for r in rows)


@pytest.mark.llama
async def test_openai_backend_against_the_real_llama_server(llama_server) -> None:
    """The wire is real; SmolLM2-135M is far too small to be a useful agent, and the test does not pretend."""
    backend = OpenAIBackend(llama_server.base_url, None, timeout_s=120, max_retries=0)
    reply = await backend.complete("orchestrator", "smollm2", "You are a terse assistant.",
                                   [{"role": "user", "content": "Say hello."}], [TOOL], 16)
    await backend.aclose()
    assert reply.usage.input_tokens > 0 and reply.usage.output_tokens > 0
    assert reply.stop_reason in ("end_turn", "max_tokens", "tool_use")
    assert reply.text or reply.tool_calls
