"""Search efficiency side by side: Arbor against Optuna TPE, random, grid and a greedy single agent.

Every strategy gets the same scenarios, seeds and budget of evaluations (a configuration
launched and measured; the defaults are the first), on the simulated stack run for real:
its server, the benchmark, the accuracy gate and, for Arbor, the whole engine. Writes
comparison.json, comparison.md and regret.svg into --out, and prints one JSON line
(medians over scenarios and seeds). Goals (issue 8): Arbor within 5% of the optimum in at
most half Optuna's evaluations, zero invalid keeps, the best valid gain of all.

Run: .venv/bin/python tests/perf/search_efficiency.py [--scenarios layered,tp_comm] [--seeds 3]
     [--budget 24] [--strategies arbor,greedy,optuna,random,grid] [--out DIR]
     .venv/bin/python tests/perf/search_efficiency.py --demo [--demo-wall-s 300]   (the real llama-server)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from arbor.host.cli import cancellable, interrupted  # noqa: E402
from arbor.tools.sim.model import scenarios  # noqa: E402
from tests.perf.searchbench.arbor_runs import engine_run  # noqa: E402
from tests.perf.searchbench.evaluator import Evaluator  # noqa: E402
from tests.perf.searchbench.space import sim_spec  # noqa: E402
from tests.perf.searchbench.strategies import TUNERS  # noqa: E402
from tests.perf.searchbench.summary import ORDER, headline, markdown, regret_svg, summarise  # noqa: E402
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


async def compare(names: list[str], seeds: list[int], budget: int, strategies: list[str], runs_root: Path,
                  say: bool, runs: list[dict]) -> list[dict]:
    """Every strategy on every scenario and seed, one after another (never two at once on this machine).

    Each finished run is appended to `runs` as it ends, so an interrupted comparison keeps what it did.
    """
    for scenario in names:
        truth = Truth(scenarios()[scenario])
        for seed in seeds:
            for strategy in strategies:
                started = time.monotonic()
                trajectory = await one(strategy, scenario, seed, budget, runs_root)
                metrics = trajectory.metrics(truth, budget)
                runs.append(metrics | {"trajectory": trajectory.dump()["evaluations"]})
                if say:
                    print(f"{scenario} seed {seed} {strategy}: gain {metrics['best_valid_gain']:+.1%}, to 95% "
                          f"{metrics['evals_to_95']}, crashes {metrics['crashes']}, invalid keeps "
                          f"{metrics['invalid_keeps']} ({time.monotonic() - started:.0f}s)", file=sys.stderr,
                          flush=True)
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
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default=",".join(sorted(scenarios())))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budget", type=int, default=24, help="evaluations per run, the defaults included")
    parser.add_argument("--strategies", default=",".join(ORDER))
    parser.add_argument("--out", type=Path, default=None, help="where the JSON, Markdown and plot go")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--demo", action="store_true", help="the real llama-server demo target, equal wall clock")
    parser.add_argument("--demo-wall-s", type=float, default=300.0)
    args = parser.parse_args(argv)
    names = [n for n in args.scenarios.split(",") if n]
    strategies = [s for s in args.strategies.split(",") if s]
    bad = sorted(set(names) - set(scenarios())) + sorted(set(strategies) - set(ORDER))
    if bad or args.budget < 2 or args.seeds < 1:
        parser.error(f"unknown {bad}" if bad else "--budget must be >= 2 and --seeds >= 1")
    if "optuna" in strategies:
        try:
            import optuna  # noqa: F401
        except ImportError:
            parser.error("optuna is not installed: pip install -e '.[test]' (or leave it out of --strategies)")
    out = args.out or Path(tempfile.mkdtemp(prefix="arbor-search-"))
    seeds = list(range(args.seeds))
    runs: list[dict] = []
    stopped = False
    try:
        # Ctrl-C or SIGTERM cancels the work, which stops every server on the way out.
        if args.demo:
            from tests.perf.searchbench.demo import demo_compare

            line = asyncio.run(cancellable(demo_compare(seeds, args.demo_wall_s, strategies, out, not args.quiet,
                                                        runs)))
            print(json.dumps(line))
            return line
        asyncio.run(cancellable(compare(names, seeds, args.budget, strategies, out / "runs", not args.quiet, runs)))
    except BaseException as exc:  # noqa: BLE001 - MCP task groups wrap a cancellation in exception groups
        if not interrupted(exc):
            raise
        stopped = True
    if args.demo or not runs:
        print(json.dumps({"interrupted": True, "runs_finished": len(runs), "out": str(out)}))
        sys.exit(130)
    summary = write(out, runs, args.budget, {"scenarios": names, "seeds": seeds, "budget": args.budget,
                                             "strategies": strategies, "interrupted": stopped})
    line = headline(summary) | {"report": str(out / "comparison.md")} | ({"interrupted": True} if stopped else {})
    print(json.dumps(line))
    if stopped:
        sys.exit(130)
    return line


if __name__ == "__main__":
    main()
