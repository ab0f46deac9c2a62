"""MCP server `arbor-bench`: load tests, sweeps, comparisons with intervals, and the accuracy gate."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import anyio
from mcp.server.mcpserver import Context, MCPServer
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from arbor.servers.common import Progress, serve, tool, transport_args
from arbor.tools.bench import files, lengths, lmeval, parity
from arbor.tools.bench.client import run_benchmark
from arbor.tools.bench.compare import compare
from arbor.tools.bench.lengths import LengthReport
from arbor.tools.bench.models import BenchResult, Comparison, Sweep, Workload
from arbor.tools.bench.sweep import sweep
from arbor.tools.errors import BenchError
from arbor.tools.netpolicy import check_target
from arbor.tools.paths import contained, runs_root

Strict = ConfigDict(extra="forbid")
URL = r"^https?://[A-Za-z0-9._\-\[\]:]+(:\d+)?/?$"
LABEL = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
NUMERIC_METRICS = sorted(
    name for name, info in BenchResult.model_fields.items()
    if info.annotation in (float, int, float | None, int | None) and name not in ("burstiness",)
)


class BenchInput(BaseModel):
    model_config = Strict
    base_url: str = Field(pattern=URL, description="server root, e.g. http://127.0.0.1:8080")
    workload: Workload
    repeats: int = Field(1, ge=1, le=50)
    run_dir: str = Field(".", description="folder inside the runs root for the result files")
    label: str = Field("bench", pattern=LABEL)


class SweepInput(BaseModel):
    model_config = Strict
    base_url: str = Field(pattern=URL)
    workload: Workload
    concurrencies: list[int] = Field(min_length=1, max_length=32)
    prompts_per_concurrency: int = Field(2, ge=1, le=1000)
    min_prompts: int = Field(8, ge=1, le=100_000)
    run_dir: str = "."
    label: str = Field("sweep", pattern=LABEL)

    @field_validator("concurrencies")
    @classmethod
    def _positive(cls, values: list[int]) -> list[int]:
        if any(v < 1 or v > 100_000 for v in values):
            raise ValueError("every concurrency must be between 1 and 100000")
        return values


class CompareInput(BaseModel):
    model_config = Strict
    baseline: list[str] = Field(min_length=1, description="result files (inside the runs root)")
    candidate: list[str] = Field(min_length=1)
    metric: str = "output_throughput"
    confidence: float = Field(0.95, gt=0.5, lt=1.0)
    allow_flawed: bool = Field(False, description="compare even results with failed requests or lengths unlike the "
                                                  "baseline's for the same prompts")

    @field_validator("metric")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in NUMERIC_METRICS:
            raise ValueError(f"unknown metric {value!r}; one of {NUMERIC_METRICS}")
        return value


class LengthsInput(BaseModel):
    model_config = Strict
    baseline: list[str] = Field(min_length=1, description="the baseline's result files (inside the runs root)")
    candidate: str = Field(min_length=1, description="one candidate result file of the same workload")


class ParityCollectInput(BaseModel):
    model_config = Strict
    base_url: str = Field(pattern=URL)
    model: str = Field(min_length=1)
    max_tokens: int = Field(32, ge=1, le=1024)
    concurrency: int = Field(1, ge=1, le=64)
    run_dir: str = "."
    name: str = Field("reference", pattern=LABEL)


class ParityCheckInput(BaseModel):
    model_config = Strict
    base_url: str = Field(pattern=URL)
    model: str = Field(min_length=1)
    reference: str = Field(description="parity file written by parity_collect (inside the runs root)")
    min_agreement: float = Field(0.75, ge=0.0, le=1.0)
    concurrency: int = Field(1, ge=1, le=64)


class Gsm8kInput(BaseModel):
    model_config = Strict
    base_url: str = Field(pattern=URL)
    model: str = Field(min_length=1)
    limit: int | None = Field(None, ge=1, le=100_000)
    num_concurrent: int = Field(8, ge=1, le=512)
    run_dir: str = "."


class BenchRun(BaseModel):
    results: list[BenchResult]
    paths: list[str]


class SweepRun(BaseModel):
    sweep: Sweep
    paths: list[str]


class ParitySaved(BaseModel):
    path: str
    outputs: parity.ParityOutputs


def create_server(root: Path | None = None, allow_hosts: set[str] | None = None) -> MCPServer:
    """A bench MCP server whose files live under `root`, loading loopback targets and `allow_hosts` only."""
    root = (root or runs_root()).absolute()
    allowed = frozenset(h.lower() for h in (allow_hosts or ()))
    server = MCPServer("arbor-bench", instructions="Benchmark OpenAI-compatible inference servers for Arbor.",
                       log_level="WARNING")

    def stamp() -> str:
        return time.strftime("%Y%m%d-%H%M%S")

    @tool(server, BenchInput)
    async def run_bench(args: BenchInput, ctx: Context) -> BenchRun:
        """Benchmark one workload (streaming; TTFT/TPOT/ITL/E2EL; vLLM field names), `repeats` times."""
        check_target(args.base_url, allowed)
        folder = contained(root, f"{args.run_dir}/bench")
        progress = Progress(ctx)
        total = args.repeats * args.workload.num_prompts
        results, paths = [], []
        for i in range(args.repeats):
            async def report(done: int, _n: int, i: int = i) -> None:
                await progress(i * args.workload.num_prompts + done, total, f"repeat {i + 1}/{args.repeats}")

            result = await run_benchmark(args.base_url, args.workload, progress=report)
            results.append(result)
            paths.append(str(files.save(result, folder / f"{args.label}-{stamp()}-r{i + 1}.json")))
        return BenchRun(results=results, paths=paths)

    @tool(server, SweepInput)
    async def run_sweep(args: SweepInput, ctx: Context) -> SweepRun:
        """Benchmark each concurrency and mark the throughput-per-GPU vs interactivity Pareto frontier."""
        check_target(args.base_url, allowed)
        folder = contained(root, f"{args.run_dir}/bench")
        progress = Progress(ctx)
        step = 0

        async def say(message: str) -> None:
            nonlocal step
            step += 1
            await progress(step, len(args.concurrencies), message)

        result = await sweep(args.base_url, args.workload, args.concurrencies, args.prompts_per_concurrency,
                             args.min_prompts, say)
        when = stamp()
        paths = [str(files.save(r, folder / f"{args.label}-{when}-c{r.max_concurrency}.json")) for r in result.results]
        return SweepRun(sweep=result, paths=paths)

    @tool(server, CompareInput)
    async def compare_results(args: CompareInput, ctx: Context) -> Comparison:
        """Relative change baseline -> candidate with a confidence interval; refuses different workloads."""
        base = [files.load(contained(root, p)) for p in args.baseline]
        cand = [files.load(contained(root, p)) for p in args.candidate]
        return compare(base, cand, args.metric, args.confidence, args.allow_flawed)

    @tool(server, LengthsInput)
    async def check_lengths(args: LengthsInput, ctx: Context) -> LengthReport:
        """A candidate's per-prompt input/output lengths against the baseline's for the same seeded prompts."""
        base = [files.load(contained(root, p)) for p in args.baseline]
        return lengths.report(base, files.load(contained(root, args.candidate)))

    @tool(server, ParityCollectInput)
    async def parity_collect(args: ParityCollectInput, ctx: Context) -> ParitySaved:
        """Record greedy outputs of the fixed prompt set, the reference for later parity checks."""
        check_target(args.base_url, allowed)
        path = contained(root, f"{args.run_dir}/parity/{args.name}.json")
        outputs = await parity.collect(args.base_url, args.model, max_tokens=args.max_tokens,
                                       concurrency=args.concurrency)
        if any(o is None for o in outputs.outputs):
            raise BenchError("some reference requests failed; a reference must be complete")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(outputs.model_dump_json(indent=2))
        return ParitySaved(path=str(path), outputs=outputs)

    @tool(server, ParityCheckInput)
    async def parity_check(args: ParityCheckInput, ctx: Context) -> parity.ParityReport:
        """Greedy parity against a saved reference: agreement rate and first divergence per prompt."""
        check_target(args.base_url, allowed)
        ref_path = contained(root, args.reference)
        try:
            reference = parity.ParityOutputs.model_validate(json.loads(ref_path.read_text()))
        except FileNotFoundError as exc:
            raise BenchError(f"no parity reference {args.reference!r}") from exc
        except (ValueError, ValidationError) as exc:
            raise BenchError(f"{args.reference!r} is not a parity reference") from exc
        candidate = await parity.collect(args.base_url, args.model, reference.prompts, reference.max_tokens,
                                         args.concurrency)
        return parity.compare(reference, candidate, args.min_agreement)

    @tool(server, Gsm8kInput)
    async def gsm8k(args: Gsm8kInput, ctx: Context) -> lmeval.TaskAccuracy:
        """GSM8K exact match through lm-evaluation-harness (needs `lm_eval` installed and the dataset cached)."""
        check_target(args.base_url, allowed)
        out = contained(root, f"{args.run_dir}/lm_eval")
        return await anyio.to_thread.run_sync(
            lambda: lmeval.run_gsm8k(args.base_url, args.model, out, args.limit, args.num_concurrent))

    return server


def main(argv: list[str] | None = None) -> None:
    """Entry point of `arbor-mcp-bench`."""

    def extra(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--runs-root", type=Path, default=None, help="folder that holds run folders")
        parser.add_argument("--allow-host", action="append", default=[], metavar="HOST",
                            help="also benchmark servers on HOST (loopback is always allowed); repeatable")

    args = transport_args("Arbor benchmark MCP server", argv, extra)
    serve(create_server(args.runs_root, set(args.allow_host)), args)


if __name__ == "__main__":
    main()
