"""The campaign's core records: actions, nodes, score terms, measurements, constraints, alerts, events, decisions."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ActionKind = Literal["baseline", "config", "env", "patch", "kernel"]
Severity = Literal["info", "warning", "error", "critical"]
MeasurementKind = Literal["primary", "reference", "sweep", "parity", "profile"]


class Status(StrEnum):
    """Where a node stands."""

    PROPOSED = "proposed"
    RUNNING = "running"
    KEPT = "kept"
    REVERTED = "reverted"
    CRASHED = "crashed"
    PRUNED = "pruned"
    INVALID = "invalid"


EVALUATED = (Status.KEPT, Status.REVERTED, Status.CRASHED, Status.INVALID)  # statuses of an ended evaluation
Outcome = Literal[Status.KEPT, Status.REVERTED, Status.CRASHED, Status.INVALID]


class ProposedBy(StrEnum):
    """Who proposed a node."""

    ENGINE = "engine"  # the baseline
    OFFLINE = "offline"  # the offline policy's knob moves
    INTROSPECTION = "introspection"  # the rule-based Critic's refinements, combinations and pairs
    CRITIC = "critic"  # retests, crash retries, and the LLM Critic's refinements
    ORCHESTRATOR = "orchestrator"
    OPERATOR = "operator"  # injected from the TUI


class DeadReason(StrEnum):
    """Why a one-knob move is not proposed again from the current best (the prose is the pruned node's diagnosis)."""

    BROKE_ACCURACY = "broke accuracy before, and nothing else in its layer has changed since"
    REGRESSED = "fell short of the keep bar beyond doubt before, and the bottleneck it targets has not grown since"
    CRASHED_HERE = "crashed with partners that still hold the values it crashed with"


class Action(BaseModel):
    """What to try: a change to the current known-good configuration."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=300)
    category: str
    layer: str | None = None
    kind: ActionKind = "config"
    change: dict[str, Any] = Field(description="knob name -> new value (None removes the knob)")
    rationale: str = ""
    proposer: ProposedBy = ProposedBy.OFFLINE


class Candidate(BaseModel):
    """An action ready to be queued: where it hangs in the tree, the configuration it runs, what it brings."""

    action: Action
    parent: int
    config: dict[str, Any]
    priors: dict[str, Any] = Field(default_factory=dict, description="proposer_estimate, retest_of, last_resort…")


class ScoreTerms(BaseModel):
    """Every term of score(a) = U·(R·(1+G)−1)·(1−p_crash)·(1−p_regress)/C + c·sqrt(ln N / n[k])."""

    urgency: float
    time_share: float
    speedup: float
    multiplier: float
    gain: float = Field(description="G = time_share × speedup × multiplier")
    p_crash: float
    p_regress: float
    cost_s: float
    cost: float = Field(description="C: cost in units of one baseline evaluation")
    relative: float = Field(1.0, description="R: the measured value of the branch it extends over the best's")
    bound: float = Field(0.0, description="optimistic gain over the best: R·(1+G_high)−1")
    exploit: float
    explore: float
    n_total: int
    n_category: int = 0
    n_branch: int = Field(0, description="n[b]: evaluations made from the configuration it extends")
    prior_level: str
    prior_n: int
    score: float


class Node(BaseModel):
    """One action in the tree."""

    id: int
    parent: int | None
    depth: int
    status: Status
    title: str
    category: str
    layer: str | None
    kind: str
    change: dict[str, Any]
    config: dict[str, Any]
    rationale: str
    proposer: ProposedBy
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


class Measurement(BaseModel):
    """One measurement of a node: the workload it ran, its metrics, where the full result lives."""

    id: int
    node: int
    kind: MeasurementKind
    fingerprint: dict[str, Any] | None = Field(None, description="model, ISL, OSL, concurrency, prompts, seed, "
                                                                  "endpoint: what must match to compare")
    metrics: dict[str, Any] = Field(description="primary/reference: output_throughput, median_ttft_ms, …; sweep: "
                                                "points; parity: agreement_rate, passed; profile: categories")
    path: str | None = Field(None, description="the full result (benchmark JSON, profile) on disk")
    valid: bool = True
    created_at: float

    @property
    def throughput(self) -> float:
        """Output tokens per second (primary and reference measurements)."""
        return float(self.metrics["output_throughput"])


class Constraint(BaseModel):
    """A region of the knob space the Critic ruled out, with why and the evidence."""

    id: int
    knob: str | None
    op: Literal["eq", "ge", "le", "text"]
    value: Any
    requires: dict[str, Any] = Field(default_factory=dict, description="a change that makes the region allowed")
    context: dict[str, Any] = Field(default_factory=dict, description="the region holds only where these values "
                                                                      "hold too (where it crashed); empty: everywhere")
    reason: str
    evidence: dict[str, Any]
    node: int | None
    created_at: float
    expires_at: float | None


class Ruling(BaseModel):
    """A constraint the Critic wants published: the region, what makes it allowed, why, and the evidence."""

    knob: str
    op: Literal["eq", "ge", "le"]
    value: Any
    requires: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)
    reason: str
    evidence: dict[str, Any] = Field(default_factory=dict)


class Finding(BaseModel):
    """One thing the Critic noticed, raised as an alert."""

    severity: Severity
    kind: str
    message: str
    evidence: dict[str, Any] = Field(default_factory=dict)
    needs_human: bool = False


class FollowUp(StrEnum):
    """What the proposer is asked for after a decision."""

    NONE = "none"
    REFINE = "refine"  # a regression: half steps, the other direction, near misses together
    RETRY = "retry"  # a crash with a known prerequisite: the same value with `Decision.retry_with`
    IN_CONTEXT = "in_context"  # a crash of a value that ran before: retries with each suspect stepped back


class Decision(BaseModel):
    """What the gate concluded about one candidate; the engine applies it."""

    outcome: Outcome
    diagnosis: str
    gain: float | None = None
    gain_low: float | None = None
    gain_high: float | None = None
    findings: list[Finding] = Field(default_factory=list, description="alerts, each with its evidence")
    rulings: list[Ruling] = Field(default_factory=list, description="constraints to publish")
    follow_up: FollowUp = FollowUp.NONE
    retry_with: dict[str, Any] = Field(default_factory=dict, description="RETRY: the prerequisite")
    crashed_knob: str | None = Field(None, description="IN_CONTEXT: the knob whose value crashed")
    suspects: dict[str, Any] = Field(default_factory=dict, description="IN_CONTEXT: partners changed since, "
                                                                       "with their earlier values")
    proposals: list[Candidate] = Field(default_factory=list, description="the LLM Critic's refined sub-actions")
    critic_answered: bool = Field(False, description="the LLM Critic refined or pruned: no rule-based refinement")


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


class Command(BaseModel):
    """A steering command written by the TUI, and the engine's answer once applied or refused."""

    id: int
    ts: float
    kind: str
    payload: dict[str, Any]
    applied_at: float | None = None
    result: str | None = None


class Ablation(BaseModel):
    """The paper's ablations: which parts of the system are switched off."""

    critic: bool = True
    specialists: bool = True
    single_agent: bool = False

    @property
    def guarded(self) -> bool:
        """The Critic is at work: not switched off, and not the single-agent loop (which has none)."""
        return self.critic and not self.single_agent

    def label(self) -> str:
        """How the team is set up, in words."""
        off = [n for n, on in (("critic", self.critic), ("specialists", self.specialists)) if not on]
        return "single agent" if self.single_agent else ("full team" if not off else "no " + ", no ".join(off))
