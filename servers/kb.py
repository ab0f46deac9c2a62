"""MCP server `arbor-kb`: query, list and show entries, action priors, record outcomes, distill, export, import."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from pydantic import BaseModel, ConfigDict, Field

from arbor.kb import jsonl, records
from arbor.kb.db import default_path
from arbor.kb.distill import distill
from arbor.kb.errors import KBError, KBInputError
from arbor.kb.models import NAME, Change, Entry, EntryKind, Hit, Outcome, OutcomeIn, Prior
from arbor.kb.models import Context as KBContext
from arbor.kb.priors import priors
from arbor.kb.retrieve import retrieve
from arbor.kb.staleness import retest_candidates
from arbor.kb.store import open_store
from arbor.servers.common import serve, tool, transport_args
from arbor.tools.paths import contained, runs_root

Strict = ConfigDict(extra="forbid")


class QueryInput(BaseModel):
    model_config = Strict
    query: str | None = Field(None, max_length=2000, description="free text (BM25)")
    context: KBContext | None = None
    category: str | None = Field(None, max_length=40)
    knob: str | None = Field(None, max_length=100)
    limit: int = Field(10, ge=1, le=200)


class PriorsInput(BaseModel):
    model_config = Strict
    context: KBContext
    change: Change


class DistillInput(BaseModel):
    model_config = Strict
    campaign: str = Field(min_length=1, max_length=128)


class ExportInput(BaseModel):
    model_config = Strict
    path: str = Field(description="JSON-lines file to write, inside the runs root")


class ImportInput(BaseModel):
    model_config = Strict
    path: str = Field(description="JSON-lines file (as written by export) to merge in, inside the runs root")


class ListInput(BaseModel):
    model_config = Strict
    kind: EntryKind | None = Field(None, description="only entries of this kind")
    stack: str | None = Field(None, pattern=NAME, description="only entries about this stack (llamacpp, vllm, ...)")
    limit: int = Field(100, ge=1, le=1000, description="at most this many entries")


class EntryInput(BaseModel):
    model_config = Strict
    id: str = Field(min_length=1, max_length=100, description="entry id, or a unique prefix of at least 6 characters")


class StatsInput(BaseModel):
    model_config = Strict


class RetestInput(BaseModel):
    model_config = Strict
    context: KBContext


class Retest(BaseModel):
    entry_id: str
    title: str
    reason: str


class RetestList(BaseModel):
    entries: list[Retest]


class Hits(BaseModel):
    hits: list[Hit]


class Distilled(BaseModel):
    entries: list[Entry]


class Exported(BaseModel):
    path: str
    records: int


class Imported(BaseModel):
    outcomes: int = Field(description="outcomes added")
    entries_added: int = Field(description="entries new to this knowledge base")
    entries_merged: int = Field(description="entries merged into one with the same natural key")
    outcomes_skipped: int = Field(description="outcomes already present (same id)")


class Entries(BaseModel):
    entries: list[Entry]


class Stats(BaseModel):
    stats: dict[str, Any]


def create_server(kb_path: Path | None = None, root: Path | None = None) -> MCPServer:
    """A knowledge-base MCP server over the file at `kb_path`; exports and imports stay under `root`."""
    db = open_store(kb_path)
    root = (root or runs_root()).absolute()
    lock = anyio.Lock()  # one connection: serialise its use across concurrent tool calls
    server = MCPServer("arbor-kb", instructions="Arbor's knowledge base: what worked and failed before.",
                       log_level="WARNING")

    async def run(fn: Any, *args: Any) -> Any:
        async with lock:
            return await anyio.to_thread.run_sync(fn, *args)

    @tool(server, QueryInput)
    async def query(args: QueryInput, ctx: Context) -> Hits:
        """Entries ranked by text relevance and context similarity, each with the reasons it matched."""
        return Hits(hits=await run(lambda: retrieve(db, args.query, args.context, args.category, args.knob,
                                                    args.limit)))

    @tool(server, PriorsInput)
    async def action_priors(args: PriorsInput, ctx: Context) -> Prior:
        """Speedup prior, p_crash, p_regress and entry multiplier for a change, with the back-off level used."""
        return await run(priors, db, args.context, args.change)

    @tool(server, OutcomeIn, name="record_outcome")
    async def record(args: OutcomeIn, ctx: Context) -> Outcome:
        """Store one evaluated action (kept, reverted, crashed or invalid) with its gain and diagnosis."""
        return await run(records.record_outcome, db, args)

    @tool(server, DistillInput)
    async def distill_campaign(args: DistillInput, ctx: Context) -> Distilled:
        """Turn a campaign's outcomes into techniques, failure modes, parameter findings and a summary."""
        return Distilled(entries=await run(distill, db, args.campaign))

    @tool(server, ExportInput)
    async def export(args: ExportInput, ctx: Context) -> Exported:
        """Write every outcome and entry as JSON lines."""
        path = contained(root, args.path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return Exported(path=str(path), records=await run(jsonl.export_file, db, path))
        except OSError as exc:
            raise KBError(f"cannot write {path}: {exc.strerror or exc}") from exc

    @tool(server, ImportInput)
    async def import_records(args: ImportInput, ctx: Context) -> Imported:
        """Merge an export in (outcomes by id, entries by natural key); a bad line anywhere writes nothing."""
        path = contained(root, args.path)
        if not path.is_file():
            raise KBInputError(f"no file {path}")
        try:
            return Imported.model_validate(await run(jsonl.import_file, db, path))
        except OSError as exc:
            raise KBError(f"cannot read {path}: {exc.strerror or exc}") from exc

    @tool(server, ListInput)
    async def list_entries(args: ListInput, ctx: Context) -> Entries:
        """Entries, most recently updated first, optionally of one kind or stack."""
        return Entries(entries=await run(lambda: records.entries(db, args.kind, args.stack, args.limit)))

    @tool(server, EntryInput)
    async def get_entry(args: EntryInput, ctx: Context) -> Entry:
        """One entry in full, by id or unique id prefix."""
        return await run(records.get_entry, db, args.id)

    @tool(server, RetestInput)
    async def stale_entries(args: RetestInput, ctx: Context) -> RetestList:
        """Entries for this stack and hardware learned on another framework or driver version: re-test them."""
        found = await run(retest_candidates, db, args.context)
        return RetestList(entries=[Retest(entry_id=i, title=t, reason=r) for i, t, r in found])

    @tool(server, StatsInput)
    async def kb_stats(args: StatsInput, ctx: Context) -> Stats:
        """Counts of outcomes by result and entries by kind."""
        return Stats(stats=await run(records.stats, db))

    return server


def main(argv: list[str] | None = None) -> None:
    """Entry point of `arbor-mcp-kb`."""

    def extra(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--kb", type=Path, default=None, help=f"knowledge base file (default {default_path()})")
        parser.add_argument("--runs-root", type=Path, default=None, help="where exports and imports may be")

    args = transport_args("Arbor knowledge-base MCP server", argv, extra)
    serve(create_server(args.kb, args.runs_root), args)


if __name__ == "__main__":
    main()
