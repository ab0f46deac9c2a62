"""What the TUI reads from a run's store (read-only, changes only, never blocking the writer) and the commands it
writes, whose answers come back through the event log."""

from __future__ import annotations

import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arbor.host import steering
from arbor.host.errors import HostError, SteeringError
from arbor.host.models import Alert, Command, Event, Measurement, Node
from arbor.host.store import CampaignStore, NodeRow, StoreReader
from arbor.host.tree import SearchTree


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
class Delta:
    """What changed since the last poll."""

    nodes: list[NodeRow] = field(default_factory=list)
    alerts_changed: bool = False
    events: list[Event] = field(default_factory=list)


def recent_runs(root: Path, limit: int = 30) -> list[tuple[Path, str]]:
    """Run folders under `root`, newest first, with their state."""
    if not root.is_dir():
        return []
    runs = sorted((p for p in root.iterdir() if StoreReader.exists(p)),
                  key=lambda p: (p / "campaign.sqlite").stat().st_mtime, reverse=True)[:limit]
    out = []
    for run in runs:
        try:
            with closing(StoreReader.open(run)) as store:
                out.append((run, str(store.meta("state"))))
        except HostError as exc:
            out.append((run, f"unreadable: {exc}"))
    return out


class RunSource:
    """One run folder, opened read-only for the TUI."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.store = StoreReader.open(self.run_dir)
        self.spec = self.store.meta("spec")
        self.tree = SearchTree(self.store, self.spec)
        self.rev = 0
        self.seq = 0
        self._alerts_sig: tuple[Any, ...] = ()

    def close(self) -> None:
        self.store.close()

    # reading ------------------------------------------------------------
    def poll(self) -> Delta:
        """Nodes changed since the last poll, whether alerts changed, and new events."""
        # Light rows, not validated nodes: 10,000 rows at first paint.
        delta = Delta(nodes=self.store.rows_since(self.rev))
        if delta.nodes:
            self.rev = max(n.rev for n in delta.nodes)
        sig = self.store.alerts_signature()
        delta.alerts_changed, self._alerts_sig = sig != self._alerts_sig, sig
        delta.events = self.store.events(self.seq, limit=500)
        if delta.events:
            self.seq = delta.events[-1].seq
        return delta

    def alerts(self) -> list[Alert]:
        return self.store.alerts()

    def status(self) -> Status:
        meta = self.store.meta
        state = str(meta("state"))
        elapsed = float(meta("elapsed_s"))
        saved = meta("clock_saved_at")
        if state == "running" and saved:
            elapsed += max(0.0, time.time() - float(saved))  # the engine saves its clock once per step
        root, best = self.tree.root(), meta("best_node")
        gain = None
        if root is not None and best is not None and root.id != best:
            before, after = self.tree.mean_metric(root), self.tree.mean_metric(self.tree.node(best))
            gain = after / before - 1 if before and after else None
        return Status(name=self.spec.name, state=state, paused=bool(meta("paused")),
                      stop_requested=bool(meta("stop_requested")), elapsed_s=elapsed,
                      budget_s=self.spec.budget.wall_clock_s, actions=self.store.actions_count(),
                      max_actions=self.spec.budget.max_actions, best_gain=gain, best_node=best,
                      llm_usd=self.store.llm_spent(), llm_budget=self.spec.budget.llm_usd,
                      backend=self.spec.agent.backend)

    def best_node(self) -> int | None:
        """The current best configuration's node."""
        return self.store.meta("best_node")

    def kept_ids(self) -> set[int]:
        """The kept path from the root to the current best."""
        return {n.id for n in self.tree.kept_path()} if self.best_node() is not None else set()

    def node(self, node_id: int) -> Node:
        return self.store.node(node_id)

    def measurements(self, node_id: int) -> list[Measurement]:
        return self.store.measurements(node_id, valid_only=False)

    def llm_calls(self, node_id: int) -> list[dict[str, Any]]:
        return self.store.llm_calls(node_id)

    def node_events(self, node_id: int) -> list[Event]:
        return self.store.events(node=node_id)

    def patch(self, node_id: int) -> str | None:
        path = self.store.artifacts / "patches" / f"n{node_id}.diff"
        return path.read_text(errors="replace") if path.is_file() else None

    def throughput_history(self) -> list[float]:
        """Best output throughput after each evaluation, in evaluation order."""
        return self.store.throughput_history()

    def frontier(self) -> dict[str, list[tuple[float, float, int]]]:
        """Sweep points of the baseline (root) and the current best."""
        root, best = self.tree.root(), self.best_node()
        return {"baseline": self.tree.sweep_series(root) if root else [],
                "best": self.tree.sweep_series(self.tree.node(best)) if best is not None else []}

    def commands(self, limit: int = 50) -> list[Command]:
        return self.store.commands(limit=limit)

    def check_injection(self, payload: dict[str, Any]) -> str | None:
        """The engine's own check of an injected hypothesis: why it would be refused, or None."""
        try:
            steering.injection(self.tree, payload)
        except HostError as exc:
            return str(exc).splitlines()[0]
        return None

    # writing ------------------------------------------------------------
    def send(self, kind: str, payload: dict[str, Any] | None = None) -> Command:
        """Queue a steering command; the engine answers it between steps (an acknowledgement is answered at once
        when no campaign runs). The answer comes back as a `command` event and in `Command.result`."""
        if kind not in steering.COMMANDS:
            raise SteeringError(f"unknown command {kind!r}")
        with closing(CampaignStore(self.run_dir)) as store:
            command_id = store.add_command(kind, payload or {})
            if store.meta("state") != "running":
                steering.apply_offline(store, SearchTree(store, self.spec))
            return store.command(command_id)
