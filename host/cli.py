"""`arbor-host`: the command line. A thin layer: parse, call the host, print, exit."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from arbor.kb.db import default_path as default_kb_path
from arbor.tools.errors import ArborError
from arbor.tools.paths import runs_root
from arbor.tools.procs import reap_orphans
from arbor.tools.provision import ensure_default_target

from .baseline import BaselinePlan, run_baseline
from .errors import HostError
from .kb_cli import app as kb_app

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


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _parse_ints(text: str, what: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        _fail(f"{what} must be comma-separated integers, got {text!r}", 2)
    if not values:
        _fail(f"{what} is empty", 2)
    return values


@app.command()
def setup() -> None:
    """Build or find the demo target: llama-server (cached per source version) and the SmolLM2 model."""
    try:
        target = ensure_default_target(_say)
    except ArborError as exc:
        _fail(str(exc))
    typer.echo(f"llama-server: {target.server_binary}")
    typer.echo(f"model:        {target.model_path}")


@app.command()
def run(
    campaign: Annotated[Path | None, typer.Argument(help="campaign TOML; none = the built-in demo")] = None,
    runs_dir: Annotated[Path | None, typer.Option(help="where run folders go (default ./runs)")] = None,
    concurrencies: Annotated[str, typer.Option(help="sweep concurrencies, comma-separated")] = "1,4,16,32",
    input_len: Annotated[int, typer.Option(help="prompt tokens per request")] = 128,
    output_len: Annotated[int, typer.Option(help="generated tokens per request")] = 64,
    min_prompts: Annotated[int, typer.Option(help="fewest requests at any sweep point")] = 8,
) -> None:
    """Run the built-in demo: the llama-server + SmolLM2 baseline on this CPU."""
    if campaign is not None:
        _fail("campaign files are not supported yet; run without arguments for the built-in demo", 2)
    try:
        plan = BaselinePlan(concurrencies=_parse_ints(concurrencies, "--concurrencies"), input_len=input_len,
                            output_len=output_len, min_prompts=min_prompts)
    except ValidationError as exc:
        _fail("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()), 2)
    # SIGTERM (a CI timeout, `kill`) takes the same path as Ctrl-C, so the server is stopped on the way out.
    signal.signal(signal.SIGTERM, _interrupt)
    reaped = reap_orphans()
    if reaped:
        _say(f"stopped {len(reaped)} process group(s) left by an earlier run")
    root = (runs_dir or runs_root()).absolute()
    run_dir = root / time.strftime("%Y%m%d-%H%M%S-baseline")
    try:
        target = ensure_default_target(_say)
        summary = asyncio.run(run_baseline(target, run_dir, plan, _say))
    except (ArborError, HostError) as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        _fail("interrupted; the server was stopped", 130)
    typer.echo(summary["table"])
    typer.echo(f"\nrun folder: {run_dir}")


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
