"""Medians over scenarios and seeds, the Markdown report, the regret plot and the one JSON line."""

from __future__ import annotations

from collections import defaultdict
from statistics import median
from typing import Any

from arbor.host.report import line_svg

from .plan import generated

ORDER = ["arbor", "greedy", "optuna", "optuna_gp", "random", "grid"]
LABELS = {"arbor": "Arbor (offline policy + Critic)", "greedy": "greedy single agent", "optuna": "Optuna TPE",
          "optuna_gp": "Optuna GP", "random": "random search", "grid": "grid (auto_tune style)"}
GROUPS = {"generated": "Generated scenarios", "named": "Named scenarios"}
TIE = 0.005  # gains within half a percentage point are a tie: the simulator's optimum is a plateau
HEADLINE_KEYS = ("evals_to_95", "reached_95_share", "invalid_keeps", "best_valid_gain")


def _to95(rows: list[dict[str, Any]], budget: int) -> float:
    # Runs that never got within 5% count as budget + 1: the median stays honest when some never arrive.
    return median(r["evals_to_95"] or budget + 1 for r in rows)


def groups(runs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The runs on generated scenarios and on named ones, the empty group left out."""
    out = {"generated": [r for r in runs if generated(r["scenario"])],
           "named": [r for r in runs if not generated(r["scenario"])]}
    return {k: v for k, v in out.items() if v}


def basis(summary: dict[str, Any]) -> str | None:
    """The group the issue's numbers come from: the generated scenarios when there are any."""
    return next((g for g in GROUPS if g in summary), None)


def gain_ge_peers_share(runs: list[dict[str, Any]], strategy: str) -> float | None:
    """Share of (scenario, seed) pairs where `strategy`'s best valid gain is at least every other's (ties count)."""
    pairs: dict[tuple[str, int], dict[str, float]] = defaultdict(dict)
    for r in runs:
        pairs[(r["scenario"], r["seed"])][r["strategy"]] = r["best_valid_gain"]
    # A pair where no peer finished (an interrupted run) says nothing either way.
    judged = [g for g in pairs.values() if strategy in g and len(g) > 1]
    if not judged:
        return None
    wins = sum(g[strategy] >= max(v for s, v in g.items() if s != strategy) - TIE for g in judged)
    return wins / len(judged)


def per_strategy(runs: list[dict[str, Any]], budget: int) -> dict[str, dict[str, Any]]:
    """Per strategy: medians and totals over the scenarios and seeds of `runs`."""
    out: dict[str, dict[str, Any]] = {}
    for strategy in [s for s in ORDER if any(r["strategy"] == s for r in runs)]:
        rows = [r for r in runs if r["strategy"] == strategy]
        reached = sum(r["evals_to_95"] is not None for r in rows)
        out[strategy] = {"runs": len(rows), "scenarios": len({r["scenario"] for r in rows}),
                         "evals_to_95": _to95(rows, budget), "reached_95": reached,
                         "reached_95_share": reached / len(rows),
                         "best_valid_gain": median(r["best_valid_gain"] for r in rows),
                         "min_valid_gain": min(r["best_valid_gain"] for r in rows),
                         "gain_ge_all_peers_share": gain_ge_peers_share(runs, strategy),
                         "crashes": sum(r["crashes"] for r in rows),
                         "invalid_keeps": sum(r["invalid_keeps"] for r in rows),
                         "invalid_final": sum(r["final_flaw"] is not None for r in rows),
                         "wall_s": median(r["wall_s"] for r in rows),
                         "wall_s_per_evaluation": median(r["wall_s"] / max(1, r.get("evaluations", 1)) for r in rows),
                         "bench_repeats": median(r["bench_repeats"] for r in rows)}
    return out


def summarise(runs: list[dict[str, Any]], budget: int) -> dict[str, dict[str, dict[str, Any]]]:
    """Per group (generated, named), per strategy: the medians and totals."""
    return {group: per_strategy(rows, budget) for group, rows in groups(runs).items()}


def goals(group: dict[str, dict[str, Any]]) -> dict[str, bool | None]:
    """Issue 15's goals for Arbor on one group; None where a goal cannot be checked (a peer did not run)."""
    arbor = group.get("arbor")

    def half_of(peer: str) -> bool | None:
        other = group.get(peer)
        return None if arbor is None or other is None else arbor["evals_to_95"] <= 0.5 * other["evals_to_95"]

    ge = None if arbor is None else arbor["gain_ge_all_peers_share"]
    return {"evals_to_95_le_half_optuna": half_of("optuna"), "evals_to_95_le_half_random": half_of("random"),
            "reached_95_ge_90pct": None if arbor is None else arbor["reached_95_share"] >= 0.9,
            "zero_invalid_keeps": None if arbor is None else arbor["invalid_keeps"] == 0,
            "gain_ge_all_peers_ge_80pct": None if ge is None else ge >= 0.8}


def _flat(group: dict[str, dict[str, Any]]) -> dict[str, Any]:
    # Every strategy's keys are always there (None when it did not run), so the line's shape never changes.
    line: dict[str, Any] = {}
    for strategy in ORDER:
        for key in HEADLINE_KEYS:
            value = group.get(strategy, {}).get(key)
            line[f"{strategy}_{key}"] = round(value, 4) if isinstance(value, float) else value
    line["arbor_gain_ge_all_peers_share"] = _round(group.get("arbor", {}).get("gain_ge_all_peers_share"))
    return line


def headline(summary: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """The one JSON line: the issue's numbers (generated scenarios when any ran), the named ones apart, goals."""
    group_name = basis(summary)
    group = summary.get(group_name, {}) if group_name else {}
    checked = goals(group)
    line = {"basis": group_name, "scenarios": max((s["scenarios"] for s in group.values()), default=0),
            **_flat(group), "goals": checked, "met": all(v is True for v in checked.values())}
    if group_name == "generated" and "named" in summary:
        line["named"] = _flat(summary["named"]) | {"goals": goals(summary["named"])}
    return line


def _table(group: dict[str, dict[str, Any]]) -> list[str]:
    lines = ["| strategy | valid gain (median, worst) | evals to 95% (median) | reached 95% | gain ≥ every peer "
             "| crashes | invalid keeps | invalid at the end | wall s (median) | s per evaluation "
             "| benchmark repeats (median) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for strategy, s in group.items():
        ge = s["gain_ge_all_peers_share"]
        lines.append(f"| {LABELS[strategy]} | {s['best_valid_gain']:+.1%}, {s['min_valid_gain']:+.1%} | "
                     f"{s['evals_to_95']:g} | {s['reached_95']}/{s['runs']} | {'-' if ge is None else f'{ge:.0%}'} | "
                     f"{s['crashes']} | {s['invalid_keeps']} | {s['invalid_final']} | {s['wall_s']:.0f} | "
                     f"{s['wall_s_per_evaluation']:.1f} | {s['bench_repeats']:g} |")
    checked = goals(group)
    marks = {True: "met", False: "not met", None: "not checked"}
    return lines + ["", "Goals for Arbor: " + "; ".join(f"{k} {marks[v]}" for k, v in checked.items()) + "."]


def _cell(rows: list[dict[str, Any]], budget: int) -> str:
    return f"{median(r['best_valid_gain'] for r in rows):+.1%} / {_to95(rows, budget):g}" if rows else "-"


def _scenario_rows(runs: list[dict[str, Any]], strategies: list[str], budget: int) -> list[str]:
    # Generated scenarios are one block (there may be fifty); the named ones are examples, one row each.
    gen = groups(runs).get("generated", [])
    lines = []
    if gen:
        n = len({r["scenario"] for r in gen})
        lines.append(f"| {n} generated (median over them) | " + " | ".join(
            _cell([r for r in gen if r["strategy"] == s], budget) for s in strategies) + " |")
    for scenario in dict.fromkeys(r["scenario"] for r in runs if not generated(r["scenario"])):
        lines.append(f"| {scenario} | " + " | ".join(
            _cell([r for r in runs if r["strategy"] == s and r["scenario"] == scenario], budget)
            for s in strategies) + " |")
    return lines


def markdown(summary: dict[str, dict[str, dict[str, Any]]], runs: list[dict[str, Any]], budget: int,
             settings: dict[str, Any]) -> str:
    """The comparison as a Markdown document."""
    gen_seeds = settings.get("generator_seeds") or []
    what = [f"{len(gen_seeds)} generated scenario{'s' * (len(gen_seeds) != 1)} (generator seeds {gen_seeds}; the "
            f"same again: --gen-seeds {','.join(map(str, gen_seeds))}) × seeds {settings.get('seeds_generated')}"
            ] if gen_seeds else []
    if settings.get("scenarios"):
        what.append(f"{settings['scenarios']} × seeds {settings.get('seeds')}")
    lines = ["# Search efficiency", "",
             f"{' and '.join(what)}, {budget} evaluations each (the defaults count as the first). Valid gain: the "
             "simulator's noise-free rate of the configuration each strategy ends with, over the defaults'; a "
             "configuration that crashes, corrupts outputs or shrinks the workload counts as no gain. Evaluations "
             "to 95%: first evaluation after which the kept configuration is valid and within 5% of the known "
             f"optimum (not reached: counted as {budget + 1}). Gain ≥ every peer: share of scenario and seed pairs "
             f"where the strategy's valid gain is at least every other strategy's, within {TIE * 100:g} percentage "
             "points. "
             "The generated scenarios give the issue's numbers; the named ones are examples.", "",
             *(["**Interrupted**: only the runs that finished are counted.", ""] if settings.get("interrupted")
               else [])]
    for group, title in GROUPS.items():
        if group in summary:
            lines += [f"## {title}", "", *_table(summary[group]), ""]
    strategies = list(dict.fromkeys(s for g in summary.values() for s in g))
    lines += ["## Per scenario (median over seeds)", "", "| scenario | " + " | ".join(
        LABELS[s] for s in strategies) + " |", "|---|" + "---|" * len(strategies),
              *_scenario_rows(runs, strategies, budget),
              "", "Cells: valid gain / evaluations to 95%.", "", "![regret](regret.svg)", ""]
    return "\n".join(lines)


def regret_svg(runs: list[dict[str, Any]], budget: int) -> str:
    """Median regret (share of the optimum's rate not reached) against evaluations, one line per strategy.

    Over the generated scenarios when there are any (the issue's numbers), else the named ones.
    """
    by_group = groups(runs)
    rows = by_group.get("generated") or by_group.get("named") or []
    series = {}
    for strategy in [s for s in ORDER if any(r["strategy"] == s for r in rows)]:
        curves = [r["regret"] for r in rows if r["strategy"] == strategy]
        series[LABELS[strategy]] = [(i + 1, median(c[i] for c in curves), None) for i in range(budget)]
    return line_svg(series, "evaluations", "median regret (1 - rate / optimum)", markers=False)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
