"""The same comparison on the real demo target (llama-server, SmolLM2): equal wall clock, gains re-measured.

There is no known optimum on a real stack, so each strategy's final configuration is
re-measured against the defaults side by side (alternating repeats, one server each),
behind the same accuracy gate; a final configuration that fails it, or whose benchmark
drifts from the workload, counts as no gain.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from statistics import median
from typing import Any

from arbor.host.spec import load_spec

from .arbor_runs import engine_run
from .evaluator import Evaluator
from .strategies import TUNERS
from .trajectory import Trajectory

REPEATS = 3
DEMO_STRATEGIES = ("arbor", "optuna", "random")


async def remeasure(ev: Evaluator, config: dict[str, Any]) -> float:
    """The final configuration's gain over the defaults, measured side by side now; 0 when it is not valid."""
    if not config:
        return 0.0
    servers = {}
    try:
        for label, cfg in (("base", {}), ("final", config)):
            outcome = await ev.svc.launch(cfg, f"remeasure-{label}")
            if not outcome.ok or outcome.server is None:
                return 0.0
            servers[label] = outcome.server
        if ev.reference is None:
            ev.reference = (await ev.svc.parity_reference(servers["base"].base_url, ev.model)).path
        check = await ev.svc.parity_check(servers["final"].base_url, ev.model, ev.reference,
                                          ev.spec.gates.min_agreement)
        if not check.passed:
            return 0.0
        rates: dict[str, list[float]] = {"base": [], "final": []}
        for i in range(REPEATS):
            for label in ("base", "final"):
                result, _ = await ev.svc.bench(servers[label].base_url, ev.workload(), f"remeasure-{label}-{i}")
                if label == "final" and (not result.lengths_ok or result.failed):
                    return 0.0
                rates[label].append(result.output_throughput)
        return median(rates["final"]) / median(rates["base"]) - 1.0
    finally:
        for server in servers.values():
            await ev.svc.stop(server.id)


async def demo_compare(seeds: list[int], wall_s: float, strategies: list[str], out: Path, say: bool,
                       runs: list[dict[str, Any]]) -> dict:
    """Arbor, Optuna and random on the demo target, each `wall_s` seconds per seed; one JSON line.

    Each finished run is appended to `runs` (and written out) as it ends.
    """
    base = load_spec(None)
    for seed in seeds:
        spec = base.model_copy(update={
            "workload": base.workload.model_copy(update={"seed": seed}),
            "budget": base.budget.model_copy(update={"wall_clock_s": wall_s, "max_actions": 10_000})})
        for strategy in [s for s in strategies if s in DEMO_STRATEGIES]:
            started = time.monotonic()
            trajectory = Trajectory(strategy, "demo", seed)
            if strategy == "arbor":
                await engine_run(spec, out / "runs" / strategy, trajectory, single_agent=False)
            async with Evaluator(spec, out / "runs" / strategy, f"demo-s{seed}", trajectory,
                                 None if strategy == "arbor" else wall_s) as ev:
                if strategy != "arbor":
                    await TUNERS[strategy](ev, spec, 10_000, seed)
                final = trajectory.evaluations[-1].incumbent if trajectory.evaluations else {}
                gain = await remeasure(ev, final)
            row = {"strategy": strategy, "seed": seed, "evaluations": len(trajectory.evaluations),
                   "crashes": sum(e.outcome == "crashed" for e in trajectory.evaluations), "final_config": final,
                   "valid_gain": round(gain, 4), "wall_s": round(time.monotonic() - started, 1)}
            runs.append(row)
            out.mkdir(parents=True, exist_ok=True)
            (out / "demo_comparison.json").write_text(json.dumps(runs, indent=1))
            if say:
                print(json.dumps(row), flush=True, file=sys.stderr)
    line: dict[str, Any] = {}
    for strategy in [s for s in strategies if s in DEMO_STRATEGIES]:
        rows = [r for r in runs if r["strategy"] == strategy]
        line[f"{strategy}_valid_gain"] = median(r["valid_gain"] for r in rows)
        line[f"{strategy}_evaluations"] = median(r["evaluations"] for r in rows)
    return line | {"wall_s_each": wall_s, "seeds": len(seeds), "report": str(out / "demo_comparison.json")}
