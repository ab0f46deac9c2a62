"""The LLM budget stops LLM work cleanly mid-campaign; the ablation switches take out what they name."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from arbor.host.campaign import new_run, run_campaign
from arbor.host.errors import HostError
from arbor.host.models import Ablation
from arbor.host.spec import parse_spec
from arbor.host.store import CampaignStore
from tests.conftest import STUB
from tests.integration.test_campaign_faults import KNOBS, SPEC
from tests.support.fake_llm import FakeLLM, Reply, Turn

pytestmark = pytest.mark.anyio
KEY = "sk-ant-budget-test-key-000000"


def spec_text(url: str, knobs: list[str], llm_usd: float, max_actions: int = 3) -> str:
    text = SPEC.format(python=sys.executable, stub=str(STUB), max_actions=max_actions, max_repeats=2,
                       knobs="\n".join(KNOBS[k] for k in knobs))
    text = text.replace("[budget]\n", f"[budget]\nllm_usd = {llm_usd}\n")
    return text + f'\n[agent]\nbackend = "anthropic"\nbase_url = "{url}"\n'


def proposer(turn: Turn) -> Reply:
    if turn.role == "orchestrator" and turn.n_assistant == 0:
        return Reply("", [("propose_actions", {"actions": [
            {"change": {"itl_ms": 2.0}, "rationale": "shorter inter-token latency", "speedup_estimate": 0.3}]})])
    if turn.role == "orchestrator":
        return Reply("", [("propose_actions", {"actions": [
            {"change": {"itl_ms": 3.0}, "rationale": "once more", "speedup_estimate": 0.2}]})])
    return Reply("nothing to add")


async def test_budget_exhaustion_stops_llm_work_and_the_campaign_closes_cleanly(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    with FakeLLM(proposer, KEY) as fake:
        spec = parse_spec(spec_text(fake.url, ["fast", "crash"], llm_usd=0.002), "budget campaign")
        run_dir = new_run(spec, tmp_path / "runs", None, True, lambda _: None)
        report = await run_campaign(run_dir, lambda _: None)
        calls = len(fake.requests)
    store = CampaignStore(run_dir)
    assert calls == 1, "the first call spent the budget; no second call was made"
    assert store.conn.execute("SELECT COUNT(*) FROM llm_calls").fetchone()[0] == 1
    (stopped,) = [a for a in store.alerts() if a.kind == "llm_stopped"]
    assert "LLM budget spent" in stopped.message
    nodes = store.nodes()
    (llm,) = [n for n in nodes if n.proposer == "orchestrator"]
    assert llm.change == {"itl_ms": 2.0} and llm.status == "kept", "what was validated before the stop stands"
    offline = [n for n in nodes if n.proposer == "offline" and n.status in ("kept", "reverted", "crashed")]
    assert offline, "the offline policy carried on"
    assert store.meta("state") == "finished" and report["agents"]["llm_stopped"].startswith("LLM budget spent")
    assert (run_dir / "report.md").is_file()


async def test_no_keep_over_an_instability_mark_and_no_mark_without_evidence(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)

    def script(turn: Turn) -> Reply:
        if turn.role == "orchestrator":
            return proposer(turn) if turn.n_assistant == 0 and not [
                r for r in fake.requests if r["role"] == "orchestrator"] else Reply("nothing more")
        if turn.prompt.startswith("Keep review"):
            cited = re.findall(r"measurement:\d+", turn.prompt)[:2]
            return Reply("", [("mark_unstable", [{"reason": "looks odd", "evidence": []},
                                                 {"reason": "looks odd", "evidence": ["measurement:99999"]},
                                                 {"reason": "the repeats disagree", "evidence": cited}
                                                 ][min(turn.n_assistant, 2)])])
        return Reply("fine")

    with FakeLLM(script, KEY) as fake:
        spec = parse_spec(spec_text(fake.url, ["fast"], llm_usd=5.0, max_actions=1), "unstable campaign")
        run_dir = new_run(spec, tmp_path / "runs", None, True, lambda _: None)
        await run_campaign(run_dir, lambda _: None)
        errors = [r["turn"].results[0] for r in fake.by_role("critic")[1:]]
    assert errors[0]["is_error"] and "evidence" in errors[0]["content"], "no mark without evidence"
    assert errors[1]["is_error"] and "no such measurement" in errors[1]["content"]
    store = CampaignStore(run_dir)
    (node,) = [n for n in store.nodes() if n.change == {"itl_ms": 2.0}]
    assert node.status == "reverted" and node.diagnosis.startswith("Critic: unstable: the repeats disagree")
    assert node.gain is not None and node.gain_low > 0, "the statistics alone would have kept it"
    assert store.meta("best_node") == store.meta("root_node")
    assert any(a.kind == "unstable" and a.evidence["ids"] for a in store.alerts())


async def test_no_critic_leaves_crashes_unexplained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)

    def script(turn: Turn) -> Reply:
        if turn.role == "orchestrator" and turn.n_assistant == 0 and not any(
                r["role"] == "orchestrator" for r in fake.requests):
            return Reply("", [("propose_actions", {"actions": [
                {"change": {"fail_start": True}, "rationale": "try it", "speedup_estimate": 0.3}]})])
        return Reply("nothing more")

    with FakeLLM(script, KEY) as fake:
        spec = parse_spec(spec_text(fake.url, ["crash"], llm_usd=5.0, max_actions=1), "no-critic campaign")
        run_dir = new_run(spec, tmp_path / "runs", None, True, lambda _: None, Ablation(critic=False))
        await run_campaign(run_dir, lambda _: None)
        roles = {r["role"] for r in fake.requests}
    store = CampaignStore(run_dir)
    assert [n.status for n in store.nodes() if n.change.get("fail_start")] == ["crashed"]
    assert store.constraints() == [] and "critic" not in roles


async def test_single_agent_keeps_whatever_measured_better(tmp_path: Path) -> None:
    text = SPEC.format(python=sys.executable, stub=str(STUB), max_actions=1, max_repeats=3, knobs=KNOBS["fast"])
    run_dir = new_run(parse_spec(text, "single"), tmp_path / "runs", None, True, lambda _: None,
                      Ablation(single_agent=True))
    await run_campaign(run_dir, lambda _: None)
    store = CampaignStore(run_dir)
    (node,) = [n for n in store.nodes() if n.kind != "baseline"]
    assert node.status == "kept" and node.diagnosis.startswith("single agent")
    assert store.measurements(node.id, "sweep") == [], "no sweep gate for the single agent"
    assert len(store.measurements(node.id, "primary")) == 2, "min repeats, no interval-driven repeats"


async def test_anthropic_needs_a_key_and_a_spend_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    spec = parse_spec(spec_text("http://127.0.0.1:9", ["fast"], llm_usd=1.0), "keyless")
    with pytest.raises(HostError, match="ANTHROPIC_API_KEY"):
        new_run(spec, tmp_path / "runs", None, True, lambda _: None)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir()), "nothing was created"
    from arbor.host.errors import SpecError

    with pytest.raises(SpecError, match="llm_usd > 0"):
        parse_spec(spec_text("http://127.0.0.1:9", ["fast"], llm_usd=0.0), "uncapped")


async def test_no_specialists_means_the_orchestrator_implements(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)

    def script(turn: Turn) -> Reply:
        if turn.role == "orchestrator" and turn.n_assistant == 0 and not fake.by_role("orchestrator"):
            return Reply("", [("propose_actions", {"actions": [
                {"kind": "kernel", "task": "rmsnorm", "rationale": "norm", "speedup_estimate": 0.3}]})])
        if turn.role == "specialist":
            assert "not composed" in turn.prompt
            return Reply("", [("report_patch", {"summary": "no change needed"})])
        return Reply("nothing more")

    with FakeLLM(script, KEY) as fake:
        text = spec_text(fake.url, ["fast"], llm_usd=5.0, max_actions=1)
        text += 'kernel_tasks = [{ name = "rmsnorm", path = "example:rmsnorm" }]\n'
        run_dir = new_run(parse_spec(text, "no specialists"), tmp_path / "runs", None, True, lambda _: None,
                          Ablation(specialists=False))
        await run_campaign(run_dir, lambda _: None)
    store = CampaignStore(run_dir)
    (kernel,) = [n for n in store.nodes() if n.kind == "kernel"]
    node_roles = {r[0] for r in store.conn.execute("SELECT role FROM llm_calls WHERE node = ?", [kernel.id])}
    assert node_roles == {"orchestrator"}
    assert kernel.status == "reverted" and "no change was made" in kernel.diagnosis


async def test_a_model_that_never_calls_tools_does_not_stall_the_campaign(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A weak model (SmolLM2-sized) answers in prose; the offline policy keeps the search going."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    with FakeLLM(lambda turn: Reply("I think you should make it faster."), KEY) as fake:
        spec = parse_spec(spec_text(fake.url, ["fast"], llm_usd=5.0, max_actions=1), "prose campaign")
        run_dir = new_run(spec, tmp_path / "runs", None, True, lambda _: None)
        await run_campaign(run_dir, lambda _: None)
        asked = len(fake.by_role("orchestrator"))
    store = CampaignStore(run_dir)
    assert asked >= 1
    assert any(e.kind == "offline_fallback" for e in store.events())
    (node,) = [n for n in store.nodes() if n.kind != "baseline" and n.status != "pruned"]
    assert node.proposer == "offline" and node.status == "kept"
