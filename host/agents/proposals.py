"""What an agent may propose, and the validation every proposal passes before it touches the tree."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .. import policy
from ..errors import ProposalError
from ..models import Action, Constraint, ProposedBy
from ..spec import CampaignSpec

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


def validate(spec: CampaignSpec, base: dict[str, Any], proposal: ProposedAction, evaluated: set[str],
             pending: set[str], constraints: list[Constraint], proposer: ProposedBy) -> Accepted:
    """An Accepted action, or ProposalError saying exactly what is wrong (fed back to the model)."""
    knobs = {k.name: k for k in spec.knobs}
    if proposal.kind == "kernel":
        tasks = {t.name: t for t in spec.agent.kernel_tasks}
        if proposal.task not in tasks:
            raise ProposalError(f"kernel actions name a configured kernel task; got {proposal.task!r}, "
                             f"configured: {sorted(tasks) or 'none'}")
        if proposal.change:
            raise ProposalError("a kernel action changes code, not knobs: leave `change` empty")
        task = tasks[proposal.task]
        marker = {f"kernel:{task.name}": True}
        key = policy.config_key(base | marker)
        if key in evaluated or key in pending:
            raise ProposalError(f"kernel task {task.name!r} was already attempted or is queued")
        title = proposal.title or f"rewrite kernel {task.name}"
        action = Action(title=title, category=task.category, layer=task.layer, kind="kernel", change=marker,
                        rationale=proposal.rationale, proposer=proposer)
        return Accepted(action=action, config=base | marker, estimate=proposal.speedup_estimate,
                        cost_s=proposal.cost_estimate_s, task=task.name)
    if proposal.task is not None:
        raise ProposalError("`task` is for kernel actions only")
    if not proposal.change:
        raise ProposalError("a config action needs a non-empty `change` {knob: value}")
    change: dict[str, Any] = {}
    for name, value in proposal.change.items():
        if name not in knobs:
            raise ProposalError(f"unknown knob {name!r}; the knob space is {sorted(knobs)}")
        try:
            change[name] = None if value is None else knobs[name].validate_value(value)
        except ValueError as exc:
            raise ProposalError(str(exc)) from exc
        if proposal.kind == "env" and knobs[name].env is None:
            raise ProposalError(f"knob {name!r} is a flag, not an environment variable: use kind 'config'")
    config = policy.apply(base, change)
    if config == base:
        raise ProposalError(f"{change} is what the known-good configuration already runs")
    key = policy.config_key(config)
    if key in evaluated:
        raise ProposalError(f"the configuration {config} was already measured")
    if key in pending:
        raise ProposalError(f"the configuration {config} is already queued")
    ruled = policy.violates(constraints, config)
    if ruled is not None:
        need = f" unless {ruled.requires}" if ruled.requires else ""
        raise ProposalError(f"the Critic ruled out {ruled.knob} {ruled.op} {ruled.value!r}{need}: {ruled.reason}")
    (first, *_) = change
    action = Action(title=proposal.title or policy.describe(change, base), category=knobs[first].category,
                    layer=knobs[first].layer, kind=proposal.kind, change=change, rationale=proposal.rationale,
                    proposer=proposer)
    return Accepted(action=action, config=config, estimate=proposal.speedup_estimate,
                    cost_s=proposal.cost_estimate_s)
