"""Fault injection on a test stack: the stub OpenAI server, whose behaviour knobs control, run for real."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from arbor.host.campaign import new_run, run_campaign
from arbor.host.spec import parse_spec
from arbor.host.store import CampaignStore
from arbor.kb.records import outcomes
from arbor.kb.store import open_store
from tests.conftest import STUB, our_processes

pytestmark = pytest.mark.anyio

SPEC = """
name = "faults"
[target]
stack = "generic"
model = "stub"
served_model_name = "stub"
command = [{python!r}, {stub!r}, "--port", "{{port}}", "--ttft-ms", "10"]
hardware = "test-box"
[workload]
input_len = 8
output_len = 12
concurrency = 4
num_prompts = 8
sweep = [1, 4]
sweep_min_prompts = 4
sweep_prompts_per_concurrency = 1
[gates]
min_agreement = 0.9
[budget]
wall_clock_s = 120
max_actions = {max_actions}
[search]
min_repeats = 2
max_repeats = {max_repeats}
max_cv = 0.05
profile_seconds = 1
{knobs}
"""

KNOBS = {
    "fast": '[[knobs]]\nname = "itl_ms"\nflag = "--itl-ms"\ntype = "float"\nmin = 0\nmax = 100\nvalues = [2.0]\n'
            'category = "config"\nlayer = "scheduler"\n',
    "crash": '[[knobs]]\nname = "fail_start"\nflag = "--fail-start"\ntype = "bool"\nvalues = [true]\n'
             'category = "config"\nlayer = "runtime"\n',
    "garble": '[[knobs]]\nname = "garble"\nflag = "--garble"\ntype = "bool"\nvalues = [true]\n'
              'category = "dispatch"\nlayer = "attention"\n',
    "drift": '[[knobs]]\nname = "short_output"\nflag = "--short-output"\ntype = "bool"\nvalues = [true]\n'
             'category = "framework"\nlayer = "decoding"\n',
    "jitter": '[[knobs]]\nname = "jitter_ms"\nflag = "--jitter-ms"\ntype = "float"\nmin = 0\nmax = 100\n'
              'values = [40.0]\ncategory = "config"\nlayer = "runtime"\n',
    # one benchmark repeat = 1 warm-up + 8 measured requests: the regime flips every repeat
    "noise": '[[knobs]]\nname = "noisy"\nflag = "--noisy"\ntype = "int"\nmin = 0\nmax = 100\nvalues = [9]\n'
             'category = "compiler"\nlayer = "graph"\n',
}


async def campaign(tmp_path: Path, knobs: list[str], max_actions: int = 6, max_repeats: int = 3) -> CampaignStore:
    text = SPEC.format(python=sys.executable, stub=str(STUB), max_actions=max_actions, max_repeats=max_repeats,
                       knobs="\n".join(KNOBS[k] for k in knobs))
    spec = parse_spec(text, "test campaign")
    run_dir = new_run(spec, tmp_path / "runs", None, True, lambda _: None)
    await run_campaign(run_dir, lambda _: None)
    return CampaignStore(run_dir)


def by_knob(store: CampaignStore, knob: str) -> list:
    return [n for n in store.nodes() if knob in n.change]


async def test_crash_at_start_becomes_a_constraint_and_the_campaign_goes_on(tmp_path: Path) -> None:
    store = await campaign(tmp_path, ["crash", "fast"])
    (crashed,) = by_knob(store, "fail_start")
    assert crashed.status == "crashed" and "oom" in crashed.diagnosis
    (constraint,) = store.constraints()
    assert (constraint.knob, constraint.op, constraint.value) == ("fail_start", "eq", True)
    assert any("CUDA out of memory" in line for line in constraint.evidence["lines"])
    assert constraint.evidence["log"].endswith(".log")
    kinds = [e.kind for e in store.events()]
    assert "known_good_restored" in kinds[kinds.index("constraint"):], "back on known-good after the crash"
    (fast,) = by_knob(store, "itl_ms")
    assert fast.status == "kept", "the campaign went on and kept the real improvement"
    assert fast.id > crashed.id or fast.status == "kept"
    assert len([n for n in store.nodes() if n.change.get("fail_start") and n.status != "pruned"]) == 1, \
        "the crashed region is never retried unconstrained"
    assert any(a.kind == "crash" for a in store.alerts())
    assert our_processes(sys.executable) == [] or all(
        STUB.name not in Path(f"/proc/{p}/cmdline").read_text() for p in our_processes(sys.executable))


async def test_broken_outputs_are_rejected_by_the_accuracy_gate(tmp_path: Path) -> None:
    store = await campaign(tmp_path, ["garble"])
    (node,) = by_knob(store, "garble")
    assert node.status == "reverted" and node.diagnosis.startswith("accuracy gate")
    assert store.measurements(node.id, "primary") == [], "no benchmark for a candidate that fails accuracy"


async def test_length_drift_is_caught_retested_and_never_kept(tmp_path: Path) -> None:
    store = await campaign(tmp_path, ["drift"])
    (node,) = by_knob(store, "short_output")
    assert node.status == "invalid" and "lengths drifted" in node.diagnosis
    drift_alerts = [a for a in store.alerts() if a.kind == "length_drift" and a.node == node.id]
    assert len(drift_alerts) == 3, "flagged, re-tested twice, then given up"
    assert store.measurements(node.id, "primary") == [], "the drifted measurements are set aside"
    (ruled,) = store.constraints()
    assert (ruled.knob, ruled.op, ruled.value, ruled.node) == ("short_output", "eq", True, node.id)
    assert "changes the workload" in ruled.reason


async def test_a_noisy_small_improvement_gets_more_repeats_a_retest_and_no_keep(tmp_path: Path) -> None:
    store = await campaign(tmp_path, ["noise"], max_repeats=5)
    node, retest = by_knob(store, "noisy")
    assert node.status == "reverted"
    first = len(store.measurements(node.id, "primary"))
    assert first > 2, "noise asked for more repeats"
    assert any(a.kind == "noisy" for a in store.alerts())
    # Nothing else left to try: rather than stop with budget left, the Critic retests the unsunk move once,
    # pooling its first repeats with new ones against the same reference.
    (event,) = [e for e in store.events() if e.kind == "retest"]
    assert event.data["nodes"] == [retest.id] and retest.priors["retest_of"] == node.id
    assert retest.config == node.config and retest.proposer == "critic"
    again = len(store.measurements(retest.id, "primary"))
    assert retest.status == "reverted" and f"after {first + again} repeats" in retest.diagnosis


async def test_outcomes_reach_the_knowledge_base_once(tmp_path: Path) -> None:
    store = await campaign(tmp_path, ["fast", "garble"])
    kb = open_store(Path(store.meta("kb_path")))
    recorded = outcomes(kb, campaign=store.meta("campaign_id"))
    evaluated = [n for n in store.nodes() if n.kind != "baseline" and n.status in ("kept", "reverted", "crashed")]
    assert sorted(o.id for o in recorded) == sorted(f"{store.meta('campaign_id')}-{n.id}" for n in evaluated)
    assert {e.kind for e in __import__("arbor.kb.records", fromlist=["entries"]).entries(kb)} >= {"technique"}
    assert (store.run_dir / "report.md").is_file() and (store.run_dir / "pareto.svg").is_file()


async def test_remote_bench_server_over_http_with_a_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    from tests.conftest import free_port, wait_port

    port = free_port()
    runs = tmp_path / "runs"
    runs.mkdir()
    server = subprocess.Popen([str(Path(sys.executable).with_name("arbor-mcp-bench")), "--http", "--port", str(port),
                               "--runs-root", str(runs), "--token", "t0ken"], stderr=subprocess.DEVNULL)
    try:
        wait_port(port, 30)
        text = SPEC.format(python=sys.executable, stub=str(STUB), max_actions=1, max_repeats=2,
                           knobs=KNOBS["fast"]) + f'\n[servers]\nbench = "http://127.0.0.1:{port}/mcp"\n'
        spec = parse_spec(text, "remote campaign")
        monkeypatch.setenv("ARBOR_MCP_TOKEN", "wrong")
        refused = new_run(spec, runs, None, True, lambda _: None)
        from arbor.host.errors import HostError

        with pytest.raises(HostError, match="cannot connect to the bench MCP server .* bearer token"):
            await run_campaign(refused, lambda _: None)
        monkeypatch.setenv("ARBOR_MCP_TOKEN", "t0ken")
        run_dir = new_run(spec, runs, None, True, lambda _: None)
        report = await run_campaign(run_dir, lambda _: None)
        assert report["summary"]["kept"] == 1
    finally:
        server.terminate()
        server.wait(10)


async def test_a_move_that_regressed_beyond_doubt_comes_back_only_as_a_last_resort(tmp_path: Path) -> None:
    # Equal scores: the jitter comes first and regresses beyond doubt; the faster ITL is kept. On the new
    # baseline the jitter (its bottleneck did not grow) is pruned while anything else is left, and tried
    # once more only when nothing else is, rather than stopping with budget left.
    store = await campaign(tmp_path, ["jitter", "fast"])
    jitter = by_knob(store, "jitter_ms")
    evaluated = [n for n in jitter if n.status not in ("pruned", "proposed")]
    assert evaluated[0].status == "reverted" and evaluated[0].gain_high < 0
    (fast,) = [n for n in store.nodes("kept") if n.change]
    assert fast.change == {"itl_ms": 2.0}
    (resort,) = [e for e in store.events() if e.kind == "last_resort"]
    assert resort.node == fast.id and len(evaluated) == 2 and evaluated[1].id in resort.data["nodes"]
    assert evaluated[1].config == {"itl_ms": 2.0, "jitter_ms": 40.0} and evaluated[1].status == "reverted"
