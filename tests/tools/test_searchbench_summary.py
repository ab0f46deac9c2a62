"""The search-efficiency comparison's bookkeeping without a server: summary, goals, plan, options, resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.perf import search_efficiency
from tests.perf.searchbench import options
from tests.perf.searchbench.plan import Plan, draw_generator_seeds, generated
from tests.perf.searchbench.summary import gain_ge_peers_share, goals, headline, markdown, regret_svg, summarise

BUDGET = 10


def row(strategy: str, scenario: str, gain: float, to95: int | None, seed: int = 0, invalid: int = 0) -> dict:
    return {"strategy": strategy, "scenario": scenario, "seed": seed, "evals_to_95": to95, "best_valid_gain": gain,
            "crashes": 0, "invalid_keeps": invalid, "final_flaw": None, "wall_s": 20.0, "evaluations": BUDGET,
            "bench_repeats": 3, "regret": [0.5] * BUDGET}


def many_generated(n: int) -> list[dict[str, Any]]:
    # Arbor reaches 95% in 3 and leads on every scenario (Optuna within a tie); Optuna in 5, random never.
    runs = []
    for i in range(n):
        runs += [row("arbor", f"gen-{i}", 0.80, 3), row("optuna", f"gen-{i}", 0.797, 5),
                 row("random", f"gen-{i}", 0.50, None)]
    return runs


def test_summary_medians_count_runs_that_never_arrive_as_over_budget() -> None:
    rows = [row("arbor", "layered", 1.0, 3), row("optuna", "layered", 0.5, None, invalid=1),
            row("optuna", "layered", 0.7, 6, seed=1)]
    s = summarise(rows, budget=10)["named"]
    assert s["optuna"]["evals_to_95"] == 8.5 and s["optuna"]["reached_95"] == 1
    assert s["optuna"]["reached_95_share"] == 0.5 and s["arbor"]["wall_s_per_evaluation"] == 2.0
    line = headline(summarise(rows, budget=10))
    assert line["basis"] == "named" and line["arbor_evals_to_95"] == 3 and line["optuna_invalid_keeps"] == 1
    assert line["goals"]["evals_to_95_le_half_optuna"] is True
    assert line["goals"]["evals_to_95_le_half_random"] is None, "random did not run: not checked"
    assert line["met"] is False, "a goal not checked is not met"


def test_gain_against_every_peer_counts_ties_and_skips_pairs_with_no_peer() -> None:
    runs = [row("arbor", "a", 0.500, 3), row("optuna", "a", 0.504, 3), row("random", "a", 0.1, None),  # a tie
            row("arbor", "b", 0.50, 3), row("optuna", "b", 0.60, 3),  # a loss
            row("arbor", "c", 0.70, 3)]  # no peer finished: not judged
    assert gain_ge_peers_share(runs, "arbor") == 0.5
    assert gain_ge_peers_share(runs, "optuna") == 1.0
    assert gain_ge_peers_share([row("arbor", "c", 0.7, 3)], "arbor") is None


def test_goals_are_checked_on_the_generated_scenarios_and_the_named_are_reported_apart() -> None:
    runs = many_generated(10) + [row("arbor", "layered", 0.1, None, invalid=1), row("optuna", "layered", 0.9, 2)]
    line = headline(summarise(runs, BUDGET))
    assert line["basis"] == "generated" and line["scenarios"] == 10
    assert line["arbor_evals_to_95"] == 3 and line["optuna_evals_to_95"] == 5 and line["random_evals_to_95"] == 11
    assert line["arbor_reached_95_share"] == 1.0 and line["random_reached_95_share"] == 0.0
    assert line["arbor_gain_ge_all_peers_share"] == 1.0
    assert line["goals"] == {"evals_to_95_le_half_optuna": False, "evals_to_95_le_half_random": True,
                             "reached_95_ge_90pct": True, "zero_invalid_keeps": True,
                             "gain_ge_all_peers_ge_80pct": True}
    assert line["met"] is False
    named = line["named"]
    assert named["arbor_invalid_keeps"] == 1 and named["arbor_gain_ge_all_peers_share"] == 0.0
    assert named["goals"]["zero_invalid_keeps"] is False
    assert set(line) >= {f"{s}_{k}" for s in ("arbor", "greedy", "optuna", "optuna_gp", "random", "grid")
                         for k in ("evals_to_95", "reached_95_share", "invalid_keeps", "best_valid_gain")}
    json.dumps(line)


def test_every_goal_met() -> None:
    runs = many_generated(5)
    for r in runs:
        if r["strategy"] == "optuna":
            r["evals_to_95"] = None
    summary = summarise(runs, BUDGET)
    assert all(goals(summary["generated"]).values()) and headline(summary)["met"] is True


def test_the_report_lists_named_scenarios_and_sums_up_generated_ones_in_one_row() -> None:
    runs = many_generated(50) + [row("arbor", "layered", 0.8, 3), row("optuna", "layered", 0.8, 5)]
    settings = {"scenarios": ["layered"], "generator_seeds": list(range(50)), "seeds": [0], "seeds_generated": [0]}
    doc = markdown(summarise(runs, BUDGET), runs, BUDGET, settings)
    assert "## Generated scenarios" in doc and "## Named scenarios" in doc and "--gen-seeds 0,1,2," in doc
    assert "| 50 generated (median over them) | +80.0% / 3 | +79.7% / 5 | +50.0% / 11 |" in doc
    assert "| layered | +80.0% / 3 | +80.0% / 5 | - |" in doc
    assert "gen-7 |" not in doc, "no row per generated scenario"
    assert regret_svg(runs, BUDGET).count("<polyline") == 3


def test_generator_seeds_are_fresh_distinct_and_kept_when_asked() -> None:
    a, b = draw_generator_seeds(20), draw_generator_seeds(20)
    assert len(set(a)) == 20 and a != b
    assert draw_generator_seeds(3, keep=[7, 7, 9])[:2] == [7, 9] and len(draw_generator_seeds(3, keep=[7, 9])) == 3
    plan = Plan(["layered"], [5, 6], [0, 1], [0])
    assert plan.pairs() == [("gen-5", 0), ("gen-6", 0), ("layered", 0), ("layered", 1)]
    assert generated("gen-5") and not generated("layered")


def _parse(*argv: str) -> tuple[Any, Plan, list[str], list[dict]]:
    return options.parse(list(argv), search_efficiency.__doc__ or "")


def test_seeds_default_to_three_per_named_and_one_per_generated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(options.stack, "scenario", lambda name: None)  # generated names resolve, whatever lands
    _, plan, _, _ = _parse("--gen-seeds", "4,2", "--scenarios", "layered")
    assert plan.generated == ["gen-4", "gen-2"] and plan.seeds == [0, 1, 2] and plan.seeds_generated == [0]
    _, plan, _, _ = _parse("--generated", "3", "--seeds", "2")
    assert len(set(plan.generator_seeds)) == 3 and plan.seeds == plan.seeds_generated == [0, 1]


@pytest.mark.parametrize(("argv", "message"), [
    (["--gen-seeds", "1,x"], "expected distinct integers"),
    (["--gen-seeds", "1,1"], "expected distinct integers"),
    (["--generated", "2", "--gen-seeds", "1"], "--generated 2 but 1 --gen-seeds"),
    (["--scenarios", ""], "no scenario to run"),
    (["--resume", "/nonexistent/arbor"], "no comparison to resume"),
    (["--demo", "--generated", "2"], "--demo runs the real llama-server"),
])
def test_bad_options_are_refused_with_a_reason(argv: list[str], message: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as caught:
        _parse(*argv)
    assert caught.value.code == 2 and message in capsys.readouterr().err


def test_optuna_gp_without_torch_names_the_extra(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture) -> None:
    real = options.importlib.import_module

    def no_torch(name: str) -> Any:
        if name == "torch":
            raise ImportError("No module named 'torch'")
        return real(name)

    monkeypatch.setattr(options.importlib, "import_module", no_torch)
    _, _, strategies, _ = _parse("--scenarios", "layered")
    assert "optuna_gp" not in strategies and "optuna" in strategies, "left out of the defaults without torch"
    with pytest.raises(SystemExit):
        _parse("--scenarios", "layered", "--strategies", "random,optuna_gp")
    assert "pip install -e '.[bench]'" in capsys.readouterr().err


def test_a_resumed_comparison_keeps_its_settings_and_skips_what_finished(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture) -> None:
    runs = [row(s, "layered", 0.5, 3) for s in ("arbor", "random")]
    settings = {"scenarios": ["layered"], "generator_seeds": [], "seeds": [0], "seeds_generated": [0],
                "budget": BUDGET, "strategies": ["arbor", "random"]}
    (tmp_path / "comparison.json").write_text(json.dumps({"settings": settings, "runs": runs}))
    with pytest.raises(SystemExit):
        search_efficiency.main(["--resume", str(tmp_path), "--budget", "6"])
    assert "differs from the 10" in capsys.readouterr().err
    line = search_efficiency.main(["--resume", str(tmp_path), "--quiet"])  # nothing left: no server started
    assert line["runs_this_time"] == 0 and line["arbor_gain_ge_all_peers_share"] == 1.0
    doc = json.loads((tmp_path / "comparison.json").read_text())
    assert len(doc["runs"]) == 2 and doc["settings"]["resumed_from"] == str(tmp_path)
    assert doc["settings"]["strategies"] == ["arbor", "random"] and doc["settings"]["budget"] == BUDGET
