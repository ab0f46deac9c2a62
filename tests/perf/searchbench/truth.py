"""Ground truth from the simulator's model: what a configuration really gives, and whether it is valid."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from arbor.tools.sim import stack
from arbor.tools.sim.model import Scenario, behaviour, optimum


@dataclass
class Truth:
    """The noise-free rate and validity of configurations of one scenario."""

    scenario: Scenario

    def __post_init__(self) -> None:
        self.default_rate = behaviour(self.scenario, {}).output_tok_s
        self.best_config, self.best_rate = optimum(self.scenario)

    @classmethod
    def of(cls, name: str) -> Truth:
        """The truth of a shipped or generated (`gen-<seed>`) scenario, resolved as the simulated server does."""
        return cls(stack.scenario(name))

    def flaw(self, config: dict[str, Any]) -> str | None:
        """Why `config` is not a valid result (crash, corrupt, trap), or None."""
        return behaviour(self.scenario, config).flaw()

    def rate(self, config: dict[str, Any]) -> float:
        """The true output throughput a user gets from `config`: the defaults' when it is not valid."""
        b = behaviour(self.scenario, config)
        return self.default_rate if b.flaw() else b.output_tok_s

    def gain(self, config: dict[str, Any]) -> float:
        """The true valid gain over the defaults."""
        return self.rate(config) / self.default_rate - 1.0

    def regret(self, config: dict[str, Any]) -> float:
        """How far from the optimum, as a share of the optimum's rate."""
        return 1.0 - self.rate(config) / self.best_rate
