"""A full campaign on the real demo target with Claude's seat taken by a local fake of the Messages API.

The fake plays each agent from what the request shows it: the Orchestrator proposes (one value
out of its knob's domain, rejected and corrected), the Critic reads the crashed server's real log
and publishes a constraint citing the line, and a Domain Specialist edits a kernel in its
workspace, tries to write outside it, and runs the four-step gate.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from arbor.host.campaign import new_run, run_campaign
from arbor.host.spec import parse_spec
from arbor.host.store import CampaignStore
from arbor.kb.records import outcomes
from arbor.kb.store import open_store
from arbor.servers.kernels import EXAMPLES
from tests.support.fake_llm import FakeLLM, Reply, Turn, find_line

pytestmark = [pytest.mark.anyio, pytest.mark.llama]
KEY = "sk-ant-e2e-secret-key-0123456789"

CAMPAIGN = """
name = "agents"
[target]
stack = "llamacpp"
binary = "default"
model = "default"
served_model_name = "smollm2"
model_family = "smollm2"
env = {{ LLAMA_ARG_THREADS = "1" }}
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
wall_clock_s = 420
max_actions = 5
llm_usd = 5.0
[search]
min_repeats = 2
max_repeats = 3
baseline_repeats = 2
profile_seconds = 2
[agent]
backend = "anthropic"
base_url = "{url}"
kernel_tasks = [{{ name = "rmsnorm", path = "example:rmsnorm", description = "RMSNorm before every layer" }}]
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
name = "cache_type_v"
flag = "--cache-type-v"
type = "choice"
choices = ["f16", "q8_0"]
values = ["q8_0"]
category = "config"
layer = "attention"
[[knobs]]
name = "flash_attn"
flag = "--flash-attn"
type = "choice"
choices = ["on", "off", "auto"]
values = ["on"]
category = "dispatch"
layer = "attention"
"""


class Team:
    """The scripted agents."""

    def __init__(self) -> None:
        self.orchestrations = 0
        self.file = ""

    def __call__(self, turn: Turn) -> Reply:
        return getattr(self, turn.role)(turn)

    def orchestrator(self, turn: Turn) -> Reply:
        if turn.n_assistant == 0:
            self.orchestrations += 1
        if self.orchestrations == 1 and turn.n_assistant == 0:
            return Reply("Two ideas.", [("propose_actions", {"actions": [
                {"change": {"threads": 64}, "rationale": "use every core", "speedup_estimate": 0.5},
                {"change": {"cache_type_v": "q8_0", "flash_attn": "off"}, "rationale": "a smaller V cache",
                 "speedup_estimate": 0.1}]})])
        if self.orchestrations == 1 and turn.n_assistant == 1:
            assert "rejected" in turn.results[0]["content"] and "threads" in turn.results[0]["content"]
            return Reply("This machine has 2 cores.", [("propose_actions", {"actions": [
                {"change": {"threads": 2}, "rationale": "the profile is all GEMM on one core",
                 "speedup_estimate": 0.6}]})])
        if self.orchestrations == 2 and turn.n_assistant == 0:
            return Reply("", [("propose_actions", {"actions": [
                {"kind": "kernel", "task": "rmsnorm", "rationale": "norm time", "speedup_estimate": 0.05,
                 "cost_estimate_s": 5}]})])
        return Reply("Nothing more to propose now.")

    def critic(self, turn: Turn) -> Reply:
        if turn.prompt.startswith("Stability review"):
            return Reply("The trajectory looks stable.")
        node = int(re.search(r"Node (\d+)", turn.prompt).group(1))
        if turn.prompt.startswith("Keep review"):
            return Reply("", [("approve", {"reason": "repeats agree and the interval is clear of the bar"})])
        if "crashed" in turn.prompt:
            if turn.n_assistant == 0:
                return Reply("Reading the log.", [("read_log", {"first_line": 1, "count": 400})])
            line = find_line(turn.results[0]["content"], r"flash.?attn|failed to create context")
            assert line is not None, turn.results[0]["content"][-2000:]
            return Reply("The V cache quantization needs flash attention.", [("publish_constraint", {
                "knob": "cache_type_v", "op": "eq", "value": "q8_0", "requires": {"flash_attn": "on"},
                "reason": "a quantized V cache needs flash attention; the context is not created without it",
                "evidence": [f"log:{line}", f"node:{node}"]})])
        return Reply("The idea is dead.", [("prune", {"knob": "cache_type_v", "op": "eq", "value": "q8_0",
                                                      "reason": "slower with flash attention on this CPU",
                                                      "evidence": [f"node:{node}"]})])

    def specialist(self, turn: Turn) -> Reply:
        steps = [("workspace_list", {}),
                 ("workspace_write", {"path": "../../../escape.txt", "content": "out"}),
                 ("workspace_read", {"path": "rmsnorm_fast.c"})]
        if turn.n_assistant < len(steps):
            return Reply("", [steps[turn.n_assistant]])
        if turn.n_assistant == 3:
            self.file = turn.results[0]["content"]
            return Reply("", [("workspace_write", {"path": "rmsnorm_fast.c",
                                                   "content": self.file + "\n/* reviewed by the specialist */\n"})])
        if turn.n_assistant == 4:
            return Reply("", [("kernels__gate_kernel", {})])
        return Reply("", [("report_patch", {"summary": "documented the vectorised loop; gate passed"})])


async def test_a_campaign_driven_by_scripted_claude_agents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           target) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    team = Team()
    with FakeLLM(team, KEY) as fake:
        spec = parse_spec(CAMPAIGN.format(url=fake.url), "agents campaign")
        run_dir = new_run(spec, tmp_path / "runs", None, True, lambda _: None)
        report = await run_campaign(run_dir, lambda _: None)
    store = CampaignStore(run_dir)
    nodes = store.nodes()

    # An LLM-proposed action is kept.
    (threads,) = [n for n in nodes if n.change == {"threads": 2}]
    assert threads.proposer == "orchestrator" and threads.status == "kept", threads.diagnosis
    assert threads.priors["proposer_estimate"] == 0.6
    assert any(e.kind == "critic_approved" and e.node == threads.id for e in store.events())
    # The invalid value was rejected with the reason, fed back, never applied.
    assert not [n for n in nodes if n.change.get("threads") == 64]
    rejected = [e for e in store.events() if e.kind == "proposal_rejected"]
    assert rejected and "threads" in rejected[0].data["error"]

    # The crash got a root-cause analysis that became a constraint citing the real log line.
    (crashed,) = [n for n in nodes if n.status == "crashed"]
    assert crashed.change == {"cache_type_v": "q8_0", "flash_attn": "off"}
    (ruling, *more) = [c for c in store.constraints() if c.evidence.get("by") == "critic" and c.node == crashed.id]
    assert (ruling.knob, ruling.op, ruling.value, ruling.requires) == ("cache_type_v", "eq", "q8_0",
                                                                      {"flash_attn": "on"})
    assert ruling.evidence["lines"] and re.search(r"flash.?attn|failed to create context",
                                                  ruling.evidence["lines"][0])
    retry = [n for n in nodes if n.parent == crashed.id]
    assert retry and retry[0].change == {"cache_type_v": "q8_0", "flash_attn": "on"}, "a constrained retry"

    # The specialist edited its workspace, was refused outside it, and the host gated the patch.
    (kernel,) = [n for n in nodes if n.kind == "kernel"]
    (done,) = [e for e in store.events() if e.kind == "specialist_report"]
    assert done.data["gate_passed"] and done.data["reported"], done.data
    assert done.data["refused_paths"] == ["../../../escape.txt"]
    assert any(a.kind == "workspace_escape" for a in store.alerts())
    assert not list(tmp_path.rglob("escape.txt")) and not (run_dir.parent.parent / "escape.txt").exists()
    patch = Path(done.data["diff"]).read_text()
    assert "+/* reviewed by the specialist */" in patch
    assert "reviewed" not in (EXAMPLES / "rmsnorm" / "rmsnorm_fast.c").read_text(), "the example is untouched"
    assert "four-step gate" in kernel.diagnosis
    # Its outcome reaches the knowledge base like any other action's.
    recorded = {o.id: o for o in outcomes(open_store(Path(store.meta("kb_path"))), campaign=store.meta("campaign_id"))}
    kb_kernel = recorded[f"{store.meta('campaign_id')}-{kernel.id}"]
    assert (kb_kernel.knob, kb_kernel.result) == ("kernel:rmsnorm", "reverted") and "four-step" in kb_kernel.diagnosis

    # Every role was called, priced and logged; the key appears nowhere the product wrote.
    roles = {r[0] for r in store.conn.execute("SELECT role FROM llm_calls")}
    assert roles == {"orchestrator", "critic", "specialist"}
    assert report["agents"]["by_role"]["orchestrator"]["cost_usd"] > 0
    assert report["agents"]["by_role"]["orchestrator"]["cache_read_tokens"] > 0, "the static prefix was cached"
    assert all("temperature" not in r["body"] for r in fake.requests)
    store.close()
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), f"the API key leaked into {path}"
    assert "## Agents" in (run_dir / "report.md").read_text()
