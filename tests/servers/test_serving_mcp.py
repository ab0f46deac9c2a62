"""Every tool of the serving MCP server through an in-process Client, with the real llama-server."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client

from arbor.servers.serving import create_server
from arbor.tools.procs import group_members
from arbor.tools.serving import metrics as prom
from arbor.tools.serving.stack import StackSpec
from tests.conftest import our_processes
from tests.support.orphans import kill, orphan_group

pytestmark = pytest.mark.anyio
TELEMETRY = Path(__file__).parent.parent / "fixtures" / "telemetry"


def serving(root: Path, stack: StackSpec | None = None, **more: StackSpec):
    stacks = ({"llama": stack} if stack else {}) | more
    return create_server(root, stacks, include_demo=False)


async def test_tools_are_listed_with_flat_input_schemas(tmp_path: Path) -> None:
    async with Client(serving(tmp_path)) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == {"list_knobs", "list_stacks", "launch_server", "launch_command", "server_status",
                          "probe_server", "stop_server", "list_servers", "read_log", "scrape_metrics",
                          "read_telemetry", "default_target"}
    launch = tools["launch_server"].input_schema
    assert set(launch["properties"]) == {"stack", "knobs", "run_dir", "name"}
    assert launch["required"] == ["stack"] and launch["additionalProperties"] is False
    assert launch["properties"]["stack"]["type"] == "string", "a stack is named, never described by the caller"
    assert tools["launch_server"].output_schema is not None
    command = tools["launch_command"].input_schema
    assert set(command["properties"]) == {"stack", "knobs", "port"} and command["additionalProperties"] is False
    assert all(p.get("description") for p in command["properties"].values())


async def test_list_stacks_shows_only_configured_ones(llama_stack: StackSpec, tmp_path: Path) -> None:
    async with Client(serving(tmp_path, llama_stack)) as client:
        out = (await client.call_tool("list_stacks", {})).structured_content["stacks"]
    assert [s["name"] for s in out] == ["llama"] and "parallel" in out[0]["knobs"]
    async with Client(create_server(tmp_path, {})) as client:
        names = [s["name"] for s in (await client.call_tool("list_stacks", {})).structured_content["stacks"]]
    assert names == ["demo"], "the built demo target is offered by default"


async def test_list_knobs(tmp_path: Path) -> None:
    async with Client(serving(tmp_path)) as client:
        result = await client.call_tool("list_knobs", {"stack": "llamacpp"})
    names = {k["name"] for k in result.structured_content["knobs"]}
    assert {"parallel", "threads", "flash_attn", "cache_type_k"} <= names


@pytest.mark.llama
async def test_launch_status_probe_logs_metrics_telemetry_stop(llama_stack: StackSpec, tmp_path: Path) -> None:
    server = serving(tmp_path, llama_stack)
    progress: list[tuple[float, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, message))

    async with Client(server) as client:
        out = await client.call_tool("launch_server", {"stack": "llama", "knobs": {"parallel": 2},
                                                       "run_dir": "run1", "name": "s1"},
                                     progress_callback=on_progress)
        assert not out.is_error, out.content
        info = out.structured_content["server"]
        assert out.structured_content["ok"] and info["state"] == "ready"
        assert Path(info["log_path"]).is_relative_to(tmp_path / "run1" / "logs")
        assert progress and progress[-1][1] == "ready"
        status = (await client.call_tool("server_status", {"server_id": "s1"})).structured_content
        assert status["state"] == "ready" and status["pid"] == info["pid"]
        probe = (await client.call_tool("probe_server", {"server_id": "s1"})).structured_content
        assert probe == {"healthy": True, "failure": None}
        log = (await client.call_tool("read_log", {"server_id": "s1", "lines": 5})).structured_content
        assert len(log["lines"]) == 5 and log["first_line"] > 1
        metrics = (await client.call_tool("scrape_metrics", {"server_id": "s1", "prefix": "llamacpp:"}))
        assert metrics.structured_content["key"]["llamacpp:tokens_predicted_total"] >= 1
        # The fixture the parser is tested on is what this build exports: the same key readings, no KV gauge.
        captured = prom.key_values(prom.parse((TELEMETRY / "llamacpp_metrics.txt").read_text()))
        assert set(metrics.structured_content["key"]) == set(captured)
        assert all(s["name"].startswith("llamacpp:") for s in metrics.structured_content["samples"])
        tele = (await client.call_tool("read_telemetry", {"server_id": "s1"})).structured_content
        assert tele["process"]["pids"] == [info["pid"]] and tele["process"]["rss_bytes"] > 50_000_000
        listed = (await client.call_tool("list_servers", {})).structured_content["servers"]
        assert [s["id"] for s in listed] == ["s1"]
        stopped = (await client.call_tool("stop_server", {"server_id": "s1"})).structured_content
        assert stopped["state"] == "stopped" and stopped["survivors"] == []
    assert group_members(info["pid"]) == []


@pytest.mark.llama
async def test_launch_failure_is_a_structured_outcome(llama_stack: StackSpec, tmp_path: Path) -> None:
    broken = llama_stack.model_copy(update={"model": str(tmp_path / "missing.gguf")})
    async with Client(serving(tmp_path, broken=broken)) as client:
        out = await client.call_tool("launch_server", {"stack": "broken"})
    assert not out.is_error
    assert out.structured_content["ok"] is False
    failure = out.structured_content["failure"]
    assert failure["kind"] == "model_not_found" and failure["evidence"]


@pytest.mark.parametrize(("args", "message"), [
    ({"knobs": {"paralel": 4}}, "unknown knob"),
    ({"knobs": {"parallel": "four"}}, "takes an integer"),
    ({"knobs": {"parallel": -2}}, "must be >= 1"),
    ({"run_dir": "../../etc"}, "outside the run folder"),
    ({"run_dir": "/tmp"}, "outside the run folder"),
    ({"name": "bad name; rm"}, "name"),
    ({"stack_extra": 1}, "stack_extra"),
    ({"stack": "vllm-prod"}, "unknown stack 'vllm-prod'"),
    ({"stack": {"kind": "generic", "model": "m", "command": ["/bin/sh", "-c", "id"]}}, "stack"),
    ({"knobs": {"parallel": 2, "threads": "2; rm -rf /"}}, "takes an integer"),
])
async def test_bad_launch_input_is_an_error_and_starts_nothing(llama_stack: StackSpec, tmp_path: Path,
                                                               args: dict, message: str) -> None:
    before = our_processes(llama_stack.binary)
    server = serving(tmp_path / "root", llama_stack)
    async with Client(server) as client:
        out = await client.call_tool("launch_server", {"stack": "llama"} | args)
    assert out.is_error
    assert message in out.content[0].text
    assert our_processes(llama_stack.binary) == before
    assert server.fleet.list() == []
    assert not (tmp_path / "root").exists() or not any((tmp_path / "root").rglob("*.log"))


async def test_list_servers_reports_the_orphans_reaped_at_start(tmp_path: Path) -> None:
    leader, member = orphan_group(["llama-server", "--api-key=sk-live", "--port", "8080"], tmp_path / "old.log")
    try:
        async with Client(serving(tmp_path)) as client:
            out = (await client.call_tool("list_servers", {})).structured_content
        assert out["servers"] == []
        [reaped] = out["reaped"]
        assert (reaped["pid"], reaped["argv"], reaped["log_path"], reaped["survivors"]) == \
            (leader, ["llama-server", "--api-key=***", "--port", "8080"], str(tmp_path / "old.log"), [])
        assert group_members(leader) == []
    finally:
        kill(member)


def secret_stack() -> StackSpec:
    return StackSpec(kind="vllm", binary="/opt/vllm env/bin/vllm", model="/models/llama 8b",
                     base_args=["--api-key", "sk-live"], env={"HF_TOKEN": "hf_secret", "OMP_NUM_THREADS": "8"})


async def test_launch_command_masks_credentials(tmp_path: Path) -> None:
    async with Client(serving(tmp_path, prod=secret_stack())) as client:
        out = await client.call_tool("launch_command", {"stack": "prod", "knobs": {
            "max_num_seqs": 64, "attention_backend": "ROCM_AITER_FA", "rocm_use_aiter": True}})
        assert not out.is_error, out.content
        port = (await client.call_tool("launch_command", {"stack": "prod", "port": 9000})).structured_content
    got = out.structured_content
    assert got["argv"] == ["/opt/vllm env/bin/vllm", "serve", "/models/llama 8b", "--host", "127.0.0.1",
                           "--port", "8080", "--api-key", "***", "--attention-backend", "ROCM_AITER_FA",
                           "--max-num-seqs", "64"]
    assert got["env"] == {"HF_TOKEN": "***", "OMP_NUM_THREADS": "8", "VLLM_ROCM_USE_AITER": "1"}
    assert got["command"] == ("HF_TOKEN='***' OMP_NUM_THREADS=8 VLLM_ROCM_USE_AITER=1 "
                              "'/opt/vllm env/bin/vllm' serve '/models/llama 8b' --host 127.0.0.1 --port 8080 "
                              "--api-key '***' --attention-backend ROCM_AITER_FA --max-num-seqs 64")
    assert "sk-live" not in str(out.content) and "hf_secret" not in str(out.content)
    assert port["argv"][port["argv"].index("--port") + 1] == "9000"


@pytest.mark.parametrize(("args", "message"), [
    ({"knobs": {"max_num_seqs": 0}}, "must be >= 1"),
    ({"knobs": {"max_num_seqs": "64; rm -rf /"}}, "takes an integer"),
    ({"knobs": {"attention_backend": "FAST"}}, "takes one of"),
    ({"knobs": {"max_num_sequences": 64}}, "unknown knob"),
    ({"stack": "nope"}, "unknown stack 'nope'"),
    ({"port": 0}, "port"),
    ({"shell": True}, "shell"),
])
async def test_bad_launch_command_input_is_refused(tmp_path: Path, args: dict, message: str) -> None:
    server = serving(tmp_path / "root", prod=secret_stack())
    async with Client(server) as client:
        out = await client.call_tool("launch_command", {"stack": "prod"} | args)
    assert out.is_error and message in out.content[0].text
    assert server.fleet.list() == [] and not (tmp_path / "root").exists(), "nothing started, nothing written"


async def test_bad_stack_and_unknown_server(tmp_path: Path) -> None:
    async with Client(serving(tmp_path)) as client:
        bad_kind = await client.call_tool("list_knobs", {"stack": "tgi"})
        assert bad_kind.is_error and "stack" in bad_kind.content[0].text
        unknown = await client.call_tool("server_status", {"server_id": "nope"})
        assert unknown.is_error and "no server 'nope'" in unknown.content[0].text
        bad_lines = await client.call_tool("read_log", {"server_id": "x", "lines": -1})
        assert bad_lines.is_error and "lines" in bad_lines.content[0].text


async def test_default_target_reports_paths(tmp_path: Path, target) -> None:
    async with Client(serving(tmp_path)) as client:
        out = (await client.call_tool("default_target", {})).structured_content
    assert out["ready"] is True and out["model_path"].endswith(".gguf")
