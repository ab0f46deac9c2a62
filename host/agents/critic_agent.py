"""The LLM Critic: root-cause analysis after a crash, introspection after a regression, keep reviews, escalation.

Its rulings and refined sub-actions come back as values for the gate's decision; only alerts and
log events are written here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from arbor.tools.bench.models import Comparison
from arbor.tools.serving.failures import Failure

from .. import policy
from ..errors import ProposalError
from ..models import Candidate, Constraint, Finding, Node, ProposedBy, Ruling, Status
from ..tree import SearchTree
from . import briefing, evidence
from .bridge import Bridge, LocalTool, local_tool
from .prompts import render
from .proposals import ProposedAction, Value, validate
from .team import Team

Evidence = Field(min_length=1, max_length=20, description="ids: log:LINE, node:ID, measurement:ID, event:SEQ, alert:ID")


class ReadLog(BaseModel):
    """A window of the crashed server's log."""

    model_config = ConfigDict(extra="forbid")

    first_line: int = Field(1, ge=1)
    count: int = Field(80, ge=1, le=400)


class Prune(BaseModel):
    """The idea is dead: rule out further moves in its direction."""

    model_config = ConfigDict(extra="forbid")

    knob: str
    op: Literal["eq", "ge", "le"]
    value: Value
    reason: str = Field(min_length=1, max_length=2000)
    evidence: list[str] = Evidence


class PublishConstraint(Prune):
    """A region of the knob space the crash rules out, and what makes it allowed again."""

    requires: dict[str, Value] = Field(default_factory=dict, description="a change that makes the region safe")


class Escalate(BaseModel):
    """The infrastructure itself is failing: a human must look."""

    model_config = ConfigDict(extra="forbid")

    message: str = Field(min_length=1, max_length=2000)
    evidence: list[str] = Evidence


class Refine(BaseModel):
    """The idea is alive but the step was wrong: better-aimed sub-actions."""

    model_config = ConfigDict(extra="forbid")

    actions: list[ProposedAction] = Field(min_length=1, max_length=3)
    reason: str = Field(min_length=1, max_length=2000)
    evidence: list[str] = Evidence


class Approve(BaseModel):
    """The keep stands."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2000)


class MarkUnstable(BaseModel):
    """The gain is not to be trusted: the node is not kept."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2000)
    evidence: list[str] = Evidence


class RaiseAlert(BaseModel):
    """Something in the trajectory the operator should see."""

    model_config = ConfigDict(extra="forbid")

    severity: Literal["info", "warning", "error"]
    message: str = Field(min_length=1, max_length=2000)
    evidence: list[str] = Evidence


class Introspection(BaseModel):
    """The Critic's answer to a regression: refined sub-actions, or a prune (a constraint); answered=False: neither."""

    answered: bool = False
    proposals: list[Candidate] = Field(default_factory=list)
    rulings: list[Ruling] = Field(default_factory=list)


def _region(tree: SearchTree, knob: str, op: str, value: Any, requires: dict[str, Any], node: Node,
            must_cover: bool) -> tuple[str, str, Any, dict[str, Any]]:
    """Validate a region against the knob space (and that it explains `node`'s config when `must_cover`)."""
    knobs = {k.name: k for k in tree.spec.knobs}
    if knob not in knobs:
        raise ProposalError(f"unknown knob {knob!r}; the knob space is {sorted(knobs)}")
    try:
        value = knobs[knob].validate_value(value)
        clean = {}
        for name, needed in requires.items():
            if name not in knobs:
                raise ProposalError(f"requires: unknown knob {name!r}")
            clean[name] = knobs[name].validate_value(needed)
    except ValueError as exc:
        raise ProposalError(str(exc)) from exc
    if op != "eq" and knobs[knob].type not in ("int", "float"):
        raise ProposalError(f"{knob} is not numeric: use op 'eq'")
    probe = Constraint(id=0, knob=knob, op=op, value=value, requires=clean, reason="", evidence={}, node=None,
                       created_at=0.0, expires_at=None)  # type: ignore[arg-type]
    if must_cover and policy.violates([probe], node.config) is None:
        raise ProposalError(f"the crashed configuration {node.config} is outside {knob} {op} {value!r}"
                            + (f" unless {clean}" if clean else "") + ": this constraint does not explain the crash")
    return knob, op, value, clean


def _escalate_tool(team: Team, node: Node | None, log_path: str | None, state: dict[str, Any]) -> LocalTool:
    def escalate(args: Escalate) -> str:
        cited = evidence.check(team.store, args.evidence, log_path)
        team.store.add_alert("critical", "escalation", args.message, cited | {"by": "critic"},
                             node.id if node else None, True)
        state["escalated"] = True
        return "escalated to the operator"
    return local_tool("escalate", "Ask a human to look: the infrastructure itself is failing.", Escalate, escalate)


async def crash_rca(team: Team, tree: SearchTree, node: Node, failure: Failure) -> Ruling | None:
    """Root-cause analysis of a crash: the constraint the Critic rules (evidence checked), or None."""
    log_path = failure.log_path
    state: dict[str, Any] = {"ruling": None}

    def read_log(args: ReadLog) -> str:
        lines = evidence.log_lines(log_path)
        window = lines[args.first_line - 1: args.first_line - 1 + args.count]
        body = "\n".join(f"{args.first_line + i}: {line[:400]}" for i, line in enumerate(window))
        return f"{Path(log_path or '?').name}, {len(lines)} lines\n{body}"

    def publish(args: PublishConstraint) -> str:
        knob, op, value, requires = _region(tree, args.knob, args.op, args.value, args.requires, node, True)
        cited = evidence.check(team.store, args.evidence, log_path)
        state["ruling"] = Ruling(knob=knob, op=op, value=value, requires=requires,  # type: ignore[arg-type]
                                 reason=args.reason, evidence=cited | {"by": "critic", "node": node.id,
                                                                       "failure": failure.kind})
        return "constraint accepted: it is published with the crash"

    tools = [local_tool("read_log", "Read lines of the crashed server's log (numbered).", ReadLog, read_log),
             local_tool("publish_constraint", "Publish the knob region this crash rules out (cite evidence).",
                        PublishConstraint, publish), _escalate_tool(team, node, log_path, state)]
    bridge = Bridge(team.clients, "critic", tools)
    await bridge.load()
    crashes = [n for n in tree.nodes(Status.CRASHED) if n.id != node.id]
    prompt = render("critic_crash", node=node.id, title=node.title, change=node.change, failure=failure.kind,
                    summary=failure.summary, log_lines=len(evidence.log_lines(log_path)),
                    lines=[f"line {e.line}: {e.text}" for e in failure.evidence],
                    history="\n".join(briefing.node_line(n) for n in crashes[-10:]) or "(none)")
    await team.run("critic", _system(team, tree), prompt, bridge, node.id, done=lambda: state["ruling"] is not None)
    return state["ruling"]


async def introspect(team: Team, tree: SearchTree, node: Node) -> Introspection:
    """After a regression (`node` carries its measured gain and diagnosis): refined sub-actions or a prune."""
    base = tree.best()
    answer = Introspection()

    def refine(args: Refine) -> dict[str, Any]:
        cited = evidence.check(team.store, args.evidence)
        # The regressed configuration itself counts as measured: its decision is being made.
        evaluated = tree.evaluated_keys() | {policy.config_key(node.config)}
        pending = tree.queued_keys(base.config) | {policy.config_key(c.config) for c in answer.proposals}
        added, rejected = [], []
        for i, proposal in enumerate(args.actions):
            try:
                ok = validate(tree.spec, base.config, proposal, evaluated, pending, tree.constraints(),
                              ProposedBy.CRITIC)
            except ProposalError as exc:
                rejected.append({"index": i, "error": str(exc)})
                continue
            pending.add(policy.config_key(ok.config))
            answer.proposals.append(Candidate(action=ok.action, parent=node.id, config=ok.config, priors={
                "proposer_estimate": ok.estimate, "proposer_cost_s": ok.cost_s, "task": ok.task}))
            added.append(ok.action.title)
        if added:
            answer.answered = True
            team.store.event("critic_refined", node.id, reason=args.reason, titles=added, evidence=cited["ids"])
        return {"accepted": added, "rejected": rejected}

    def prune(args: Prune) -> str:
        knob, op, value, _ = _region(tree, args.knob, args.op, args.value, {}, node, False)
        cited = evidence.check(team.store, args.evidence)
        answer.rulings.append(Ruling(knob=knob, op=op, value=value, reason=args.reason,  # type: ignore[arg-type]
                                     evidence=cited | {"by": "critic", "node": node.id}))
        answer.answered = True
        return "pruned: the constraint is published with the revert"

    tools = [local_tool("refine", "The idea is alive: queue better-aimed sub-actions (validated).", Refine, refine),
             local_tool("prune", "The idea is dead: rule out its direction (cite evidence).", Prune, prune),
             _escalate_tool(team, node, None, {})]
    bridge = Bridge(team.clients, "critic", tools)
    await bridge.load()
    interval = "n/a" if node.gain_low is None else f"{node.gain_low:+.1%} to {node.gain_high:+.1%}"
    prompt = render("critic_regression", node=node.id, title=node.title, diagnosis=node.diagnosis or "",
                    change=node.change, gain="n/a" if node.gain is None else f"{node.gain:+.1%}", interval=interval,
                    measurements=[m.id for m in tree.store.measurements(node.id, "primary")],
                    history=briefing.similar(tree, node.category))
    await team.run("critic", _system(team, tree), prompt, bridge, node.id, done=lambda: answer.answered)
    return answer


async def review_keep(team: Team, tree: SearchTree, node: Node, cmp: Comparison,
                      findings: list[Finding]) -> str | None:
    """The Critic's look before a keep: the reason of an instability mark (evidence checked), or None."""
    base = tree.best()
    state: dict[str, Any] = {"decided": False, "unstable": None}

    def approve(args: Approve) -> str:
        state["decided"] = True
        team.store.event("critic_approved", node.id, reason=args.reason)
        return "approved"

    def mark(args: MarkUnstable) -> str:
        cited = evidence.check(team.store, args.evidence)
        team.store.add_alert("warning", "unstable", f"the Critic marks {node.title} unstable: {args.reason}",
                             cited | {"by": "critic"}, node.id)
        state["decided"], state["unstable"] = True, args.reason
        return "marked unstable: the node will not be kept"

    def rows(n: Node) -> list[str]:
        return [f"measurement:{m.id}: {m.throughput:.1f}, {m.metrics['median_ttft_ms']:.0f}"
                for m in tree.store.measurements(n.id, "primary")]

    tools = [local_tool("approve", "The gain is real: keep it.", Approve, approve),
             local_tool("mark_unstable", "The gain is not to be trusted (cite evidence).", MarkUnstable, mark),
             _escalate_tool(team, node, None, state)]
    bridge = Bridge(team.clients, "critic", tools)
    await bridge.load()
    noticed = [f"alert:{a.id} [{a.severity}] {a.kind}: {a.message}" for a in tree.store.alerts() if a.node == node.id]
    noticed += [f"[{f.severity}] {f.kind}: {f.message}" for f in findings]
    prompt = render("critic_keep", node=node.id, title=node.title, change=node.change,
                    gain=f"{cmp.rel_change:+.1%}", interval=f"{cmp.ci_low:+.1%} to {cmp.ci_high:+.1%}",
                    base=base.id, repeats=len(rows(node)), measurements="; ".join(rows(node)),
                    base_measurements="; ".join(rows(base)), alerts="\n".join(noticed) or "(none)")
    await team.run("critic", _system(team, tree), prompt, bridge, node.id, done=lambda: state["decided"])
    return state["unstable"]


async def review(team: Team, tree: SearchTree, evaluated: int, elapsed_s: float) -> None:
    """A periodic stability review over the whole trajectory."""
    state: dict[str, Any] = {}

    def alert(args: RaiseAlert) -> str:
        cited = evidence.check(team.store, args.evidence)
        team.store.add_alert(args.severity, "stability_review", args.message, cited | {"by": "critic"})
        return "alert raised"

    tools = [local_tool("raise_alert", "Raise an alert about the trajectory (cite evidence).", RaiseAlert, alert),
             _escalate_tool(team, None, None, state)]
    bridge = Bridge(team.clients, "critic", tools)
    await bridge.load()
    events = [f"event:{e.seq} {e.kind} node {e.node}: {str(e.data)[:200]}" for e in tree.store.events()
              if e.kind not in ("agent_run", "orchestrator_proposed")][-30:]
    alerts = [f"alert:{a.id} [{a.severity}] {a.kind}: {a.message[:200]}" for a in tree.store.alerts()][-20:]
    prompt = render("critic_review", evaluated=evaluated, elapsed=f"{elapsed_s:.0f}",
                    budget=f"{tree.spec.budget.wall_clock_s:.0f}", tree=briefing.tree(tree),
                    alerts="\n".join(alerts) or "(none)", events="\n".join(events))
    await team.run("critic", _system(team, tree), prompt, bridge, None)


def _system(team: Team, tree: SearchTree) -> str:
    return render("critic", target=briefing.target(tree.spec, team.context),
                  hardware=briefing.hardware(tree.spec, team.context), knobs=briefing.knobs(tree.spec))
