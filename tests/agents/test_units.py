"""The agents' building blocks: workspace confinement, proposal and evidence validation, ledger, redaction."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from arbor.host.agents import evidence
from arbor.host.agents.backend import Usage
from arbor.host.agents.ledger import BudgetExhausted, Ledger, redact
from arbor.host.agents.openai_backend import to_openai
from arbor.host.agents.proposals import ProposedAction, validate
from arbor.host.agents.workspace import ReadFile, Workspace, WriteFile
from arbor.host.errors import ProposalError
from arbor.host.models import Constraint
from arbor.host.spec import parse_spec
from arbor.host.store import CampaignStore

SPEC = parse_spec("""
name = "units"
[target]
stack = "llamacpp"
model = "m.gguf"
[agent]
kernel_tasks = [{ name = "rmsnorm", path = "example:rmsnorm" }]
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
""", "units")


def test_workspace_edits_stay_inside(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "k.c").write_text("int k;\n")
    (tmp_path / "secret").write_text("do not touch")
    ws = Workspace(source, tmp_path / "ws")
    ws.write(WriteFile(path="k.c", content="int k2;\n"))
    ws.write(WriteFile(path="sub/new.c", content="x\n"))
    for bad in ("../secret", "/etc/passwd", "sub/../../secret", "../src/k.c"):
        with pytest.raises(ProposalError):
            ws.write(WriteFile(path=bad, content="pwned"))
    os.symlink(tmp_path / "secret", ws.root / "link")
    with pytest.raises(ProposalError):
        ws.write(WriteFile(path="link", content="pwned"))
    with pytest.raises(ProposalError):
        ws.read(ReadFile(path="link"))
    assert (tmp_path / "secret").read_text() == "do not touch"
    assert (source / "k.c").read_text() == "int k;\n", "the original sources are untouched"
    assert ws.refused == ["../secret", "/etc/passwd", "sub/../../secret", "../src/k.c", "link", "link"]
    diff = ws.diff()
    assert "-int k;" in diff and "+int k2;" in diff and "b/sub/new.c" in diff


def _constraint(**kw) -> Constraint:
    base = dict(id=1, knob="cache_type_v", op="eq", value="q8_0", requires={}, reason="crash", evidence={},
                node=None, created_at=0.0, expires_at=None)
    return Constraint(**(base | kw))


@pytest.mark.parametrize("proposal, error", [
    ({"change": {"threads": 99}}, "threads"),
    ({"change": {"thread": 2}}, "unknown knob 'thread'"),
    ({"change": {"cache_type_v": "q2"}}, "takes one of"),
    ({"change": {}}, "non-empty"),
    ({"change": {"threads": 4}}, "already measured"),
    ({"change": {"cache_type_v": "q8_0"}}, "Critic ruled out"),
    ({"kind": "kernel", "task": "softmax"}, "configured kernel task"),
    ({"kind": "kernel", "task": "rmsnorm", "change": {"threads": 2}}, "leave `change` empty"),
])
def test_invalid_proposals_are_refused_with_the_reason(proposal: dict, error: str) -> None:
    p = ProposedAction(rationale="because", speedup_estimate=0.1, **proposal)
    evaluated = {'{"threads": 4}'}
    with pytest.raises(ProposalError, match=error):
        validate(SPEC, {}, p, evaluated, set(), [_constraint()], "orchestrator")


def test_valid_proposals_become_actions() -> None:
    ok = validate(SPEC, {"threads": 2}, ProposedAction(change={"cache_type_v": "q8_0"}, rationale="r",
                                                       speedup_estimate=0.2, cost_estimate_s=30),
                  set(), set(), [_constraint(requires={"threads": 2})], "orchestrator")
    assert ok.config == {"threads": 2, "cache_type_v": "q8_0"}, "the constraint's requirement is met"
    assert (ok.action.category, ok.action.layer, ok.estimate, ok.cost_s) == ("config", "attention", 0.2, 30)
    kernel = validate(SPEC, {}, ProposedAction(kind="kernel", task="rmsnorm", rationale="r", speedup_estimate=0.05),
                      set(), set(), [], "orchestrator")
    assert kernel.action.kind == "kernel" and kernel.task == "rmsnorm"


def test_evidence_ids_must_exist(tmp_path: Path) -> None:
    store = CampaignStore(tmp_path)
    node = store.add_node(parent=None, depth=0, status="crashed", title="t", category="config", kind="config",
                          change={}, config={}, proposer="critic")
    log = tmp_path / "server.log"
    log.write_text("start\nV cache quantization requires flash_attn\nexit\n")
    got = evidence.check(store, [f"node:{node.id}", "log:2"], str(log))
    assert got["lines"] == ["line 2: V cache quantization requires flash_attn"]
    for ids, message in ((["log:4"], "3 lines"), (["node:99"], "no such node"), (["because"], "not an evidence"),
                         ([], "at least one")):
        with pytest.raises(ProposalError, match=message):
            evidence.check(store, ids, str(log))


def test_ledger_costs_and_budget(tmp_path: Path) -> None:
    store = CampaignStore(tmp_path)
    ledger = Ledger(store, budget_usd=0.04)
    usage = Usage(input_tokens=1000, output_tokens=100, cache_read_tokens=10_000, cache_write_tokens=2000)
    cost = ledger.record("orchestrator", None, "claude-opus-5-5", usage, {"messages": []})
    assert cost == pytest.approx((1000 * 5 + 100 * 25 + 10_000 * 0.5 + 2000 * 6.25) / 1e6)
    ledger.check()
    ledger.record("critic", 3, "claude-opus-5-5", usage, {"messages": []})
    with pytest.raises(BudgetExhausted, match="LLM budget spent"):
        ledger.check()
    totals = ledger.totals()
    assert totals["critic"]["calls"] == 1 and totals["orchestrator"]["cache_read_tokens"] == 10_000
    assert Ledger(store, 0.0).cost("my-local-model", usage) == 0.0, "unpriced models cost nothing"


def test_redaction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "not-shaped-like-a-key-123")
    text = redact("key not-shaped-like-a-key-123 and sk-ant-api03-abcdefghijklmnop and Bearer abc.def.ghi1234")
    assert "not-shaped" not in text and "sk-ant-api03" not in text and "abc.def" not in text


def test_anthropic_blocks_become_openai_messages() -> None:
    out = to_openai("sys", [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [{"type": "text", "text": "ok"},
                                          {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "done"}]}])
    assert out[0] == {"role": "system", "content": "sys"}
    assert out[2]["tool_calls"][0]["function"] == {"name": "f", "arguments": '{"a": 1}'}
    assert out[3] == {"role": "tool", "tool_call_id": "t1", "content": "done"}


@pytest.mark.anyio
async def test_specialist_pool_limits_devices_and_time() -> None:
    import anyio

    from arbor.host.agents.pool import Pool, SpecialistResult

    running = {"now": 0, "peak": 0, "device_now": 0, "device_peak": 0}

    async def work(device: bool, seconds: float = 0.05) -> SpecialistResult:
        running["now"] += 1
        running["peak"] = max(running["peak"], running["now"])
        if device:
            running["device_now"] += 1
            running["device_peak"] = max(running["device_peak"], running["device_now"])
        await anyio.sleep(seconds)
        running["now"] -= 1
        running["device_now"] -= int(device)
        return SpecialistResult(summary="ok")

    import asyncio

    pool = Pool(slots=3, devices=1, timeout_s=5)
    results = await asyncio.gather(*(pool.run(d, work(d)) for d in (True, True, False, False, False)))
    assert all(r.summary == "ok" for r in results)
    assert running["peak"] == 3, "three specialists at once"
    assert running["device_peak"] == 1, "GPU work waits for the one device"
    slow = await Pool(1, 0, timeout_s=0.05).run(False, work(False, 1.0))
    assert "ran out of time" in (slow.error or "")
    no_gpu = await Pool(1, 0, timeout_s=5).run(True, work(True))
    assert "needs a GPU" in (no_gpu.error or "")
