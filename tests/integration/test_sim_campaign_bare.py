"""A campaign on a server without tokenizer endpoints whose model ends on EOS: honest moves stay valid, the trap not.

Scenario gen-5 run with `--eos-stop --tokenizer-endpoints none` (as TGI or a proxy would serve):
`opt_07_impl=v1` is an honest +13%, `opt_09_switch=true` a trap whose outputs come out 5% shorter.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from arbor.host.campaign import new_run, run_campaign
from arbor.host.spec import parse_spec
from arbor.host.store import CampaignStore

pytestmark = pytest.mark.anyio

SPEC = """
name = "sim-bare"
[target]
stack = "sim"
model = "gen-5"
hardware = "sim"
base_args = ["--seed", "0", "--eos-stop", "--tokenizer-endpoints", "none"]
[workload]
input_len = 16
output_len = 32
concurrency = 4
num_prompts = 16
sweep = [1, 4]
sweep_min_prompts = 4
sweep_prompts_per_concurrency = 1
[gates]
min_agreement = 0.9
[budget]
wall_clock_s = 300
max_actions = 4
[search]
profile_seconds = 1

[[knobs]]
name = "opt_07_impl"
flag = "--opt_07_impl"
type = "choice"
choices = ["v0", "v1", "v2", "v3"]
default = "v0"
values = ["v1"]
category = "config"
layer = "communication"

[[knobs]]
name = "opt_09_switch"
flag = "--opt_09_switch"
type = "bool"
bool_style = "value"
default = false
values = [true]
category = "framework"
layer = "memory"
"""


async def test_honest_moves_are_kept_and_the_trap_is_caught_without_a_tokenizer(tmp_path: Path) -> None:
    spec = parse_spec(SPEC, "bare sim campaign")
    run_dir = new_run(spec, tmp_path / "runs", None, True, lambda _: None)
    await run_campaign(run_dir, lambda _: None)
    store = CampaignStore(run_dir)
    nodes = {next(iter(n.change)): n for n in store.nodes() if n.change and n.status != "pruned"}
    assert nodes["opt_07_impl"].status == "kept" and nodes["opt_07_impl"].gain > 0.05, nodes["opt_07_impl"].diagnosis
    trap = nodes["opt_09_switch"]
    assert trap.status == "invalid" and "lengths drifted from the baseline's for the same prompts: output" in \
        trap.diagnosis
    (said,) = [a for a in store.alerts() if a.kind == "lengths_unverified"]
    assert said.message.startswith("the server has no /tokenize or /detokenize: prompt lengths are unverified")
    assert [a.kind for a in store.alerts() if a.kind == "length_drift" and a.node != trap.id] == []
