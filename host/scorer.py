"""Scoring a candidate from the tree: the prior it draws on, and every term of the score, kept for its node."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from pydantic import BaseModel

from arbor.kb.models import Prior

from . import policy
from .models import Node, ScoreTerms
from .scoring import score, time_share, urgency
from .tree import SearchTree

# What a node's priors carry through re-scoring (the rest is the KB's answer of the moment).
KEPT_PRIORS = ("proposer_estimate", "proposer_cost_s", "task", "retest_of", "last_resort", "branch")
Priors = Callable[[dict[str, Any]], Awaitable[Prior]]


class Scored(BaseModel):
    """A candidate's score with every term, and the priors behind it (stored on its node)."""

    terms: ScoreTerms
    priors: dict[str, Any]


class Step(NamedTuple):
    """What the tree has evaluated, counted once per step: in all, by category, from each configuration."""

    evaluated: int
    categories: Counter[str]
    visits: Counter[int | None]


class Scorer:
    """score(a) for the candidates of one campaign."""

    def __init__(self, tree: SearchTree, priors: Priors, unit_cost: Callable[[], float]) -> None:
        self.tree, self.priors, self.unit_cost = tree, priors, unit_cost
        self.cache: dict[str, Prior] = {}
        self.step: Step | None = None

    async def score(self, node: Node, best: Node) -> Scored:
        """Every term of `node`'s score: the KB's prior refined by what the tree measured, from the configuration
        it extends, against the current `best`."""
        spec = self.tree.spec
        base_id = self.tree.base_of(node)
        base = best if base_id is None or base_id == best.id else self.tree.node(base_id)
        knob, value = next(iter(node.change.items()))
        p = await self.prior({"category": node.category, "layer": node.layer, "knob": knob, "value": value})
        prior = p.model_dump()
        # The proposer's own estimate (an LLM's) where the KB has no history; else the offline policy's.
        proposer_estimate = node.priors.get("proposer_estimate")
        proposer_cost = float(node.priors.get("proposer_cost_s") or 0.0)
        guess = proposer_estimate if proposer_estimate is not None else policy.estimate(spec, base.config,
                                                                                        node.change)
        # A last resort is a fresh chance from here: judged on its prior, not on what it measured elsewhere.
        fresh = proposer_estimate is not None or node.priors.get("last_resort")
        found = None if fresh else self.tree.measured_move(node)
        undone = None if fresh or found is not None else self.tree.undone_keep(node)
        prior |= {k: node.priors[k] for k in KEPT_PRIORS if k in node.priors}
        high = None
        if found is not None:
            # This very move was measured from another configuration: more specific than any pooled prior.
            # Where other knobs differed they may have held it back, so its optimism keeps the prior's.
            high = max(found.high, p.speedup) if found.distance > 0 else found.high
            prior |= {"speedup": found.speedup, "speedup_high": high, "kb_speedup": p.speedup,
                      "measured_distance": found.distance, "source": "measured before"}
            p = p.model_copy(update={"speedup": found.speedup})
        elif undone is not None:
            prior |= {"speedup": undone, "kb_speedup": p.speedup, "source": "a keep reversed"}
            p = p.model_copy(update={"speedup": undone})
        elif guess is not None and p.level != "exact":
            # With no history for this value the proposer's estimate stands alone; with history for the
            # knob (any value) it is averaged in, since pooled values do not know which way this one moves.
            speedup = guess if p.level == "global" else (p.speedup + guess) / 2
            source = "proposer" if proposer_estimate is not None else "offline policy"
            prior |= {"speedup": speedup, "kb_speedup": p.speedup, "estimate": guess,
                      "source": f"{source} estimate" if p.level == "global" else f"KB and {source} estimate"}
            p = p.model_copy(update={"speedup": speedup})
        if self.tree.crashed_before(node) and p.p_crash < 0.5:
            # Its constraint holds only where it crashed; here it may run, but as likely not.
            prior |= {"p_crash": 0.5, "kb_p_crash": p.p_crash}
            p = p.model_copy(update={"p_crash": 0.5})
        step = self.step_view()
        unit = self.unit_cost()
        top, here = self.tree.value(best), self.tree.value(base)
        relative = here / top if base.id != best.id and top and here else 1.0
        terms = score(p, time_share(node.layer, self.tree.latest_profile(base) or self.tree.latest_profile(best)),
                      urgency(self.tree.mean_metric(best), spec.throughput_target, spec.search.urgency_max),
                      unit + proposer_cost, unit, spec.search.exploration, step.evaluated,
                      step.categories[node.category], relative, high, step.visits[base.id])
        return Scored(terms=terms, priors=prior | {"base": base.id})

    async def prior(self, change: dict[str, Any]) -> Prior:
        """The KB's prior for a change, asked once per step (the KB learns only between steps)."""
        key = policy.config_key(change)
        if key not in self.cache:
            self.cache[key] = await self.priors(change)
        return self.cache[key]

    def step_view(self) -> Step:
        """The counts every score of this step shares, taken once."""
        if self.step is None:
            done = self.tree.actions_done()
            self.step = Step(len(done), Counter(n.category for n in done), self.tree.visit_counts())
        return self.step

    def new_step(self) -> None:
        """Forget the priors and counts of the last step: an outcome was recorded since."""
        self.cache.clear()
        self.step = None
