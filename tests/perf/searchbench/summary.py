"""Medians over scenarios and seeds, the Markdown table, the regret plot and the one JSON line."""

from __future__ import annotations

from statistics import median
from typing import Any

from arbor.host.report import line_svg

ORDER = ["arbor", "greedy", "optuna", "random", "grid"]
LABELS = {"arbor": "Arbor (offline policy + Critic)", "greedy": "greedy single agent", "optuna": "Optuna TPE",
          "random": "random search", "grid": "grid (auto_tune style)"}


def _to95(rows: list[dict[str, Any]], budget: int) -> float:
    # Runs that never got within 5% count as budget + 1: the median stays honest when some never arrive.
    return median(r["evals_to_95"] or budget + 1 for r in rows)


def summarise(runs: list[dict[str, Any]], budget: int) -> dict[str, dict[str, Any]]:
    """Per strategy: medians and totals over every scenario and seed."""
    out: dict[str, dict[str, Any]] = {}
    for strategy in [s for s in ORDER if any(r["strategy"] == s for r in runs)]:
        rows = [r for r in runs if r["strategy"] == strategy]
        out[strategy] = {"runs": len(rows), "evals_to_95": _to95(rows, budget),
                         "reached_95": sum(r["evals_to_95"] is not None for r in rows),
                         "best_valid_gain": median(r["best_valid_gain"] for r in rows),
                         "min_valid_gain": min(r["best_valid_gain"] for r in rows),
                         "crashes": sum(r["crashes"] for r in rows),
                         "invalid_keeps": sum(r["invalid_keeps"] for r in rows),
                         "invalid_final": sum(r["final_flaw"] is not None for r in rows),
                         "wall_s": median(r["wall_s"] for r in rows),
                         "bench_repeats": median(r["bench_repeats"] for r in rows)}
    return out


def markdown(summary: dict[str, dict[str, Any]], runs: list[dict[str, Any]], budget: int,
             settings: dict[str, Any]) -> str:
    """The comparison as a Markdown document."""
    lines = ["# Search efficiency", "",
             f"{settings['scenarios']} × seeds {settings['seeds']}, {budget} evaluations each (the defaults "
             "count as the first). Valid gain: the simulator's noise-free rate of the configuration each strategy "
             "ends with, over the defaults'; a configuration that crashes, corrupts outputs or shrinks the workload "
             "counts as no gain. Evaluations to 95%: first evaluation after which the kept configuration is valid "
             f"and within 5% of the known optimum (not reached: counted as {budget + 1}).", "",
             *(["**Interrupted**: only the runs that finished are counted.", ""] if settings.get("interrupted")
               else []),
             "| strategy | valid gain (median, worst) | evals to 95% (median, reached) | crashes | invalid keeps "
             "| invalid at the end | wall s (median) | benchmark repeats (median) |",
             "|---|---|---|---|---|---|---|---|"]
    for strategy, s in summary.items():
        lines.append(f"| {LABELS[strategy]} | {s['best_valid_gain']:+.1%}, {s['min_valid_gain']:+.1%} | "
                     f"{s['evals_to_95']:g}, {s['reached_95']}/{s['runs']} | {s['crashes']} | {s['invalid_keeps']} | "
                     f"{s['invalid_final']} | {s['wall_s']:.0f} | {s['bench_repeats']:g} |")
    lines += ["", "## Per scenario (median over seeds)", "", "| scenario | " + " | ".join(
        LABELS[s] for s in summary) + " |", "|---|" + "---|" * len(summary)]
    for scenario in settings["scenarios"]:
        cells = []
        for strategy in summary:
            rows = [r for r in runs if r["strategy"] == strategy and r["scenario"] == scenario]
            cells.append(f"{median(r['best_valid_gain'] for r in rows):+.1%} / {_to95(rows, budget):g}"
                         if rows else "-")
        lines.append(f"| {scenario} | " + " | ".join(cells) + " |")
    lines += ["", "Cells: valid gain / evaluations to 95%.", "", "![regret](regret.svg)", ""]
    return "\n".join(lines)


def regret_svg(runs: list[dict[str, Any]], budget: int) -> str:
    """Median regret (share of the optimum's rate not reached) against evaluations, one line per strategy."""
    series = {}
    for strategy in [s for s in ORDER if any(r["strategy"] == s for r in runs)]:
        curves = [r["regret"] for r in runs if r["strategy"] == strategy]
        series[LABELS[strategy]] = [(i + 1, median(c[i] for c in curves), None) for i in range(budget)]
    return line_svg(series, "evaluations", "median regret (1 - rate / optimum)", markers=False)


def headline(summary: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The one JSON line the issue asks for, with the goals checked."""
    def get(strategy: str, key: str) -> Any:
        return summary.get(strategy, {}).get(key)

    line = {"arbor_evals_to_95": get("arbor", "evals_to_95"), "optuna_evals_to_95": get("optuna", "evals_to_95"),
            "random_evals_to_95": get("random", "evals_to_95"), "grid_evals_to_95": get("grid", "evals_to_95"),
            "greedy_evals_to_95": get("greedy", "evals_to_95"),
            "arbor_invalid_keeps": get("arbor", "invalid_keeps"),
            "greedy_invalid_keeps": get("greedy", "invalid_keeps"),
            "optuna_invalid_keeps": get("optuna", "invalid_keeps"),
            "arbor_best_valid_gain": _round(get("arbor", "best_valid_gain")),
            "optuna_best_valid_gain": _round(get("optuna", "best_valid_gain")),
            "random_best_valid_gain": _round(get("random", "best_valid_gain")),
            "grid_best_valid_gain": _round(get("grid", "best_valid_gain")),
            "greedy_best_valid_gain": _round(get("greedy", "best_valid_gain"))}
    if "arbor" in summary and "optuna" in summary:
        gains = [s["best_valid_gain"] for s in summary.values()]
        line["met"] = bool(summary["arbor"]["evals_to_95"] <= summary["optuna"]["evals_to_95"] / 2
                           and summary["arbor"]["invalid_keeps"] == 0
                           and summary["arbor"]["best_valid_gain"] >= max(gains))
    return line


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
