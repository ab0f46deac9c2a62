"""The host's view of the five MCP servers: typed calls, in-memory by default, URLs when the spec names them."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, TypeVar

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from pydantic import BaseModel

from arbor.kb.models import Outcome, Prior
from arbor.servers import bench as bench_server
from arbor.servers import kb as kb_server
from arbor.servers import kernels as kernels_server
from arbor.servers import profiler as profiler_server
from arbor.servers import serving as serving_server
from arbor.servers.bench import BenchRun, ParitySaved, SweepRun
from arbor.servers.kb import Distilled
from arbor.servers.profiler import SavedLive
from arbor.servers.serving import LaunchOutcome, ProbeOutcome, ServerList
from arbor.tools.bench.lengths import LengthReport
from arbor.tools.bench.models import BenchResult, Comparison
from arbor.tools.bench.parity import ParityReport
from arbor.tools.profiling.models import ProfileDiff
from arbor.tools.serving.launcher import ServerInfo
from arbor.tools.serving.stack import LaunchCommand, StackSpec
from arbor.tools.serving.torchprof import torch_profiling

from .errors import ServiceError, first_cause
from .mcp_calls import call_as

M = TypeVar("M", bound=BaseModel)

STACK = "campaign"


class Timer:
    """Wall time spent in the tools, by kind, to tell host overhead apart."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}

    def add(self, kind: str, seconds: float) -> None:
        self.spent[kind] = self.spent.get(kind, 0.0) + seconds

    def total(self) -> float:
        return sum(self.spent.values())


def torch_profiled(stack: StackSpec, runs_root: Path, run_name: str) -> tuple[StackSpec, dict[str, str] | None, str]:
    """For stacks whose time is on the GPU (perf would see only the Python host process): the stack started with its
    torch profiler on, profile_server's arguments for it, and how it was switched on; else (stack, None, why not)."""
    setup = torch_profiling(stack, runs_root / run_name / "traces")
    if setup is None:
        return stack, None, "perf (no torch profiler for this target)"
    try:
        folder = setup.trace_dir.relative_to(runs_root.absolute())
    except ValueError:  # the operator's folder is outside what the profiler may read: perf it is
        return stack, None, f"perf ({setup.trace_dir} is outside the runs root {runs_root})"
    return setup.stack, {"method": "torch", "trace_dir": str(folder), "api": setup.api}, f"torch via {setup.how}"


class Services:
    """MCP clients for serving, bench, profiler and kb, opened together and closed together."""

    def __init__(self, runs_root: Path, run_name: str, stack: StackSpec, kb_path: Path,
                 endpoints: dict[str, str] | None = None, say: Callable[[str], None] | None = None,
                 token: str | None = None) -> None:
        self.runs_root, self.run_name, self.kb_path = runs_root, run_name, kb_path
        self.stack, self.profile_method, self.profiled_how = torch_profiled(stack, runs_root, run_name)
        self.endpoints = endpoints or {}
        self.token = token
        self.say = say or (lambda _: None)
        self.timer = Timer()
        self._stack = AsyncExitStack()
        self._serving_server: Any = None

    async def __aenter__(self) -> Services:
        def target(name: str, make: Callable[[], Any]) -> Any:
            url = self.endpoints.get(name)
            if url is None:
                return make()
            if not self.token:
                return url
            # A remote server off loopback wants a bearer token on every request.
            http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {self.token}"}, timeout=None)
            return streamable_http_client(url, http_client=http)

        self._serving_server = None if "serving" in self.endpoints else serving_server.create_server(
            self.runs_root, {STACK: self.stack}, include_demo=False)
        makers: dict[str, Callable[[], Any]] = {
            "serving": lambda: self._serving_server,
            "bench": lambda: bench_server.create_server(self.runs_root),
            "profiler": lambda: profiler_server.create_server(self.runs_root),
            "kb": lambda: kb_server.create_server(self.kb_path, self.runs_root),
            "kernels": lambda: kernels_server.create_server(self.runs_root),
        }
        for name, make in makers.items():
            try:
                client = await self._stack.enter_async_context(Client(target(name, make)))
            except BaseException as exc:  # noqa: BLE001 - connection failures arrive wrapped in task groups
                await self.__aexit__(None, None, None)
                where = self.endpoints.get(name, "in-process")
                cause = first_cause(exc)
                raise ServiceError(f"cannot connect to the {name} MCP server ({where}): {cause}"
                                + (" (wrong or missing bearer token?)" if name in self.endpoints else "")) from exc
            setattr(self, f"{name}_client", client)
        self.say(f"profiles: {self.profiled_how}")
        return self

    def clients(self) -> dict[str, Client]:
        """The MCP clients by server name, for the agents' tool bridge."""
        return {name: getattr(self, f"{name}_client") for name in ("serving", "bench", "profiler", "kb", "kernels")}

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self._stack.aclose()
        finally:
            if self._serving_server is not None:
                self._serving_server.fleet.close()

    async def timed(self, kind: str, client: Client, tool: str, args: dict[str, Any], model: type[M]) -> M:
        """Call a tool, validate its result into `model`, and book its wall time under `kind`."""
        started = time.monotonic()
        try:
            return await call_as(client, tool, args, model)
        finally:
            self.timer.add(kind, time.monotonic() - started)

    # serving ------------------------------------------------------------
    async def launch(self, config: dict[str, Any], name: str) -> LaunchOutcome:
        """Start the stack with `config`: the server, or the classified failure."""
        return await self.timed("server", self.serving_client, "launch_server",
                                {"stack": STACK, "knobs": config, "run_dir": self.run_name, "name": name},
                                LaunchOutcome)

    async def stop(self, server_id: str) -> ServerInfo:
        """Stop a server's process group; what survived is in `survivors`."""
        return await self.timed("server", self.serving_client, "stop_server", {"server_id": server_id, "grace_s": 10},
                                ServerInfo)

    async def probe(self, server_id: str) -> ProbeOutcome:
        """Health and one token."""
        return await self.timed("server", self.serving_client, "probe_server",
                                {"server_id": server_id, "timeout_s": 60}, ProbeOutcome)

    async def servers(self) -> ServerList:
        """The servers launched, and the process groups of dead owners reaped when the serving server started."""
        return await call_as(self.serving_client, "list_servers", {}, ServerList)

    async def launch_command(self, config: dict[str, Any]) -> LaunchCommand:
        """`config` as a shell line that starts the stack by hand (credentials masked)."""
        return await call_as(self.serving_client, "launch_command", {"stack": STACK, "knobs": config}, LaunchCommand)

    # bench --------------------------------------------------------------
    async def bench(self, base_url: str, workload: dict[str, Any], label: str) -> tuple[BenchResult, str]:
        """One benchmark repeat: the result and the file it was saved to."""
        out = await self.timed("bench", self.bench_client, "run_bench", {
            "base_url": base_url, "workload": workload, "repeats": 1, "run_dir": self.run_name, "label": label},
            BenchRun)
        return out.results[0], out.paths[0]

    async def compare(self, baseline: list[str], candidate: list[str], confidence: float,
                      allow_flawed: bool = False) -> Comparison:
        """Relative change of output throughput with its interval (`allow_flawed`: nobody checked integrity)."""
        return await call_as(self.bench_client, "compare_results", {
            "baseline": baseline, "candidate": candidate, "metric": "output_throughput", "confidence": confidence,
            "allow_flawed": allow_flawed}, Comparison)

    async def check_lengths(self, baseline: list[str], candidate: str) -> LengthReport:
        """A candidate repeat's per-prompt lengths against the baseline's for the same seeded prompts."""
        return await call_as(self.bench_client, "check_lengths", {"baseline": baseline, "candidate": candidate},
                             LengthReport)

    async def sweep(self, base_url: str, workload: dict[str, Any], concurrencies: list[int], per: int,
                    minimum: int, label: str) -> SweepRun:
        """A concurrency sweep with its Pareto frontier."""
        return await self.timed("bench", self.bench_client, "run_sweep", {
            "base_url": base_url, "workload": workload, "concurrencies": concurrencies,
            "prompts_per_concurrency": per, "min_prompts": minimum, "run_dir": self.run_name, "label": label},
            SweepRun)

    async def parity_reference(self, base_url: str, model: str) -> ParitySaved:
        """Greedy reference outputs of the baseline."""
        return await self.timed("gate", self.bench_client, "parity_collect", {
            "base_url": base_url, "model": model, "run_dir": self.run_name, "name": "reference"}, ParitySaved)

    async def parity_check(self, base_url: str, model: str, reference: str, min_agreement: float) -> ParityReport:
        """The accuracy gate against the reference."""
        return await self.timed("gate", self.bench_client, "parity_check", {
            "base_url": base_url, "model": model, "reference": reference, "min_agreement": min_agreement},
            ParityReport)

    # profiler -----------------------------------------------------------
    async def profile(self, pid: int, base_url: str, workload: dict[str, Any], seconds: float,
                      name: str) -> SavedLive:
        """Where the time goes, with load on."""
        return await self.timed("profile", self.profiler_client, "profile_server", {
            "pid": pid, "base_url": base_url, "workload": workload, "seconds": seconds, "run_dir": self.run_name,
            "name": name} | (self.profile_method or {}), SavedLive)

    async def diff(self, before: str, after: str) -> ProfileDiff:
        """Category shifts between two saved profiles."""
        return await call_as(self.profiler_client, "diff_profiles", {"before": before, "after": after}, ProfileDiff)

    # kb -----------------------------------------------------------------
    async def priors(self, context: dict[str, Any], change: dict[str, Any]) -> Prior:
        """The knowledge base's prior for a change."""
        return await call_as(self.kb_client, "action_priors", {"context": context, "change": change}, Prior)

    async def record(self, outcome: dict[str, Any]) -> Outcome:
        """Record an evaluated action."""
        return await call_as(self.kb_client, "record_outcome", outcome, Outcome)

    async def distill(self, campaign: str) -> Distilled:
        """Distil the campaign into entries."""
        return await call_as(self.kb_client, "distill_campaign", {"campaign": campaign}, Distilled)
