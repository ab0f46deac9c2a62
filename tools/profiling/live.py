"""Profile a running server while offering it load, and the argv that puts a server under a GPU profiler."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from ..bench.client import run_benchmark
from ..bench.models import Workload
from . import perf
from .build import ProfileError
from .models import Profile

SETTLE_S = 0.5  # let the load reach steady state before the window opens
ProfileApi = Literal["vllm", "sglang"]  # whose /start_profile and /stop_profile


class LoadedProfile(BaseModel):
    """A profile and the load that was running during it."""

    profile: Profile
    load_passes: int
    load_requests: int
    load_failed: int


async def _offer_load(base_url: str, workload: Workload, counts: dict[str, int]) -> None:
    while True:
        result = await run_benchmark(base_url, workload)
        counts["passes"] += 1
        counts["requests"] += result.completed
        counts["failed"] += result.failed


async def profile_under_load(pid: int, base_url: str, workload: Workload, seconds: float,
                             out_dir: Path) -> LoadedProfile:
    """perf-record `pid` for `seconds` while the workload runs against `base_url` in a loop."""
    counts = {"passes": 0, "requests": 0, "failed": 0}
    load = asyncio.create_task(_offer_load(base_url, workload.model_copy(update={"warmup": 0}), counts))
    try:
        await asyncio.sleep(SETTLE_S)
        if load.done():
            load.result()  # surface why the load generator stopped
        started = time.time()
        data = await asyncio.to_thread(perf.record, pid, seconds, out_dir / f"perf-{pid}-{int(started)}.data")
        profile = await asyncio.to_thread(perf.report, data)
        profile.started_at = started
    finally:
        load.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await load
    return LoadedProfile(profile=profile, load_passes=counts["passes"], load_requests=counts["requests"],
                         load_failed=counts["failed"])


async def torch_profile_under_load(base_url: str, trace_dir: Path, workload: Workload, seconds: float,
                                   wait_s: float = 120.0, api: ProfileApi = "vllm") -> LoadedProfile:
    """The engine's PyTorch profiler: POST /start_profile, offer load for `seconds`, POST /stop_profile, read traces.

    vLLM serves the endpoints only when started with a torch profiler directory (--profiler-config; older releases
    VLLM_TORCH_PROFILER_DIR); SGLang always does and is told the folder in the request. `trace_dir` is that folder
    as this machine sees it. Traces are written after stop, one per rank, so new files are awaited for `wait_s`.
    """
    import httpx

    from .formats import parse_chrome_trace

    before = {p: p.stat().st_mtime for p in _traces(trace_dir)}
    # vLLM's request model is strict and differs across releases: it gets no body. SGLang's names the folder.
    body = {"output_dir": str(trace_dir), "activities": ["CPU", "GPU"]} if api == "sglang" else None
    counts = {"passes": 0, "requests": 0, "failed": 0}
    async with httpx.AsyncClient(timeout=60) as client:
        response = await client.post(base_url.rstrip("/") + "/start_profile", json=body)
        if response.status_code != 200:
            raise ProfileError(_refused(api, response.status_code, response.text))
        started = time.time()
        load = asyncio.create_task(_offer_load(base_url, workload.model_copy(update={"warmup": 0}), counts))
        try:
            await asyncio.sleep(seconds)
        finally:
            load.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await load
            stop = await client.post(base_url.rstrip("/") + "/stop_profile")
        if stop.status_code != 200:
            raise ProfileError(f"/stop_profile answered {stop.status_code}: {stop.text[:200]}")
    deadline = time.monotonic() + wait_s
    fresh: list[Path] = []
    while time.monotonic() < deadline:
        fresh = sorted(p for p in _traces(trace_dir) if p.stat().st_size and before.get(p) != p.stat().st_mtime)
        if fresh:
            break
        await asyncio.sleep(0.5)
    if not fresh:
        raise ProfileError(f"no new *.trace.json(.gz) in {trace_dir} within {wait_s:g}s after /stop_profile")
    profile = await asyncio.to_thread(parse_chrome_trace, fresh)
    profile.started_at, profile.window_s = started, seconds
    return LoadedProfile(profile=profile, load_passes=counts["passes"], load_requests=counts["requests"],
                         load_failed=counts["failed"])


def _traces(folder: Path) -> list[Path]:
    """Finished Chrome traces in `folder`: vLLM's *.pt.trace.json(.gz), SGLang's *.trace.json.gz."""
    if not folder.is_dir():
        return []
    return [p for p in folder.glob("*.trace.json*") if p.name.endswith((".trace.json", ".trace.json.gz"))]


def _refused(api: ProfileApi, status: int, text: str) -> str:
    said = f"/start_profile answered {status}: {text[:200]}"
    if api == "vllm" and status == 404:
        return (f"{said} -- vLLM serves its profiler endpoints only when started with --profiler-config "
                "'{\"profiler\": \"torch\", \"torch_profiler_dir\": DIR}' (0.13 and later; current releases no "
                "longer read VLLM_TORCH_PROFILER_DIR, the only switch of releases before 0.13)")
    return said


def wrap_argv(tool: str, argv: list[str], out_dir: Path, name: str = "arbor") -> list[str]:
    """The argv that runs `argv` under a GPU profiler writing into `out_dir` (rocprofv3, rocprof, nsys)."""
    if tool == "rocprofv3":
        # Always csv: from ROCm 7.0 the default is a SQLite rocpd file.
        return ["rocprofv3", "--kernel-trace", "--stats", "-d", str(out_dir), "-o", name,
                "--output-format", "csv", "--", *argv]
    if tool == "rocprof":
        return ["rocprof", "--stats", "-o", str(out_dir / "results.csv"), *argv]
    if tool == "nsys":
        return ["nsys", "profile", "--trace=cuda,nvtx", "--force-overwrite=true", "-o", str(out_dir / name), *argv]
    raise ProfileError(f"no wrapper for profiler {tool!r}; use rocprofv3, rocprof or nsys")


def nsys_stats_argv(report: Path, out_prefix: Path) -> list[str]:
    """The argv that turns an nsys report into the cuda_gpu_kern_sum CSV."""
    return ["nsys", "stats", "--report", "cuda_gpu_kern_sum", "--format", "csv", "--force-export=true",
            "-o", str(out_prefix), str(report)]
