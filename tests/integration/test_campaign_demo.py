"""An end-to-end campaign on the real llama-server and SmolLM2, with a short budget."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from arbor.host.cli import app
from arbor.host.models import EVALUATED
from arbor.host.store import CampaignStore
from tests.conftest import our_processes

pytestmark = pytest.mark.llama

# The environment pins llama-server to one thread, as a careless container might (LLAMA_ARG_THREADS
# is llama-server's own environment default for --threads); a campaign should find the second core.
CAMPAIGN = """
name = "e2e"
[target]
stack = "llamacpp"
binary = "default"
model = "default"
served_model_name = "smollm2"
model_family = "smollm2"
env = { LLAMA_ARG_THREADS = "1" }
[workload]
input_len = 32
output_len = 32
concurrency = 8
num_prompts = 16
sweep = [1, 8]
sweep_prompts_per_concurrency = 1
sweep_min_prompts = 4
[gates]
min_agreement = 0.5
pareto_tolerance = 0.15
[budget]
wall_clock_s = 240
max_actions = 3
[search]
min_repeats = 2
max_repeats = 5
baseline_repeats = 3
profile_seconds = 2
[[knobs]]
name = "threads"
flag = "--threads"
type = "int"
min = 1
max = 8
values = [2]
category = "config"
layer = "runtime"
[[knobs]]
name = "parallel"
flag = "--parallel"
type = "int"
min = 1
max = 64
default = 4
values = [1]
category = "config"
layer = "scheduler"
"""


def test_campaign_keeps_a_real_gain_reverts_a_loss_and_reports(tmp_path: Path, target) -> None:
    spec = tmp_path / "e2e.toml"
    spec.write_text(CAMPAIGN)
    before = set(our_processes(target.server_binary))
    result = CliRunner().invoke(app, ["run", str(spec), "--runs-dir", str(tmp_path / "runs"), "--fresh-kb"])
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "runs").iterdir()
    store = CampaignStore(run_dir)
    # Evaluated nodes only: the same move may also wait, or be pruned, on another branch of the tree.
    measured = [n for n in store.nodes() if n.status in EVALUATED]
    (kept,) = [n for n in measured if n.change == {"threads": 2}]
    # A loss the noise left unsettled is retested once, its repeats pooled: the last verdict is the final one.
    *_, reverted = losses = [n for n in measured if n.change == {"parallel": 1}]
    assert kept.status == "kept" and kept.gain_low > 0.2, kept
    assert all(n.status == "reverted" for n in losses) and reverted.gain_high < 0, losses
    assert store.meta("best_node") == kept.id
    report = json.loads((run_dir / "report.json").read_text())
    gain = report["overall_gain"]
    assert gain["rel_change"] > 0.3 and gain["ci_low"] > 0.2
    assert report["kept_path"][-1]["node"] == kept.id
    assert "--threads 2" in report["launch_command"]
    markdown = (run_dir / "report.md").read_text()
    assert "Gain of the best configuration over the defaults" in markdown and "## Reverted" in markdown
    assert (run_dir / "pareto.svg").read_text().startswith("<svg")
    assert "gain:" in result.output and "report:" in result.output
    events = [e.kind for e in store.events()]
    assert "profile_diff" in events and "distilled" in events
    assert set(our_processes(target.server_binary)) == before, "no server left behind"
