"""Repeats and concurrency sweeps on top of the load generator."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from .client import run_benchmark
from .compare import pareto
from .models import BenchResult, Sweep, Workload

Say = Callable[[str], Awaitable[None] | None]


async def _say(say: Say | None, message: str) -> None:
    if say is not None:
        maybe = say(message)
        if maybe is not None:
            await maybe


def sweep_workload(workload: Workload, concurrency: int, prompts_per_concurrency: int, min_prompts: int) -> Workload:
    """The workload at one sweep point: same lengths and seed, prompts scaled with concurrency."""
    prompts = max(min_prompts, concurrency * prompts_per_concurrency)
    return workload.model_copy(update={"max_concurrency": concurrency, "num_prompts": prompts,
                                       "request_rate": None})


async def repeats(base_url: str, workload: Workload, n: int, say: Say | None = None) -> list[BenchResult]:
    """Run the same workload `n` times (same seeded prompts)."""
    results = []
    for i in range(n):
        result = await run_benchmark(base_url, workload)
        results.append(result)
        await _say(say, f"repeat {i + 1}/{n}: {result.output_throughput:.1f} tok/s, {result.failed} failed")
    return results


async def sweep(base_url: str, workload: Workload, concurrencies: list[int], prompts_per_concurrency: int = 2,
                min_prompts: int = 8, say: Say | None = None) -> Sweep:
    """Benchmark each concurrency in turn and mark the throughput-interactivity frontier."""
    results = []
    for c in concurrencies:
        point = sweep_workload(workload, c, prompts_per_concurrency, min_prompts)
        result = await run_benchmark(base_url, point)
        results.append(result)
        await _say(say, f"concurrency {c}: {result.output_throughput:.1f} tok/s, {result.failed} failed")
    return Sweep(results=results, points=pareto(results))
