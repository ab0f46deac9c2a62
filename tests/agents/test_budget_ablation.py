"""The LLM budget stops LLM work cleanly mid-campaign; the ablation switches take out what they name."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from arbor.host.agents.team import Ablation
from arbor.host.campaign import new_run, run_campaign
from arbor.host.errors import HostError
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
    from arbor.tools.errors import InputError

    with pytest.raises(InputError, match="llm_usd > 0"):
        parse_spec(spec_text("http://127.0.0.1:9", ["fast"], llm_usd=0.0), "uncapped")
