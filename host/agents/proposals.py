"""What an agent may propose, and the validation every proposal passes before it touches the tree."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from arbor.tools.errors import InputError

from .. import policy
from ..models import Action, Constraint
from ..spec import CampaignSpec
from ..store import CampaignStore

Value = bool | int | float | str | None


class ProposedAction(BaseModel):
    """One action as a model proposes it."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["config", "env", "kernel"] = "config"
    change: dict[str, Value] = Field(default_factory=dict,
                                     description="config/env: knob name -> new value (null = back to the default)")
    task: str | None = Field(None, description="kernel: the name of a configured kernel task to rewrite")
    title: str | None = Field(None, max_length=200)
    rationale: str = Field(min_length=1, max_length=2000, description="why, grounded in the profile or history")
    speedup_estimate: float = Field(ge=-1.0, le=10.0, description="expected relative gain, 0.1 = +10%")
    cost_estimate_s: float = Field(0.0, ge=0, le=86_400, description="implementation time beyond one evaluation")


class Accepted(BaseModel):
    """A proposal that passed validation, ready to become a node."""

    action: Action
    config: dict[str, Any]
    estimate: float
    cost_s: float
    task: str | None = None


def queued(store: CampaignStore, base: dict[str, Any]) -> set[str]:
    """Keys of the configurations the proposed nodes would run from `base` (the current best)."""
    return {policy.config_key(policy.apply(base, n.change)) for n in store.nodes("proposed")}


def validate_injection(spec: CampaignSpec, store: CampaignStore, payload: dict[str, Any]) -> Accepted:
    """An operator's hypothesis ({change, rationale?, title?, speedup_estimate?}) checked like any proposal."""
    best = store.meta("baseline_node")
    base = store.node(int(best)).config if best is not None else {}
    proposal = ProposedAction(change=payload.get("change") or {}, title=payload.get("title"),
                              rationale=str(payload.get("rationale") or "injected by the operator"),
                              speedup_estimate=float(payload.get("speedup_estimate", 0.0)))
    return validate(spec, base, proposal, set(store.meta("evaluated", [])), queued(store, base),
                    store.constraints(), "operator")


def validate(spec: CampaignSpec, base: dict[str, Any], proposal: ProposedAction, evaluated: set[str],
             pending: set[str], constraints: list[Constraint], proposer: str) -> Accepted:
    """An Accepted action, or InputError saying exactly what is wrong (fed back to the model)."""
    knobs = {k.name: k for k in spec.knobs}
    if proposal.kind == "kernel":
        tasks = {t.name: t for t in spec.agent.kernel_tasks}
        if proposal.task not in tasks:
            raise InputError(f"kernel actions name a configured kernel task; got {proposal.task!r}, "
                             f"configured: {sorted(tasks) or 'none'}")
        if proposal.change:
            raise InputError("a kernel action changes code, not knobs: leave `change` empty")
        task = tasks[proposal.task]
        marker = {f"kernel:{task.name}": True}
        key = policy.config_key(base | marker)
        if key in evaluated or key in pending:
            raise InputError(f"kernel task {task.name!r} was already attempted or is queued")
        title = proposal.title or f"rewrite kernel {task.name}"
        action = Action(title=title, category=task.category, layer=task.layer, kind="kernel", change=marker,
                        rationale=proposal.rationale, proposer=proposer)
        return Accepted(action=action, config=base | marker, estimate=proposal.speedup_estimate,
                        cost_s=proposal.cost_estimate_s, task=task.name)
    if proposal.task is not None:
        raise InputError("`task` is for kernel actions only")
    if not proposal.change:
        raise InputError("a config action needs a non-empty `change` {knob: value}")
    change: dict[str, Any] = {}
    for name, value in proposal.change.items():
        if name not in knobs:
            raise InputError(f"unknown knob {name!r}; the knob space is {sorted(knobs)}")
        change[name] = None if value is None else knobs[name].validate_value(value)
        if proposal.kind == "env" and knobs[name].env is None:
            raise InputError(f"knob {name!r} is a flag, not an environment variable: use kind 'config'")
    config = policy.apply(base, change)
    if config == base:
        raise InputError(f"{change} is what the known-good configuration already runs")
    key = policy.config_key(config)
    if key in evaluated:
        raise InputError(f"the configuration {config} was already measured")
    if key in pending:
        raise InputError(f"the configuration {config} is already queued")
    ruled = policy.violates(constraints, config)
    if ruled is not None:
        need = f" unless {ruled.requires}" if ruled.requires else ""
        raise InputError(f"the Critic ruled out {ruled.knob} {ruled.op} {ruled.value!r}{need}: {ruled.reason}")
    (first, *_) = change
    action = Action(title=proposal.title or policy.describe(change, base), category=knobs[first].category,
                    layer=knobs[first].layer, kind=proposal.kind, change=change, rationale=proposal.rationale,
                    proposer=proposer)
    return Accepted(action=action, config=config, estimate=proposal.speedup_estimate,
                    cost_s=proposal.cost_estimate_s)
