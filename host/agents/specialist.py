"""Domain Specialists, composed per action: a kernel rewritten in an isolated workspace, gated, reported."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from arbor.servers.kernels import EXAMPLES
from arbor.tools.kernels.gate import GateReport

from ..errors import HostError, SpecError
from ..mcp_calls import call_as
from ..models import Node
from ..spec import CampaignSpec, KernelTask
from ..tree import SearchTree
from . import briefing
from .backend import Role
from .bridge import Bridge, local_tool
from .pool import SpecialistResult
from .prompts import render
from .team import Team
from .workspace import ListFiles, ReadFile, Workspace, WriteFile

GATE_TOOLS = ("build_kernel", "test_kernel", "bench_kernel", "gate_kernel")


class ReportPatch(BaseModel):
    """The specialist's report: what changed and why it is faster."""

    model_config = ConfigDict(extra="forbid")

    summary: str = Field(min_length=1, max_length=4000)


def task_folder(task: KernelTask) -> Path:
    """Where a kernel task's sources are."""
    if task.path.startswith("example:"):
        folder = EXAMPLES / task.path.removeprefix("example:")
    else:
        folder = Path(task.path)
    if not (folder / "task.toml").is_file():
        raise SpecError(f"kernel task {task.name!r}: no task.toml in {folder}")
    return folder


def kernel_task(spec: CampaignSpec, node: Node) -> KernelTask:
    """The kernel task a kernel node targets."""
    names = [k.removeprefix("kernel:") for k in node.change if k.startswith("kernel:")]
    tasks = {t.name: t for t in spec.agent.kernel_tasks}
    if len(names) != 1 or names[0] not in tasks:
        raise HostError(f"node {node.id} names no configured kernel task")
    return tasks[names[0]]


async def implement(team: Team, tree: SearchTree, node: Node, role: Role = "specialist") -> SpecialistResult:
    """Build the specialist for `node`, let it iterate in its workspace, then gate its result on the host."""
    task = kernel_task(tree.spec, node)
    run_dir = tree.store.run_dir
    workspace = Workspace(task_folder(task), run_dir / "workspaces" / f"n{node.id}")
    relative = f"{run_dir.name}/workspaces/n{node.id}"
    state: dict[str, Any] = {"report": None}

    def report(args: ReportPatch) -> str:
        state["report"] = args.summary
        return "reported; the host now runs the full gate on your workspace"

    tools = [local_tool("workspace_list", "Files in your workspace.", ListFiles, workspace.list),
             local_tool("workspace_read", "Read a file of your workspace.", ReadFile, workspace.read),
             local_tool("workspace_write", "Replace (or create) a file of your workspace.", WriteFile, workspace.write),
             local_tool("report_patch", "Finish: report what you changed and why it is faster.", ReportPatch, report)]
    # The gate tools act on this workspace only: the task argument is fixed by the host.
    bridge = Bridge(team.clients, role, tools, bind={f"kernels__{t}": {"task": relative} for t in GATE_TOOLS},
                    allowed={("kernels", t) for t in GATE_TOOLS} | {("kb", "query"), ("profiler", "parse_profile")})
    await bridge.load()
    mandate = (f"make kernel task {task.name!r} faster ({task.description or task.layer}) without changing its "
               f"results; the node's rationale: {node.rationale}")
    if role == "specialist":
        prompt = render("specialist", mandate=mandate, hardware=briefing.hardware(tree.spec, team.context),
                        kb=await team.kb_entries(f"{task.layer} kernel {task.name}"),
                        history=briefing.similar(tree, task.category), constraints=briefing.constraints(tree),
                        files=workspace.list())
    else:
        # --no-specialists: the Orchestrator implements with the same tools but no composed briefing.
        unknown = "(not composed: no specialists)"
        prompt = render("specialist", mandate=mandate, hardware=unknown, kb=unknown, history=unknown,
                        constraints=unknown, files=workspace.list())
    system = render("specialist_system", role=role)
    run = await team.run(role, system, prompt, bridge, node.id, done=lambda: state["report"] is not None)
    result = SpecialistResult(reported=state["report"] is not None, summary=state["report"] or "",
                              refused_paths=workspace.refused)
    if run is None:
        result.error = "the model could not be asked (budget or backend); see the alerts"
    diff = workspace.diff()
    patches = tree.store.artifacts / "patches"
    patches.mkdir(parents=True, exist_ok=True)
    path = patches / f"n{node.id}.diff"
    path.write_text(diff)
    result.diff_path, result.diff_lines = str(path), diff.count("\n")
    if diff:
        # The host's own gate run is the evidence; what the agent claimed is not.
        try:
            gate = await call_as(team.clients["kernels"], "gate_kernel", {"task": relative}, GateReport)
        except HostError as exc:
            result.error = str(exc)
        else:
            result.gate, result.passed = gate, gate.passed
            (patches / f"n{node.id}.gate.json").write_text(gate.model_dump_json(indent=1))
    return result
