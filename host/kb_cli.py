"""`arbor-host kb …`: inspect, search, import and export the knowledge base."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from arbor.kb import jsonl, records
from arbor.kb.errors import KBError
from arbor.kb.models import Context
from arbor.kb.retrieve import retrieve
from arbor.kb.store import open_store

app = typer.Typer(help="Inspect, search, import and export the knowledge base.", no_args_is_help=True)
KbPath = Annotated[Path | None, typer.Option("--kb", help="knowledge base file (default: ARBOR_KB or the user "
                                                          "data dir)")]


def _open(kb: Path | None):
    try:
        return open_store(kb)
    except KBError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


@app.command("list")
def list_entries(kb: KbPath = None, kind: Annotated[str | None, typer.Option(help="technique, failure_mode, "
                                                                               "parameter, campaign_summary")] = None,
                 stack: str | None = None, limit: int = 50) -> None:
    """Entries, most recently updated first."""
    if kind and kind not in ("technique", "failure_mode", "parameter", "campaign_summary"):
        _fail(f"unknown kind {kind!r}")
    for entry in records.entries(_open(kb), kind=kind, stack=stack, limit=limit):
        typer.echo(f"{entry.id[:10]}  {entry.kind:<16} {entry.stack or '-':<9} {entry.title}")


@app.command()
def show(entry_id: str, kb: KbPath = None) -> None:
    """One entry in full, as JSON."""
    try:
        entry = records.get_entry(_open(kb), entry_id)
    except KBError as exc:
        _fail(str(exc))
    typer.echo(entry.model_dump_json(indent=2))


@app.command()
def search(query: str, kb: KbPath = None, stack: str | None = None, hardware: str | None = None,
           category: str | None = None, knob: str | None = None, limit: int = 10) -> None:
    """Ranked entries for a text query (and an optional context), with why each matched."""
    context = Context(stack=stack, hardware=hardware) if stack and hardware else None
    for hit in retrieve(_open(kb), query, context, category, knob, limit):
        stale = "  [stale]" if hit.stale else ""
        typer.echo(f"{hit.score:5.2f}  {hit.entry.id[:10]}  {hit.entry.title}{stale}\n       "
                   + "; ".join(hit.reasons))


@app.command()
def stats(kb: KbPath = None) -> None:
    """Counts of outcomes and entries."""
    typer.echo(json.dumps(records.stats(_open(kb)), indent=2))


@app.command()
def export(path: Path, kb: KbPath = None) -> None:
    """Write every outcome and entry to a JSON-lines file."""
    count = jsonl.export_file(_open(kb), path)
    typer.echo(f"wrote {count} records to {path}")


@app.command("import")
def import_(path: Path, kb: KbPath = None) -> None:
    """Merge a JSON-lines export in: outcomes by id, entries by natural key; nothing is written on bad input."""
    if not path.is_file():
        _fail(f"no file {path}")
    try:
        counts = jsonl.import_file(_open(kb), path)
    except KBError as exc:
        _fail(str(exc))
    typer.echo(json.dumps(counts))
