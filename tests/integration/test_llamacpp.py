"""The real llama-server with SmolLM2: launch, readiness, generate, benchmark, crash, bad launches."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import httpx
import pytest

from arbor.tools.bench.client import run_benchmark
from arbor.tools.bench.models import Workload
from arbor.tools.errors import InputError, LaunchError
from arbor.tools.procs import group_members
from arbor.tools.serving import launcher
from arbor.tools.serving.stack import StackSpec
from tests.conftest import our_processes

pytestmark = [pytest.mark.llama, pytest.mark.anyio]


async def test_launch_generate_benchmark_stop_leaves_nothing(llama_stack: StackSpec, tmp_path) -> None:
    server = await launcher.launch(llama_stack, {"parallel": 8, "ctx_size": 8192}, tmp_path)
    pgid = server.child.pgid
    try:
        assert server.info.state == "ready"
        assert ["--parallel", "8"] == server.info.argv[server.info.argv.index("--parallel"):][:2]
        async with httpx.AsyncClient() as client:
            reply = await client.post(f"{server.info.base_url}/v1/completions",
                                      json={"prompt": "The capital of France is", "max_tokens": 8,
                                            "temperature": 0})
        assert reply.status_code == 200
        assert reply.json()["usage"]["completion_tokens"] == 8
        results = {}
        for concurrency in (1, 8):
            workload = Workload(model="smollm2", input_len=16, output_len=48, max_concurrency=concurrency,
                                num_prompts=max(4, concurrency), warmup=1)
            results[concurrency] = await run_benchmark(server.info.base_url, workload)
        for concurrency, result in results.items():
            assert result.failed == 0 and result.completed == max(4, concurrency)
            assert result.lengths_ok, (result.input_len_check, result.output_len_check)
            assert result.input_len_check.source == "server" and result.input_len_check.min == 16
            assert result.output_len_check.min == result.output_len_check.max == 48
            assert result.median_ttft_ms > 0 and result.median_tpot_ms > 0
            assert result.max_concurrent_requests == concurrency
            # Warm-up and earlier runs must not lend their KV cache to measured requests.
            assert result.total_cached_tokens <= 0.05 * result.total_input_tokens
        # Eight slots take eight streams at once: nobody queues for a slot, so every first token
        # comes long before the typical request ends (with 4 slots, half would wait a whole request).
        at8 = results[8]
        assert max(at8.ttfts) * 1000 < at8.median_e2el_ms / 2
    finally:
        info = launcher.stop(server)
    assert info.state == "stopped"
    assert group_members(pgid) == []
    assert server.child.pid not in our_processes(llama_stack.binary)


async def test_killed_mid_benchmark_counts_failures_and_classifies_crash(llama_stack: StackSpec, tmp_path) -> None:
    server = await launcher.launch(llama_stack, {"parallel": 4}, tmp_path)
    workload = Workload(model="smollm2", input_len=16, output_len=200, max_concurrency=4, num_prompts=8, warmup=0)

    async def kill_soon() -> None:
        await asyncio.sleep(1.5)
        os.killpg(server.child.pgid, signal.SIGKILL)

    try:
        killer = asyncio.create_task(kill_soon())
        started = time.monotonic()
        result = await run_benchmark(server.info.base_url, workload)
        await killer
        assert time.monotonic() - started < 60
        assert result.failed >= 4 and result.completed + result.failed == 8
        assert result.errors and all(e for e in result.errors)
        info = launcher.status(server)
        assert info.state == "failed"
        assert info.failure.kind == "killed" and info.failure.signal == "SIGKILL"
        assert info.failure.phase == "running"
    finally:
        launcher.stop(server)
    assert group_members(server.child.pgid) == []


async def test_bad_flag_is_classified_within_seconds(llama_stack: StackSpec, tmp_path) -> None:
    spec = llama_stack.model_copy(update={"base_args": ["--no-such-flag"]})
    before = our_processes(llama_stack.binary)
    started = time.monotonic()
    with pytest.raises(LaunchError) as caught:
        await launcher.launch(spec, {}, tmp_path)
    assert time.monotonic() - started < 10
    failure = caught.value.failure
    assert failure.kind == "unknown_flag"
    assert any("invalid argument: --no-such-flag" in e.text for e in failure.evidence)
    assert failure.evidence[0].line >= 1
    assert our_processes(llama_stack.binary) == before


async def test_missing_model_is_classified_within_seconds(llama_stack: StackSpec, tmp_path) -> None:
    spec = llama_stack.model_copy(update={"model": str(tmp_path / "absent.gguf")})
    started = time.monotonic()
    with pytest.raises(LaunchError) as caught:
        await launcher.launch(spec, {}, tmp_path)
    assert time.monotonic() - started < 10
    failure = caught.value.failure
    assert failure.kind == "model_not_found"
    assert any("absent.gguf" in e.text for e in failure.evidence)
    assert failure.log_path and failure.log_path.startswith(str(tmp_path))


async def test_port_in_use_is_classified(llama_stack: StackSpec, tmp_path) -> None:
    first = await launcher.launch(llama_stack, {}, tmp_path, name="first")
    try:
        spec = llama_stack.model_copy(update={"port": first.info.port})
        with pytest.raises(LaunchError) as caught:
            await launcher.launch(spec, {}, tmp_path, name="second")
        assert caught.value.failure.kind == "port_in_use"
        assert any(str(first.info.port) in e.text for e in caught.value.failure.evidence)
    finally:
        launcher.stop(first)


async def test_invalid_knob_value_starts_nothing(llama_stack: StackSpec, tmp_path) -> None:
    before = our_processes(llama_stack.binary)
    with pytest.raises(InputError, match="parallel"):
        await launcher.launch(llama_stack, {"parallel": 0}, tmp_path)
    with pytest.raises(InputError, match="unknown knob"):
        await launcher.launch(llama_stack, {"paralel": 4}, tmp_path)
    assert our_processes(llama_stack.binary) == before
    assert not (tmp_path / "logs").exists() and list(tmp_path.iterdir()) == []


async def test_probe_reports_healthy_then_hang_when_stopped(llama_stack: StackSpec, tmp_path) -> None:
    server = await launcher.launch(llama_stack, {}, tmp_path)
    try:
        assert await launcher.probe(server, timeout_s=30) is None
        os.killpg(server.child.pgid, signal.SIGSTOP)  # frozen: alive but not serving
        failure = await launcher.probe(server, timeout_s=2)
        assert failure is not None and failure.kind == "hang"
    finally:
        os.killpg(server.child.pgid, signal.SIGCONT)
        launcher.stop(server)


async def test_unique_prompts_keep_the_prefix_cache_cold(llama_stack: StackSpec, tmp_path) -> None:
    server = await launcher.launch(llama_stack, {"parallel": 4}, tmp_path)
    try:
        def workload(unique: bool) -> Workload:
            return Workload(model="smollm2", input_len=48, output_len=4, max_concurrency=4, num_prompts=8,
                            warmup=0, unique_prompts=unique)

        cold = [await run_benchmark(server.info.base_url, workload(True)) for _ in range(2)]
        reused = [await run_benchmark(server.info.base_url, workload(False)) for _ in range(2)]
    finally:
        launcher.stop(server)
    # A random tag opens every prompt; at most a token or two can match by chance.
    assert all(r.total_cached_tokens <= 0.05 * r.total_input_tokens for r in cold)
    # The same seeded prompts again: llama-server serves most of them from its cache, which is
    # exactly the flattering effect unique prompts prevent.
    assert reused[1].total_cached_tokens > 0.8 * reused[1].total_input_tokens
