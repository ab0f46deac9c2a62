"""Campaign stores for the TUI tests: one written by a real short campaign, one fixed for snapshots."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from arbor.host.campaign import new_run, run_campaign
from arbor.host.spec import parse_spec
from arbor.host.store import CampaignStore
from tests.conftest import STUB
from tests.integration.test_campaign_faults import KNOBS, SPEC


def real_campaign(root: Path) -> Path:
    """A short campaign on the stub stack: a keep, a crash, an accuracy failure."""
    text = SPEC.format(python=sys.executable, stub=str(STUB), max_actions=4, max_repeats=2,
                       knobs="\n".join(KNOBS[k] for k in ("fast", "crash", "garble")))
    run_dir = new_run(parse_spec(text, "tui campaign"), root, None, True, lambda _: None)
    asyncio.run(run_campaign(run_dir, lambda _: None))
    return run_dir


def fixed_campaign(root: Path) -> Path:
    """A finished campaign with fixed values and times, so screens render the same every run."""
    text = SPEC.format(python=sys.executable, stub=str(STUB), max_actions=10, max_repeats=2,
                       knobs="\n".join(KNOBS[k] for k in ("fast", "crash", "garble")))
    spec = parse_spec(text, "fixed")
    run_dir = root / "20260101-000000-fixed"
    store = CampaignStore(run_dir)
    meta = {"spec": spec.model_dump(mode="json"), "campaign_id": "fixed-0001", "state": "finished",
            "elapsed_s": 1234.0, "context": {}, "ablation": {}, "evaluated_configs": []}
    for key, value in meta.items():
        store.set_meta(key, value)
    t = 1_700_000_000.0

    def node(nid_parent, status, title, change, config, **extra):
        return store.add_node(parent=nid_parent, depth=0 if nid_parent is None else 1, status=status, title=title,
                              category=extra.pop("category", "config"), layer=extra.pop("layer", "scheduler"),
                              kind=extra.pop("kind", "config"), change=change, config=config,
                              proposer=extra.pop("proposer", "offline"), created_at=t, **extra)

    root_node = node(None, "kept", "baseline: the server's defaults", {}, {}, kind="baseline", gain=0.0)
    kept = node(root_node.id, "kept", "itl_ms: default -> 2.0", {"itl_ms": 2.0}, {"itl_ms": 2.0}, gain=0.42,
                gain_low=0.31, gain_high=0.55, rationale="shorter inter-token latency", proposer="orchestrator",
                score=0.05, score_terms={"score": 0.05, "urgency": 1.0, "speedup": 0.2, "p_crash": 0.1})
    crashed = node(root_node.id, "crashed", "fail_start: default -> True", {"fail_start": True},
                   {"fail_start": True}, diagnosis="oom: CUDA out of memory", layer="runtime")
    node(kept.id, "reverted", "garble: default -> True", {"garble": True}, {"itl_ms": 2.0, "garble": True},
         diagnosis="accuracy gate: greedy agreement 0% < 90%", category="dispatch", layer="attention")
    node(kept.id, "proposed", "noisy: default -> 9", {"noisy": 9}, {"itl_ms": 2.0, "noisy": 9}, score=0.012)
    for i, (nid, tput) in enumerate(((root_node.id, 50.0), (root_node.id, 52.0), (kept.id, 71.0),
                                     (kept.id, 73.0))):
        mid = store.add_measurement(nid, "primary", {"output_throughput": tput, "median_ttft_ms": 40.0 + i,
                                                     "median_tpot_ms": 9.0, "completed": 8, "failed": 0})
        store.conn.execute("UPDATE measurements SET created_at = ? WHERE id = ?", [t + i, mid])
    for nid, scale in ((root_node.id, 1.0), (kept.id, 1.4)):
        store.add_measurement(nid, "sweep", {"points": {
            "1": {"output_throughput": 20 * scale, "interactivity": 40.0 * scale, "median_ttft_ms": 10.0,
                  "failed": 0},
            "4": {"output_throughput": 50 * scale, "interactivity": 25.0 * scale, "median_ttft_ms": 20.0,
                  "failed": 0}}, "frontier": []})
    store.conn.execute("UPDATE nodes SET finished_at = created_at + id")
    store.set_meta("root_node", root_node.id)
    store.set_meta("best_node", kept.id)
    store.add_constraint("fail_start", "eq", True, "oom: CUDA out of memory",
                         {"lines": ["line 3: CUDA out of memory"]}, crashed.id)
    store.add_alert("error", "crash", "fail_start: default -> True crashed the server: CUDA out of memory",
                    {"lines": ["line 3: CUDA out of memory"]}, crashed.id)
    store.add_alert("critical", "escalation", "the known-good configuration no longer starts healthy",
                    {"node": kept.id}, kept.id, needs_human=True)
    for table, column in (("alerts", "created_at"), ("constraints", "created_at")):
        store.conn.execute(f"UPDATE {table} SET {column} = ?", [t])
    store.close()
    return run_dir
