"""The servers as separate processes: stdio by default, streamable HTTP with loopback and bearer rules."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from mcp import Client, StdioServerParameters

from tests.conftest import free_port, wait_port

pytestmark = pytest.mark.anyio
BIN = Path(sys.executable).parent


async def test_stdio_server_lists_and_calls_tools(tmp_path: Path) -> None:
    params = StdioServerParameters(command=str(BIN / "arbor-mcp-serving"), args=["--runs-root", str(tmp_path)],
                                   env={"PATH": os.environ["PATH"], "HOME": os.environ["HOME"]})
    async with Client(params) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert "launch_server" in names
        out = await client.call_tool("list_knobs", {"stack": "vllm"})
        assert any(k["name"] == "max_num_seqs" for k in out.structured_content["knobs"])


@pytest.mark.parametrize(("script", "tool"), [("arbor-mcp-profiler", "list_profilers"),
                                            ("arbor-mcp-kernels", "list_toolchains"),
                                            ("arbor-mcp-bench", "run_sweep"),
                                            ("arbor-mcp-kb", "action_priors")])
async def test_every_server_starts_on_stdio(tmp_path: Path, script: str, tool: str) -> None:
    flag = "--tasks-root" if script == "arbor-mcp-kernels" else "--runs-root"
    extra = ["--kb", str(tmp_path / "kb.sqlite")] if script == "arbor-mcp-kb" else []
    params = StdioServerParameters(command=str(BIN / script), args=[flag, str(tmp_path), *extra],
                                   env={"PATH": os.environ["PATH"], "HOME": os.environ["HOME"]})
    async with Client(params) as client:
        assert tool in {t.name for t in (await client.list_tools()).tools}


def _start_http(*args: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen([str(BIN / "arbor-mcp-bench"), "--http", "--port", str(port), *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_port(port, 30)
    return proc, port


async def test_http_on_loopback() -> None:
    proc, port = _start_http()
    try:
        async with Client(f"http://127.0.0.1:{port}/mcp") as client:
            names = {t.name for t in (await client.list_tools()).tools}
        assert {"run_bench", "run_sweep", "compare_results", "parity_check"} <= names
    finally:
        proc.terminate()
        proc.wait(10)


async def test_http_bearer_token_is_enforced() -> None:
    proc, port = _start_http("--token", "s3cret")
    try:
        async with httpx.AsyncClient() as http:
            denied = await http.post(f"http://127.0.0.1:{port}/mcp", json={})
        assert denied.status_code == 401
        auth = httpx.AsyncClient(headers={"Authorization": "Bearer s3cret"})
        from mcp.client.streamable_http import streamable_http_client

        async with Client(streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=auth)) as client:
            assert (await client.list_tools()).tools
    finally:
        proc.terminate()
        proc.wait(10)


def test_non_loopback_bind_requires_a_token() -> None:
    done = subprocess.run([str(BIN / "arbor-mcp-serving"), "--http", "--host", "0.0.0.0"],
                          capture_output=True, text=True, timeout=30, env=os.environ | {"ARBOR_MCP_TOKEN": ""})
    assert done.returncode == 2
    assert "requires --token" in done.stderr


def test_bad_stacks_file_is_a_clean_error(tmp_path: Path) -> None:
    bad = tmp_path / "stacks.toml"
    bad.write_text('[stack.x]\nkind = "tgi"\nmodel = "m"\n')
    done = subprocess.run([str(BIN / "arbor-mcp-serving"), "--stacks", str(bad)], capture_output=True, text=True,
                          timeout=30, stdin=subprocess.DEVNULL)
    assert done.returncode == 1
    assert "stack 'x': kind" in done.stderr and "Traceback" not in done.stderr


async def test_stacks_file_is_served_over_stdio(tmp_path: Path) -> None:
    stacks = tmp_path / "stacks.toml"
    stacks.write_text('[stack.h100-llama]\nkind = "vllm"\nmodel = "meta-llama/Llama-3.1-8B-Instruct"\n')
    params = StdioServerParameters(command=str(BIN / "arbor-mcp-serving"),
                                   args=["--runs-root", str(tmp_path), "--stacks", str(stacks)],
                                   env={"PATH": os.environ["PATH"], "HOME": os.environ["HOME"]})
    async with Client(params) as client:
        out = (await client.call_tool("list_stacks", {})).structured_content["stacks"]
    assert "h100-llama" in [s["name"] for s in out]
