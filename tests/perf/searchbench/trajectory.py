"""What a strategy did, evaluation by evaluation, and the metrics the comparison reports."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from .truth import Truth

Outcome = Literal["ok", "crashed", "inaccurate", "invalid"]


@dataclass
class Evaluation:
    """One configuration launched and measured (the unit of every budget here)."""

    config: dict[str, Any]
    outcome: Outcome
    measured: float | None = None  # output tok/s, one benchmark repeat (Arbor: the mean of its repeats)
    incumbent: dict[str, Any] = field(default_factory=dict)  # what the strategy would deploy after this one


@dataclass
class Trajectory:
    """A strategy's run on one scenario and seed."""

    strategy: str
    scenario: str
    seed: int
    evaluations: list[Evaluation] = field(default_factory=list)
    wall_s: float = 0.0
    bench_repeats: int = 0

    def metrics(self, truth: Truth, budget: int) -> dict[str, Any]:
        """Best valid gain at budget, evaluations to 95% of the optimum, crashes, invalid keeps, regret curve."""
        curve, reached, invalid_keeps, previous = [], None, 0, None
        for i, e in enumerate(self.evaluations[:budget], start=1):
            curve.append(truth.regret(e.incumbent))
            if e.incumbent != previous and truth.flaw(e.incumbent) and not truth.flaw(previous or {}):
                invalid_keeps += 1  # the keep that brought the flaw in; later keeps on top of it are not counted
            previous = e.incumbent
            if reached is None and not truth.flaw(e.incumbent) and truth.rate(e.incumbent) >= 0.95 * truth.best_rate:
                reached = i
        final = self.evaluations[min(budget, len(self.evaluations)) - 1].incumbent if self.evaluations else {}
        curve += [curve[-1] if curve else truth.regret({})] * (budget - len(curve))
        return {"strategy": self.strategy, "scenario": self.scenario, "seed": self.seed,
                "evaluations": min(budget, len(self.evaluations)), "evals_to_95": reached,
                "best_valid_gain": truth.gain(final), "final_config": final, "final_flaw": truth.flaw(final),
                "crashes": sum(e.outcome == "crashed" for e in self.evaluations[:budget]),
                "invalid_keeps": invalid_keeps, "regret": curve, "wall_s": round(self.wall_s, 1),
                "bench_repeats": self.bench_repeats}

    def dump(self) -> dict[str, Any]:
        return asdict(self)
