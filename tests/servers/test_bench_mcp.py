"""Every tool of the bench MCP server through an in-process Client, against the real llama-server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mcp import Client

from arbor.servers.bench import create_server
from arbor.tools.serving.launcher import ServerInfo

pytestmark = pytest.mark.anyio


def workload(info: ServerInfo, **extra: object) -> dict:
    return {"model": info.model_name, "input_len": 24, "output_len": 8, "max_concurrency": 2, "num_prompts": 4,
            "warmup": 0} | extra


@pytest.mark.llama
async def test_bench_repeats_compare_and_refusal(llama_server: ServerInfo, tmp_path: Path) -> None:
    updates: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        updates.append(value)

    async with Client(create_server(tmp_path)) as client:
        out = await client.call_tool("run_bench", {"base_url": llama_server.base_url,
                                                   "workload": workload(llama_server),
                                                   "repeats": 2, "run_dir": "r", "label": "base"},
                                     progress_callback=on_progress)
        assert not out.is_error, out.content
        paths = out.structured_content["paths"]
        assert len(paths) == 2 and all(Path(p).is_relative_to(tmp_path / "r" / "bench") for p in paths)
        saved = json.loads(Path(paths[0]).read_text())
        assert saved["completed"] == 4 and saved["output_throughput"] > 0 and "p99_ttft_ms" in saved
        assert updates and max(updates) == 8
        again = await client.call_tool("run_bench", {"base_url": llama_server.base_url, "repeats": 2,
                                                     "workload": workload(llama_server), "run_dir": "r"})
        cmp = await client.call_tool("compare_results", {"baseline": paths,
                                                         "candidate": again.structured_content["paths"]})
        assert not cmp.is_error, cmp.content
        c = cmp.structured_content
        assert c["n_baseline"] == c["n_candidate"] == 2
        assert c["ci_low"] < c["rel_change"] < c["ci_high"], "two real repeats a side give a real interval"
        other = await client.call_tool("run_bench", {"base_url": llama_server.base_url, "run_dir": "r",
                                                     "workload": workload(llama_server, max_concurrency=4),
                                                     "label": "other"})
        refused = await client.call_tool("compare_results", {"baseline": [paths[0]],
                                                             "candidate": other.structured_content["paths"]})
        assert refused.is_error
        assert "refusing to compare different workloads" in refused.content[0].text
        assert "max_concurrency: 2 vs 4" in refused.content[0].text


@pytest.mark.llama
async def test_sweep_marks_the_frontier(llama_server: ServerInfo, tmp_path: Path) -> None:
    async with Client(create_server(tmp_path)) as client:
        out = await client.call_tool("run_sweep", {"base_url": llama_server.base_url,
                                                   "workload": workload(llama_server),
                                                   "concurrencies": [1, 4], "min_prompts": 4})
    assert not out.is_error, out.content
    points = out.structured_content["sweep"]["points"]
    assert [p["max_concurrency"] for p in points] == [1, 4]
    # The most interactive and the highest-throughput points can never be dominated.
    assert max(points, key=lambda p: p["interactivity"])["on_frontier"]
    assert max(points, key=lambda p: p["output_throughput_per_gpu"])["on_frontier"]
    results = out.structured_content["sweep"]["results"]
    assert [r["num_prompts"] for r in results] == [4, 8]


@pytest.mark.llama
async def test_parity_collect_and_check(llama_server: ServerInfo, tmp_path: Path) -> None:
    async with Client(create_server(tmp_path)) as client:
        ref = await client.call_tool("parity_collect", {"base_url": llama_server.base_url,
                                                        "model": llama_server.model_name, "max_tokens": 12})
        assert not ref.is_error, ref.content
        check = await client.call_tool("parity_check", {"base_url": llama_server.base_url,
                                                        "model": llama_server.model_name,
                                                        "reference": ref.structured_content["path"]})
    report = check.structured_content
    # Same server, same settings, greedy: the outputs must agree.
    assert report["agreement_rate"] == 1.0 and report["passed"] is True
    assert len(report["prompts"]) == len(ref.structured_content["outputs"]["prompts"])


@pytest.mark.parametrize(("tool", "args", "message"), [
    ("run_bench", {"base_url": "http://127.0.0.1:1", "workload": {"model": "m", "max_concurrency": -1}},
     "max_concurrency"),
    ("run_bench", {"base_url": "http://127.0.0.1:1", "workload": {"model": "m", "input_len": "long"}}, "input_len"),
    ("run_bench", {"base_url": "file:///etc/passwd", "workload": {"model": "m"}}, "base_url"),
    ("run_bench", {"base_url": "http://127.0.0.1:1", "workload": {"model": "m"}, "run_dir": "../x"},
     "outside the run folder"),
    ("run_bench", {"base_url": "http://127.0.0.1:1", "workload": {"model": "m", "max_concurrency": None}},
     "set max_concurrency, request_rate, or both"),
    ("run_sweep", {"base_url": "http://127.0.0.1:1", "workload": {"model": "m"}, "concurrencies": [4, 0]},
     "between 1 and 100000"),
    ("compare_results", {"baseline": ["/etc/passwd"], "candidate": ["a.json"]}, "outside the run folder"),
    ("compare_results", {"baseline": ["a.json"], "candidate": ["b.json"], "metric": "rm"}, "unknown metric"),
    ("compare_results", {"baseline": ["missing.json"], "candidate": ["b.json"]}, "no result file"),
    ("check_lengths", {"baseline": ["/etc/passwd"], "candidate": "a.json"}, "outside the run folder"),
    ("check_lengths", {"baseline": [], "candidate": "a.json"}, "baseline"),
    ("check_lengths", {"baseline": ["a.json"], "candidate": "missing.json"}, "no result file"),
    ("parity_check", {"base_url": "http://127.0.0.1:1", "model": "m", "reference": "nope.json"},
     "no parity reference"),
    ("gsm8k", {"base_url": "http://127.0.0.1:1", "model": "m", "limit": 0}, "limit"),
    ("run_bench", {"base_url": "http://10.1.2.3:8000", "workload": {"model": "m"}}, "is not allowed"),
    ("parity_collect", {"base_url": "http://example.com", "model": "m"}, "is not allowed"),
])
async def test_bad_inputs_are_clear_errors(tmp_path: Path, tool: str, args: dict, message: str) -> None:
    async with Client(create_server(tmp_path)) as client:
        out = await client.call_tool(tool, args)
    assert out.is_error
    assert message in out.content[0].text
    assert not (tmp_path / "bench").exists()


async def test_gsm8k_without_lm_eval(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    async with Client(create_server(tmp_path)) as client:
        out = await client.call_tool("gsm8k", {"base_url": "http://127.0.0.1:1", "model": "m"})
    assert out.is_error and "lm_eval is not installed" in out.content[0].text
