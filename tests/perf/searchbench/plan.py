"""Which runs a comparison makes: named and generated scenarios, their seeds, and what a resumed one skips."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GENERATED = "gen-"
SEED_SPACE = 10**6  # generator seeds are drawn below this


def generated(name: str) -> bool:
    """A scenario made by the generator (`gen-<seed>`), not a shipped one."""
    return name.startswith(GENERATED)


def draw_generator_seeds(n: int, keep: list[int] | None = None) -> list[int]:
    """`n` distinct generator seeds: `keep`'s first, then fresh ones, so every run meets new scenarios."""
    seeds = list(dict.fromkeys(keep or []))[:n]
    while len(seeds) < n:
        seed = secrets.randbelow(SEED_SPACE)
        if seed not in seeds:
            seeds.append(seed)
    return seeds


@dataclass
class Plan:
    """The scenarios and seeds of a comparison; every strategy runs every (scenario, seed) pair."""

    named: list[str]
    generator_seeds: list[int]
    seeds: list[int]  # per named scenario
    seeds_generated: list[int]  # per generated scenario

    @property
    def generated(self) -> list[str]:
        return [f"{GENERATED}{s}" for s in self.generator_seeds]

    def pairs(self) -> list[tuple[str, int]]:
        """Every (scenario, seed), generated first: they give the headline numbers, the named are examples."""
        return ([(name, seed) for name in self.generated for seed in self.seeds_generated]
                + [(name, seed) for name in self.named for seed in self.seeds])

    def settings(self) -> dict[str, Any]:
        return {"scenarios": self.named, "generated": self.generated, "generator_seeds": self.generator_seeds,
                "seeds": self.seeds, "seeds_generated": self.seeds_generated}


def load(out: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The settings and finished runs of an earlier comparison in `out`; ValueError when there is none."""
    path = out / "comparison.json"
    try:
        doc = json.loads(path.read_text())
        return dict(doc["settings"]), list(doc["runs"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"no comparison to resume in {path}: {exc}") from exc


def done(runs: list[dict[str, Any]]) -> set[tuple[str, str, int]]:
    """The (strategy, scenario, seed) triples that finished."""
    return {(r["strategy"], r["scenario"], r["seed"]) for r in runs}
