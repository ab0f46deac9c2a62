"""The load generator against a stub server speaking the OpenAI streaming wire format.

The stub runs in its own process with known delays; the real llama-server tests
live in tests/integration.
"""

from __future__ import annotations

import pytest

from arbor.tools.bench.client import run_benchmark
from arbor.tools.bench.models import Workload
from tests.conftest import start_stub

pytestmark = pytest.mark.anyio


async def test_timings_match_the_stub_delays(stub: str) -> None:
    wl = Workload(model="stub", input_len=20, output_len=10, max_concurrency=4, num_prompts=8, warmup=1)
    result = await run_benchmark(stub, wl)
    assert result.completed == 8 and result.failed == 0
    assert 20 <= result.median_ttft_ms < 60
    assert 1.5 <= result.median_itl_ms < 6
    assert result.median_tpot_ms == pytest.approx(result.mean_itl_ms, rel=0.3)
    assert result.lengths_ok and result.input_len_check.source == "server"
    assert result.input_lens == [20] * 8 and result.output_lens == [10] * 8
    assert result.max_concurrent_requests == 4
    assert result.interactivity == pytest.approx(1000 / result.median_tpot_ms)


async def test_chat_endpoint(stub: str) -> None:
    wl = Workload(model="stub", endpoint="chat", input_len=12, output_len=5, max_concurrency=2, num_prompts=2,
                  warmup=0)
    result = await run_benchmark(stub, wl)
    assert result.completed == 2 and result.endpoint == "chat" and result.lengths_ok


async def test_dropped_connections_count_as_failed_and_the_run_finishes() -> None:
    proc, url = start_stub("--ttft-ms", "5", "--itl-ms", "1", "--drop-after", "3")
    try:
        wl = Workload(model="stub", input_len=8, output_len=10, max_concurrency=4, num_prompts=10, warmup=0)
        result = await run_benchmark(url, wl)
    finally:
        proc.kill()
        proc.wait()
    assert result.completed == 5 and result.failed == 5
    assert all("mid-stream" in e or "without" in e or "Error" in e for e in result.errors)


async def test_output_drift_is_flagged_without_server_usage() -> None:
    proc, url = start_stub("--ttft-ms", "1", "--itl-ms", "0", "--no-usage")
    try:
        wl = Workload(model="stub", input_len=8, output_len=6, max_concurrency=1, num_prompts=2, warmup=0)
        result = await run_benchmark(url, wl)
    finally:
        proc.kill()
        proc.wait()
    # Without usage the client counts streamed chunks, and the verified prompt stands in for input length.
    assert result.output_len_check.source == "client" and result.output_lens == [6, 6]
    assert result.input_len_check.source == "client" and result.lengths_ok


async def test_unreachable_server_fails_every_request_cleanly() -> None:
    from tests.conftest import free_port

    url = f"http://127.0.0.1:{free_port()}"
    wl = Workload(model="x", input_len=4, output_len=4, max_concurrency=2, num_prompts=3, warmup=0)
    from arbor.tools.bench.prompts import Prompt

    result = await run_benchmark(url, wl, prompts=[Prompt("a b c d", 4, False)] * 3)
    assert result.completed == 0 and result.failed == 3
    assert all("connect failed" in e for e in result.errors)
    assert result.output_throughput == 0 and result.median_ttft_ms is None


async def test_request_rate_spreads_arrivals(stub: str) -> None:
    wl = Workload(model="stub", input_len=4, output_len=2, max_concurrency=None, request_rate=20.0,
                  num_prompts=10, warmup=0)
    result = await run_benchmark(stub, wl)
    assert result.completed == 10 and result.request_rate == 20.0
    assert result.duration > 0.2  # 10 Poisson arrivals at 20/s span about half a second


async def test_prompts_are_exact_length_and_cache_cold_unless_asked(stub: str) -> None:
    import httpx

    from arbor.tools.bench.prompts import build_prompts

    async with httpx.AsyncClient() as client:
        first = await build_prompts(client, stub, "stub", 16, 4, seed=3)
        second = await build_prompts(client, stub, "stub", 16, 4, seed=3)
        warm_a = await build_prompts(client, stub, "stub", 16, 4, seed=3, unique=False)
        warm_b = await build_prompts(client, stub, "stub", 16, 4, seed=3, unique=False)
    assert all(p.tokens == 16 and p.verified and len(p.text.split()) == 16 for p in first)
    assert len({p.text.split()[0] for p in first + second}) == 8, "every prompt starts with its own tag"
    assert [p.text.split()[1:] for p in first] == [p.text.split()[1:] for p in second], "the words are seeded"
    assert warm_a == warm_b
