"""MCP server `arbor-kernels`: toolchains, and the four-step gate for kernel tasks (build, test, bench, gate)."""

from __future__ import annotations

import shutil
from pathlib import Path

import anyio
from mcp.server.mcpserver import Context, MCPServer
from pydantic import BaseModel, ConfigDict, Field

from arbor.servers.common import Progress, run_with_root, tool
from arbor.tools.errors import InputError
from arbor.tools.kernels import gate
from arbor.tools.kernels.spec import LoadedTask, load_task
from arbor.tools.kernels.toolchains import Toolchain, toolchain
from arbor.tools.paths import contained, runs_root

Strict = ConfigDict(extra="forbid")
EXAMPLES = Path(gate.__file__).with_name("examples")
LANGUAGES = ("c", "cpp", "hip", "cuda", "triton")


class ListInput(BaseModel):
    model_config = Strict


class TaskInput(BaseModel):
    model_config = Strict
    task: str = Field(min_length=1, description="task folder (holding task.toml) inside the kernels root")


class ExampleInput(BaseModel):
    model_config = Strict
    example: str = Field("rmsnorm", pattern=r"^[a-z0-9_]+$")
    dest: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="new task folder name")


class Toolchains(BaseModel):
    toolchains: list[Toolchain]


class Copied(BaseModel):
    task: str
    files: list[str]


def create_server(root: Path | None = None) -> MCPServer:
    """A kernels MCP server for task folders under `root` (default: the runs root)."""
    root = (root or runs_root()).absolute()
    server = MCPServer("arbor-kernels", instructions="Build and gate kernels: compile, correctness, "
                       "micro-benchmark, adversarial inputs.", log_level="WARNING")

    def task_at(path: str) -> tuple[LoadedTask, Path]:
        folder = contained(root, path, "kernels root")
        return load_task(folder), folder / ".arbor-build"

    async def steps(args: TaskInput, ctx: Context, which: tuple[gate.Step, ...]) -> gate.GateReport:
        loaded, work = await anyio.to_thread.run_sync(task_at, args.task)
        progress = Progress(ctx)
        await progress(0, len(which), f"{loaded.task.name}: {', '.join(which)}")
        report = await anyio.to_thread.run_sync(gate.run_gate, loaded, work, which)
        await progress(len(which), len(which), "passed" if report.passed else f"failed at {report.failed_step}")
        return report

    @tool(server, ListInput)
    async def list_toolchains(args: ListInput, ctx: Context) -> Toolchains:
        """Per language (c, cpp, hip, cuda, triton): is the compiler here, is there a device to run on."""
        return Toolchains(toolchains=await anyio.to_thread.run_sync(lambda: [toolchain(x) for x in LANGUAGES]))

    @tool(server, TaskInput)
    async def build_kernel(args: TaskInput, ctx: Context) -> gate.GateReport:
        """Step 1: compile the candidate; compiler diagnostics come back structured."""
        return await steps(args, ctx, ("compile",))

    @tool(server, TaskInput)
    async def test_kernel(args: TaskInput, ctx: Context) -> gate.GateReport:
        """Steps 1-2: compile, then every shape against the reference within tolerance."""
        return await steps(args, ctx, ("compile", "correctness"))

    @tool(server, TaskInput)
    async def bench_kernel(args: TaskInput, ctx: Context) -> gate.GateReport:
        """Steps 1-3: compile, correctness, then median time and speedup over the baseline with an interval."""
        return await steps(args, ctx, ("compile", "correctness", "benchmark"))

    @tool(server, TaskInput)
    async def gate_kernel(args: TaskInput, ctx: Context) -> gate.GateReport:
        """The full four-step gate: compile, correctness, micro-benchmark, adversarial inputs."""
        return await steps(args, ctx, gate.STEPS)

    @tool(server, ExampleInput)
    async def new_task_from_example(args: ExampleInput, ctx: Context) -> Copied:
        """Copy a shipped example task (rmsnorm) into the kernels root as a starting point."""
        source = EXAMPLES / args.example
        if not (source / "task.toml").is_file():
            raise InputError(f"no example {args.example!r}; examples: "
                             f"{sorted(p.name for p in EXAMPLES.iterdir() if (p / 'task.toml').is_file())}")
        dest = contained(root, args.dest, "kernels root")
        if dest.exists():
            raise InputError(f"{args.dest!r} already exists in the kernels root")
        shutil.copytree(source, dest, ignore=shutil.ignore_patterns("__pycache__"))
        return Copied(task=args.dest, files=sorted(p.name for p in dest.iterdir()))

    return server


def main(argv: list[str] | None = None) -> None:
    """Entry point of `arbor-mcp-kernels`."""
    run_with_root(create_server, "Arbor kernels MCP server", argv, "--tasks-root",
                  "folder that holds kernel task folders")


if __name__ == "__main__":
    main()
