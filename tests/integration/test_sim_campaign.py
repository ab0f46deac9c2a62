"""The engine, unchanged, on the simulated stack: profiles from its traces, keeps, a crash and the workload trap."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from arbor.host.campaign import new_run, run_campaign
from arbor.host.errors import SpecError
from arbor.host.spec import parse_spec
from arbor.host.store import CampaignStore
from arbor.tools.sim.model import behaviour
from arbor.tools.sim.stack import scenario
from tests.conftest import our_processes

pytestmark = pytest.mark.anyio

# layered with CUDA graphs and 256 sequences fixed from the start: aggressive GEMM tuning then
# runs out of memory (the model's crash region), early_stop shrinks the workload (the trap),
# and plain GEMM tuning pays.
SPEC = """
name = "sim-faults"
[target]
stack = "sim"
model = "layered"
hardware = "sim"
base_args = ["--seed", "3", "--cuda_graphs", "true", "--max_num_seqs", "256"]
[workload]
input_len = 16
output_len = 32
concurrency = 4
num_prompts = 8
sweep = [1, 4]
sweep_min_prompts = 4
sweep_prompts_per_concurrency = 1
[gates]
min_agreement = 0.9
[budget]
wall_clock_s = 300
max_actions = 6
[search]
profile_seconds = 1

[[knobs]]
name = "gemm_tuning"
flag = "--gemm_tuning"
type = "choice"
choices = ["off", "tuned", "aggressive"]
default = "off"
values = ["aggressive", "tuned"]
category = "kernel"
layer = "gemm"

[[knobs]]
name = "early_stop"
flag = "--early_stop"
type = "bool"
bool_style = "value"
default = false
values = [true]
category = "framework"
layer = "decoding"
"""


async def test_engine_runs_on_the_simulated_stack(tmp_path: Path) -> None:
    before = set(our_processes(sys.executable))
    spec = parse_spec(SPEC, "sim campaign")
    run_dir = new_run(spec, tmp_path / "runs", None, True, lambda _: None)
    report = await run_campaign(run_dir, lambda _: None)
    store = CampaignStore(run_dir)
    nodes = [n for n in store.nodes() if n.status != "pruned"]  # a move queued on another branch may be pruned
    (crashed,) = [n for n in nodes if n.change == {"gemm_tuning": "aggressive"}]
    assert crashed.status == "crashed" and crashed.diagnosis.startswith("oom")
    (trap,) = [n for n in nodes if n.change == {"early_stop": True}]
    assert trap.status == "invalid" and "lengths drifted" in trap.diagnosis, "only the fingerprint check sees it"
    (tuned,) = [n for n in nodes if n.change == {"gemm_tuning": "tuned"}]
    assert tuned.status == "kept" and tuned.gain > 0.15
    # The keep was measured afresh after it was decided, and once more each time it was restored after a
    # revert or crash; later candidates are compared with the last few of those.
    fresh = store.measurements(tuned.id, "reference")
    restored = [e for e in store.events() if e.kind == "known_good_restored" and e.node == tuned.id]
    assert len(fresh) == spec.search.baseline_repeats + len(restored)
    assert store.reference(tuned.id, spec.search.baseline_repeats) == fresh[-spec.search.baseline_repeats:]
    (remeasured,) = [e for e in store.events() if e.kind == "keep_remeasured"]
    assert remeasured.node == tuned.id and remeasured.data["gain"] > 0.1
    ruled = {(c.knob, c.op, c.value) for c in store.constraints()}
    assert {("gemm_tuning", "eq", "aggressive"), ("early_stop", "eq", True)} <= ruled
    # The baseline profile came from the server's own Chrome trace, with the modelled shares of the step:
    # kernels, and the host time the GPU sat idle between them.
    (profile,) = store.measurements(store.nodes("kept")[0].id, "profile")
    shares = profile.metrics["categories"]
    modelled = behaviour(scenario("layered"), {"cuda_graphs": True, "max_num_seqs": 256}).shares()
    for category in ("gemm", "communication", "attention", "host_idle"):
        assert shares[category] == pytest.approx(modelled[category], abs=0.01)
    assert Path(profile.path).is_file() and list((run_dir / "traces").glob("*.pt.trace.json.gz"))
    assert report["summary"]["kept"] >= 1
    assert report["summary"]["stopped"] in ("action budget spent", "the tree's upper bound: no candidate is left "
                                            "to measure") or report["summary"]["stopped"].startswith(
                                                "the tree's upper bound: no candidate scores above the threshold")
    assert set(our_processes(sys.executable)) <= before, "no server left running"


def test_a_sim_campaign_needs_only_the_scenario() -> None:
    spec = parse_spec('name = "x"\n[target]\nstack = "sim"\nmodel = "moe_decode"\n', "t")
    s = scenario("moe_decode")
    assert [k.name for k in spec.knobs] == [k.name for k in s.knob]
    for knob, sk in zip(spec.knobs, s.knob, strict=True):
        assert knob.default == sk.default and sk.default not in knob.values
        assert set(knob.values) | {sk.default} == set(sk.domain())
    with pytest.raises(SpecError, match="unknown simulated scenario 'nope'"):
        parse_spec('name = "x"\n[target]\nstack = "sim"\nmodel = "nope"\n', "t")
    with pytest.raises(SpecError, match="at least one knob"):
        parse_spec('name = "x"\n[target]\nstack = "generic"\nmodel = "m"\ncommand = ["x"]\n', "t")

