"""The campaign store: one SQLite file per run (WAL, numbered migrations) beside an artifacts folder.

`CampaignStore` is the one writer; everything it can read comes from `StoreReader`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import StoreError
from ..models import Node
from .meta import MetaName, adapter
from .reader import NODE_JSON, STORE, StoreReader, migrated


def _dump(value: Any, ordered: bool = False) -> str:
    return json.dumps(value, sort_keys=not ordered, default=str)


def _dump_field(name: str, value: Any) -> str:
    # A change keeps its order: its first knob leads (the action's title, layer and KB record are its).
    return _dump(value, ordered=name == "change")


class CampaignStore(StoreReader):
    """Everything needed to resume a campaign or explain a decision."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__(run_dir, migrated(run_dir))
        self._lock = threading.RLock()

    @contextmanager
    def tx(self) -> Iterator[Any]:
        """One write transaction; nested calls join the outer one."""
        with self._lock:
            if self.conn.in_transaction:
                yield self.conn
                return
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def _event(self, c: Any, kind: str, node: int | None, data: dict[str, Any]) -> None:
        c.execute("INSERT INTO events (ts, kind, node, data) VALUES (?, ?, ?, ?)", [time.time(), kind, node,
                                                                                   _dump(data)])

    # the run ----------------------------------------------------------------------
    def set_meta(self, name: MetaName, value: Any) -> None:
        """Set one field of the run's `RunMeta` (validated against it: a wrong name or type changes nothing)."""
        try:
            checked = adapter(name).validate_python(value)
        except KeyError as exc:
            raise StoreError(f"the run has no field {name!r}") from exc
        stored = adapter(name).dump_python(checked, mode="json")
        with self.tx() as c:
            c.execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", [name, _dump(stored)])

    # events -----------------------------------------------------------------------
    def event(self, kind: str, node: int | None = None, **data: Any) -> None:
        """Append to the event log."""
        with self.tx() as c:
            self._event(c, kind, node, data)

    # nodes ------------------------------------------------------------------------
    def add_node(self, **fields: Any) -> Node:
        """Insert a node; JSON fields are serialised here."""
        row = {k: (_dump_field(k, v) if k in NODE_JSON else v) for k, v in fields.items()}
        row.setdefault("created_at", time.time())
        with self.tx() as c:
            cur = c.execute(f"INSERT INTO nodes ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                            list(row.values()))
            node_id = int(cur.lastrowid)
            self._event(c, "node_added", node_id, {"status": fields.get("status"), "title": fields.get("title")})
        return self.node(node_id)

    def update_node(self, node_id: int, **fields: Any) -> Node:
        """Change fields of a node (and log a status change as an event)."""
        row = {k: (_dump_field(k, v) if k in NODE_JSON else v) for k, v in fields.items()}
        with self.tx() as c:
            c.execute(f"UPDATE nodes SET {', '.join(f'{k} = ?' for k in row)} WHERE id = ?",
                      [*row.values(), node_id])
            if "status" in fields:
                self._event(c, "node_status", node_id, {"status": fields["status"],
                                                         "diagnosis": fields.get("diagnosis")})
        return self.node(node_id)

    # measurements -------------------------------------------------------------------
    def add_measurement(self, node: int, kind: str, metrics: dict[str, Any], path: str | None = None,
                        fingerprint: dict[str, Any] | None = None) -> int:
        """Store one measurement's summary and where its full result lives; the node lists it."""
        with self.tx() as c:
            cur = c.execute("INSERT INTO measurements (node, kind, fingerprint, metrics, path, created_at) "
                            "VALUES (?, ?, ?, ?, ?, ?)", [node, kind, _dump(fingerprint) if fingerprint else None,
                                                          _dump(metrics), path, time.time()])
            mid = int(cur.lastrowid)
            if kind in ("primary", "reference"):
                ids = json.loads(c.execute("SELECT measurement_ids FROM nodes WHERE id = ?", [node]).fetchone()[0])
                c.execute("UPDATE nodes SET measurement_ids = ? WHERE id = ?", [_dump([*ids, mid]), node])
            return mid

    def invalidate_measurement(self, measurement: int, why: str) -> None:
        """Set one measurement aside (the Critic asked for a re-test)."""
        with self.tx() as c:
            c.execute("UPDATE measurements SET valid = 0 WHERE id = ?", [measurement])
            self._event(c, "measurement_invalid", None, {"measurement": measurement, "why": why})

    def invalidate_measurements(self, node: int) -> int:
        """Mark a node's measurements invalid (an interrupted evaluation); returns how many."""
        with self.tx() as c:
            return c.execute("UPDATE measurements SET valid = 0 WHERE node = ? AND valid = 1", [node]).rowcount

    # constraints and alerts ---------------------------------------------------------------
    def add_constraint(self, knob: str | None, op: str, value: Any, reason: str, evidence: dict[str, Any],
                       node: int | None, requires: dict[str, Any] | None = None,
                       context: dict[str, Any] | None = None) -> int:
        """Publish a constraint (the Critic's ruling on a region of the knob space, in a context or everywhere)."""
        with self.tx() as c:
            cur = c.execute("INSERT INTO constraints (knob, op, value, requires, context, reason, evidence, node, "
                            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            [knob, op, _dump(value), _dump(requires or {}), _dump(context or {}), reason,
                             _dump(evidence), node, time.time()])
            self._event(c, "constraint", node, {"knob": knob, "op": op, "value": value, "reason": reason,
                                                "context": context or {}})
            return int(cur.lastrowid)

    def add_alert(self, severity: str, kind: str, message: str, evidence: dict[str, Any] | None = None,
                  node: int | None = None, needs_human: bool = False) -> int:
        """Raise an alert."""
        with self.tx() as c:
            cur = c.execute("INSERT INTO alerts (severity, kind, message, evidence, node, needs_human, created_at) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?)", [severity, kind, message, _dump(evidence or {}), node,
                                                            int(needs_human), time.time()])
            self._event(c, "alert", node, {"severity": severity, "kind": kind, "message": message})
            return int(cur.lastrowid)

    def ack_alert(self, alert_id: int, answer: str | None = None) -> None:
        """Acknowledge an alert (with the operator's answer to an escalation)."""
        with self.tx() as c:
            if c.execute("UPDATE alerts SET acked_at = ?, answer = COALESCE(?, answer) WHERE id = ?",
                         [time.time(), answer, alert_id]).rowcount == 0:
                raise StoreError(f"no alert {alert_id}")
            self._event(c, "alert_acked", None, {"alert": alert_id, "answer": answer})

    # steering -----------------------------------------------------------------------
    def add_command(self, kind: str, payload: dict[str, Any]) -> int:
        """Queue a steering command (the TUI writes these)."""
        with self.tx() as c:
            cur = c.execute("INSERT INTO commands (ts, kind, payload) VALUES (?, ?, ?)",
                            [time.time(), kind, _dump(payload)])
            return int(cur.lastrowid)

    def mark_command(self, command_id: int, result: str) -> None:
        """Record that a command was applied (or refused, with why)."""
        with self.tx() as c:
            c.execute("UPDATE commands SET applied_at = ?, result = ? WHERE id = ?", [time.time(), result, command_id])
            self._event(c, "command", None, {"id": command_id, "result": result})

    # the LLM ledger -------------------------------------------------------------------
    def add_llm_call(self, role: str, node: int | None, model: str, tokens: dict[str, int], cost: float,
                     transcript: str) -> None:
        """One LLM call: tokens (input, output, cache_read, cache_write), cost and the redacted transcript."""
        with self.tx() as c:
            c.execute("INSERT INTO llm_calls (ts, role, node, model, input_tokens, output_tokens, cache_read_tokens, "
                      "cache_write_tokens, cost_usd, transcript) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      [time.time(), role, node, model, tokens["input"], tokens["output"], tokens["cache_read"],
                       tokens["cache_write"], cost, transcript])


__all__ = ["STORE", "CampaignStore"]
