"""The offline policy: knob moves from the knob space, refinements after a regression, constraints after a crash."""

from __future__ import annotations

import json
import os
import tomllib
from functools import cache
from importlib import resources
from typing import Any

from pydantic import BaseModel

from .models import Action, Constraint, ProposedBy
from .spec import CampaignSpec, SearchKnob


class Rule(BaseModel):
    """A prerequisite: `knob` set to anything but `unless` needs `requires` too."""

    knob: str
    unless: list[Any]
    requires: dict[str, Any]
    log: str = ""


@cache
def rules() -> list[Rule]:
    """The shipped prerequisite rules."""
    text = resources.files(__package__).joinpath("prerequisites.toml").read_text()
    return [Rule(**r) for r in tomllib.loads(text)["rule"]]


def config_key(config: dict[str, Any]) -> str:
    """A canonical key of a full configuration (to never evaluate the same one twice)."""
    return json.dumps({k: v for k, v in config.items() if v is not None}, sort_keys=True)


def apply(config: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    """The configuration after a change (None removes a knob, back to the server's default)."""
    out = dict(config)
    for knob, value in change.items():
        if value is None:
            out.pop(knob, None)
        else:
            out[knob] = value
    return out


def in_region(op: str, bound: Any, value: Any) -> bool:
    """`value` falls in the region `op` `bound` (eq, ge, le; unset values never do)."""
    if value is None:
        return False
    if op == "eq":
        return value == bound
    try:
        if op == "ge":
            return value >= bound
        if op == "le":
            return value <= bound
    except TypeError:
        return False
    return False


def violates(constraints: list[Constraint], config: dict[str, Any]) -> Constraint | None:
    """The first constraint whose region `config` falls in without meeting its requirements."""
    for constraint in constraints:
        if constraint.op == "text" or constraint.knob is None:
            continue
        if in_region(constraint.op, constraint.value, config.get(constraint.knob)) \
                and in_context(constraint.context, config):
            met = constraint.requires and all(config.get(k) == v for k, v in constraint.requires.items())
            if not met:
                return constraint
    return None


def in_context(context: dict[str, Any], config: dict[str, Any]) -> bool:
    """`config` holds every value of `context` (an empty context holds everywhere)."""
    return all(config.get(k) == v for k, v in context.items())


def prerequisite(knob: str, value: Any) -> dict[str, Any]:
    """What `knob=value` needs alongside it, from the rules."""
    needed: dict[str, Any] = {}
    for rule in rules():
        if rule.knob == knob and value not in rule.unless:
            needed |= rule.requires
    return needed


def describe(change: dict[str, Any], config: dict[str, Any]) -> str:
    """A change as an operator reads it: 'parallel: 4 -> 16, flash_attn=on'."""
    (first, value), *rest = change.items()
    current = config.get(first)
    return f"{first}: {'default' if current is None else current} -> {value}" + "".join(
        f", {k}={v}" for k, v in rest)


def _action(knob: SearchKnob, value: Any, current: Any, proposer: ProposedBy = ProposedBy.OFFLINE, rationale: str = "",
            extra: dict[str, Any] | None = None) -> Action:
    change = {knob.name: value} | (extra or {})
    return Action(title=describe(change, {} if current is None else {knob.name: current}), category=knob.category,
                  layer=knob.layer, kind="config", change=change,
                  rationale=rationale or knob.description or f"try {knob.name}={value}", proposer=proposer)


def propose(spec: CampaignSpec, config: dict[str, Any], evaluated: set[str],
            constraints: list[Constraint]) -> list[Action]:
    """Every single-knob move from `config` not evaluated before and not ruled out by a constraint.

    A value with a known prerequisite is proposed together with it.
    """
    actions = []
    for knob in spec.knobs:
        current = config.get(knob.name)
        effective = current if current is not None else knob.default
        for value in knob.values:
            if value == effective:
                continue  # already what the server runs with
            extra = {k: v for k, v in prerequisite(knob.name, value).items() if config.get(k) != v}
            action = _action(knob, value, current, extra=extra)
            after = apply(config, action.change)
            if config_key(after) in evaluated or violates(constraints, after):
                continue
            actions.append(action)
    return actions


def refine_after_regression(spec: CampaignSpec, config: dict[str, Any], action: Action,
                            evaluated: set[str], constraints: list[Constraint]) -> list[Action]:
    """Introspection: the other direction, a half step, or a prerequisite knob for a move that regressed."""
    knobs = {k.name: k for k in spec.knobs}
    refined: list[Action] = []
    for name, value in action.change.items():
        knob = knobs.get(name)
        if knob is None:
            continue
        current = config.get(name)
        if knob.type in ("int", "float") and isinstance(value, (int, float)) and isinstance(current, (int, float)):
            mid = (value + current) / 2
            mid = int(round(mid)) if knob.type == "int" else mid
            if mid not in (value, current):
                try:
                    refined.append(_action(knob, knob.validate_value(mid), current, ProposedBy.INTROSPECTION,
                                           f"half step: {name}={value} regressed from {current}"))
                except ValueError:
                    pass
            opposite = [v for v in knob.values if (v - current) * (value - current) < 0]
            if opposite:
                nearest = min(opposite, key=lambda v: abs(v - current))
                refined.append(_action(knob, nearest, current, ProposedBy.INTROSPECTION,
                                       f"other direction: {name}={value} regressed"))
        needed = {k: v for k, v in prerequisite(name, value).items() if config.get(k) != v
                  and action.change.get(k) != v}
        if needed:
            refined.append(_action(knob, value, current, ProposedBy.INTROSPECTION,
                                   f"{name}={value} needs {needed}", extra=needed))
    out = []
    for candidate in refined:
        after = apply(config, candidate.change)
        if config_key(after) not in evaluated and not violates(constraints, after):
            out.append(candidate)
    return out


def combine_near_misses(spec: CampaignSpec, config: dict[str, Any], misses: list[tuple[Action, float]],
                        evaluated: set[str], constraints: list[Constraint]) -> tuple[Action, float] | None:
    """Introspection of moves that measured a gain too small to settle: all of them at once, and their summed gain.

    Alone each hides in the noise; together their gains add up (and knobs that only pay
    together get tried together). The largest gain comes first and names the action.
    """
    change: dict[str, Any] = {}
    parts = []
    for action, gain in sorted(misses, key=lambda m: -m[1]):
        if gain <= 0 or any(k in change for k in action.change):
            continue
        change |= action.change
        parts.append((action, gain))
    if len(parts) < 2:
        return None
    after = apply(config, change)
    if config_key(after) in evaluated or violates(constraints, after):
        return None
    lead = parts[0][0]
    gains = ", ".join(f"{a.title} {g:+.1%}" for a, g in parts)
    action = Action(title="together: " + describe(change, config), category=lead.category, layer=lead.layer,
                    kind="config", change=change, proposer=ProposedBy.INTROSPECTION,
                    rationale=f"each gained too little to settle alone ({gains}); together they may clear the noise")
    return action, sum(g for _, g in parts)


def pair_moves(config: dict[str, Any], moves: list[tuple[Action, float, float]], evaluated: set[str],
               constraints: list[Constraint], limit: int = 6) -> list[tuple[Action, float]]:
    """Once every one-knob move is measured: pairs of moves (gain, upper bound) not shown to regress.

    Such a move was not shown useful either: its gain hid in the noise, or it pays only with a partner
    (CUDA graphs with a bigger batch). Two together stand against the same noise with their gains
    added. Each pair comes with an estimate halfway between its measured and its optimistic gain;
    the most promising pairs first.
    """
    moves = [(a, g, h) for a, g, h in moves if any(config.get(k) != v for k, v in a.change.items())]
    pairs = []
    for i, (a, ga, ha) in enumerate(moves):
        for b, gb, hb in moves[i + 1:]:
            if set(a.change) & set(b.change):
                continue
            change = a.change | b.change
            after = apply(config, change)
            if config_key(after) in evaluated or violates(constraints, after):
                continue
            estimate = (ga + ha + gb + hb) / 2
            action = Action(title="pair: " + describe(change, config), category=a.category, layer=a.layer,
                            kind="config", change=change, proposer=ProposedBy.INTROSPECTION,
                            rationale=f"not settled alone ({a.title} {ga:+.1%} up to {ha:+.1%}, {b.title} "
                                      f"{gb:+.1%} up to {hb:+.1%}); together they may clear the noise or interact")
            pairs.append((action, estimate))
    unique = {config_key(a.change): (a, e) for a, e in pairs}
    return sorted(unique.values(), key=lambda p: -p[1])[:limit]


SLOT_KNOBS = ("parallel", "max_num_seqs", "max_running_requests")
THREAD_KNOBS = ("threads", "threads_batch")
DEFAULT_SLOTS = {"llamacpp": 4}


def estimate(spec: CampaignSpec, config: dict[str, Any], change: dict[str, Any]) -> float | None:
    """The proposer's own speedup estimate, used where the knowledge base has no history.

    Slots below the offered concurrency make requests queue, so raising them toward it
    pays; threads beyond this machine's cores make them fight over a barrier.
    """
    knob, value = next(iter(change.items()))
    if knob in SLOT_KNOBS and isinstance(value, int):
        conc = spec.workload.concurrency
        current = config.get(knob, DEFAULT_SLOTS.get(spec.target.stack, conc))
        served_now, served_then = min(current, conc), min(value, conc)
        return max(-0.5, min(0.5, 0.4 * (served_then - served_now) / conc)) - (0.02 if value > conc else 0.0)
    if knob in THREAD_KNOBS and isinstance(value, int):
        cores = os.cpu_count() or 1
        return -0.3 if value > cores else (-0.3 * (cores - value) / cores if value < cores else 0.02)
    return None


def crash_region(spec: CampaignSpec, config: dict[str, Any], action: Action) -> tuple[str, str, Any] | None:
    """The region a crash rules out: at or beyond the value in the direction moved, or the exact value.

    Only a knob the action really moves counts: a combination re-applied on a baseline that already
    has some of its values must not rule out the baseline itself. When several knobs move at once
    (a pair, a combination), which one did it is not known, and the crash may need all of them: no
    single knob is ruled out (the exact configuration is never run again anyway). A value with its
    prerequisite counts as one move.
    """
    knobs = {k.name: k for k in spec.knobs}
    first = next(iter(action.change), None)
    moved = [n for n, v in action.change.items() if n in knobs and config.get(n, knobs[n].default) != v
             and (n == first or n not in prerequisite(first, action.change[first]))]
    if len(moved) != 1:
        return None
    name = moved[0]
    knob, value, current = knobs[name], action.change[name], config.get(name)
    # A numeric move rules out its direction beyond the value; from an unknown default, only the value.
    if knob.type in ("int", "float") and isinstance(value, (int, float)) and isinstance(current, (int, float)):
        return (name, "le", value) if value < current else (name, "ge", value)
    return name, "eq", value


def _effective(spec: CampaignSpec, config: dict[str, Any], name: str) -> Any:
    knob = next((k for k in spec.knobs if k.name == name), None)
    value = config.get(name)
    return knob.default if value is None and knob is not None else value


def same_value(spec: CampaignSpec, a: dict[str, Any], b: dict[str, Any], name: str) -> bool:
    """Knob `name` runs with the same value in both configurations (a default stated or left out alike)."""
    return _effective(spec, a, name) == _effective(spec, b, name)


def crash_context(spec: CampaignSpec, crashed: dict[str, Any], knob: str, ran: list[dict[str, Any]]) -> dict[str, Any]:
    """What a crash of `knob` may need besides it: the knobs (with their earlier values) that differ from the
    nearest configuration that ran the same value without crashing; empty when no such configuration ran.

    CUDA graphs that ran at the default batch and crash at 256 sequences with aggressive GEMM tuning crash
    through a partner, not on their own: ruling the value out for good would close the route to graphs
    with 128 sequences.
    """
    value = _effective(spec, crashed, knob)
    names = [k.name for k in spec.knobs if k.name != knob and k.name not in prerequisite(knob, value)]
    nearest: dict[str, Any] | None = None
    for config in ran:
        if _effective(spec, config, knob) != value:
            continue
        differs = {n: config.get(n) for n in names if _effective(spec, config, n) != _effective(spec, crashed, n)}
        if nearest is None or len(differs) < len(nearest):
            nearest = differs
    return nearest or {}



def crash_scope(where: dict[str, Any], earlier: list[dict[str, Any]], ran: list[dict[str, Any]]) -> dict[str, Any]:
    """Where a value crashes: `where` (the values it crashed among), or the widest part of it that an earlier
    crash of the same value shared and no configuration that ran the value without crashing holds.

    A value that crashed among several values changed since it ran crashes through one of them; which one
    is not known, so a first crash rules it out only among its own values. Crashed again among others,
    what the two crashes share is the likelier cause: without narrowing, every branch that differed in one
    unrelated knob tried the same crash again (twelve times in one 40-evaluation campaign).
    """
    shared = [{k: v for k, v in where.items() if context.get(k) == v} for context in earlier]
    fits = [s for s in shared if not any(in_context(s, config) for config in ran)]
    return min(fits, key=len) if fits else where

def step_back(spec: CampaignSpec, name: str, current: Any, earlier: Any) -> Any:
    """One step of knob `name` from `current` back toward `earlier`: the nearest listed value between the two,
    else `earlier` itself (None when that is the server's default)."""
    knob = next(k for k in spec.knobs if k.name == name)
    now, then = (current if current is not None else knob.default), (earlier if earlier is not None else knob.default)
    if isinstance(now, (int, float)) and isinstance(then, (int, float)) and not isinstance(now, bool):
        between = [v for v in knob.values if min(now, then) < v < max(now, then)]
        if between:
            return min(between, key=lambda v: abs(v - now))
    return None if then == knob.default else then
