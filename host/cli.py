"""`arbor-host`: the command line. A thin layer: parse, call the host, print, exit."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import sys
from collections.abc import Awaitable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from pydantic import ValidationError

from arbor.kb.db import default_path as default_kb_path
from arbor.tools.paths import runs_root

from .campaign import new_run, report_only, run_campaign
from .errors import HostError, SpecError, first_cause
from .kb_cli import app as kb_app
from .models import Ablation
from .spec import load_spec
from .store import StoreReader
from .target import build_default

T = TypeVar("T")
app = typer.Typer(help="Arbor: autonomous performance optimization of LLM inference serving.",
                  no_args_is_help=True, add_completion=False)

app.add_typer(kb_app, name="kb")

SERVERS = {"serving": "arbor-mcp-serving", "bench": "arbor-mcp-bench", "profiler": "arbor-mcp-profiler",
           "kernels": "arbor-mcp-kernels", "kb": "arbor-mcp-kb"}


def _say(message: str) -> None:
    typer.echo(message, err=True)


def _fail(message: str, code: int = 1) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@app.command()
def setup() -> None:
    """Build or find the demo target: llama-server (cached per source version) and the SmolLM2 model."""
    try:
        target = build_default(_say)
    except HostError as exc:
        _fail(str(exc))
    typer.echo(f"llama-server: {target.server_binary}")
    typer.echo(f"model:        {target.model_path}")


def _summary(report: dict) -> None:
    s, p, g = report["summary"], report["primary"], report.get("overall_gain") or {}
    typer.echo(f"\n{s['actions']} actions: {s['kept']} kept, {s['reverted']} reverted, {s['crashed']} crashed, "
               f"{s['invalid']} invalid")
    for label in ("baseline", "best"):
        if label in p and p[label]["output_throughput"] is not None:
            row = p[label]
            typer.echo(f"{label:>8}: {row['output_throughput']:.1f} tok/s, TTFT p50 {row['median_ttft_ms']:.0f} ms "
                       f"(node {row['node']}: {row['config'] or 'defaults'})")
    if "rel_change" in g:
        typer.echo(f"    gain: {g['rel_change']:+.1%} (95% interval {g['ci_low']:+.1%} to {g['ci_high']:+.1%})"
                   if g.get("ci_low") is not None else f"    gain: {g['rel_change']:+.1%}")
    if report.get("launch_command"):
        typer.echo(f"  launch: {report['launch_command']}")


async def cancellable(work: Awaitable[T]) -> T:
    """`work` in a task that SIGTERM cancels like Ctrl-C does.

    A signal handler that raises inside the event loop leaves the task to be torn down by
    asyncio's own shutdown, where exit stacks can spin forever on cyclic exception contexts;
    cancelling the task unwinds every `async with` in order instead (servers stopped on the way).
    """
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await work


def interrupted(exc: BaseException) -> bool:
    """`exc` is (or wraps) a Ctrl-C or a cancellation."""
    return isinstance(first_cause(exc), (KeyboardInterrupt, asyncio.CancelledError))


def _run_session(run_dir: Path) -> None:
    # SIGTERM (a CI timeout, `kill`) takes the same path as Ctrl-C, so the server is stopped on the way out.
    try:
        report = asyncio.run(cancellable(run_campaign(run_dir, _say)))
    except BaseException as exc:  # noqa: BLE001 - MCP task groups wrap our errors in exception groups
        if interrupted(exc):
            _fail(f"interrupted; the server was stopped. Continue with: arbor-host resume {run_dir}", 130)
        cause = first_cause(exc)
        if not isinstance(cause, HostError):
            raise
        _fail(f"{cause}. The run folder keeps everything: arbor-host resume {run_dir}")
    _summary(report)
    typer.echo(f"report: {run_dir / 'report.md'}")


@app.command()
def run(
    campaign: Annotated[Path | None, typer.Argument(help="campaign TOML; none = the built-in CPU demo")] = None,
    runs_dir: Annotated[Path | None, typer.Option(help="where run folders go (default ./runs)")] = None,
    kb: Annotated[Path | None, typer.Option("--kb", help="knowledge base file (default: user data dir)")] = None,
    fresh_kb: Annotated[bool, typer.Option("--fresh-kb", help="an isolated knowledge base inside the run")] = False,
    budget_s: Annotated[float | None, typer.Option(help="override the wall-clock budget, seconds")] = None,
    max_actions: Annotated[int | None, typer.Option(help="override the action budget")] = None,
    agent: Annotated[str | None, typer.Option(help="override agent.backend: offline, anthropic or openai")] = None,
    agent_url: Annotated[str | None, typer.Option(help="override agent.base_url (openai: the server)")] = None,
    llm_usd: Annotated[float | None, typer.Option(help="override budget.llm_usd, the LLM spend cap")] = None,
    no_critic: Annotated[bool, typer.Option("--no-critic", help="ablation: no Critic (LLM or rule-based)")] = False,
    no_specialists: Annotated[bool, typer.Option("--no-specialists",
                                                 help="ablation: the Orchestrator implements directly")] = False,
    single_agent: Annotated[bool, typer.Option("--single-agent", help="ablation: one propose-implement-test "
                                               "loop, keep if better, no tree, no Critic")] = False,
) -> None:
    """Run a campaign end to end: baseline, search, gates, report."""
    try:
        spec = load_spec(campaign)
        data = spec.model_dump(mode="json")
        for section, key, value in (("budget", "wall_clock_s", budget_s), ("budget", "max_actions", max_actions),
                                    ("budget", "llm_usd", llm_usd), ("agent", "backend", agent),
                                    ("agent", "base_url", agent_url)):
            if value is not None:
                data[section][key] = value
        spec = type(spec).model_validate(data)  # every validator runs again on the overridden spec
    except SpecError as exc:
        _fail(str(exc).splitlines()[0], 2)
    except ValidationError as exc:
        _fail("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()), 2)
    root = (runs_dir or runs_root()).absolute()
    try:
        ablation = Ablation(critic=not no_critic, specialists=not no_specialists, single_agent=single_agent)
        run_dir = new_run(spec, root, kb, fresh_kb, _say, ablation)
    except HostError as exc:
        _fail(str(exc))
    _say(f"run folder: {run_dir}")
    _run_session(run_dir)


@app.command()
def resume(run_dir: Annotated[Path, typer.Argument(help="the run folder of an interrupted campaign")]) -> None:
    """Continue a campaign after a crash, a kill or a reboot, from its store (what it left running is stopped)."""
    _run_session(run_dir.absolute())


@app.command()
def report(run_dir: Annotated[Path, typer.Argument(help="a run folder")]) -> None:
    """Write report.md, report.json and pareto.svg for a run (finished or not)."""
    try:
        data = report_only(run_dir.absolute())
    except HostError as exc:
        _fail(str(exc))
    _summary(data)
    typer.echo(f"report: {run_dir / 'report.md'}")


@app.command()
def tui(run_dir: Annotated[Path | None, typer.Argument(help="a run folder; none = pick from recent runs")] = None,
        runs_dir: Annotated[Path | None, typer.Option(help="where to look for runs (default ./runs)")] = None,
        poll_s: Annotated[float, typer.Option(min=0.1, max=60, help="seconds between looks at the store")] = 1.0,
        ) -> None:
    """Watch and steer a campaign (running in another process, or finished)."""
    from arbor.tui.app import ArborApp

    if run_dir is not None and not StoreReader.exists(run_dir):
        _fail(f"{run_dir} holds no campaign (no campaign.sqlite)", 2)
    ArborApp(run_dir.absolute() if run_dir else None, (runs_dir or runs_root()).absolute(), poll_s).run()


@app.command("mcp-config")
def mcp_config() -> None:
    """Print the claude_desktop_config.json block for Arbor's MCP servers."""
    servers = {}
    for name, script in SERVERS.items():
        path = shutil.which(script) or str(Path(sys.executable).with_name(script))
        # Claude Desktop starts servers from an arbitrary folder: give them this runs root explicitly.
        if name == "kb":
            args = ["--kb", str(default_kb_path())]
        else:
            args = ["--tasks-root" if name == "kernels" else "--runs-root", str(runs_root())]
        servers[f"arbor-{name}"] = {"command": str(Path(path).absolute()), "args": args}
    typer.echo(json.dumps({"mcpServers": servers}, indent=2))


def main() -> None:
    """Console-script entry point."""
    app()
