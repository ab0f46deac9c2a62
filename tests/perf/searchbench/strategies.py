"""The tuner baselines, each given the same budget of evaluations, the defaults first."""

from __future__ import annotations

import itertools
import random
from typing import Any

from arbor.host.spec import CampaignSpec

from .evaluator import Evaluator
from .space import domains
from .trajectory import Evaluation

MAX_ASKS = 20  # asks per evaluation before a tuner that only repeats itself is stopped


class Incumbent:
    """The best measured configuration that passed the gates: what a tuner reports."""

    def __init__(self) -> None:
        self.config: dict[str, Any] = {}
        self.value = float("-inf")

    def offer(self, e: Evaluation) -> None:
        if e.outcome == "ok" and e.measured is not None and e.measured > self.value:
            self.config, self.value = e.config, e.measured


async def _run(ev: Evaluator, configs: Any, budget: int) -> None:
    best = Incumbent()
    for config in configs:
        if ev.exhausted(budget):
            return
        if ev.cached(config) is not None:
            continue
        e = await ev.evaluate(config)
        best.offer(e)
        ev.record(e, best.config)


async def random_search(ev: Evaluator, spec: CampaignSpec, budget: int, seed: int) -> None:
    """Uniform random configurations, no repeats, after the defaults."""
    space = domains(spec)
    rng = random.Random(f"random:{seed}")

    def draws() -> Any:
        yield {k: v[0] for k, v in space.items()}
        for _ in range(budget * MAX_ASKS):
            yield {k: rng.choice(v) for k, v in space.items()}

    await _run(ev, draws(), budget)


async def grid_search(ev: Evaluator, spec: CampaignSpec, budget: int, seed: int) -> None:
    """vLLM auto_tune's way: a fixed grid, the scheduler/batch ("config") knobs varied fastest, crashes skipped.

    auto_tune steps gpu_memory_utilization down after an out-of-memory start; these knob
    spaces have no memory knob, so a crashing point is recorded as a failure and the grid goes on.
    """
    space = domains(spec)
    order = sorted(space, key=lambda k: next(s.category == "config" for s in spec.knobs if s.name == k))
    grid = ({k: v for k, v in zip(order, values, strict=True)} for values in itertools.product(
        *(space[k] for k in order)))
    await _run(ev, grid, budget)


async def optuna_tpe(ev: Evaluator, spec: CampaignSpec, budget: int, seed: int) -> None:
    """Optuna's TPE sampler on the same categorical space."""
    import optuna

    await _optuna(ev, spec, budget, optuna.samplers.TPESampler(seed=seed))


async def optuna_gp(ev: Evaluator, spec: CampaignSpec, budget: int, seed: int) -> None:
    """Optuna's Gaussian-process sampler (needs torch and scipy: the `bench` extra), its defaults otherwise."""
    import optuna

    await _optuna(ev, spec, budget, optuna.samplers.GPSampler(seed=seed))


async def _optuna(ev: Evaluator, spec: CampaignSpec, budget: int, sampler: Any) -> None:
    # Crashes and failed gates are failed trials; a configuration asked again is told its earlier result.
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = domains(spec)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.enqueue_trial({k: v[0] for k, v in space.items()})
    best = Incumbent()
    asks = 0
    while not ev.exhausted(budget) and asks < budget * MAX_ASKS:
        asks += 1
        trial = study.ask()
        config = {k: trial.suggest_categorical(k, v) for k, v in space.items()}
        e = ev.cached(config)
        if e is None:
            e = await ev.evaluate(config)
            best.offer(e)
            ev.record(e, best.config)
        if e.outcome == "ok" and e.measured is not None:
            study.tell(trial, e.measured)
        else:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)


TUNERS = {"random": random_search, "grid": grid_search, "optuna": optuna_tpe, "optuna_gp": optuna_gp}
