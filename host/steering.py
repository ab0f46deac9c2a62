"""Steering: the operator's commands, checked against the tree. The engine applies what `check` returns.

The TUI writes commands into the store and shows the engine's answer ("applied" or "refused: why");
it checks an injected hypothesis with `injection` before sending it, the same check the engine runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from .agents.proposals import ProposedAction, validate
from .errors import HostError, SteeringError
from .models import Candidate, Command, Node, ProposedBy, Status
from .store import CampaignStore, MetaName
from .tree import SearchTree

COMMANDS = ("pause", "resume", "stop", "prune", "veto", "pin", "boost", "inject", "ack", "answer")
# What may be applied while no campaign runs (a finished run's alerts can still be acknowledged).
OFFLINE = ("ack", "answer")


class Steer(BaseModel):
    """What a checked command does; the engine applies it."""

    meta: tuple[MetaName, Any] | None = Field(None, description="a run field to set: paused, stop_requested")
    prune: list[int] = Field(default_factory=list)
    why: str = Field("", description="the pruned nodes' diagnosis: prune or veto by the operator")
    pin: list[int] = Field(default_factory=list)
    ack: int | None = None
    answer: str | None = None
    inject: list[Candidate] = Field(default_factory=list)


def check(command: Command, tree: SearchTree) -> Steer:
    """What `command` does to this tree, or SteeringError saying why it is refused."""
    kind, payload = command.kind, command.payload
    if kind == "pause":
        return Steer(meta=("paused", True))
    if kind == "resume":
        return Steer(meta=("paused", False))
    if kind == "stop":
        return Steer(meta=("stop_requested", True))
    if kind in ("prune", "veto"):
        return Steer(prune=[n.id for n in _prunable(tree, _node(tree, payload), bool(payload.get("subtree")))],
                     why=f"{kind} by the operator")
    if kind in ("pin", "boost"):
        node = _node(tree, payload)
        if node.status != Status.PROPOSED:
            raise SteeringError(f"node {node.id} is {node.status}, only proposed nodes can be pinned")
        return Steer(pin=[node.id])
    if kind in ("ack", "answer"):
        alert = _number(payload, "alert")
        if alert not in {a.id for a in tree.store.alerts()}:
            raise SteeringError(f"no alert {alert}")
        answer = payload.get("answer")
        if kind == "answer" and not (isinstance(answer, str) and answer.strip()):
            raise SteeringError("an answer needs text")
        return Steer(ack=alert, answer=answer.strip() if kind == "answer" else None)
    if kind == "inject":
        return Steer(inject=[injection(tree, payload)])
    raise SteeringError(f"unknown command {kind!r}; known: {', '.join(COMMANDS)}")


def injection(tree: SearchTree, payload: dict[str, Any]) -> Candidate:
    """An operator's hypothesis ({change, rationale?, title?, speedup_estimate?}) checked like any proposal."""
    best = tree.store.meta("best_node")
    if best is None:
        raise SteeringError("the baseline is not measured yet: inject once the campaign has started")
    base = tree.node(best)
    config = base.config
    try:
        proposal = ProposedAction(change=payload.get("change") or {}, title=payload.get("title"),
                                  rationale=str(payload.get("rationale") or "injected by the operator"),
                                  speedup_estimate=float(payload.get("speedup_estimate", 0.0)))
    except (ValidationError, TypeError, ValueError) as exc:
        errors = exc.errors() if isinstance(exc, ValidationError) else None
        raise SteeringError("; ".join(e["msg"] for e in errors) if errors else str(exc)) from exc
    ok = validate(tree.spec, config, proposal, tree.evaluated_keys(), tree.queued_keys(config), tree.constraints(),
                  ProposedBy.OPERATOR)
    estimate = {"proposer_estimate": ok.estimate} if "speedup_estimate" in payload else {}
    return Candidate(action=ok.action, parent=base.id, config=ok.config, priors=estimate)


def answer(store: CampaignStore, tree: SearchTree, commands: list[Command], apply: Callable[[Steer], None]) -> None:
    """Check each command, apply what it does, and record the answer: "applied", or "refused: why"."""
    for command in commands:
        try:
            apply(check(command, tree))
        except HostError as exc:
            store.mark_command(command.id, f"refused: {str(exc).splitlines()[0]}")
        else:
            store.mark_command(command.id, "applied")


def apply_offline(store: CampaignStore, tree: SearchTree) -> None:
    """While no campaign runs: apply the pending acknowledgements and answers (the rest wait for a resume)."""
    pending = [c for c in store.commands(pending=True) if c.kind in OFFLINE]
    answer(store, tree, pending, lambda steer: store.ack_alert(steer.ack or 0, steer.answer))


def _number(payload: dict[str, Any], key: str) -> int:
    value = payload.get(key)
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise SteeringError(f"the command needs {key!r}: a number")
    return int(value)


def _node(tree: SearchTree, payload: dict[str, Any]) -> Node:
    return tree.node(_number(payload, "node"))


def _prunable(tree: SearchTree, node: Node, subtree: bool) -> list[Node]:
    """An operator's prune or veto: a proposed node, or every proposed node under it."""
    targets = [node]
    if subtree:
        children: dict[int, list[Node]] = {}
        for n in tree.nodes():
            children.setdefault(n.parent or 0, []).append(n)
        stack, targets = [node], []
        while stack:
            current = stack.pop()
            targets.append(current)
            stack += children.get(current.id, [])
    proposed = [n for n in targets if n.status == Status.PROPOSED]
    if not proposed:
        raise SteeringError(f"node {node.id} is {node.status} and nothing under it is proposed" if subtree else
                            f"node {node.id} is {node.status}, only proposed nodes can be pruned")
    return proposed
