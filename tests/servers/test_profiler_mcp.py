"""The profiler MCP server in-process: list, live profile of the real server, parse, diff, bad inputs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from mcp import Client

from arbor.servers.profiler import create_server
from arbor.tools.profiling.categorize import categorize
from arbor.tools.serving.launcher import ServerInfo

pytestmark = pytest.mark.anyio
FIX = Path(__file__).parent.parent / "fixtures" / "profiles"


async def test_list_profilers(tmp_path: Path) -> None:
    async with Client(create_server(tmp_path)) as client:
        out = (await client.call_tool("list_profilers", {})).structured_content["profilers"]
    by_name = {p["name"]: p for p in out}
    assert set(by_name) >= {"perf", "rocprofv3", "rocprof", "nsys", "ncu", "torch.profiler"}
    assert by_name["perf"]["available"] is (shutil.which("perf") is not None)
    assert by_name["rocprofv3"]["available"] is (shutil.which("rocprofv3") is not None)


@pytest.mark.llama
async def test_live_profile_then_diff(llama_server: ServerInfo, tmp_path: Path) -> None:
    workload = {"model": llama_server.model_name, "input_len": 16, "output_len": 16, "max_concurrency": 2,
                "num_prompts": 4}
    async with Client(create_server(tmp_path)) as client:
        out = await client.call_tool("profile_server", {"pid": llama_server.pid, "base_url": llama_server.base_url,
                                                        "workload": workload, "seconds": 2, "name": "before"})
        assert not out.is_error, out.content
        saved = out.structured_content
        profile = saved["result"]["profile"]
        assert Path(saved["path"]).is_file() and profile["tool"] == "perf" and profile["samples"] > 0
        # Where the time goes depends on this CPU's matmul path and on the load; what does not: the window
        # ran under load, it sampled the server's own code, nothing was dropped, time in the OpenMP runtime
        # (ggml links libgomp; its spin-wait can be most of the samples) is filed as omp_spin by its shared
        # object, and every other symbol by the category patterns (an unmatched one listed as unknown).
        assert saved["result"]["load_requests"] > 0 and saved["result"]["load_failed"] == 0
        kernels = profile["kernels"]
        assert any(k["module"] == Path(llama_server.argv[0]).name for k in kernels), "the server's own code"
        assert sum(k["share"] for k in kernels) == pytest.approx(1.0)
        assert sum(profile["categories"].values()) == pytest.approx(1.0)
        in_openmp = [k for k in kernels if k["module"] and k["module"].startswith("libgomp.so")]
        for k in kernels:
            expected = categorize(f"{k['name']} {k['module']}" if k["module"] else k["name"])
            assert k["category"] == ("omp_spin" if k in in_openmp else expected), k
        assert profile["categories"].get("omp_spin", 0.0) == pytest.approx(sum(k["share"] for k in in_openmp))
        assert profile["unknown"] == [k["name"] for k in kernels if k["category"] == "unknown"]
        same = await client.call_tool("diff_profiles", {"before": saved["path"], "after": saved["path"]})
        assert same.structured_content["bottleneck_moved"] is False
        rocm = tmp_path / "rocm"
        shutil.copytree(FIX / "rocprofv3", rocm)
        moved = await client.call_tool("diff_profiles", {"before": saved["path"], "after": "rocm"})
        shifts = {s["category"]: s["delta"] for s in moved.structured_content["shifts"]}
        assert shifts["communication"] > 0.05


async def test_parse_saves_when_named(tmp_path: Path) -> None:
    shutil.copy(FIX / "nsys_cuda_gpu_kern_sum.csv", tmp_path / "kern.csv")
    async with Client(create_server(tmp_path)) as client:
        out = await client.call_tool("parse_profile", {"path": "kern.csv", "name": "h100"})
    assert not out.is_error
    assert out.structured_content["profile"]["tool"] == "nsys"
    assert (tmp_path / "profiles" / "h100.json").is_file()


async def test_torch_profile_of_an_sglang_server(tmp_path: Path) -> None:
    from tests.conftest import start_stub

    proc, url = start_stub("--ttft-ms", "1", "--itl-ms", "1", "--sglang-profiler")
    try:
        async with Client(create_server(tmp_path)) as client:
            out = await client.call_tool("profile_server", {
                "pid": proc.pid, "base_url": url, "method": "torch", "api": "sglang", "trace_dir": "run/traces",
                "workload": {"model": "stub", "input_len": 4, "output_len": 4, "max_concurrency": 2,
                             "num_prompts": 4}, "seconds": 1, "run_dir": "run", "name": "sg"})
    finally:
        proc.kill()
        proc.wait()
    assert not out.is_error, out.content[0].text
    profile = out.structured_content["result"]["profile"]
    assert profile["tool"] == "torch.profiler" and profile["source"][0].startswith(str(tmp_path / "run" / "traces"))
    assert (tmp_path / "run" / "profiles" / "sg.json").is_file()


@pytest.mark.parametrize(("tool", "args", "message"), [
    ("parse_profile", {"path": "/etc/passwd"}, "outside the run folder"),
    ("parse_profile", {"path": "missing.csv"}, "no such file"),
    ("diff_profiles", {"before": "../x", "after": "y"}, "outside the run folder"),
    ("profile_server", {"pid": os.getpid(), "base_url": "http://127.0.0.1:9", "workload": {"model": "m"}},
     "does not listen on port 9"),
    ("profile_server", {"pid": 0, "base_url": "http://127.0.0.1:9", "workload": {"model": "m"}}, "pid"),
    ("profile_server", {"pid": 1, "base_url": "http://10.0.0.1:80", "workload": {"model": "m"}}, "not allowed"),
    ("profile_server", {"pid": 1, "base_url": "http://127.0.0.1:9", "workload": {"model": "m"}, "seconds": 0},
     "seconds"),
    ("profile_server", {"pid": 1, "base_url": "http://127.0.0.1:9", "workload": {"model": "m"}, "api": "tgi"},
     "api"),
])
async def test_bad_inputs(tmp_path: Path, tool: str, args: dict, message: str) -> None:
    async with Client(create_server(tmp_path)) as client:
        out = await client.call_tool(tool, args)
    assert out.is_error and message in out.content[0].text
    assert not (tmp_path / "profiles").exists()
