"""The campaign store: one SQLite file per run (WAL, numbered migrations) beside an artifacts folder."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from arbor.tools.migrations import MigrationError, connect, load

from .errors import HostError
from .models import Alert, Constraint, Event, Node

STORE = "campaign.sqlite"
NODE_JSON = ("change", "config", "score_terms", "priors", "measurement_ids")


def _dump(value: Any, ordered: bool = False) -> str:
    return json.dumps(value, sort_keys=not ordered, default=str)


def _dump_field(name: str, value: Any) -> str:
    # A change keeps its order: its first knob leads (the action's title, layer and KB record are its).
    return _dump(value, ordered=name == "change")


class CampaignStore:
    """Everything needed to resume a campaign or explain a decision."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.artifacts = self.run_dir / "artifacts"
        try:
            self.conn = connect(self.run_dir / STORE, load(__package__), "campaign store")
        except MigrationError as exc:
            raise HostError(str(exc)) from exc
        self.conn.row_factory = sqlite3.Row
        self._lock = threading.RLock()

    @classmethod
    def exists(cls, run_dir: Path) -> bool:
        """Whether a campaign store is in `run_dir`."""
        return (Path(run_dir) / STORE).is_file()

    def close(self) -> None:
        """Close the database."""
        self.conn.close()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
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

    # meta ---------------------------------------------------------------
    def set_meta(self, name: str, value: Any) -> None:
        """Store a named value (JSON)."""
        with self.tx() as c:
            c.execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", [name, _dump(value)])

    def meta(self, name: str, default: Any = None) -> Any:
        """A named value, or `default`."""
        row = self.conn.execute("SELECT value FROM meta WHERE name = ?", [name]).fetchone()
        return json.loads(row[0]) if row else default

    # events -------------------------------------------------------------
    def event(self, kind: str, node: int | None = None, **data: Any) -> None:
        """Append to the event log."""
        with self.tx() as c:
            c.execute("INSERT INTO events (ts, kind, node, data) VALUES (?, ?, ?, ?)",
                      [time.time(), kind, node, _dump(data)])

    def events(self, after: int = 0, limit: int = 10_000) -> list[Event]:
        """Events after sequence number `after`."""
        rows = self.conn.execute("SELECT * FROM events WHERE seq > ? ORDER BY seq LIMIT ?", [after, limit])
        return [Event(seq=r["seq"], ts=r["ts"], kind=r["kind"], node=r["node"], data=json.loads(r["data"]))
                for r in rows]

    # nodes --------------------------------------------------------------
    def add_node(self, **fields: Any) -> Node:
        """Insert a node; JSON fields are serialised here."""
        row = {k: (_dump_field(k, v) if k in NODE_JSON else v) for k, v in fields.items()}
        row.setdefault("created_at", time.time())
        with self.tx() as c:
            cur = c.execute(f"INSERT INTO nodes ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                            list(row.values()))
            node_id = cur.lastrowid
            c.execute("INSERT INTO events (ts, kind, node, data) VALUES (?, 'node_added', ?, ?)",
                      [time.time(), node_id, _dump({"status": fields.get("status"), "title": fields.get("title")})])
        return self.node(node_id)

    def update_node(self, node_id: int, **fields: Any) -> Node:
        """Change fields of a node (and log a status change as an event)."""
        row = {k: (_dump_field(k, v) if k in NODE_JSON else v) for k, v in fields.items()}
        with self.tx() as c:
            c.execute(f"UPDATE nodes SET {', '.join(f'{k} = ?' for k in row)} WHERE id = ?",
                      [*row.values(), node_id])
            if "status" in fields:
                c.execute("INSERT INTO events (ts, kind, node, data) VALUES (?, 'node_status', ?, ?)",
                          [time.time(), node_id, _dump({"status": fields["status"],
                                                        "diagnosis": fields.get("diagnosis")})])
        return self.node(node_id)

    def node(self, node_id: int) -> Node:
        """One node."""
        row = self.conn.execute("SELECT * FROM nodes WHERE id = ?", [node_id]).fetchone()
        if row is None:
            raise HostError(f"no node {node_id}")
        return _node(row)

    def nodes(self, status: str | None = None) -> list[Node]:
        """Nodes in id order, optionally of one status."""
        if status:
            rows = self.conn.execute("SELECT * FROM nodes WHERE status = ? ORDER BY id", [status])
        else:
            rows = self.conn.execute("SELECT * FROM nodes ORDER BY id")
        return [_node(r) for r in rows]

    # measurements -------------------------------------------------------
    def add_measurement(self, node: int, kind: str, metrics: dict[str, Any], path: str | None = None,
                        fingerprint: dict[str, Any] | None = None) -> int:
        """Store one measurement's summary and where its full result lives."""
        with self.tx() as c:
            cur = c.execute("INSERT INTO measurements (node, kind, fingerprint, metrics, path, created_at) "
                            "VALUES (?, ?, ?, ?, ?, ?)", [node, kind, _dump(fingerprint) if fingerprint else None,
                                                          _dump(metrics), path, time.time()])
            return int(cur.lastrowid)

    def measurements(self, node: int, kind: str | None = None, valid_only: bool = True) -> list[dict[str, Any]]:
        """A node's measurements, oldest first."""
        sql = "SELECT * FROM measurements WHERE node = ?" + (" AND kind = ?" if kind else "")
        sql += " AND valid = 1" if valid_only else ""
        rows = self.conn.execute(sql + " ORDER BY id", [node, kind] if kind else [node])
        return [dict(r) | {"metrics": json.loads(r["metrics"]),
                           "fingerprint": json.loads(r["fingerprint"]) if r["fingerprint"] else None} for r in rows]

    def reference(self, node: int) -> list[dict[str, Any]]:
        """What a node's throughput is judged by: its fresh repeats taken after a keep, else its primary ones."""
        return self.measurements(node, "reference") or self.measurements(node, "primary")

    def invalidate_measurement(self, measurement: int, why: str) -> None:
        """Set one measurement aside (the Critic asked for a re-test)."""
        with self.tx() as c:
            c.execute("UPDATE measurements SET valid = 0 WHERE id = ?", [measurement])
            c.execute("INSERT INTO events (ts, kind, node, data) VALUES (?, 'measurement_invalid', NULL, ?)",
                      [time.time(), _dump({"measurement": measurement, "why": why})])

    def invalidate_measurements(self, node: int) -> int:
        """Mark a node's measurements invalid (an interrupted evaluation); returns how many."""
        with self.tx() as c:
            return c.execute("UPDATE measurements SET valid = 0 WHERE node = ? AND valid = 1", [node]).rowcount

    # constraints and alerts ---------------------------------------------
    def add_constraint(self, knob: str | None, op: str, value: Any, reason: str, evidence: dict[str, Any],
                       node: int | None, requires: dict[str, Any] | None = None) -> int:
        """Publish a constraint (the Critic's ruling on a region of the knob space)."""
        with self.tx() as c:
            cur = c.execute("INSERT INTO constraints (knob, op, value, requires, reason, evidence, node, created_at) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [knob, op, _dump(value), _dump(requires or {}),
                                                               reason, _dump(evidence), node, time.time()])
            c.execute("INSERT INTO events (ts, kind, node, data) VALUES (?, 'constraint', ?, ?)",
                      [time.time(), node, _dump({"knob": knob, "op": op, "value": value, "reason": reason})])
            return int(cur.lastrowid)

    def constraints(self) -> list[Constraint]:
        """Constraints in force."""
        now = time.time()
        rows = self.conn.execute("SELECT * FROM constraints WHERE expires_at IS NULL OR expires_at > ? ORDER BY id",
                                 [now])
        return [Constraint(id=r["id"], knob=r["knob"], op=r["op"], value=json.loads(r["value"]),
                           requires=json.loads(r["requires"]), reason=r["reason"],
                           evidence=json.loads(r["evidence"]), node=r["node"], created_at=r["created_at"],
                           expires_at=r["expires_at"]) for r in rows]

    def add_alert(self, severity: str, kind: str, message: str, evidence: dict[str, Any] | None = None,
                  node: int | None = None, needs_human: bool = False) -> int:
        """Raise an alert."""
        with self.tx() as c:
            cur = c.execute("INSERT INTO alerts (severity, kind, message, evidence, node, needs_human, created_at) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?)", [severity, kind, message, _dump(evidence or {}), node,
                                                            int(needs_human), time.time()])
            c.execute("INSERT INTO events (ts, kind, node, data) VALUES (?, 'alert', ?, ?)",
                      [time.time(), node, _dump({"severity": severity, "kind": kind, "message": message})])
            return int(cur.lastrowid)

    def alerts(self) -> list[Alert]:
        """Every alert, oldest first."""
        return [Alert(id=r["id"], severity=r["severity"], kind=r["kind"], message=r["message"],
                      evidence=json.loads(r["evidence"]), node=r["node"], needs_human=bool(r["needs_human"]),
                      created_at=r["created_at"], acked_at=r["acked_at"], answer=r["answer"])
                for r in self.conn.execute("SELECT * FROM alerts ORDER BY id")]

    def ack_alert(self, alert_id: int, answer: str | None = None) -> None:
        """Acknowledge an alert (with the operator's answer to an escalation)."""
        with self.tx() as c:
            if c.execute("UPDATE alerts SET acked_at = ?, answer = COALESCE(?, answer) WHERE id = ?",
                         [time.time(), answer, alert_id]).rowcount == 0:
                raise HostError(f"no alert {alert_id}")
            c.execute("INSERT INTO events (ts, kind, node, data) VALUES (?, 'alert_acked', NULL, ?)",
                      [time.time(), _dump({"alert": alert_id, "answer": answer})])

    # steering -----------------------------------------------------------
    def pending_commands(self) -> list[dict[str, Any]]:
        """Steering commands not applied yet, oldest first."""
        rows = self.conn.execute("SELECT * FROM commands WHERE applied_at IS NULL ORDER BY id")
        return [dict(r) | {"payload": json.loads(r["payload"])} for r in rows]

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
            c.execute("INSERT INTO events (ts, kind, node, data) VALUES (?, 'command', NULL, ?)",
                      [time.time(), _dump({"id": command_id, "result": result})])


def _node(row: sqlite3.Row) -> Node:
    data = dict(row)
    for key in NODE_JSON:
        data[key] = json.loads(data[key])
    data["pinned"] = bool(data["pinned"])
    return Node.model_validate(data)
