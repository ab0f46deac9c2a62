"""What the TUI reads from a run's store (changes only, never blocking the writer) and the commands it writes."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arbor.host.errors import HostError
from arbor.host.models import Alert, Event, Node
from arbor.host.report import kept_path, mean_metric, sweep_series
from arbor.host.spec import CampaignSpec
from arbor.host.store import STORE, CampaignStore

COMMANDS = ("pause", "resume", "stop", "prune", "veto", "pin", "boost", "inject", "ack", "answer")


@dataclass
class Status:
    """The status bar's figures."""

    name: str
    state: str
    paused: bool
    stop_requested: bool
    elapsed_s: float
    budget_s: float
    actions: int
    max_actions: int
    best_gain: float | None
    best_node: int | None
    llm_usd: float
    llm_budget: float
    backend: str


@dataclass
class Row:
    """A node as the tree shows it (the detail panel reads the whole node)."""

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


ROW_SQL = ("SELECT id, parent, status, title, category, kind, change, rationale, diagnosis, score, gain, gain_low, "
           "gain_high, pinned, rev FROM nodes WHERE rev > ? ORDER BY rev")


@dataclass
class Delta:
    """What changed since the last poll."""

    nodes: list[Row] = field(default_factory=list)
    alerts_changed: bool = False
    events: list[Event] = field(default_factory=list)


def recent_runs(root: Path, limit: int = 30) -> list[tuple[Path, str]]:
    """Run folders under `root`, newest first, with their state."""
    if not root.is_dir():
        return []
    runs = sorted((p for p in root.iterdir() if (p / STORE).is_file()), key=lambda p: (p / STORE).stat().st_mtime,
                  reverse=True)[:limit]
    out = []
    for run in runs:
        try:
            store = CampaignStore(run)
            try:
                out.append((run, str(store.meta("state", "?"))))
            finally:
                store.close()
        except HostError as exc:
            out.append((run, f"unreadable: {exc}"))
    return out


class RunSource:
    """One run folder, opened for the TUI."""

    def __init__(self, run_dir: Path) -> None:
        if not CampaignStore.exists(run_dir):
            raise HostError(f"{run_dir} holds no campaign (no {STORE})")
        self.run_dir = Path(run_dir)
        self.store = CampaignStore(self.run_dir)
        self.spec = CampaignSpec.model_validate(self.store.meta("spec"))
        self.rev = 0
        self.seq = 0
        self._alerts_sig: tuple[Any, ...] = ()

    def close(self) -> None:
        self.store.close()

    # reading ------------------------------------------------------------
    def poll(self) -> Delta:
        """Nodes changed since the last poll, whether alerts changed, and new events."""
        # A light projection: one JSON field per row instead of a validated Node (10,000 rows at first paint).
        delta = Delta(nodes=[Row(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]), r[7], r[8], r[9], r[10],
                                 r[11], r[12], bool(r[13]), r[14])
                             for r in self.store.conn.execute(ROW_SQL, [self.rev])])
        if delta.nodes:
            self.rev = max(n.rev for n in delta.nodes)
        sig = tuple(self.store.conn.execute(
            "SELECT COUNT(*), MAX(id), SUM(acked_at IS NOT NULL) FROM alerts").fetchone())
        delta.alerts_changed, self._alerts_sig = sig != self._alerts_sig, sig
        delta.events = self.store.events(self.seq, limit=500)
        if delta.events:
            self.seq = delta.events[-1].seq
        return delta

    def alerts(self) -> list[Alert]:
        return self.store.alerts()

    def status(self) -> Status:
        s, meta = self.store, self.store.meta
        state = str(meta("state", "?"))
        elapsed = float(meta("elapsed_s", 0.0))
        saved = meta("clock_saved_at")
        if state == "running" and saved:
            elapsed += max(0.0, time.time() - float(saved))  # the engine saves its clock once per step
        done = s.conn.execute("SELECT COUNT(*) FROM nodes WHERE kind != 'baseline' AND status IN "
                              "('kept', 'reverted', 'crashed', 'invalid')").fetchone()[0]
        root, best = meta("root_node"), meta("baseline_node")
        gain = None
        if root is not None and best is not None and root != best:
            before, after = (mean_metric(s, s.node(int(n)), "output_throughput") for n in (root, best))
            gain = after / before - 1 if before and after else None
        spent = float(s.conn.execute("SELECT COALESCE(SUM(cost_usd), 0) FROM llm_calls").fetchone()[0])
        return Status(name=self.spec.name, state=state, paused=bool(meta("paused")),
                      stop_requested=bool(meta("stop_requested")), elapsed_s=elapsed,
                      budget_s=self.spec.budget.wall_clock_s, actions=done, max_actions=self.spec.budget.max_actions,
                      best_gain=gain, best_node=best, llm_usd=spent, llm_budget=self.spec.budget.llm_usd,
                      backend=self.spec.agent.backend)

    def kept_ids(self) -> set[int]:
        """The kept path from the root to the current best."""
        best = self.store.meta("baseline_node")
        return {n.id for n in kept_path(self.store, self.store.node(int(best)))} if best is not None else set()

    def node(self, node_id: int) -> Node:
        return self.store.node(node_id)

    def measurements(self, node_id: int) -> list[dict[str, Any]]:
        return self.store.measurements(node_id, valid_only=False)

    def llm_calls(self, node_id: int) -> list[dict[str, Any]]:
        rows = self.store.conn.execute("SELECT * FROM llm_calls WHERE node = ? ORDER BY id", [node_id])
        return [dict(r) | {"transcript": json.loads(r["transcript"] or "{}")} for r in rows]

    def node_events(self, node_id: int) -> list[Event]:
        rows = self.store.conn.execute("SELECT * FROM events WHERE node = ? ORDER BY seq", [node_id])
        return [Event(seq=r["seq"], ts=r["ts"], kind=r["kind"], node=r["node"], data=json.loads(r["data"]))
                for r in rows]

    def patch(self, node_id: int) -> str | None:
        path = self.store.artifacts / "patches" / f"n{node_id}.diff"
        return path.read_text(errors="replace") if path.is_file() else None

    def throughput_history(self) -> list[float]:
        """Best output throughput after each evaluation, in evaluation order."""
        rows = self.store.conn.execute(
            "SELECT n.id, n.status, n.kind, AVG(json_extract(m.metrics, '$.output_throughput')) FROM nodes n "
            "JOIN measurements m ON m.node = n.id AND m.kind = 'primary' AND m.valid = 1 "
            "WHERE n.status IN ('kept', 'reverted', 'crashed', 'invalid') GROUP BY n.id ORDER BY n.finished_at")
        best, out = 0.0, []
        for _, status, kind, mean in rows:
            if status == "kept" or kind == "baseline":
                best = max(best, mean or 0.0)
            out.append(best)
        return out

    def frontier(self) -> dict[str, list[tuple[float, float, int]]]:
        """Sweep points of the baseline (root) and the current best."""
        out = {}
        for label, key in (("baseline", "root_node"), ("best", "baseline_node")):
            node = self.store.meta(key)
            out[label] = sweep_series(self.store, self.store.node(int(node))) if node is not None else []
        return out

    def commands(self, limit: int = 50) -> list[dict[str, Any]]:
        rows = self.store.conn.execute("SELECT * FROM commands ORDER BY id DESC LIMIT ?", [limit])
        return [dict(r) | {"payload": json.loads(r["payload"])} for r in rows]

    # writing ------------------------------------------------------------
    def send(self, kind: str, payload: dict[str, Any] | None = None) -> int:
        """Queue a steering command; the host applies it between steps and logs it as an event."""
        if kind not in COMMANDS:
            raise HostError(f"unknown command {kind!r}")
        return self.store.add_command(kind, payload or {})
