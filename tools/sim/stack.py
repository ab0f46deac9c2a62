"""The simulated stack as a serving target: its knob space as serving knobs, and the argv that starts it."""

from __future__ import annotations

import sys

from arbor.tools.errors import InputError

from ..serving.knobs import Knob
from .model import Scenario, scenarios


def scenario(name: str) -> Scenario:
    """The shipped scenario `name`, or InputError listing them."""
    known = scenarios()
    if name not in known:
        raise InputError(f"unknown simulated scenario {name!r}; known: {sorted(known)}")
    return known[name]


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
