"""The campaign's core records: actions, nodes, score terms, constraints, alerts, events."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

NodeStatus = Literal["proposed", "running", "kept", "reverted", "crashed", "pruned", "invalid"]
ActionKind = Literal["baseline", "config", "env", "patch", "kernel"]
Severity = Literal["info", "warning", "error", "critical"]
EVALUATED = ("kept", "reverted", "crashed", "invalid")  # statuses of a node whose evaluation ended


class Action(BaseModel):
    """What to try: a change to the current known-good configuration."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=300)
    category: str
    layer: str | None = None
    kind: ActionKind = "config"
    change: dict[str, Any] = Field(description="knob name -> new value (None removes the knob)")
    rationale: str = ""
    proposer: str = "offline"


class ScoreTerms(BaseModel):
    """Every term of score(a) = U·G·(1−p_crash)·(1−p_regress)/C + c·sqrt(ln N / n[k])."""

    urgency: float
    time_share: float
    speedup: float
    multiplier: float
    gain: float = Field(description="G = time_share × speedup × multiplier")
    p_crash: float
    p_regress: float
    cost_s: float
    cost: float = Field(description="C: cost in units of one baseline evaluation")
    exploit: float
    explore: float
    n_total: int
    n_category: int
    prior_level: str
    prior_n: int
    score: float


class Node(BaseModel):
    """One action in the tree."""

    id: int
    parent: int | None
    depth: int
    status: NodeStatus
    title: str
    category: str
    layer: str | None
    kind: str
    change: dict[str, Any]
    config: dict[str, Any]
    rationale: str
    proposer: str
    score: float | None
    score_terms: dict[str, Any]
    priors: dict[str, Any]
    gain: float | None
    gain_low: float | None
    gain_high: float | None
    diagnosis: str | None
    measurement_ids: list[int]
    attempts: int
    pinned: bool
    created_at: float
    started_at: float | None
    finished_at: float | None
    rev: int = 0

    def action(self) -> Action:
        """The action this node tried."""
        return Action(title=self.title, category=self.category, layer=self.layer, kind=self.kind,  # type: ignore[arg-type]
                      change=self.change, rationale=self.rationale, proposer=self.proposer)


class Constraint(BaseModel):
    """A region of the knob space the Critic ruled out, with why and the evidence."""

    id: int
    knob: str | None
    op: Literal["eq", "ge", "le", "text"]
    value: Any
    requires: dict[str, Any] = Field(default_factory=dict, description="a change that makes the region allowed")
    reason: str
    evidence: dict[str, Any]
    node: int | None
    created_at: float
    expires_at: float | None


class Alert(BaseModel):
    """Something the Critic wants seen."""

    id: int
    severity: Severity
    kind: str
    message: str
    evidence: dict[str, Any]
    node: int | None
    needs_human: bool
    created_at: float
    acked_at: float | None
    answer: str | None = None


class Event(BaseModel):
    """One entry of the append-only event log."""

    seq: int
    ts: float
    kind: str
    node: int | None
    data: dict[str, Any]
