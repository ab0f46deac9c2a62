"""The campaign spec of a simulated scenario, shared by every strategy so all search the same space."""

from __future__ import annotations

from typing import Any

from arbor.host.spec import CampaignSpec


def sim_spec(scenario: str, seed: int, budget: int, wall_clock_s: float = 3600.0) -> CampaignSpec:
    """A campaign on the simulated `scenario`: its whole knob space, `budget` evaluations including the baseline."""
    return CampaignSpec.model_validate({
        "name": f"sim-{scenario}-s{seed}",
        "target": {"stack": "sim", "model": scenario, "hardware": "sim", "base_args": ["--seed", str(seed)]},
        "workload": {"input_len": 16, "output_len": 32, "concurrency": 4, "num_prompts": 8, "sweep": [1, 4],
                     "sweep_min_prompts": 4, "sweep_prompts_per_concurrency": 1, "seed": seed},
        "gates": {"min_agreement": 0.9},
        "budget": {"wall_clock_s": wall_clock_s, "max_actions": max(1, budget - 1)},
        # A repeat costs a fraction of a launch here, as on GPUs (a restart takes minutes, a repeat seconds).
        "search": {"profile_seconds": 1, "max_repeats": 6, "baseline_repeats": 6},
    })


def domains(spec: CampaignSpec) -> dict[str, list[Any]]:
    """Every value each knob may take, its default first."""
    return {k.name: [k.default, *[v for v in k.values if v != k.default]] for k in spec.knobs}


def changes(spec: CampaignSpec, config: dict[str, Any]) -> dict[str, Any]:
    """`config` without the knobs left at their defaults (how the engine stores configurations)."""
    defaults = {k.name: k.default for k in spec.knobs}
    return {k: v for k, v in config.items() if defaults.get(k) != v}
