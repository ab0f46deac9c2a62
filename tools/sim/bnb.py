"""The exact optimum of a large simulated stack by branch and bound over its knobs."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .model import Region, Scenario, Value


@dataclass
class _Knob:
    """One knob compiled: its values and, per value, a factor per category."""

    name: str
    values: list[Value]
    factors: list[list[float]]


@dataclass
class _Region:
    """One region compiled: which values of which knobs (by search position) it needs, and its scales."""

    needs: dict[int, list[bool]]  # position -> does value j match
    scale: list[float]
    last: int = -1

    def alive(self, assign: list[int], upto: int) -> bool:
        """Whether every knob of the region before position `upto` took a value it needs."""
        return all(mask[assign[p]] for p, mask in self.needs.items() if p < upto)


def branch_and_bound(s: Scenario) -> dict[str, Value] | None:
    """The valid configuration with the least time per token (the highest rate), or None when none is valid."""
    cats = list(s.categories)
    regions = [*s.interaction, *s.crash, *s.corrupt, *s.trap]
    in_region = {name for r in regions for name in r.when}
    knobs = [_compile(k.name, k.domain(), [_factors(cats, k.factors(v)) for v in k.domain()],
                      k.name not in in_region, k.domain().index(k.default)) for k in s.knob]
    # Knobs that move the most time first: the bound tightens fastest and the rest are nearly decided.
    base = [s.categories[c] for c in cats]
    knobs.sort(key=lambda k: -_spread(k, base) - _region_weight(k.name, s.interaction, s.categories))
    position = {k.name: i for i, k in enumerate(knobs)}
    interactions = [r for r in (_region(x, knobs, position, cats) for x in s.interaction) if r is not None]
    flaws = [r for r in (_region(x, knobs, position, cats) for x in (*s.crash, *s.corrupt, *s.trap)) if r is not None]
    if any(not r.needs for r in flaws):
        return None  # a region that holds everywhere: nothing is valid
    n = len(knobs)
    # suffix[i][c]: the least factor knobs i.. can put on category c, each choosing its own best value.
    suffix = [[1.0] * len(cats) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        suffix[i] = [suffix[i + 1][c] * min(f[c] for f in knobs[i].factors) for c in range(len(cats))]
    start = list(base)
    for r in interactions:
        for c, x in enumerate(r.scale):
            start[c] *= x if not r.needs else min(1.0, x)  # an empty region always holds
    touching = [[r for r in interactions if i in r.needs] for i in range(n)]
    closing = [[r for r in flaws if r.last == i] for i in range(n)]
    best_total, best_assign = math.inf, None
    assign = [0] * n

    def child(i: int, j: int, cur: list[float]) -> list[float] | None:
        """The state after knob i takes value j: None when a flaw region now surely holds."""
        assign[i] = j
        if any(r.needs[i][j] and r.alive(assign, i) for r in closing[i]):
            return None
        new = [x * f for x, f in zip(cur, knobs[i].factors[j], strict=True)]
        for r in touching[i]:
            if not r.alive(assign, i):
                continue  # already excluded higher up
            if not r.needs[i][j]:  # excluded now: drop the optimism it lent the bound
                new = [x / min(1.0, sc) for x, sc in zip(new, r.scale, strict=True)]
            elif r.last == i:  # holds: its real scale replaces the optimistic one
                new = [x * sc / min(1.0, sc) for x, sc in zip(new, r.scale, strict=True)]
        return new

    def search(i: int, cur: list[float]) -> None:
        nonlocal best_total, best_assign
        if i == n:
            if sum(cur) < best_total:
                best_total, best_assign = sum(cur), list(assign)
            return
        options = []
        for j in range(len(knobs[i].values)):
            new = child(i, j, cur)
            if new is not None:
                # No completion is faster than every open knob and open interaction at its least factor per
                # category (flaw regions ignored until they surely hold): prune when even that is no better.
                bound = sum(x * m for x, m in zip(new, suffix[i + 1], strict=True))
                if bound < best_total:
                    options.append((bound, j, new))
        for bound, j, new in sorted(options, key=lambda o: o[0]):  # the likeliest first: the incumbent improves fast
            if bound >= best_total:
                break
            assign[i] = j
            search(i + 1, new)

    search(0, start)
    if best_assign is None:
        return None
    chosen = {k.name: k.values[j] for k, j in zip(knobs, best_assign, strict=True)}
    return {k.name: chosen[k.name] for k in s.knob}


def _factors(cats: list[str], effect: dict[str, float]) -> list[float]:
    return [effect.get(c, 1.0) for c in cats]


def _compile(name: str, values: list[Value], factors: list[list[float]], free: bool, default: int) -> _Knob:
    """The knob with, when no region names it, every value dropped that another is at least as fast as."""
    if not free:
        return _Knob(name, values, factors)
    order = [default, *(j for j in range(len(values)) if j != default)]  # ties keep the default
    kept: list[int] = []
    for j in order:
        if not any(all(a <= b for a, b in zip(factors[k], factors[j], strict=True)) for k in kept):
            kept = [k for k in kept if not all(a <= b for a, b in zip(factors[j], factors[k], strict=True))]
            kept.append(j)
    return _Knob(name, [values[j] for j in kept], [factors[j] for j in kept])


def _region(r: Region, knobs: list[_Knob], position: dict[str, int], cats: list[str]) -> _Region | None:
    """The region compiled, or None when it can never hold (a value outside the knob's domain)."""
    needs = {position[k]: [value == v for value in knobs[position[k]].values] for k, v in r.when.items()}
    if not all(any(mask) for mask in needs.values()):
        return None
    return _Region(needs, _factors(cats, r.scale), max(needs, default=-1))


def _spread(k: _Knob, base: list[float]) -> float:
    """How much time the knob's choice can move at the defaults."""
    return sum(b * (max(f[c] for f in k.factors) - min(f[c] for f in k.factors)) for c, b in enumerate(base))


def _region_weight(name: str, interaction: list[Region], categories: dict[str, float]) -> float:
    return sum(categories[c] * abs(1.0 - x) for r in interaction if name in r.when for c, x in r.scale.items())
