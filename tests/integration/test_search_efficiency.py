"""The search-efficiency comparison: its metrics on known trajectories, and a small real comparison end to end."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from arbor.tools.sim.stack import scenario
from tests.conftest import our_processes
from tests.perf import search_efficiency
from tests.perf.searchbench.trajectory import Evaluation, Trajectory
from tests.perf.searchbench.truth import Truth

ROOT = Path(__file__).resolve().parents[2]
TRUTH = Truth(scenario("layered"))
GOOD = {"gemm_tuning": "aggressive", "attention_backend": "flash"}
TRAP = {"early_stop": True}


def run(*steps: tuple[dict, dict, str]) -> Trajectory:
    t = Trajectory("x", "layered", 0)
    t.evaluations = [Evaluation(config=c, outcome=o, measured=1.0, incumbent=i) for c, i, o in steps]  # type: ignore
    return t


def test_metrics_follow_the_kept_configuration() -> None:
    best = TRUTH.best_config
    t = run(({}, {}, "ok"), (TRAP, TRAP, "ok"), (TRAP | GOOD, TRAP | GOOD, "ok"), (best, best, "ok"))
    m = t.metrics(TRUTH, budget=6)
    assert m["evals_to_95"] == 4 and m["best_valid_gain"] == pytest.approx(TRUTH.best_rate / TRUTH.default_rate - 1)
    assert m["invalid_keeps"] == 1, "the keep that brought the trap in counts, not the keep on top of it"
    assert len(m["regret"]) == 6 and m["regret"][1] == m["regret"][0] == pytest.approx(1 - 1 / (
        TRUTH.best_rate / TRUTH.default_rate)), "an invalid configuration is worth the defaults"
    assert m["regret"][-1] == pytest.approx(0.0)


def test_an_invalid_final_configuration_gains_nothing() -> None:
    crash = {"max_num_seqs": 256, "cuda_graphs": True, "gemm_tuning": "aggressive"}
    m = run(({}, {}, "ok"), (crash, {}, "crashed"), (TRAP, TRAP, "ok")).metrics(TRUTH, budget=3)
    assert m["best_valid_gain"] == 0.0 and m["final_flaw"] == "trap" and m["crashes"] == 1
    assert m["evals_to_95"] is None


def test_a_small_comparison_runs_every_strategy_for_real(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    line = search_efficiency.main(["--scenarios", "layered", "--seeds", "1", "--budget", "4", "--out",
                                   str(tmp_path), "--quiet", "--strategies", "arbor,greedy,optuna,random,grid"])
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed == line
    for key in ("arbor_evals_to_95", "optuna_evals_to_95", "random_evals_to_95", "arbor_invalid_keeps",
                "greedy_invalid_keeps", "arbor_best_valid_gain", "optuna_best_valid_gain"):
        assert key in line
    doc = json.loads((tmp_path / "comparison.json").read_text())
    assert {r["strategy"] for r in doc["runs"]} == {"arbor", "greedy", "optuna", "random", "grid"}
    for r in doc["runs"]:
        assert 1 <= r["evaluations"] <= 4
        assert r["trajectory"][0]["config"] == {}, "every strategy starts at the defaults"
    table = (tmp_path / "comparison.md").read_text()
    assert "| Optuna TPE |" in table and "| Arbor (offline policy + Critic) |" in table
    plot = (tmp_path / "regret.svg").read_text()
    assert plot.startswith("<svg") and plot.count("<polyline") == 5


def test_bad_options_are_refused(capsys: pytest.CaptureFixture) -> None:
    for argv in (["--scenarios", "nope"], ["--strategies", "magic"], ["--budget", "1"]):
        with pytest.raises(SystemExit) as caught:
            search_efficiency.main(argv)
        assert caught.value.code == 2
    assert "unknown ['nope']" in capsys.readouterr().err


def test_generated_scenarios_are_drawn_printed_and_recorded(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    line = search_efficiency.main(["--generated", "1", "--scenarios", "", "--strategies", "random", "--budget", "4",
                                   "--out", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err
    doc = json.loads((tmp_path / "comparison.json").read_text())
    seed = doc["settings"]["generator_seeds"][0]
    assert f"gen-{seed}" in err and f"--gen-seeds {seed}" in err, "the drawn seed is printed to run it again"
    assert [(r["strategy"], r["scenario"], r["seed"]) for r in doc["runs"]] == [("random", f"gen-{seed}", 0)]
    assert line["basis"] == "generated" and line["scenarios"] == 1 and line["random_evals_to_95"] is not None
    assert "1 generated (median over them)" in (tmp_path / "comparison.md").read_text()


def test_optuna_gp_runs_when_the_bench_extra_is_installed(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="optuna_gp needs torch and scipy: pip install -e '.[bench]'")
    pytest.importorskip("scipy", reason="optuna_gp needs torch and scipy: pip install -e '.[bench]'")
    line = search_efficiency.main(["--scenarios", "layered", "--seeds", "1", "--strategies", "optuna_gp", "--budget",
                                   "3", "--out", str(tmp_path), "--quiet"])
    doc = json.loads((tmp_path / "comparison.json").read_text())
    assert [r["strategy"] for r in doc["runs"]] == ["optuna_gp"] and doc["runs"][0]["evaluations"] == 3
    assert line["optuna_gp_best_valid_gain"] is not None and "| Optuna GP |" in (tmp_path / "comparison.md").read_text()



def _ctrl_c_as_in_a_terminal() -> None:
    # A suite started in the background (`cmd &` from a script) hands its children SIGINT ignored, and
    # Python then never raises KeyboardInterrupt: the harness is tested as a terminal would run it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize(("sig", "second"), [(signal.SIGINT, "grid"), (signal.SIGTERM, "grid"),
                                             (signal.SIGTERM, "arbor")])
def test_an_interrupted_comparison_stops_its_servers_and_keeps_finished_runs(tmp_path: Path, sig: int,
                                                                             second: str) -> None:
    before = set(our_processes(sys.executable))
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests/perf/search_efficiency.py"), "--scenarios", "layered",
                             "--seeds", "1", "--budget", "6", "--strategies", f"random,{second}", "--out",
                             str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True, preexec_fn=_ctrl_c_as_in_a_terminal)
    try:
        deadline = time.monotonic() + 240
        # The interrupt lands while the second strategy has a server up, once random search has finished.
        while not list((tmp_path / "runs" / second).rglob("*.log")):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.2)
        time.sleep(1.0)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    line = json.loads(out.strip().splitlines()[-1])
    assert line["interrupted"] is True and "random_best_valid_gain" in line
    doc = json.loads((tmp_path / "comparison.json").read_text())
    assert [r["strategy"] for r in doc["runs"]] == ["random"] and doc["settings"]["interrupted"] is True
    assert "Interrupted" in (tmp_path / "comparison.md").read_text()
    assert set(our_processes(sys.executable)) <= before, "no simulated server left running"
