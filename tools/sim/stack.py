"""The simulated stack as a serving target: its knob space as serving knobs, and the argv that starts it."""

from __future__ import annotations

import re
import sys

from arbor.tools.errors import InputError

from ..serving.knobs import Knob
from .generate import generate
from .model import Scenario, scenarios

GENERATED = re.compile(r"gen-(0|[1-9][0-9]*)")  # one spelling per seed: the name is the scenario's own


def scenario(name: str) -> Scenario:
    """A shipped scenario by name, or a generated one as `gen-<seed>`; InputError for anything else."""
    known = scenarios()
    if name in known:
        return known[name]
    match = GENERATED.fullmatch(name) if isinstance(name, str) else None
    if match is None:
        raise InputError(f"unknown simulated scenario {name!r}; known: {sorted(known)}, or gen-<seed> "
                         "(a non-negative integer seed, e.g. gen-7) for a generated one")
    return generate(int(match.group(1)))


def sim_knobs(name: str) -> dict[str, Knob]:
    """The scenario's knobs as the server's flags (`--NAME VALUE`)."""
    out = {}
    for k in scenario(name).knob:
        out[k.name] = Knob(name=k.name, flag=f"--{k.name}", type=k.type, choices=k.choices,
                           min=k.min, max=k.max, default=k.default, category=k.category, layer=k.layer,
                           bool_style="value", description=f"simulated: {k.category} knob on {k.layer}")
    return out


def sim_argv(binary: str | None, name: str, host: str, port: int, served_model_name: str) -> list[str]:
    """The command that starts the simulated server (`binary` is the Python to run it with)."""
    scenario(name)
    return [binary or sys.executable, "-m", "arbor.tools.sim.server", "--scenario", name, "--host", host,
            "--port", str(port), "--served-model-name", served_model_name]
