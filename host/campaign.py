"""Starting, resuming and reporting a campaign: spec and run folder in, engine run, report out."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from arbor.kb.db import default_path as default_kb_path
from arbor.tools.provision import ensure_default_target

from .agents.specialist import task_folder
from .agents.team import Ablation, Team, check_agent, make_backend
from .engine import Campaign
from .errors import HostError
from .report import write_report
from .services import Services
from .spec import DEFAULT, CampaignSpec
from .store import CampaignStore
from .targetinfo import framework_version, hardware_label

Say = Callable[[str], None]


def resolve_target(spec: CampaignSpec, say: Say) -> tuple[str | None, str]:
    """The binary and model paths, building the demo target when the spec asks for "default"."""
    binary, model = spec.target.binary, spec.target.model
    if binary == DEFAULT or model == DEFAULT:
        target = ensure_default_target(say)
        binary = str(target.server_binary) if binary == DEFAULT else binary
        model = str(target.model_path) if model == DEFAULT else model
    if binary and "/" in binary and not Path(binary).is_file():
        raise HostError(f"target.binary: {binary} does not exist")
    return binary, model


def kb_context(spec: CampaignSpec, binary: str | None, model: str) -> dict[str, Any]:
    """Where this campaign's measurements are made, for the knowledge base."""
    t = spec.target
    hardware = hardware_label() if t.hardware == "auto" else t.hardware
    version = framework_version(binary) if t.framework_version == "auto" else t.framework_version
    return {"stack": t.stack, "hardware": hardware[:127], "model": Path(model).name[:300],
            "model_family": t.model_family, "framework_version": version}


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
    binary, model = resolve_target(spec, say)
    spec.stack_spec(binary, model)  # validates the stack before anything is created
    run_dir = runs_root / f"{time.strftime('%Y%m%d-%H%M%S')}-{spec.name}"
    if run_dir.exists():
        run_dir = runs_root / f"{run_dir.name}-{uuid.uuid4().hex[:4]}"
    store = CampaignStore(run_dir)
    try:
        kb_path = run_dir / "kb.sqlite" if fresh_kb else (kb or default_kb_path())
        store.set_meta("spec", spec.model_dump(mode="json"))
        store.set_meta("campaign_id", f"{spec.name}-{uuid.uuid4().hex[:8]}")
        store.set_meta("binary", binary)
        store.set_meta("model", model)
        store.set_meta("kb_path", str(kb_path))
        store.set_meta("context", kb_context(spec, binary, model))
        store.set_meta("ablation", (ablation or Ablation()).model_dump())
        store.set_meta("state", "created")
        store.event("created", None, spec=spec.name, kb=str(kb_path))
    finally:
        store.close()
    return run_dir


async def run_campaign(run_dir: Path, say: Say) -> dict[str, Any]:
    """Run (or resume) the campaign in `run_dir` to its end, distil it into the KB, write the report."""
    if not CampaignStore.exists(run_dir):
        raise HostError(f"{run_dir} holds no campaign (no campaign.sqlite)")
    store = CampaignStore(run_dir)
    try:
        spec = CampaignSpec.model_validate(store.meta("spec"))
        if store.meta("state") == "finished":
            raise HostError(f"the campaign in {run_dir} has finished; `arbor-host report {run_dir}` rewrites "
                            "its report")
        stack = spec.stack_spec(store.meta("binary"), store.meta("model"))
        check_agent(spec.agent)
        store.set_meta("state", "running")
        store.event("session_started", None, pid=os.getpid())
        endpoints = spec.servers.endpoints()
        token = os.environ.get(spec.servers.token_env)
        async with Services(run_dir.parent, run_dir.name, stack, Path(store.meta("kb_path")), endpoints, say,
                            token) as svc:
            campaign = Campaign(spec, run_dir, store, svc, store.meta("context"), say)
            backend = make_backend(spec.agent)
            if backend is not None:
                campaign.team = Team(spec.agent, spec.budget.llm_usd, store, svc.clients(), backend,
                                     campaign.ablation, say)
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
            store.event("distilled", None, entries=len(distilled["entries"]))
        report = write_report(store)
        report["timing"] = {"wall_s": wall, "tools_s": svc.timer.spent,
                            "host_overhead_pct": 100.0 * max(0.0, wall - svc.timer.total()) / max(wall, 1e-9)}
        return report
    finally:
        store.close()


def report_only(run_dir: Path) -> dict[str, Any]:
    """Rewrite the report of a run from its store."""
    if not CampaignStore.exists(run_dir):
        raise HostError(f"{run_dir} holds no campaign (no campaign.sqlite)")
    store = CampaignStore(run_dir)
    try:
        return write_report(store)
    finally:
        store.close()
