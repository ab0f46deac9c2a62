"""Reading a campaign store: every query of the tree, the measurements, the logs and the LLM ledger.

A reader opened with `StoreReader.open()` is read-only: the TUI attaches to a running campaign
with one and can never hold the writer up or change what it reads.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arbor.tools.migrations import MigrationError, connect, load

from ..errors import StoreError
from ..models import EVALUATED, Alert, Command, Constraint, Event, Measurement, Node
from .meta import MetaName, adapter, default

STORE = "campaign.sqlite"
NODE_JSON = ("change", "config", "score_terms", "priors", "measurement_ids")
EVIDENCE_TABLES = {"node": ("nodes", "id"), "measurement": ("measurements", "id"), "event": ("events", "seq"),
                   "alert": ("alerts", "id")}
ENDED = "('" + "', '".join(EVALUATED) + "')"


@dataclass
class NodeRow:
    """A node as a tree view shows it: a light projection (the detail panel reads the whole node)."""

    id: int
    parent: int | None
    status: str
    title: str
    category: str
    kind: str
    change: dict[str, Any]
    rationale: str
    diagnosis: str | None
    score: float | None
    gain: float | None
    gain_low: float | None
    gain_high: float | None
    pinned: bool
    rev: int
    branch: bool = False  # a move from a configuration other than the best when it was queued


def migrated(run_dir: Path) -> sqlite3.Connection:
    """A read-write connection to the store in `run_dir`, brought to the current schema."""
    try:
        return connect(Path(run_dir) / STORE, load("arbor.host"), "campaign store")
    except MigrationError as exc:
        raise StoreError(str(exc)) from exc


class StoreReader:
    """Read access to one run's store."""

    def __init__(self, run_dir: Path, conn: sqlite3.Connection) -> None:
        self.run_dir = Path(run_dir)
        self.artifacts = self.run_dir / "artifacts"
        self.conn = conn
        self.conn.row_factory = sqlite3.Row
        self._nodes: tuple[tuple[int, int], dict[str | None, list[Node]]] = ((-1, -1), {})

    @classmethod
    def open(cls, run_dir: Path) -> StoreReader:
        """A read-only reader (the schema brought up to date first, so an older run reads like a new one)."""
        if not cls.exists(run_dir):
            raise StoreError(f"{run_dir} holds no campaign (no {STORE})")
        migrated(run_dir).close()
        uri = (Path(run_dir) / STORE).absolute().as_uri() + "?mode=ro"
        return cls(run_dir, sqlite3.connect(uri, uri=True, timeout=30.0, check_same_thread=False))

    @staticmethod
    def exists(run_dir: Path) -> bool:
        """Whether a campaign store is in `run_dir`."""
        return (Path(run_dir) / STORE).is_file()

    def close(self) -> None:
        """Close the database."""
        self.conn.close()

    # the run ----------------------------------------------------------------
    def meta(self, name: MetaName) -> Any:
        """One field of the run's `RunMeta`, validated (its default when never set)."""
        row = self.conn.execute("SELECT value FROM meta WHERE name = ?", [name]).fetchone()
        return adapter(name).validate_python(json.loads(row[0])) if row else default(name)

    # nodes ----------------------------------------------------------------------
    def node(self, node_id: int) -> Node:
        """One node."""
        row = self.conn.execute("SELECT * FROM nodes WHERE id = ?", [node_id]).fetchone()
        if row is None:
            raise StoreError(f"no node {node_id}")
        return _node(row)

    def nodes(self, status: str | None = None) -> list[Node]:
        """Nodes in id order, optionally of one status (read once per change of the store: scoring a step asks
        hundreds of times)."""
        version = (self.conn.total_changes, self.conn.execute("PRAGMA data_version").fetchone()[0])
        if self._nodes[0] != version:
            self._nodes = (version, {})
        cached = self._nodes[1].get(status)
        if cached is None:
            if status:
                rows = self.conn.execute("SELECT * FROM nodes WHERE status = ? ORDER BY id", [status])
            else:
                rows = self.conn.execute("SELECT * FROM nodes ORDER BY id")
            cached = self._nodes[1][status] = [_node(r) for r in rows]
        return list(cached)

    def rows_since(self, rev: int) -> list[NodeRow]:
        """Nodes changed since revision `rev`, as light rows in revision order."""
        rows = self.conn.execute("SELECT id, parent, status, title, category, kind, change, rationale, diagnosis, "
                                 "score, gain, gain_low, gain_high, pinned, rev, "
                                 "COALESCE(json_extract(priors, '$.branch'), 0) FROM nodes WHERE rev > ? ORDER BY rev",
                                 [rev])
        return [NodeRow(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]), r[7], r[8], r[9], r[10], r[11], r[12],
                        bool(r[13]), r[14], bool(r[15])) for r in rows]

    def actions_count(self) -> int:
        """Evaluations that ended (the baseline is not an action)."""
        return int(self.conn.execute(f"SELECT COUNT(*) FROM nodes WHERE kind != 'baseline' AND status IN {ENDED}")
                   .fetchone()[0])

    # measurements -----------------------------------------------------------------
    def measurements(self, node: int, kind: str | None = None, valid_only: bool = True) -> list[Measurement]:
        """A node's measurements, oldest first."""
        sql = "SELECT * FROM measurements WHERE node = ?" + (" AND kind = ?" if kind else "")
        sql += " AND valid = 1" if valid_only else ""
        rows = self.conn.execute(sql + " ORDER BY id", [node, kind] if kind else [node])
        return [Measurement(id=r["id"], node=r["node"], kind=r["kind"], metrics=json.loads(r["metrics"]),
                            fingerprint=json.loads(r["fingerprint"]) if r["fingerprint"] else None, path=r["path"],
                            valid=bool(r["valid"]), created_at=r["created_at"]) for r in rows]

    def reference(self, node: int, window: int | None = None) -> list[Measurement]:
        """What a node's throughput is judged by: its fresh repeats taken after a keep and each time it was restored
        (the baseline's own repeats first while it has fewer than two), the last `window` of them."""
        rows = self.measurements(node, "reference")
        if len(rows) < 2:
            rows = self.measurements(node, "primary") + rows
        return rows[-window:] if window else rows

    def throughput_history(self) -> list[float]:
        """Best output throughput after each evaluation, in evaluation order."""
        rows = self.conn.execute(
            "SELECT n.id, n.status, n.kind, AVG(json_extract(m.metrics, '$.output_throughput')) FROM nodes n "
            "JOIN measurements m ON m.node = n.id AND m.kind = 'primary' AND m.valid = 1 "
            f"WHERE n.status IN {ENDED} GROUP BY n.id ORDER BY n.finished_at")
        best, out = 0.0, []
        for _, status, kind, mean in rows:
            if status == "kept" or kind == "baseline":
                best = max(best, mean or 0.0)
            out.append(best)
        return out

    # constraints, alerts, events, commands ------------------------------------------------
    def constraints(self, now: float | None = None) -> list[Constraint]:
        """Constraints in force."""
        rows = self.conn.execute("SELECT * FROM constraints WHERE expires_at IS NULL OR expires_at > ? ORDER BY id",
                                 [time.time() if now is None else now])
        return [Constraint(id=r["id"], knob=r["knob"], op=r["op"], value=json.loads(r["value"]),
                           requires=json.loads(r["requires"]), context=json.loads(r["context"]), reason=r["reason"],
                           evidence=json.loads(r["evidence"]), node=r["node"], created_at=r["created_at"],
                           expires_at=r["expires_at"]) for r in rows]

    def alerts(self) -> list[Alert]:
        """Every alert, oldest first."""
        return [Alert(id=r["id"], severity=r["severity"], kind=r["kind"], message=r["message"],
                      evidence=json.loads(r["evidence"]), node=r["node"], needs_human=bool(r["needs_human"]),
                      created_at=r["created_at"], acked_at=r["acked_at"], answer=r["answer"])
                for r in self.conn.execute("SELECT * FROM alerts ORDER BY id")]

    def alerts_signature(self) -> tuple[Any, ...]:
        """Changes whenever an alert is raised or acknowledged (cheap to poll)."""
        return tuple(self.conn.execute("SELECT COUNT(*), MAX(id), SUM(acked_at IS NOT NULL) FROM alerts").fetchone())

    def events(self, after: int = 0, limit: int = 10_000, node: int | None = None) -> list[Event]:
        """Events after sequence number `after` (only those of `node` when given)."""
        if node is None:
            rows = self.conn.execute("SELECT * FROM events WHERE seq > ? ORDER BY seq LIMIT ?", [after, limit])
        else:
            rows = self.conn.execute("SELECT * FROM events WHERE seq > ? AND node = ? ORDER BY seq LIMIT ?",
                                     [after, node, limit])
        return [Event(seq=r["seq"], ts=r["ts"], kind=r["kind"], node=r["node"], data=json.loads(r["data"]))
                for r in rows]

    def commands(self, pending: bool = False, limit: int = 1000) -> list[Command]:
        """Steering commands: not applied yet, oldest first; or the latest, newest first."""
        sql = ("SELECT * FROM commands WHERE applied_at IS NULL ORDER BY id LIMIT ?" if pending else
               "SELECT * FROM commands ORDER BY id DESC LIMIT ?")
        return [Command(id=r["id"], ts=r["ts"], kind=r["kind"], payload=json.loads(r["payload"]),
                        applied_at=r["applied_at"], result=r["result"]) for r in self.conn.execute(sql, [limit])]

    def command(self, command_id: int) -> Command:
        """One steering command, with the engine's answer once it has one."""
        row = self.conn.execute("SELECT * FROM commands WHERE id = ?", [command_id]).fetchone()
        if row is None:
            raise StoreError(f"no command {command_id}")
        return Command(id=row["id"], ts=row["ts"], kind=row["kind"], payload=json.loads(row["payload"]),
                       applied_at=row["applied_at"], result=row["result"])

    def cited(self, kind: str, number: int) -> bool:
        """Whether the evidence id `kind:number` (node, measurement, event, alert) exists."""
        table, column = EVIDENCE_TABLES[kind]
        return self.conn.execute(f"SELECT 1 FROM {table} WHERE {column} = ?", [number]).fetchone() is not None

    # the LLM ledger -----------------------------------------------------------------
    def llm_spent(self) -> float:
        """USD spent on LLM calls so far."""
        return float(self.conn.execute("SELECT COALESCE(SUM(cost_usd), 0) FROM llm_calls").fetchone()[0])

    def llm_totals(self) -> dict[str, dict[str, float]]:
        """Tokens and cost per role."""
        rows = self.conn.execute(
            "SELECT role, SUM(input_tokens), SUM(output_tokens), SUM(cache_read_tokens), SUM(cache_write_tokens), "
            "SUM(cost_usd), COUNT(*) FROM llm_calls GROUP BY role").fetchall()
        return {r[0]: {"input_tokens": r[1], "output_tokens": r[2], "cache_read_tokens": r[3],
                       "cache_write_tokens": r[4], "cost_usd": r[5], "calls": r[6]} for r in rows}

    def llm_calls(self, node: int) -> list[dict[str, Any]]:
        """The LLM calls made about one node, with their transcripts."""
        rows = self.conn.execute("SELECT * FROM llm_calls WHERE node = ? ORDER BY id", [node])
        return [dict(r) | {"transcript": json.loads(r["transcript"] or "{}")} for r in rows]


def _node(row: sqlite3.Row) -> Node:
    data = dict(row)
    for key in NODE_JSON:
        data[key] = json.loads(data[key])
    data["pinned"] = bool(data["pinned"])
    return Node.model_validate(data)
