"""Scoring a candidate from the tree: the prior it draws on, and every term of the score, kept for its node."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel

from arbor.kb.models import Prior

from . import policy
from .models import Node, ScoreTerms
from .scoring import score, time_share, urgency
from .tree import SearchTree

# What a node's priors carry through re-scoring (the rest is the KB's answer of the moment).
KEPT_PRIORS = ("proposer_estimate", "proposer_cost_s", "task", "retest_of", "last_resort")
Priors = Callable[[dict[str, Any]], Awaitable[Prior]]


class Scored(BaseModel):
    """A candidate's score with every term, and the priors behind it (stored on its node)."""

    terms: ScoreTerms
    priors: dict[str, Any]


class Scorer:
    """score(a) for the candidates of one campaign."""

    def __init__(self, tree: SearchTree, priors: Priors, unit_cost: Callable[[], float]) -> None:
        self.tree, self.priors, self.unit_cost = tree, priors, unit_cost

    async def score(self, node: Node, base: Node) -> Scored:
        """Every term of `node`'s score from `base`: the KB's prior, refined by what the tree measured."""
        spec = self.tree.spec
        knob, value = next(iter(node.change.items()))
        p = await self.priors({"category": node.category, "layer": node.layer, "knob": knob, "value": value})
        prior = p.model_dump()
        # The proposer's own estimate (an LLM's) where the KB has no history; else the offline policy's.
        proposer_estimate = node.priors.get("proposer_estimate")
        proposer_cost = float(node.priors.get("proposer_cost_s") or 0.0)
        guess = proposer_estimate if proposer_estimate is not None else policy.estimate(spec, base.config,
                                                                                        node.change)
        # A last resort is a fresh chance from here: judged on its prior, not on what it measured elsewhere.
        measured = self.tree.measured_speedup(node) if proposer_estimate is None and not node.priors.get(
            "last_resort") else None
        prior |= {k: node.priors[k] for k in KEPT_PRIORS if k in node.priors}
        if measured is not None:
            # This very move was measured from an earlier configuration: more specific than any pooled prior.
            prior |= {"speedup": measured, "kb_speedup": p.speedup, "source": "measured before"}
            p = p.model_copy(update={"speedup": measured})
        elif guess is not None and p.level != "exact":
            # With no history for this value the proposer's estimate stands alone; with history for the
            # knob (any value) it is averaged in, since pooled values do not know which way this one moves.
            speedup = guess if p.level == "global" else (p.speedup + guess) / 2
            source = "proposer" if proposer_estimate is not None else "offline policy"
            prior |= {"speedup": speedup, "kb_speedup": p.speedup, "estimate": guess,
                      "source": f"{source} estimate" if p.level == "global" else f"KB and {source} estimate"}
            p = p.model_copy(update={"speedup": speedup})
        evaluated = self.tree.actions_done()
        unit = self.unit_cost()
        terms = score(p, time_share(node.layer, self.tree.latest_profile(base)),
                      urgency(self.tree.mean_metric(base), spec.throughput_target, spec.search.urgency_max),
                      unit + proposer_cost, unit, spec.search.exploration, len(evaluated),
                      sum(1 for n in evaluated if n.category == node.category))
        return Scored(terms=terms, priors=prior)
