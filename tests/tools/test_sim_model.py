"""The simulated stack's model: deterministic, layered, with a moving bottleneck, crashes, corruption and a trap."""

from __future__ import annotations

import itertools
import random
from statistics import fmean, pstdev

import pytest
from pydantic import ValidationError

from arbor.tools.errors import InputError
from arbor.tools.sim.model import Scenario, behaviour, noisy, optimum
from arbor.tools.sim.stack import scenario

S = scenario("layered")


def test_defaults_and_determinism() -> None:
    assert behaviour(S, {}).output_tok_s == pytest.approx(S.output_tok_s)
    assert behaviour(S, {"gemm_tuning": "tuned"}) == behaviour(S, {"gemm_tuning": "tuned"})


def test_the_bottleneck_moves_after_a_gain() -> None:
    before = behaviour(S, {}).shares()
    after = behaviour(S, {"gemm_tuning": "aggressive"}).shares()
    assert max(before, key=before.get) == "gemm" and before["gemm"] > 0.6
    assert after["gemm"] < before["gemm"] and after["attention"] > before["attention"]
    # attention pays more once GEMM is fixed: its relative gain grows
    alone = behaviour(S, {"attention_backend": "flash"}).output_tok_s / behaviour(S, {}).output_tok_s
    fixed = behaviour(S, {"gemm_tuning": "aggressive", "attention_backend": "flash"}).output_tok_s / \
        behaviour(S, {"gemm_tuning": "aggressive"}).output_tok_s
    assert fixed > alone > 1


def test_interactions_pay_only_together() -> None:
    base = behaviour(S, {}).output_tok_s
    graphs = behaviour(S, {"cuda_graphs": True}).output_tok_s / base
    batch = behaviour(S, {"max_num_seqs": 128}).output_tok_s / base
    both = behaviour(S, {"cuda_graphs": True, "max_num_seqs": 128}).output_tok_s / base
    assert both > graphs * batch * 1.02, "the pair is worth more than its parts"


def test_crash_corruption_and_trap_regions() -> None:
    crash = behaviour(S, {"max_num_seqs": 256, "cuda_graphs": True, "gemm_tuning": "aggressive"}).crash
    assert crash is not None and crash.kind == "oom" and "out of memory" in crash.log
    assert behaviour(S, {"kv_cache_dtype": "fp8", "attention_backend": "triton"}).corrupt
    assert not behaviour(S, {"kv_cache_dtype": "fp8"}).corrupt
    trap = behaviour(S, {"early_stop": True})
    assert trap.output_scale == 0.5 and trap.output_tok_s > S.output_tok_s, "it looks like a gain"


def test_the_optimum_is_valid_and_unbeaten() -> None:
    best, rate = optimum(S)
    b = behaviour(S, best)
    assert b.crash is None and not b.corrupt and b.output_scale == 1.0
    names = [k.name for k in S.knob]
    for values in itertools.product(*(k.domain() for k in S.knob)):
        other = behaviour(S, dict(zip(names, values, strict=True)))
        if other.crash is None and not other.corrupt and other.output_scale == 1.0:
            assert other.output_tok_s <= rate + 1e-9
    assert rate > 2 * S.output_tok_s, "the search has room to find"


def test_noise_is_seeded_and_sized() -> None:
    draws = [noisy(100.0, 0.02, random.Random(7)) for _ in range(3)]
    assert len(set(draws)) == 1, "same seed, same draw"
    rng = random.Random(1)
    many = [noisy(100.0, 0.02, rng) for _ in range(4000)]
    assert fmean(many) == pytest.approx(100.0, rel=0.005) and pstdev(many) == pytest.approx(2.0, rel=0.1)


def test_bad_configs_and_scenarios_are_refused() -> None:
    with pytest.raises(InputError, match="unknown knobs"):
        behaviour(S, {"gemm": "on"})
    with pytest.raises(InputError, match="outside"):
        behaviour(S, {"max_num_seqs": 4})
    with pytest.raises(InputError, match="one of"):
        behaviour(S, {"attention_backend": "magic"})
    body = S.model_dump(exclude={"name"})
    body["crash"] = [{"when": {"nonexistent": 1}}]
    with pytest.raises(ValidationError, match="unknown knobs"):
        Scenario(name="bad", **body)
