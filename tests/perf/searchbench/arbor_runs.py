"""Arbor's own runs: the real engine (offline policy, with the Critic) and its single-agent ablation."""

from __future__ import annotations

import time
from pathlib import Path

from arbor.host.campaign import new_run, run_campaign
from arbor.host.models import EVALUATED, Ablation
from arbor.host.spec import CampaignSpec
from arbor.host.store import StoreReader

from .trajectory import Evaluation, Trajectory

OUTCOMES = {"kept": "ok", "reverted": "ok", "crashed": "crashed", "invalid": "invalid"}


async def engine_run(spec: CampaignSpec, runs_root: Path, trajectory: Trajectory, single_agent: bool) -> Path:
    """Run a whole campaign with a fresh knowledge base; the trajectory is read back from its store."""
    started = time.monotonic()
    run_dir = new_run(spec, runs_root, None, True, lambda _: None, Ablation(single_agent=single_agent))
    await run_campaign(run_dir, lambda _: None)
    trajectory.wall_s = time.monotonic() - started
    read_trajectory(run_dir, trajectory)
    return run_dir


def read_trajectory(run_dir: Path, trajectory: Trajectory) -> None:
    """Every evaluated node in the order it ran, with the kept configuration after it."""
    store = StoreReader.open(run_dir)
    try:
        nodes = sorted((n for n in store.nodes() if n.status in EVALUATED and n.started_at is not None),
                       key=lambda n: (n.started_at, n.id))
        incumbent: dict = {}
        for n in nodes:
            rows = store.measurements(n.id, "primary")
            trajectory.bench_repeats += len(store.measurements(n.id, "primary", valid_only=False))
            values = [r.throughput for r in rows]
            inaccurate = any(not r.metrics["passed"] for r in store.measurements(n.id, "parity"))
            if n.status == "kept":
                incumbent = dict(n.config)
            outcome = "inaccurate" if inaccurate else OUTCOMES.get(n.status, "ok")
            trajectory.evaluations.append(Evaluation(config=dict(n.config), outcome=outcome,  # type: ignore[arg-type]
                                                     measured=sum(values) / len(values) if values else None,
                                                     incumbent=incumbent))
    finally:
        store.close()
