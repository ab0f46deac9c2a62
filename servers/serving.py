"""MCP server `arbor-serving`: launch, watch, probe and stop inference servers; metrics and telemetry."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from pydantic import BaseModel, ConfigDict, Field

from arbor.servers.common import Progress, serve, tool, transport_args
from arbor.tools import provision
from arbor.tools.errors import InputError, LaunchError
from arbor.tools.paths import contained, runs_root
from arbor.tools.serving import metrics as prom
from arbor.tools.serving import telemetry
from arbor.tools.serving.demo import DEMO_STACK, find_demo_stack
from arbor.tools.serving.failures import Failure, read_log_tail
from arbor.tools.serving.fleet import Fleet, ReapedGroup
from arbor.tools.serving.knobs import Knob, catalogue
from arbor.tools.serving.launcher import ServerInfo, probe
from arbor.tools.serving.stack import STACK_NAME, LaunchCommand, StackKind, StackSpec, load_stacks
from arbor.tools.serving.stack import launch_command as launch_command_of

KnobValue = bool | int | float | str | dict[str, Any]
Strict = ConfigDict(extra="forbid")


class ListKnobsInput(BaseModel):
    model_config = Strict
    stack: StackKind = Field(description="llamacpp, vllm, sglang or generic")


class LaunchInput(BaseModel):
    model_config = Strict
    stack: str = Field(pattern=STACK_NAME.pattern, description="name of a configured stack (see list_stacks)")
    knobs: dict[str, KnobValue] = Field(default_factory=dict, description="knob name -> value")
    run_dir: str = Field(".", description="folder for logs, inside the runs root")
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class LaunchCommandInput(BaseModel):
    model_config = Strict
    stack: str = Field(pattern=STACK_NAME.pattern, description="name of a configured stack (see list_stacks)")
    knobs: dict[str, KnobValue] = Field(default_factory=dict, description="knob name -> value")
    port: int | None = Field(None, ge=1, le=65535,
                             description="port in the command; default the stack's configured port, else 8080")


class ServerIdInput(BaseModel):
    model_config = Strict
    server_id: str = Field(min_length=1, max_length=80)


class ProbeInput(BaseModel):
    model_config = Strict
    server_id: str = Field(min_length=1, max_length=80)
    timeout_s: float = Field(30.0, gt=0, le=600)


class StopInput(BaseModel):
    model_config = Strict
    server_id: str = Field(min_length=1, max_length=80)
    grace_s: float = Field(10.0, ge=0, le=600)


class LogInput(BaseModel):
    model_config = Strict
    server_id: str = Field(min_length=1, max_length=80)
    lines: int = Field(100, ge=1, le=10_000)


class MetricsInput(BaseModel):
    model_config = Strict
    server_id: str = Field(min_length=1, max_length=80)
    prefix: str = Field("", max_length=100, description="only samples whose name starts with this")


class TelemetryInput(BaseModel):
    model_config = Strict
    server_id: str | None = Field(None, max_length=80, description="include this server's process group")


class ListInput(BaseModel):
    model_config = Strict


class ListStacksInput(BaseModel):
    model_config = Strict


class DefaultTargetInput(BaseModel):
    model_config = Strict
    build: bool = Field(False, description="build llama-server now if it is not cached (minutes)")


class KnobList(BaseModel):
    stack: str
    knobs: list[Knob]


class StackEntry(BaseModel):
    name: str
    kind: str
    model: str
    knobs: list[str]


class StackList(BaseModel):
    stacks: list[StackEntry]


class LaunchOutcome(BaseModel):
    ok: bool
    server: ServerInfo | None = None
    failure: Failure | None = None


class ProbeOutcome(BaseModel):
    healthy: bool
    failure: Failure | None = None


class LogTail(BaseModel):
    server_id: str
    log_path: str
    first_line: int
    lines: list[str]


class MetricsOut(BaseModel):
    key: dict[str, float]
    samples: list[prom.Sample]


class ServerList(BaseModel):
    servers: list[ServerInfo]
    reaped: list[ReapedGroup] = Field(
        default_factory=list,
        description="process groups of dead owners (a killed host or server) this server stopped, at its start "
                    "or before a launch")


class DefaultTarget(BaseModel):
    ready: bool
    server_binary: str | None
    model_path: str | None
    source_version: str


def create_server(root: Path | None = None, stacks: dict[str, StackSpec] | None = None,
                  include_demo: bool = True) -> MCPServer:
    """A serving MCP server for the operator's `stacks`, run folders under `root` (default: the runs root).

    Callers name a stack and give knob values; binaries, commands and environment come
    only from the operator's configuration, so nothing a model writes reaches a process
    except validated knob values. The built-in demo stack is offered as "demo" once built.
    Process groups left by a dead owner are reaped on creation and reported by list_servers.
    """
    root = (root or runs_root()).absolute()
    configured = dict(stacks or {})

    def available() -> dict[str, StackSpec]:
        found = dict(configured)
        if include_demo and DEMO_STACK not in found and (demo := find_demo_stack()) is not None:
            found[DEMO_STACK] = demo
        return found

    def resolve_stack(name: str) -> StackSpec:
        found = available()
        if name not in found:
            hint = " (the demo target is not built yet: arbor-host setup)" if name == DEMO_STACK else ""
            raise InputError(f"unknown stack {name!r}{hint}; configured: {sorted(found)}")
        return found[name]
    server = MCPServer("arbor-serving", instructions="Launch and control inference servers for Arbor campaigns.",
                       log_level="WARNING")
    fleet = Fleet()
    server.fleet = fleet  # type: ignore[attr-defined]

    @tool(server, ListKnobsInput)
    async def list_knobs(args: ListKnobsInput, ctx: Context) -> KnobList:
        """The built-in knob catalogue of a stack: flag or env, type, domain, category, layer."""
        return KnobList(stack=args.stack, knobs=list(catalogue(args.stack).values()))

    @tool(server, ListStacksInput)
    async def list_stacks(args: ListStacksInput, ctx: Context) -> StackList:
        """The stacks this server may launch (configured by the operator), with their knob names."""
        return StackList(stacks=[StackEntry(name=name, kind=spec.kind, model=spec.model,
                                            knobs=sorted(spec.knob_space()))
                                 for name, spec in sorted(available().items())])

    @tool(server, LaunchInput)
    async def launch_server(args: LaunchInput, ctx: Context) -> LaunchOutcome:
        """Start a configured stack with knob values, wait for health plus one generated token; classify failures."""
        spec = resolve_stack(args.stack)
        logs = contained(root, f"{args.run_dir}/logs")
        progress = Progress(ctx)

        async def report(elapsed: float, line: str) -> None:
            await progress(elapsed, None, line)

        try:
            info = await fleet.launch(spec, dict(args.knobs), logs, args.name, report)
        except LaunchError as exc:
            return LaunchOutcome(ok=False, failure=exc.failure)  # type: ignore[arg-type]
        return LaunchOutcome(ok=True, server=info)

    @tool(server, LaunchCommandInput)
    async def launch_command(args: LaunchCommandInput, ctx: Context) -> LaunchCommand:
        """The shell command that starts a configured stack with these knob values, credentials masked; runs nothing."""
        return launch_command_of(resolve_stack(args.stack), dict(args.knobs), args.port)

    @tool(server, ServerIdInput)
    async def server_status(args: ServerIdInput, ctx: Context) -> ServerInfo:
        """Current state of a launched server; an exited one comes back failed with its classification."""
        return await anyio.to_thread.run_sync(fleet.status, args.server_id)

    @tool(server, ProbeInput)
    async def probe_server(args: ProbeInput, ctx: Context) -> ProbeOutcome:
        """Is the server still serving: health and one generated token within the timeout."""
        failure = await probe(fleet.get(args.server_id), args.timeout_s)
        return ProbeOutcome(healthy=failure is None, failure=failure)

    @tool(server, StopInput)
    async def stop_server(args: StopInput, ctx: Context) -> ServerInfo:
        """Stop the server's whole process group (SIGTERM, then SIGKILL after grace); `survivors` lists leftovers."""
        return await anyio.to_thread.run_sync(fleet.stop, args.server_id, args.grace_s)

    @tool(server, ListInput)
    async def list_servers(args: ListInput, ctx: Context) -> ServerList:
        """Every server launched by this MCP server, with its state, and the orphaned groups it reaped."""
        return ServerList(servers=await anyio.to_thread.run_sync(fleet.list), reaped=fleet.reaped)

    @tool(server, LogInput)
    async def read_log(args: LogInput, ctx: Context) -> LogTail:
        """The last lines of a server's log."""
        info = fleet.get(args.server_id).info
        first, lines = read_log_tail(Path(info.log_path))
        keep = lines[-args.lines:]
        return LogTail(server_id=info.id, log_path=info.log_path, first_line=first + len(lines) - len(keep),
                       lines=keep)

    @tool(server, MetricsInput)
    async def scrape_metrics(args: MetricsInput, ctx: Context) -> MetricsOut:
        """Prometheus /metrics of a server: the key gauges and counters, and the samples."""
        samples = await prom.scrape(fleet.get(args.server_id).info.base_url)
        return MetricsOut(key=prom.key_values(samples), samples=[s for s in samples if s.name.startswith(args.prefix)])

    @tool(server, TelemetryInput)
    async def read_telemetry(args: TelemetryInput, ctx: Context) -> telemetry.Telemetry:
        """CPU and memory (from /proc) of the host and a server's process group; GPUs where a vendor tool exists."""
        pgid = fleet.get(args.server_id).child.pgid if args.server_id else None
        return await anyio.to_thread.run_sync(telemetry.snapshot, pgid)

    @tool(server, DefaultTargetInput)
    async def default_target(args: DefaultTargetInput, ctx: Context) -> DefaultTarget:
        """Paths of the built-in CPU target (llama-server + SmolLM2); builds it first when asked."""
        if args.build:
            target = await anyio.to_thread.run_sync(provision.ensure_default_target)
            return DefaultTarget(ready=True, server_binary=str(target.server_binary),
                                 model_path=str(target.model_path), source_version=target.source_version)
        binary = provision.cached_server_binary()
        model = provision.find_model()
        return DefaultTarget(ready=binary.is_file() and model is not None,
                             server_binary=str(binary) if binary.is_file() else None,
                             model_path=str(model) if model else None, source_version=provision.source_version())

    return server


def main(argv: list[str] | None = None) -> None:
    """Entry point of `arbor-mcp-serving`."""

    def extra(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--runs-root", type=Path, default=None, help="folder that holds run folders")
        parser.add_argument("--stacks", type=Path, default=None,
                            help="TOML file of [stack.NAME] tables this server may launch (the demo is built in)")

    args = transport_args("Arbor serving-control MCP server", argv, extra)
    try:
        stacks = load_stacks(args.stacks) if args.stacks else {}
    except InputError as exc:
        raise SystemExit(f"arbor-mcp-serving: {exc}") from exc
    server = create_server(args.runs_root, stacks)
    try:
        serve(server, args)
    finally:
        server.fleet.close()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
