"""`arbor-host kb …`: inspect, search, import and export the knowledge base, through the kb MCP server in-process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, NoReturn, get_args

import anyio
import typer
from mcp import Client

from arbor.kb.models import Entry, EntryKind, Hit
from arbor.servers.kb import Exported, Imported, create_server

from .errors import HostError, first_cause
from .mcp_calls import call

app = typer.Typer(help="Inspect, search, import and export the knowledge base.", no_args_is_help=True)
KbPath = Annotated[Path | None, typer.Option("--kb", help="knowledge base file (default: ARBOR_KB or the user "
                                                          "data dir)")]


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def _call(kb: Path | None, tool: str, args: dict[str, Any], root: Path | None = None) -> dict[str, Any]:
    """One tool call on a kb server run in-process over `kb`; any failure ends the command with `error: …`."""
    try:
        server = create_server(kb, root)
    except Exception as exc:  # noqa: BLE001 - building it opens the store; its errors are the kb's, not ours to name
        _fail(str(exc))

    async def work() -> dict[str, Any]:
        async with Client(server) as client:
            return await call(client, tool, {k: v for k, v in args.items() if v is not None})

    try:
        return anyio.run(work)
    except Exception as exc:  # noqa: BLE001 - the client's task group wraps what failed
        cause = first_cause(exc)
        if not isinstance(cause, HostError):
            raise
        _fail(str(cause).removeprefix(f"{tool}: ").removeprefix(f"Error executing tool {tool}: "))


def _file(path: Path) -> tuple[Path, str]:
    """(root, name) for a kb server that may touch exactly the file the user named.

    The kb server confines file paths to its root, because its MCP clients (agents) must not pick arbitrary
    files. Here the user names the file on their own command line, so the in-process server is rooted at that
    file's folder and given its name: every path still works, and the server keeps its one rule. The path is
    resolved first, so a symlinked file or folder is followed to where it really is, as a plain open() would.
    """
    target = path.expanduser().resolve()
    return target.parent, target.name


@app.command("list")
def list_entries(kb: KbPath = None, kind: Annotated[str | None, typer.Option(help="technique, failure_mode, "
                                                                               "parameter, campaign_summary")] = None,
                 stack: str | None = None, limit: int = 50) -> None:
    """Entries, most recently updated first."""
    if kind and kind not in get_args(EntryKind):
        _fail(f"unknown kind {kind!r}")
    found = _call(kb, "list_entries", {"kind": kind, "stack": stack, "limit": limit})
    for entry in (Entry.model_validate(e) for e in found["entries"]):
        typer.echo(f"{entry.id[:10]}  {entry.kind:<16} {entry.stack or '-':<9} {entry.title}")


@app.command()
def show(entry_id: str, kb: KbPath = None) -> None:
    """One entry in full, as JSON."""
    entry = Entry.model_validate(_call(kb, "get_entry", {"id": entry_id}))
    typer.echo(entry.model_dump_json(indent=2))


@app.command()
def search(query: str, kb: KbPath = None, stack: str | None = None, hardware: str | None = None,
           category: str | None = None, knob: str | None = None, limit: int = 10) -> None:
    """Ranked entries for a text query (and an optional context), with why each matched."""
    context = {"stack": stack, "hardware": hardware} if stack and hardware else None
    found = _call(kb, "query", {"query": query, "context": context, "category": category, "knob": knob,
                                "limit": limit})
    for hit in (Hit.model_validate(h) for h in found["hits"]):
        stale = "  [stale]" if hit.stale else ""
        typer.echo(f"{hit.score:5.2f}  {hit.entry.id[:10]}  {hit.entry.title}{stale}\n       "
                   + "; ".join(hit.reasons))


@app.command()
def stats(kb: KbPath = None) -> None:
    """Counts of outcomes and entries."""
    typer.echo(json.dumps(_call(kb, "kb_stats", {})["stats"], indent=2))


@app.command()
def export(path: Path, kb: KbPath = None) -> None:
    """Write every outcome and entry to a JSON-lines file."""
    root, name = _file(path)
    exported = Exported.model_validate(_call(kb, "export", {"path": name}, root))
    typer.echo(f"wrote {exported.records} records to {path}")


@app.command("import")
def import_(path: Path, kb: KbPath = None) -> None:
    """Merge a JSON-lines export in: outcomes by id, entries by natural key; nothing is written on bad input."""
    if not path.is_file():
        _fail(f"no file {path}")
    root, name = _file(path)
    counts = Imported.model_validate(_call(kb, "import_records", {"path": name}, root))
    typer.echo(json.dumps(counts.model_dump()))
