"""The simulated stack's model: what a configuration does (rate, latency, crash, corruption, trap), and the optimum."""

from __future__ import annotations

import itertools
import math
import random
import tomllib
from functools import cache
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from arbor.tools.errors import InputError
from arbor.tools.profiling.categorize import categories as profile_categories

Strict = ConfigDict(extra="forbid")
EXHAUSTIVE_MAX = 50_000  # configurations the optimum enumerates (about a second); larger spaces get the B&B
Value = bool | int | float | str


class SimKnob(BaseModel):
    """A knob of the simulated stack and how each value scales the categories."""

    model_config = Strict

    name: str
    type: Literal["bool", "int", "choice"]
    choices: list[str] | None = None
    min: int | None = None
    max: int | None = None
    default: Value
    values: list[Value] | None = Field(None, description="the values a search may try (int knobs)")
    category: str
    layer: str
    effect: dict[str, dict[str, float]] = Field(default_factory=dict, description="str(value) -> category factors")

    def domain(self) -> list[Value]:
        """Every value a search may try, the default included."""
        if self.type == "bool":
            return [False, True]
        if self.type == "choice":
            return list(self.choices or [])
        return sorted({self.default, *(self.values or [])})  # type: ignore[type-var]

    def factors(self, value: Value) -> dict[str, float]:
        """The category factors of one value (none: it changes nothing)."""
        return self.effect.get(effect_key(value), {})


class Region(BaseModel):
    """Knob values that together do something."""

    model_config = Strict

    when: dict[str, Value]
    scale: dict[str, float] = Field(default_factory=dict)
    kind: str = "segfault"
    log: str = "Segmentation fault (core dumped)"
    output_scale: float = 1.0

    def holds(self, config: dict[str, Value]) -> bool:
        return all(config.get(k) == v for k, v in self.when.items())


class Scenario(BaseModel):
    """One simulated stack."""

    model_config = Strict

    name: str
    description: str
    output_tok_s: float = Field(gt=0, description="output throughput at the defaults, at the primary point")
    ttft_ms: float = Field(gt=0)
    noise_cv: float = Field(0.02, ge=0, le=0.5)
    saturation: int = Field(4, ge=1, description="streams at which the server reaches its rate; fewer get a share")
    categories: dict[str, float] = Field(description="profile category -> milliseconds per output token at "
                                                     "the defaults")
    knob: list[SimKnob]
    interaction: list[Region] = Field(default_factory=list)
    crash: list[Region] = Field(default_factory=list)
    corrupt: list[Region] = Field(default_factory=list)
    trap: list[Region] = Field(default_factory=list)

    @model_validator(mode="after")
    def _known_names(self) -> Scenario:
        names = {k.name for k in self.knob}
        unknown = set(self.categories) - set(profile_categories())
        if unknown:
            raise ValueError(f"{self.name}: {sorted(unknown)} are not profile categories {profile_categories()}")
        for region in (*self.interaction, *self.crash, *self.corrupt, *self.trap):
            if set(region.when) - names:
                raise ValueError(f"{self.name}: regions name unknown knobs {sorted(set(region.when) - names)}")
            if set(region.scale) - set(self.categories):
                raise ValueError(f"{self.name}: unknown categories {sorted(set(region.scale) - set(self.categories))}")
        for k in self.knob:
            for factors in k.effect.values():
                if set(factors) - set(self.categories):
                    raise ValueError(f"{self.name}.{k.name}: unknown categories {sorted(factors)}")
        return self

    def full(self, config: dict[str, Value]) -> dict[str, Value]:
        """`config` with every unset knob at its default; unknown knobs or values refused."""
        knobs = {k.name: k for k in self.knob}
        unknown = set(config) - set(knobs)
        if unknown:
            raise InputError(f"scenario {self.name}: unknown knobs {sorted(unknown)}")
        out = {k.name: k.default for k in self.knob} | dict(config)
        for name, value in config.items():
            knob = knobs[name]
            if knob.type == "int" and not (knob.min or 0) <= int(value) <= (knob.max or math.inf):
                raise InputError(f"{name}={value} is outside [{knob.min}, {knob.max}]")
            if knob.type == "choice" and value not in (knob.choices or []):
                raise InputError(f"{name} takes one of {knob.choices}, got {value!r}")
        return out


class Behaviour(BaseModel):
    """What the simulated stack does under one configuration (noise-free)."""

    output_tok_s: float
    ttft_ms: float
    ms_per_token: dict[str, float]
    crash: Region | None = None
    corrupt: bool = False
    output_scale: float = 1.0

    def flaw(self) -> str | None:
        """Why this is not a valid result (crash, corrupt outputs, a changed workload), or None."""
        if self.crash is not None:
            return "crash"
        if self.corrupt:
            return "corrupt"
        return "trap" if self.output_scale != 1.0 else None

    def shares(self) -> dict[str, float]:
        """Per-category time shares: the simulated profile."""
        total = sum(self.ms_per_token.values())
        return {k: v / total for k, v in self.ms_per_token.items()}


def behaviour(s: Scenario, config: dict[str, Value]) -> Behaviour:
    """The noise-free behaviour of `config` (unset knobs at their defaults)."""
    cfg = s.full(config)
    ms = dict(s.categories)
    for knob in s.knob:
        for category, factor in knob.factors(cfg[knob.name]).items():
            ms[category] *= factor
    for region in s.interaction:
        if region.holds(cfg):
            for category, factor in region.scale.items():
                ms[category] *= factor
    speed = sum(s.categories.values()) / sum(ms.values())
    crash = next((r for r in s.crash if r.holds(cfg)), None)
    trap = next((r for r in s.trap if r.holds(cfg)), None)
    return Behaviour(output_tok_s=s.output_tok_s * speed, ttft_ms=s.ttft_ms / math.sqrt(speed), ms_per_token=ms,
                     crash=crash, corrupt=any(r.holds(cfg) for r in s.corrupt),
                     output_scale=trap.output_scale if trap else 1.0)


def noisy(value: float, cv: float, rng: random.Random) -> float:
    """One measurement of `value` with multiplicative noise."""
    return value * max(0.05, rng.gauss(1.0, cv))


def optimum(s: Scenario) -> tuple[dict[str, Value], float]:
    """The best valid configuration (no crash, no corruption, no trap) and its rate; ({}, 0.0) when none is valid."""
    if math.prod(len(k.domain()) for k in s.knob) > EXHAUSTIVE_MAX:
        from .bnb import branch_and_bound  # imported here: bnb builds on this module's types

        best = branch_and_bound(s)
        return (best, behaviour(s, best).output_tok_s) if best is not None else ({}, 0.0)
    names = [k.name for k in s.knob]
    found: tuple[dict[str, Value], float] = ({}, 0.0)
    for values in itertools.product(*(k.domain() for k in s.knob)):
        cfg = dict(zip(names, values, strict=True))
        b = behaviour(s, cfg)
        if b.flaw() is None and b.output_tok_s > found[1]:
            found = (cfg, b.output_tok_s)
    return found


def effect_key(value: Value) -> str:
    """How a value is spelled as a key of `SimKnob.effect` (TOML keys are strings; booleans lower case)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


@cache
def scenarios() -> dict[str, Scenario]:
    """The shipped scenarios by name."""
    data: dict[str, Any] = tomllib.loads(resources.files(__package__).joinpath("scenarios.toml").read_text())
    return {name: Scenario(name=name, **body) for name, body in data["scenario"].items()}
