"""The LLM Critic: root-cause analysis after a crash, introspection after a regression, escalation."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from arbor.tools.errors import InputError

from .. import policy
from ..models import Constraint, Node
from . import briefing, evidence
from .bridge import Bridge, LocalTool, local_tool
from .prompts import render
from .proposals import ProposedAction, Value, queued, validate

if TYPE_CHECKING:
    from ..engine import Campaign
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


def _constraint(c: Campaign, knob: str, op: str, value: Any, requires: dict[str, Any], node: Node,
                must_cover: bool) -> tuple[str, str, Any, dict[str, Any]]:
    """Validate a region against the knob space (and that it explains `node`'s config when `must_cover`)."""
    knobs = {k.name: k for k in c.spec.knobs}
    if knob not in knobs:
        raise InputError(f"unknown knob {knob!r}; the knob space is {sorted(knobs)}")
    value = knobs[knob].validate_value(value)
    if op != "eq" and knobs[knob].type not in ("int", "float"):
        raise InputError(f"{knob} is not numeric: use op 'eq'")
    clean = {}
    for name, needed in requires.items():
        if name not in knobs:
            raise InputError(f"requires: unknown knob {name!r}")
        clean[name] = knobs[name].validate_value(needed)
    probe = Constraint(id=0, knob=knob, op=op, value=value, requires=clean, reason="", evidence={}, node=None,
                       created_at=0.0, expires_at=None)  # type: ignore[arg-type]
    if must_cover and policy.violates([probe], node.config) is None:
        raise InputError(f"the crashed configuration {node.config} is outside {knob} {op} {value!r}"
                         + (f" unless {clean}" if clean else "") + ": this constraint does not explain the crash")
    return knob, op, value, clean


def _escalate_tool(c: Campaign, node: Node | None, log_path: str | None, state: dict[str, Any]) -> LocalTool:
    def escalate(args: Escalate) -> str:
        cited = evidence.check(c.store, args.evidence, log_path)
        c.store.add_alert("critical", "escalation", args.message, cited | {"by": "critic"},
                          node.id if node else None, True)
        state["escalated"] = True
        return "escalated to the operator"
    return local_tool("escalate", "Ask a human to look: the infrastructure itself is failing.", Escalate, escalate)


async def crash_rca(team: Team, c: Campaign, node: Node, failure: dict[str, Any]) -> Constraint | None:
    """Root-cause analysis of a crash; the constraint the Critic published (evidence checked), or None."""
    log_path = failure.get("log_path")
    state: dict[str, Any] = {"constraint": None}

    def read_log(args: ReadLog) -> str:
        lines = evidence.log_lines(log_path)
        window = lines[args.first_line - 1: args.first_line - 1 + args.count]
        body = "\n".join(f"{args.first_line + i}: {line[:400]}" for i, line in enumerate(window))
        return f"{Path(log_path or '?').name}, {len(lines)} lines\n{body}"

    def publish(args: PublishConstraint) -> str:
        knob, op, value, requires = _constraint(c, args.knob, args.op, args.value, args.requires, node, True)
        cited = evidence.check(c.store, args.evidence, log_path)
        cid = c.store.add_constraint(knob, op, value, args.reason, cited | {"by": "critic", "node": node.id,
                                                                            "failure": failure.get("kind")},
                                     node.id, requires=requires or None)
        state["constraint"] = next(x for x in c.store.constraints() if x.id == cid)
        return f"constraint {cid} published"

    tools = [local_tool("read_log", "Read lines of the crashed server's log (numbered).", ReadLog, read_log),
             local_tool("publish_constraint", "Publish the knob region this crash rules out (cite evidence).",
                        PublishConstraint, publish), _escalate_tool(c, node, log_path, state)]
    bridge = Bridge(team.clients, "critic", tools)
    await bridge.load()
    crashes = [n for n in c.store.nodes("crashed") if n.id != node.id]
    prompt = render("critic_crash", node=node.id, title=node.title, change=node.change, failure=failure.get("kind"),
                    summary=failure.get("summary", ""), log_lines=len(evidence.log_lines(log_path)),
                    lines=[f"line {e['line']}: {e['text']}" for e in failure.get("evidence", [])],
                    history="\n".join(briefing.node_line(n) for n in crashes[-10:]) or "(none)")
    await team.run("critic", _system(c), prompt, bridge, node.id, done=lambda: state["constraint"] is not None)
    return state["constraint"]


async def introspect(team: Team, c: Campaign, node: Node) -> bool:
    """After a regression: refined sub-actions or a prune, with evidence; False when the Critic gave neither."""
    base = c.baseline_node()
    state: dict[str, Any] = {"done": False}

    def refine(args: Refine) -> dict[str, Any]:
        cited = evidence.check(c.store, args.evidence)
        evaluated = c.evaluated_keys()
        pending = queued(c.store, base.config)
        added, rejected = [], []
        for i, proposal in enumerate(args.actions):
            try:
                ok = validate(c.spec, base.config, proposal, evaluated, pending, c.store.constraints(), "critic")
            except InputError as exc:
                rejected.append({"index": i, "error": str(exc)})
                continue
            pending.add(policy.config_key(ok.config))
            child = c.store.add_node(parent=node.id, depth=node.depth + 1, status="proposed", title=ok.action.title,
                                     category=ok.action.category, layer=ok.action.layer, kind=ok.action.kind,
                                     change=ok.action.change, config=ok.config, rationale=ok.action.rationale,
                                     proposer="critic", priors={"proposer_estimate": ok.estimate,
                                                                "proposer_cost_s": ok.cost_s, "task": ok.task})
            added.append(child.id)
        if added:
            state["done"] = True
            c.store.event("critic_refined", node.id, reason=args.reason, children=added, evidence=cited["ids"])
        return {"added_nodes": added, "rejected": rejected}

    def prune(args: Prune) -> str:
        knob, op, value, _ = _constraint(c, args.knob, args.op, args.value, {}, node, False)
        cited = evidence.check(c.store, args.evidence)
        cid = c.store.add_constraint(knob, op, value, args.reason, cited | {"by": "critic", "node": node.id},
                                     node.id)
        state["done"] = True
        return f"pruned: constraint {cid}"

    tools = [local_tool("refine", "The idea is alive: queue better-aimed sub-actions (validated).", Refine, refine),
             local_tool("prune", "The idea is dead: rule out its direction (cite evidence).", Prune, prune),
             _escalate_tool(c, node, None, state)]
    bridge = Bridge(team.clients, "critic", tools)
    await bridge.load()
    interval = "n/a" if node.gain_low is None else f"{node.gain_low:+.1%} to {node.gain_high:+.1%}"
    prompt = render("critic_regression", node=node.id, title=node.title, diagnosis=node.diagnosis or "",
                    change=node.change, gain="n/a" if node.gain is None else f"{node.gain:+.1%}", interval=interval,
                    measurements=[m["id"] for m in c.store.measurements(node.id, "primary")],
                    history=briefing.similar(c, node.category))
    await team.run("critic", _system(c), prompt, bridge, node.id, done=lambda: state["done"])
    return state["done"]


async def review_keep(team: Team, c: Campaign, node: Node, cmp: dict[str, Any]) -> str | None:
    """The Critic's look before a keep: the reason of an instability mark (evidence checked), or None."""
    base = c.baseline_node()
    state: dict[str, Any] = {"decided": False, "unstable": None}

    def approve(args: Approve) -> str:
        state["decided"] = True
        c.store.event("critic_approved", node.id, reason=args.reason)
        return "approved"

    def mark(args: MarkUnstable) -> str:
        cited = evidence.check(c.store, args.evidence)
        c.store.add_alert("warning", "unstable", f"the Critic marks {node.title} unstable: {args.reason}",
                          cited | {"by": "critic"}, node.id)
        state["decided"], state["unstable"] = True, args.reason
        return "marked unstable: the node will not be kept"

    def rows(n: Node) -> list[str]:
        return [f"measurement:{m['id']}: {m['metrics']['output_throughput']:.1f}, {m['metrics']['median_ttft_ms']:.0f}"
                for m in c.store.measurements(n.id, "primary")]

    tools = [local_tool("approve", "The gain is real: keep it.", Approve, approve),
             local_tool("mark_unstable", "The gain is not to be trusted (cite evidence).", MarkUnstable, mark),
             _escalate_tool(c, node, None, state)]
    bridge = Bridge(team.clients, "critic", tools)
    await bridge.load()
    alerts = [f"alert:{a.id} [{a.severity}] {a.kind}: {a.message}" for a in c.store.alerts() if a.node == node.id]
    prompt = render("critic_keep", node=node.id, title=node.title, change=node.change,
                    gain=f"{cmp['rel_change']:+.1%}", interval=f"{cmp['ci_low']:+.1%} to {cmp['ci_high']:+.1%}",
                    base=base.id, repeats=len(rows(node)), measurements="; ".join(rows(node)),
                    base_measurements="; ".join(rows(base)), alerts="\n".join(alerts) or "(none)")
    await team.run("critic", _system(c), prompt, bridge, node.id, done=lambda: state["decided"])
    return state["unstable"]


async def review(team: Team, c: Campaign, evaluated: int) -> None:
    """A periodic stability review over the whole trajectory."""
    state: dict[str, Any] = {}

    def alert(args: RaiseAlert) -> str:
        cited = evidence.check(c.store, args.evidence)
        c.store.add_alert(args.severity, "stability_review", args.message, cited | {"by": "critic"})
        return "alert raised"

    tools = [local_tool("raise_alert", "Raise an alert about the trajectory (cite evidence).", RaiseAlert, alert),
             _escalate_tool(c, None, None, state)]
    bridge = Bridge(team.clients, "critic", tools)
    await bridge.load()
    events = [f"event:{e.seq} {e.kind} node {e.node}: {str(e.data)[:200]}" for e in c.store.events()
              if e.kind not in ("agent_run", "orchestrator_proposed")][-30:]
    alerts = [f"alert:{a.id} [{a.severity}] {a.kind}: {a.message[:200]}" for a in c.store.alerts()][-20:]
    prompt = render("critic_review", evaluated=evaluated, elapsed=f"{c.elapsed():.0f}",
                    budget=f"{c.spec.budget.wall_clock_s:.0f}", tree=briefing.tree(c),
                    alerts="\n".join(alerts) or "(none)", events="\n".join(events))
    await team.run("critic", _system(c), prompt, bridge, None)
    c.store.set_meta("last_review_at", evaluated)


def _system(c: Campaign) -> str:
    return render("critic", target=f"{c.spec.target.stack} serving {c.context.get('model')}",
                  hardware=briefing.hardware(c), knobs=briefing.knobs(c))
