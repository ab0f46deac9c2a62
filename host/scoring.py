"""The score of a candidate action, with every term kept for the node and the TUI.

score(a) = U · (R · (1 + G(a)) − 1) · (1 − p_crash[k]) · (1 − p_regress[k]) / C(a)  +  c · sqrt(ln N / n[k])

R is the measured value of the configuration the action extends over the current best's (1 when it
extends the best itself, where the exploit term is U·G·…/C), never above 1: a configuration that
was not kept is not assumed better than the best, however its repeats read, so an action on another
branch must make up the gap before it gains anything. Which branches get candidates at all is the
tree's UCB over branches (`SearchTree.branches`); n[b], the evaluations made from the configuration
an action extends, is kept beside the terms.
"""

from __future__ import annotations

import math

from arbor.kb.models import Prior

from .models import ScoreTerms

# Which profile categories an action's layer can speed up. Graph capture and compilation remove launch
# gaps and fuse elementwise work; layers that shape the whole step (scheduling, runtime, batching) have
# no one target.
LAYER_TARGETS = {
    "attention": ("attention",),
    "gemm": ("gemm",),
    "moe": ("moe",),
    "communication": ("communication",),
    "parallelism": ("communication", "gemm"),
    "norm": ("norm_elementwise",),
    "sampling": ("sampling",),
    "kernels": ("gemm", "attention"),
    "graph": ("host_idle", "norm_elementwise"),
    "openmp": ("omp_spin",),  # OMP_WAIT_POLICY, GOMP_SPINCOUNT: what idle threads do between parallel regions
}


def time_share(layer: str | None, categories: dict[str, float] | None) -> float:
    """The profiled share of time the action can act on (1.0 with no profile).

    A whole-step layer touches all of the time but speeds none of it as a kernel swap speeds its target:
    crediting it with all of it put every batching knob ahead of any move on a 60% bottleneck. It gets
    what an average profiled category holds, so the profile's bottleneck comes first.
    """
    if not categories:
        return 1.0
    if layer not in LAYER_TARGETS:
        present = [v for v in categories.values() if v > 0]
        return max(0.05, sum(present) / len(present)) if present else 1.0
    return max(0.05, sum(categories.get(c, 0.0) for c in LAYER_TARGETS[layer]))


def urgency(current: float | None, target: float | None, maximum: float) -> float:
    """1 when the throughput target is met, rising toward `maximum` as the gap grows."""
    if not target or current is None or current >= target:
        return 1.0
    gap = (target - current) / target
    return 1.0 + (maximum - 1.0) * min(1.0, gap)


def score(prior: Prior, share: float, urgency_value: float, cost_s: float, unit_cost_s: float, exploration: float,
          n_total: int, n_category: int, relative: float = 1.0, speedup_high: float | None = None,
          n_branch: int = 0) -> ScoreTerms:
    """All terms of the score for one candidate (`speedup_high`: its optimistic speedup, the prior's by default)."""
    relative = min(1.0, relative)
    gain = share * prior.speedup * prior.multiplier
    high = share * max(prior.speedup, speedup_high if speedup_high is not None else prior.speedup) * prior.multiplier
    cost = max(0.05, cost_s / max(unit_cost_s, 1e-6))
    exploit = urgency_value * (relative * (1 + gain) - 1) * (1 - prior.p_crash) * (1 - prior.p_regress) / cost
    explore = exploration * math.sqrt(math.log(max(n_total, 1) + 1) / (n_category + 1))
    return ScoreTerms(urgency=urgency_value, time_share=share, speedup=prior.speedup, multiplier=prior.multiplier,
                      gain=gain, p_crash=prior.p_crash, p_regress=prior.p_regress, cost_s=cost_s, cost=cost,
                      relative=relative, bound=relative * (1 + high) - 1, exploit=exploit, explore=explore,
                      n_total=n_total, n_category=n_category, n_branch=n_branch, prior_level=prior.level,
                      prior_n=prior.n, score=exploit + explore)
