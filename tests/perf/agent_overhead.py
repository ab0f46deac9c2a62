"""Host-side latency of the agents: per LLM turn and per tool call through MCP. Prints one JSON line.

A scripted campaign on the stub stack with Claude's seat taken by the local fake Messages API
(which sleeps `--model-delay-ms` per call, like a model thinking). Each Orchestrator turn
consults the knowledge base and the serving catalogue through the in-process MCP servers
before proposing. Per turn: the host's wall time for the call minus the fake's own time (the
SDK, HTTP and JSON); per tool call: the bridge's wall time for the call through MCP.
Goal: under 10 ms per tool call in-process.
Run: .venv/bin/python tests/perf/agent_overhead.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from arbor.host.campaign import new_run, run_campaign  # noqa: E402
from arbor.host.spec import parse_spec  # noqa: E402
from arbor.host.store import CampaignStore  # noqa: E402
from arbor.tools.stats import percentile  # noqa: E402
from tests.conftest import STUB  # noqa: E402
from tests.integration.test_campaign_faults import SPEC  # noqa: E402
from tests.support.fake_llm import FakeLLM, Reply, Turn  # noqa: E402

KEY = "sk-ant-perf-0000000000000000"
KNOB = ('[[knobs]]\nname = "itl_ms"\nflag = "--itl-ms"\ntype = "float"\nmin = 0\nmax = 100\n'
        'values = [1.0, 2.0, 4.0, 6.0, 8.0]\ncategory = "config"\nlayer = "scheduler"\n')


def script(turn: Turn) -> Reply:
    if turn.role != "orchestrator":
        return Reply("nothing to add")
    if turn.n_assistant == 0:
        return Reply("", [("kb__query", {"query": "inter-token latency scheduler", "limit": 5}),
                          ("serving__list_knobs", {"stack": "llamacpp"}),
                          ("kb__action_priors", {"context": {"stack": "generic", "hardware": "test-box"},
                                                 "change": {"category": "config", "knob": "itl_ms", "value": 2.0}})])
    if turn.n_assistant == 1:
        done = len([line for line in turn.prompt.splitlines() if "itl_ms" in line])
        value = [1.0, 2.0, 4.0, 6.0, 8.0][done % 5]
        return Reply("", [("propose_actions", {"actions": [{"change": {"itl_ms": value}, "rationale": "scan",
                                                             "speedup_estimate": 0.2}]})])
    return Reply("done")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actions", type=int, default=6)
    parser.add_argument("--model-delay-ms", type=float, default=20.0)
    args = parser.parse_args()
    os.environ["ANTHROPIC_API_KEY"] = KEY
    with tempfile.TemporaryDirectory() as tmp, FakeLLM(script, KEY, delay_s=args.model_delay_ms / 1000) as fake:
        text = SPEC.format(python=sys.executable, stub=str(STUB), max_actions=args.actions, max_repeats=2, knobs=KNOB)
        text = text.replace("[budget]\n", "[budget]\nllm_usd = 100.0\n").replace("wall_clock_s = 120",
                                                                                  "wall_clock_s = 600")
        text += f'\n[agent]\nbackend = "anthropic"\nbase_url = "{fake.url}"\n'
        run_dir = new_run(parse_spec(text, "agent overhead"), Path(tmp), None, True, lambda _: None)
        asyncio.run(run_campaign(run_dir, lambda _: None))
        store = CampaignStore(run_dir)
        runs = [e.data for e in store.events() if e.kind == "agent_run"]
        store.close()
        llm = [s for r in runs for s in r["llm_seconds"]]
        fake_s = [r["fake_s"] for r in fake.requests]
    if len(llm) != len(fake_s):
        raise SystemExit(f"turns and requests disagree: {len(llm)} vs {len(fake_s)}")
    turn_ms = [1000 * max(0.0, a - b) for a, b in zip(llm, fake_s, strict=True)]
    calls = [c for r in runs for c in r["calls"]]
    mcp_ms = [1000 * c["seconds"] for c in calls if "__" in c["name"]]
    local_ms = [1000 * c["seconds"] for c in calls if "__" not in c["name"]]
    print(json.dumps({
        "llm_turns": len(turn_ms), "turn_overhead_ms_p50": round(percentile(turn_ms, 50), 2),
        "turn_overhead_ms_p99": round(percentile(turn_ms, 99), 2),
        "mcp_tool_calls": len(mcp_ms), "tool_call_ms_p50": round(percentile(mcp_ms, 50), 2),
        "tool_call_ms_p99": round(percentile(mcp_ms, 99), 2),
        "local_tool_call_ms_p50": round(percentile(local_ms, 50), 2),
        "goal_tool_call_ms": 10, "met": percentile(mcp_ms, 50) < 10}))


if __name__ == "__main__":
    main()
