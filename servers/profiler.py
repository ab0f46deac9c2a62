"""MCP server `arbor-profiler`: which profilers exist, live CPU profiles under load, parse and diff profiles."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import anyio
from mcp.server.mcpserver import Context, MCPServer
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from arbor.servers.common import Progress, run_with_root, tool
from arbor.tools.bench.models import Workload
from arbor.tools.errors import InputError
from arbor.tools.netpolicy import check_target
from arbor.tools.paths import contained, runs_root
from arbor.tools.profiling.available import ProfilerInfo, available
from arbor.tools.profiling.diff import diff
from arbor.tools.profiling.formats import detect_and_parse
from arbor.tools.profiling.live import LoadedProfile, ProfileApi, profile_under_load, torch_profile_under_load
from arbor.tools.profiling.models import Profile, ProfileDiff
from arbor.tools.profiling.ownership import owns_port

Strict = ConfigDict(extra="forbid")
URL = r"^https?://[A-Za-z0-9._\-\[\]:]+(:\d+)?/?$"
NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class ListInput(BaseModel):
    model_config = Strict


class LiveInput(BaseModel):
    model_config = Strict
    method: Literal["perf", "torch"] = Field("perf", description="perf: CPU symbols of the pid; torch: the engine's "
                                             "/start_profile and /stop_profile, traces read from trace_dir")
    pid: int = Field(ge=1, description="pid of the inference server (server_status of arbor-serving gives it)")
    base_url: str = Field(pattern=URL, description="the same server's URL, where the load goes")
    trace_dir: str | None = Field(None, description="torch: the server's trace folder, in the runs root (vLLM: the "
                                  "torch_profiler_dir of its --profiler-config, or VLLM_TORCH_PROFILER_DIR before "
                                  "0.13; SGLang: sent as output_dir)")
    api: ProfileApi = Field("vllm", description="torch: whose endpoints: vllm (no body; mounted only with a "
                            "profiler configured) or sglang (the body names output_dir)")
    workload: Workload
    seconds: float = Field(5.0, gt=0.5, le=600)
    run_dir: str = "."
    name: str = Field("profile", pattern=NAME)


class ParseInput(BaseModel):
    model_config = Strict
    path: str = Field(description="a profiler output file or folder inside the runs root")
    name: str | None = Field(None, pattern=NAME, description="also save the parsed profile as profiles/NAME.json")
    run_dir: str = "."


class DiffInput(BaseModel):
    model_config = Strict
    before: str = Field(description="a saved profile JSON or a profiler output inside the runs root")
    after: str


class ProfilerList(BaseModel):
    profilers: list[ProfilerInfo]


class SavedProfile(BaseModel):
    path: str | None
    profile: Profile


class SavedLive(BaseModel):
    path: str
    result: LoadedProfile


def _load(root: Path, path: str) -> Profile:
    real = contained(root, path)
    if real.suffix == ".json" and real.is_file():
        try:
            return Profile.model_validate(json.loads(real.read_text()))
        except (ValueError, ValidationError):
            pass  # not one of ours: maybe a PyTorch trace or key_averages dump
    return detect_and_parse(real)


def create_server(root: Path | None = None) -> MCPServer:
    """A profiler MCP server whose files live under `root` (default: the runs root)."""
    root = (root or runs_root()).absolute()
    server = MCPServer("arbor-profiler", instructions="Profile inference servers: where does the time go.",
                       log_level="WARNING")

    @tool(server, ListInput)
    async def list_profilers(args: ListInput, ctx: Context) -> ProfilerList:
        """Profilers known to Arbor, whether each is installed here, and its version."""
        return ProfilerList(profilers=await anyio.to_thread.run_sync(available))

    @tool(server, LiveInput)
    async def profile_server(args: LiveInput, ctx: Context) -> SavedLive:
        """Profile a running server for N seconds under the workload: perf (CPU symbols) or its torch profiler."""
        check_target(args.base_url)
        port = urlsplit(args.base_url).port or 80
        if not owns_port(args.pid, port):
            raise InputError(f"pid {args.pid} does not listen on port {port}: profiling it would not measure the "
                             "server under load")
        folder = contained(root, f"{args.run_dir}/profiles")
        await Progress(ctx)(0, args.seconds, f"recording {args.seconds:g}s under load ({args.method})")
        if args.method == "torch":
            if args.trace_dir is None:
                raise InputError("method 'torch' needs trace_dir, the server's torch profiler directory")
            traces = contained(root, args.trace_dir)
            result = await torch_profile_under_load(args.base_url, traces, args.workload, args.seconds, api=args.api)
        else:
            result = await profile_under_load(args.pid, args.base_url, args.workload, args.seconds, folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{args.name}.json"
        path.write_text(result.profile.model_dump_json(indent=2))
        return SavedLive(path=str(path), result=result)

    @tool(server, ParseInput)
    async def parse_profile(args: ParseInput, ctx: Context) -> SavedProfile:
        """Read a perf.data, rocprofv3 folder/CSV, rocprof results.stats.csv, nsys or ncu CSV, or PyTorch JSON."""
        profile = await anyio.to_thread.run_sync(_load, root, args.path)
        path = None
        if args.name:
            target = contained(root, f"{args.run_dir}/profiles/{args.name}.json")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(profile.model_dump_json(indent=2))
            path = str(target)
        return SavedProfile(path=path, profile=profile)

    @tool(server, DiffInput)
    async def diff_profiles(args: DiffInput, ctx: Context) -> ProfileDiff:
        """Which categories gained or lost share between two profiles, and whether the bottleneck moved."""
        before = await anyio.to_thread.run_sync(_load, root, args.before)
        after = await anyio.to_thread.run_sync(_load, root, args.after)
        return diff(before, after)

    return server


def main(argv: list[str] | None = None) -> None:
    """Entry point of `arbor-mcp-profiler`."""
    run_with_root(create_server, "Arbor profiler MCP server", argv)


if __name__ == "__main__":
    main()
