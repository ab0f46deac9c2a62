"""The built-in demo campaign with its fixed budget, as one JSON line.

Goals (issue 5): within 10 minutes, an accepted output-throughput gain of at least +25%
over llama-server's defaults at the primary concurrency (lower bound above +15%), p50
TTFT at least 5x lower, and host overhead (wall time not spent starting servers,
benchmarking, profiling or gating) under 2%.
Run: .venv/bin/python tests/perf/demo_campaign.py [--budget-s 600]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from arbor.host.campaign import new_run, run_campaign  # noqa: E402
from arbor.host.spec import load_spec  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--budget-s", type=float, default=None)
    parser.add_argument("--runs-dir", type=Path, default=None)
    args = parser.parse_args()
    spec = load_spec(None)
    if args.budget_s:
        spec = spec.model_copy(update={"budget": spec.budget.model_copy(update={"wall_clock_s": args.budget_s})})
    runs = args.runs_dir or Path(tempfile.mkdtemp(prefix="arbor-demo-"))
    run_dir = new_run(spec, runs, None, True, lambda _: None)
    report = asyncio.run(run_campaign(run_dir, lambda line: print(line, file=sys.stderr, flush=True)))
    base, best = report["primary"]["baseline"], report["primary"]["best"]
    gain = report.get("overall_gain") or {}
    s = report["summary"]
    print(json.dumps({
        "baseline_out_tok_s": round(base["output_throughput"], 1),
        "best_out_tok_s": round(best["output_throughput"], 1),
        "gain_pct": round(100 * gain["rel_change"], 1) if "rel_change" in gain else 0.0,
        "ci_low_pct": round(100 * gain["ci_low"], 1) if gain.get("ci_low") is not None else None,
        "baseline_ttft_p50_ms": round(base["median_ttft_ms"]),
        "best_ttft_p50_ms": round(best["median_ttft_ms"]),
        "actions": s["actions"], "kept": s["kept"], "crashed": s["crashed"],
        "host_overhead_pct": round(report["timing"]["host_overhead_pct"], 2),
        "run_dir": str(run_dir),
    }))


if __name__ == "__main__":
    main()
