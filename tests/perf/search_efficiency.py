"""Search efficiency side by side: Arbor against Optuna TPE and GP, random, grid and a greedy single agent.

Every strategy gets the same scenarios, seeds and budget of evaluations (a configuration
launched and measured; the defaults are the first), on the simulated stack run for real:
its server, the benchmark, the accuracy gate and, for Arbor, the whole engine. Scenarios
are the shipped (named) ones and `--generated N` made by the scenario generator from
seeds drawn fresh each run (printed, and recorded in comparison.json, to run them again).
Writes comparison.json, comparison.md and regret.svg into --out, and prints one JSON line:
medians over the generated scenarios (the named ones apart, under "named"). Goals (issue
15), for Arbor: within 5% of the optimum in at most half the evaluations of Optuna TPE and
of random search, reaching it on at least 90% of scenarios, zero invalid keeps, and a
valid gain at least every peer's on at least 80% of (scenario, seed) pairs.

A full run takes about 75 s per (strategy, scenario, seed) on two cores, and never runs two
at once. Ctrl-C writes what finished; --resume DIR goes on from there, skipping what is done.

Run: .venv/bin/python tests/perf/search_efficiency.py [--generated 50] [--scenarios layered,tp_comm] [--seeds 3]
     [--budget 24] [--strategies arbor,greedy,optuna,optuna_gp,random,grid] [--out DIR] [--resume DIR]
     .venv/bin/python tests/perf/search_efficiency.py --demo [--demo-wall-s 300]   (the real llama-server)
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from arbor.host.cli import cancellable, interrupted  # noqa: E402
from tests.perf.searchbench.arbor_runs import engine_run  # noqa: E402
from tests.perf.searchbench.evaluator import Evaluator  # noqa: E402
from tests.perf.searchbench.options import parse  # noqa: E402
from tests.perf.searchbench.plan import Plan, done  # noqa: E402
from tests.perf.searchbench.space import sim_spec  # noqa: E402
from tests.perf.searchbench.strategies import TUNERS  # noqa: E402
from tests.perf.searchbench.summary import headline, markdown, regret_svg, summarise  # noqa: E402
from tests.perf.searchbench.trajectory import Trajectory  # noqa: E402
from tests.perf.searchbench.truth import Truth  # noqa: E402


async def one(strategy: str, scenario: str, seed: int, budget: int, runs_root: Path) -> Trajectory:
    """One strategy on one scenario and seed."""
    spec = sim_spec(scenario, seed, budget)
    trajectory = Trajectory(strategy, scenario, seed)
    if strategy in ("arbor", "greedy"):
        await engine_run(spec, runs_root / strategy, trajectory, single_agent=strategy == "greedy")
        return trajectory
    async with Evaluator(spec, runs_root / strategy, f"{scenario}-s{seed}", trajectory) as ev:
        await TUNERS[strategy](ev, spec, budget, seed)
    return trajectory


async def compare(plan: Plan, budget: int, strategies: list[str], runs_root: Path, say: bool,
                  runs: list[dict]) -> list[dict]:
    """Every strategy on every scenario and seed, one after another (never two at once on this machine).

    Each finished run is appended to `runs` as it ends, so an interrupted comparison keeps what it did;
    triples already in `runs` (a resumed comparison) are skipped.
    """
    finished = done(runs)
    todo = [(scenario, seed, strategy) for scenario, seed in plan.pairs() for strategy in strategies
            if (strategy, scenario, seed) not in finished]
    truths: dict[str, Truth] = {}
    for i, (scenario, seed, strategy) in enumerate(todo, start=1):
        if scenario not in truths:
            truths[scenario] = Truth.of(scenario)
        truth = truths[scenario]
        started = time.monotonic()
        trajectory = await one(strategy, scenario, seed, budget, runs_root)
        metrics = trajectory.metrics(truth, budget)
        runs.append(metrics | {"trajectory": trajectory.dump()["evaluations"]})
        if say:
            print(f"[{i}/{len(todo)}] {scenario} seed {seed} {strategy}: gain {metrics['best_valid_gain']:+.1%}, "
                  f"to 95% {metrics['evals_to_95']}, crashes {metrics['crashes']}, invalid keeps "
                  f"{metrics['invalid_keeps']} ({time.monotonic() - started:.0f}s)", file=sys.stderr, flush=True)
    return runs


def write(out: Path, runs: list[dict], budget: int, settings: dict) -> dict:
    """comparison.json, comparison.md and regret.svg; returns the summary."""
    out.mkdir(parents=True, exist_ok=True)
    summary = summarise(runs, budget)
    (out / "comparison.json").write_text(json.dumps({"settings": settings, "summary": summary, "runs": runs},
                                                    indent=1, default=str))
    (out / "comparison.md").write_text(markdown(summary, runs, budget, settings))
    (out / "regret.svg").write_text(regret_svg(runs, budget))
    return summary


def main(argv: list[str] | None = None) -> dict:
    args, plan, strategies, runs = parse(argv, __doc__)
    out = args.out or args.resume or Path(tempfile.mkdtemp(prefix="arbor-search-"))
    if plan.generator_seeds:
        # Printed first and always: the only way to meet the same generated scenarios again.
        print(f"generated scenarios: {', '.join(plan.generated)} (again: --gen-seeds "
              f"{','.join(map(str, plan.generator_seeds))})", file=sys.stderr, flush=True)
    before = len(runs)
    stopped = False
    try:
        # Ctrl-C or SIGTERM cancels the work, which stops every server on the way out.
        if args.demo:
            from tests.perf.searchbench.demo import demo_compare

            line = asyncio.run(cancellable(demo_compare(plan.seeds, args.demo_wall_s, strategies, out,
                                                        not args.quiet, runs)))
            print(json.dumps(line))
            return line
        asyncio.run(cancellable(compare(plan, args.budget, strategies, out / "runs", not args.quiet, runs)))
    except BaseException as exc:  # noqa: BLE001 - MCP task groups wrap a cancellation in exception groups
        if not interrupted(exc):
            raise
        stopped = True
    if args.demo or not runs:
        print(json.dumps({"interrupted": True, "runs_finished": len(runs) - before, "out": str(out)}))
        sys.exit(130)
    summary = write(out, runs, args.budget, plan.settings() | {
        "budget": args.budget, "strategies": strategies, "interrupted": stopped,
        "resumed_from": str(args.resume) if args.resume else None})
    line = headline(summary) | {"runs_this_time": len(runs) - before, "report": str(out / "comparison.md")}
    if stopped:
        line["interrupted"] = True
    print(json.dumps(line))
    if stopped:
        sys.exit(130)
    return line


if __name__ == "__main__":
    main()
