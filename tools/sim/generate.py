"""Procedural simulated stacks: `gen-<seed>`, a scenario drawn from a seed with the hazards the named ones show.

Run: python -m arbor.tools.sim.generate SEED   (prints the scenario as JSON, its hazards and its optimum)
"""

from __future__ import annotations

import json
import random
import sys
from functools import cache

from arbor.tools.errors import InputError

from .bnb import branch_and_bound
from .draw import Draw
from .features import features
from .model import Scenario, behaviour, optimum

MIN_GAIN = 1.3  # the optimum beats the defaults by at least this: there is something to find
MAX_RATE = 10_000.0  # output tokens/s at the optimum: the simulated server paces tokens in Python


def generate(seed: int) -> Scenario:
    """The scenario `gen-{seed}`, the same for the same seed (cached); InputError for a bad seed."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError(f"a generated scenario's seed is a non-negative integer, got {seed!r}")
    return _generate(seed)


@cache
def _generate(seed: int) -> Scenario:
    n = random.Random(f"arbor-sim-gen:{seed}").randint(4, 20)  # fixed across attempts: a redraw keeps the size
    for attempt in range(100):
        drawn = Draw(random.Random(f"arbor-sim-gen:{seed}:{attempt}")).scenario(f"gen-{seed}", seed, n)
        if behaviour(drawn, {}).flaw() is not None:
            continue  # never by construction (every region needs a changed knob); checked all the same
        best = branch_and_bound(drawn)  # exact, and milliseconds where enumerating takes up to a second
        gain = behaviour(drawn, best).output_tok_s / drawn.output_tok_s if best is not None else 0.0
        if gain >= MIN_GAIN:
            # A very fast optimum gets a slower base rate so the simulated server still paces it.
            output = min(drawn.output_tok_s, round(MAX_RATE / gain, -1))
            return drawn.model_copy(update={"output_tok_s": output})
    raise RuntimeError(f"no fair scenario drawn for seed {seed} in 100 attempts")  # pragma: no cover


def compact(s: Scenario) -> dict:
    """The scenario as JSON-ready data with each region's fields that matter to its kind only."""
    out = s.model_dump(mode="json", exclude={"interaction", "crash", "corrupt", "trap"})
    out["knob"] = [k.model_dump(mode="json", exclude_none=True) for k in s.knob]
    out["interaction"] = [{"when": r.when, "scale": r.scale} for r in s.interaction]
    out["crash"] = [{"when": r.when, "kind": r.kind, "log": r.log} for r in s.crash]
    out["corrupt"] = [{"when": r.when} for r in s.corrupt]
    out["trap"] = [{"when": r.when, "output_scale": r.output_scale} for r in s.trap]
    return out


def main(argv: list[str] | None = None) -> int:
    """Print scenario gen-SEED as JSON, its hazards and its optimum."""
    args = sys.argv[1:] if argv is None else argv
    try:
        if len(args) != 1 or not args[0].isdigit():
            raise InputError(f"usage: python -m arbor.tools.sim.generate SEED (a non-negative integer), got {args}")
        s = generate(int(args[0]))
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    best, rate = optimum(s)
    changed = {k: v for k, v in best.items() if v != next(x.default for x in s.knob if x.name == k)}
    print(json.dumps(compact(s), indent=2))
    print(json.dumps({"features": sorted(features(s)), "optimum": changed, "optimum_tok_s": round(rate, 1),
                      "gain": round(rate / s.output_tok_s, 3)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
