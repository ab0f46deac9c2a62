"""The demo target's baseline: launch, readiness, accuracy reference, concurrency sweep, table, run folder."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mcp import Client
from pydantic import BaseModel, ConfigDict, Field, field_validator

from arbor.servers import bench as bench_server
from arbor.servers import serving as serving_server
from arbor.tools.provision import DefaultTarget
from arbor.tools.serving.demo import DEMO_STACK, demo_stack

from .errors import HostError
from .mcp_calls import call

Say = Callable[[str], None]


class BaselinePlan(BaseModel):
    """What the baseline measures."""

    model_config = ConfigDict(extra="forbid")

    concurrencies: list[int] = Field(default_factory=lambda: [1, 4, 16, 32], min_length=1)
    input_len: int = Field(128, ge=1, le=8192)
    output_len: int = Field(64, ge=1, le=4096)
    prompts_per_concurrency: int = Field(2, ge=1, le=100)
    min_prompts: int = Field(8, ge=1, le=10_000)
    knobs: dict[str, Any] = Field(default_factory=dict)

    @field_validator("concurrencies")
    @classmethod
    def _positive(cls, values: list[int]) -> list[int]:
        if any(v < 1 or v > 1024 for v in values):
            raise ValueError("concurrencies must be between 1 and 1024")
        return values


def format_table(points: list[dict], results: list[dict]) -> str:
    """The sweep as a fixed-width table, one row per concurrency."""
    head = f"{'conc':>5} {'req/s':>7} {'out tok/s':>10} {'TTFT p50 ms':>12} {'TPOT p50 ms':>12} " \
           f"{'tok/s/user':>11} {'failed':>7} {'frontier':>9}"
    rows = [head, "-" * len(head)]

    def num(value: Any, fmt: str) -> str:
        return format(value, fmt) if isinstance(value, (int, float)) else "-"

    for result, point in zip(results, points, strict=True):
        rows.append(
            f"{result['max_concurrency']:>5} {num(result['request_throughput'], '7.2f')} "
            f"{num(result['output_throughput'], '10.1f')} {num(result['median_ttft_ms'], '12.1f')} "
            f"{num(result['median_tpot_ms'], '12.1f')} {num(result['interactivity'], '11.1f')} "
            f"{result['failed']:>7} {'*' if point['on_frontier'] else '':>9}"
        )
    return "\n".join(rows)


async def run_baseline(target: DefaultTarget, run_dir: Path, plan: BaselinePlan, say: Say) -> dict[str, Any]:
    """Measure the default target's baseline through the serving and bench MCP servers."""
    run_dir.mkdir(parents=True, exist_ok=True)
    root = run_dir.parent
    serving = serving_server.create_server(root, {DEMO_STACK: demo_stack(target)})
    bench = bench_server.create_server(root)
    summary: dict[str, Any] = {"run_dir": str(run_dir), "started": time.time(), "plan": plan.model_dump()}
    try:
        async with Client(serving) as srv, Client(bench) as bch:
            say("launching llama-server (SmolLM2-135M Q4_1, CPU)")
            outcome = await call(srv, "launch_server", {"stack": DEMO_STACK, "knobs": plan.knobs,
                                                        "run_dir": run_dir.name, "name": "baseline"})
            if not outcome["ok"]:
                failure = outcome["failure"]
                evidence = "\n  ".join(f"line {e['line']}: {e['text']}" for e in failure["evidence"])
                raise HostError(f"llama-server failed to start: {failure['kind']}: {failure['summary']}\n  {evidence}")
            info = outcome["server"]
            summary["server"] = info
            say(f"ready in {info['ready_after_s']:.1f}s at {info['base_url']} (pid {info['pid']})")
            try:
                say("recording greedy reference outputs for the accuracy gate")
                ref = await call(bch, "parity_collect", {"base_url": info["base_url"], "model": info["model_name"],
                                                         "run_dir": run_dir.name, "name": "baseline"})
                summary["parity_reference"] = ref["path"]
                say(f"sweeping concurrency {plan.concurrencies} "
                    f"(input {plan.input_len}, output {plan.output_len} tokens)")
                workload = {"model": info["model_name"], "input_len": plan.input_len, "output_len": plan.output_len,
                            "max_concurrency": plan.concurrencies[0], "num_prompts": plan.min_prompts, "seed": 0}

                async def progress(done: float, total: float | None, message: str | None) -> None:
                    if message:
                        say(f"  {message}")

                swept = await call(bch, "run_sweep", {
                    "base_url": info["base_url"], "workload": workload, "concurrencies": plan.concurrencies,
                    "prompts_per_concurrency": plan.prompts_per_concurrency, "min_prompts": plan.min_prompts,
                    "run_dir": run_dir.name, "label": "baseline"}, progress)
                metrics = await call(srv, "scrape_metrics", {"server_id": info["id"], "prefix": "llamacpp:"})
                summary["server_metrics"] = metrics["key"]
                telemetry = await call(srv, "read_telemetry", {"server_id": info["id"]})
                summary["telemetry"] = telemetry
            finally:
                stopped = await call(srv, "stop_server", {"server_id": info["id"]})
                summary["server"] = stopped
    finally:
        serving.fleet.close()  # type: ignore[attr-defined]
    results, points = swept["sweep"]["results"], swept["sweep"]["points"]
    summary["results"] = swept["paths"]
    summary["pareto"] = points
    summary["table"] = format_table(points, results)
    summary["finished"] = time.time()
    (run_dir / "table.txt").write_text(summary["table"] + "\n")
    (run_dir / "run.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary
