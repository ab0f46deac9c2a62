"""Starting, resuming and reporting a campaign: spec and run folder in, engine run, report out."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from arbor.kb.db import default_path as default_kb_path
from arbor.tools.errors import ArborError
from arbor.tools.serving.flagcheck import check_stack

from .agents.specialist import task_folder
from .agents.team import Team, check_agent, make_backend
from .engine import Campaign
from .errors import SpecError, StoreError
from .models import Ablation
from .report import write_report
from .services import Services
from .spec import CampaignSpec
from .store import CampaignStore, StoreReader
from .target import kb_context, resolve

Say = Callable[[str], None]


def resolve_kernel_tasks(spec: CampaignSpec) -> CampaignSpec:
    """Kernel task folders made absolute and checked, so a resumed run finds them from any folder."""
    tasks = []
    for task in spec.agent.kernel_tasks:
        if not task.path.startswith("example:"):
            task = task.model_copy(update={"path": str(Path(task.path).absolute())})
        task_folder(task)
        tasks.append(task)
    return spec.model_copy(update={"agent": spec.agent.model_copy(update={"kernel_tasks": tasks})})


def new_run(spec: CampaignSpec, runs_root: Path, kb: Path | None, fresh_kb: bool, say: Say,
            ablation: Ablation | None = None) -> Path:
    """Create a run folder and its store for `spec`; returns the folder."""
    check_agent(spec.agent)
    spec = resolve_kernel_tasks(spec)
    binary, model = resolve(spec, say)
    stack = spec.stack_spec(binary, model)  # validates the stack before anything is created
    try:  # a flag the engine does not know fails here, not at the baseline's launch
        for note in check_stack(stack):
            say(note)
    except ArborError as exc:
        raise SpecError(f"target: {exc}") from exc
    run_dir = runs_root / f"{time.strftime('%Y%m%d-%H%M%S')}-{spec.name}"
    if run_dir.exists():
        run_dir = runs_root / f"{run_dir.name}-{uuid.uuid4().hex[:4]}"
    store = CampaignStore(run_dir)
    try:
        kb_path = run_dir / "kb.sqlite" if fresh_kb else (kb or default_kb_path())
        store.set_meta("spec", spec)
        store.set_meta("campaign_id", f"{spec.name}-{uuid.uuid4().hex[:8]}")
        store.set_meta("binary", binary)
        store.set_meta("model", model)
        store.set_meta("kb_path", str(kb_path))
        store.set_meta("context", kb_context(spec, binary, model))
        store.set_meta("ablation", ablation or Ablation())
        store.set_meta("state", "created")
        store.event("created", None, spec=spec.name, kb=str(kb_path))
    finally:
        store.close()
    return run_dir


async def run_campaign(run_dir: Path, say: Say) -> dict[str, Any]:
    """Run (or resume) the campaign in `run_dir` to its end, distil it into the KB, write the report."""
    if not StoreReader.exists(run_dir):
        raise StoreError(f"{run_dir} holds no campaign (no campaign.sqlite)")
    store = CampaignStore(run_dir)
    try:
        spec = store.meta("spec")
        if store.meta("state") == "finished":
            raise StoreError(f"the campaign in {run_dir} has finished; `arbor-host report {run_dir}` rewrites "
                             "its report")
        stack = spec.stack_spec(store.meta("binary"), store.meta("model"))
        check_agent(spec.agent)
        store.set_meta("state", "running")
        store.event("session_started", None, pid=os.getpid())
        endpoints = spec.servers.endpoints()
        token = os.environ.get(spec.servers.token_env)
        async with Services(run_dir.parent, run_dir.name, stack, Path(store.meta("kb_path")), endpoints, say,
                            token) as svc:
            backend = make_backend(spec.agent)
            team = None if backend is None else Team(spec.agent, spec.budget.llm_usd, store, svc.clients(), backend,
                                                     store.meta("ablation"), say, store.meta("context"))
            campaign = Campaign(spec, run_dir, store, svc, say, team)
            started = time.monotonic()
            try:
                await campaign.run()
            finally:
                if backend is not None:
                    await backend.aclose()
                wall = time.monotonic() - started
                store.set_meta("tool_seconds", svc.timer.spent)
                store.set_meta("session_wall_s", wall)
            distilled = await svc.distill(store.meta("campaign_id"))
            store.event("distilled", None, entries=len(distilled.entries))
        report = write_report(store)
        report["timing"] = {"wall_s": wall, "tools_s": svc.timer.spent,
                            "host_overhead_pct": 100.0 * max(0.0, wall - svc.timer.total()) / max(wall, 1e-9)}
        return report
    finally:
        store.close()


def report_only(run_dir: Path) -> dict[str, Any]:
    """Rewrite the report of a run from its store."""
    store = StoreReader.open(run_dir)
    try:
        return write_report(store)
    finally:
        store.close()
