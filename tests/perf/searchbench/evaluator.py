"""One evaluation of a configuration for the tuner baselines: the same MCP tools the engine uses.

Launch, the same accuracy gate (greedy parity with the defaults' outputs), one benchmark
repeat at the primary point, stop. A crash or a failed gate is a failure the tuner sees;
the measured throughput is all it sees otherwise (no workload fingerprint check: that is
the Critic's, and the baselines have none).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from arbor.host.services import Services
from arbor.host.spec import CampaignSpec
from arbor.host.target import resolve

from .space import changes
from .trajectory import Evaluation, Trajectory


class Evaluator:
    """Evaluations of one scenario and seed, counted into a trajectory."""

    def __init__(self, spec: CampaignSpec, runs_root: Path, name: str, trajectory: Trajectory,
                 wall_s: float | None = None) -> None:
        self.spec, self.trajectory = spec, trajectory
        (runs_root / name).mkdir(parents=True, exist_ok=True)
        binary, model = resolve(spec, lambda _: None)
        self.model = spec.target.served_model_name or model
        self.svc = Services(runs_root, name, spec.stack_spec(binary, model), runs_root / name / "kb.sqlite")
        self.deadline = None if wall_s is None else time.monotonic() + wall_s
        self.reference: str | None = None
        self.seen: dict[str, Evaluation] = {}
        self.count = 0

    async def __aenter__(self) -> Evaluator:
        await self.svc.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.svc.__aexit__(*exc)

    def exhausted(self, budget: int) -> bool:
        """The budget is spent: evaluations, or the wall clock when one was given."""
        late = self.deadline is not None and time.monotonic() >= self.deadline
        return late or len(self.trajectory.evaluations) >= budget

    def workload(self) -> dict[str, Any]:
        return self.spec.workload.bench(self.model)

    def cached(self, config: dict[str, Any]) -> Evaluation | None:
        """An earlier evaluation of the same configuration (a tuner asking twice spends nothing)."""
        return self.seen.get(_key(changes(self.spec, config)))

    async def evaluate(self, config: dict[str, Any]) -> Evaluation:
        """Launch `config`, gate it, measure it once; the evaluation is appended to the trajectory."""
        config = changes(self.spec, config)
        started = time.monotonic()
        self.count += 1
        outcome = await self.svc.launch(config, f"e{self.count}")
        if not outcome.ok or outcome.server is None:
            evaluation = Evaluation(config=config, outcome="crashed")
        else:
            server = outcome.server
            try:
                url = server.base_url
                if self.reference is None:
                    self.reference = (await self.svc.parity_reference(url, self.model)).path
                check = await self.svc.parity_check(url, self.model, self.reference,
                                                    self.spec.gates.min_agreement)
                if not check.passed:
                    evaluation = Evaluation(config=config, outcome="inaccurate")
                else:
                    result, _ = await self.svc.bench(url, self.workload(), f"e{self.count}")
                    self.trajectory.bench_repeats += 1
                    ok = result.failed == 0
                    evaluation = Evaluation(config=config, outcome="ok" if ok else "invalid",
                                            measured=result.output_throughput if ok else None)
            finally:
                await self.svc.stop(server.id)
        self.seen[_key(config)] = evaluation
        self.trajectory.wall_s += time.monotonic() - started
        return evaluation

    def record(self, evaluation: Evaluation, incumbent: dict[str, Any]) -> None:
        """Count `evaluation` with what the strategy would deploy after it."""
        evaluation.incumbent = dict(incumbent)
        self.trajectory.evaluations.append(evaluation)


def _key(config: dict[str, Any]) -> str:
    return repr(sorted(config.items()))
