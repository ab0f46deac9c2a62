"""Generated simulated stacks: seeded, in range, sound at the defaults, full of hazards, with an exact optimum."""

from __future__ import annotations

import itertools
import json
import math
import os
import random
import re
import subprocess
import sys
import time
import typing
from pathlib import Path

import pytest

from arbor.tools.bench.client import run_benchmark
from arbor.tools.bench.models import Workload
from arbor.tools.errors import InputError, LaunchError
from arbor.tools.procs import group_members
from arbor.tools.profiling.categorize import categories as profile_categories
from arbor.tools.serving import launcher
from arbor.tools.serving.knobs import Category
from arbor.tools.serving.stack import StackSpec
from arbor.tools.sim import generate as gen
from arbor.tools.sim.bnb import branch_and_bound
from arbor.tools.sim.features import LAYERS, features, first_move
from arbor.tools.sim.generate import MAX_RATE, MIN_GAIN, generate
from arbor.tools.sim.model import EXHAUSTIVE_MAX, Scenario, behaviour, effect_key, optimum
from arbor.tools.sim.server import parse_args
from arbor.tools.sim.stack import scenario, sim_knobs

SEEDS = range(200)


def size(s: Scenario) -> int:
    return math.prod(len(k.domain()) for k in s.knob)


def enumerate_best(s: Scenario) -> float:
    """The best valid rate by trying every configuration through the model itself."""
    names = [k.name for k in s.knob]
    rates = (behaviour(s, dict(zip(names, values, strict=True))) for values in
             itertools.product(*(k.domain() for k in s.knob)))
    return max((b.output_tok_s for b in rates if b.flaw() is None), default=0.0)


def test_the_same_seed_gives_the_same_scenario_in_any_process() -> None:
    assert generate(7) is generate(7), "cached"
    fresh = gen._generate.__wrapped__(7)  # drawn again, past the cache
    assert fresh.model_dump() == generate(7).model_dump() and fresh.name == "gen-7"
    assert generate(8).model_dump() != generate(7).model_dump()
    env = os.environ | {"PYTHONHASHSEED": "123"}
    out = subprocess.run([sys.executable, "-m", "arbor.tools.sim.generate", "7"], capture_output=True, text=True,
                         env=env, check=True).stdout
    printed, end = json.JSONDecoder().raw_decode(out)
    summary = json.loads(out[end:])
    assert printed == gen.compact(generate(7)), "another process, another hash seed: the same stack"
    best, rate = optimum(generate(7))
    assert summary["optimum_tok_s"] == round(rate, 1) and summary["features"] == sorted(features(generate(7)))
    assert summary["optimum"] == {k: v for k, v in best.items() if v != next(x.default for x in generate(7).knob
                                                                             if x.name == k)}


def test_the_cli_refuses_a_bad_seed(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["-3"], ["x"], [], ["1", "2"]):
        assert gen.main(argv) == 2
        assert "non-negative integer" in capsys.readouterr().err


def test_every_draw_is_in_range() -> None:
    layers, kinds = set(LAYERS), set(typing.get_args(Category))
    sizes = {"bool": range(2, 3), "choice": range(2, 5), "int": range(3, 5)}
    for seed in SEEDS:
        s = generate(seed)
        assert 4 <= len(s.knob) <= 20 and 0.01 <= s.noise_cv <= 0.05
        assert 3 <= len(s.categories) <= 6 and set(s.categories) <= set(profile_categories())
        assert s.output_tok_s <= 2000 and 10 <= s.ttft_ms <= 15 and s.saturation == 4
        names = [k.name for k in s.knob]
        assert len(set(names)) == len(names) and all(re.fullmatch(r"opt_\d\d_[a-z]+", n) for n in names)
        for k in s.knob:
            assert k.layer in layers and k.category in kinds
            assert len(k.domain()) in sizes[k.type] and k.default in k.domain()
            assert effect_key(k.default) not in k.effect, "the defaults change nothing"
        assert set(sim_knobs(f"gen-{seed}")) == set(names), "every knob is a valid serving knob"


def test_the_defaults_are_sound_and_the_optimum_gains() -> None:
    for seed in SEEDS:
        s = generate(seed)
        b = behaviour(s, {})
        assert b.flaw() is None and b.output_tok_s == pytest.approx(s.output_tok_s)
    for seed in range(12):
        s = generate(seed)
        best, rate = optimum(s)
        assert behaviour(s, best).flaw() is None and behaviour(s, best).output_tok_s == pytest.approx(rate)
        assert MIN_GAIN * s.output_tok_s <= rate <= MAX_RATE * 1.01, (seed, rate / s.output_tok_s)


def test_the_hazards_of_the_shipped_scenarios_are_named() -> None:
    common = {"interaction", "crash", "corrupt", "trap", "mislabelled", "slowdown"}  # `decoding` suggests nothing
    assert features(scenario("layered")) == common
    assert features(scenario("tp_comm")) == common | {"blocking"}


def test_across_seeds_every_hazard_comes_often_but_not_always() -> None:
    counts: dict[str, int] = {}
    for seed in SEEDS:
        for name in features(generate(seed)):
            counts[name] = counts.get(name, 0) + 1
    share = {name: counts.get(name, 0) / len(SEEDS) for name in
             ("interaction", "blocking", "crash", "corrupt", "trap", "mislabelled", "useless", "slowdown")}
    for name in ("blocking", "crash", "corrupt", "trap"):
        assert 0.3 <= share[name] <= 0.95, share
    for name in ("interaction", "mislabelled", "useless", "slowdown"):
        assert share[name] >= 0.5, share


def test_the_best_first_move_often_blocks_the_optimum_and_the_bottleneck_moves() -> None:
    blocked = moved = 0
    for seed in SEEDS:
        s = generate(seed)
        best = branch_and_bound(s)
        assert best is not None
        move = first_move(s)
        blocked += move is not None and best[move[0]] != move[1]
        before, after = behaviour(s, {}).shares(), behaviour(s, best).shares()
        moved += max(before, key=before.__getitem__) != max(after, key=after.__getitem__)
    assert blocked >= 0.25 * len(SEEDS) and moved >= 0.3 * len(SEEDS), (blocked, moved)


def test_branch_and_bound_equals_enumeration() -> None:
    small = [s for s in map(generate, range(60)) if size(s) <= 3000][:8]
    assert len(small) == 8
    for s in [*small, scenario("layered"), scenario("tp_comm"), scenario("moe_decode")]:
        best = branch_and_bound(s)
        assert best is not None and behaviour(s, best).flaw() is None
        assert behaviour(s, best).output_tok_s == pytest.approx(enumerate_best(s), rel=1e-9), s.name
        assert optimum(s)[1] == pytest.approx(enumerate_best(s), rel=1e-9), "optimum enumerates these"


def test_nothing_valid_gives_no_optimum() -> None:
    body = scenario("layered").model_dump(exclude={"name"})
    body["crash"] = [{"when": {"early_stop": False}}, {"when": {"early_stop": True}}]
    s = Scenario(name="none-valid", **body)
    assert branch_and_bound(s) is None and optimum(s) == ({}, 0.0)


def test_a_20_knob_optimum_takes_seconds_and_beats_every_sample() -> None:
    s = next(s for s in map(generate, SEEDS) if len(s.knob) == 20)
    assert size(s) > EXHAUSTIVE_MAX, "too many to enumerate: the branch and bound answers"
    started = time.perf_counter()
    best, rate = optimum(s)
    assert time.perf_counter() - started < 3.0
    assert behaviour(s, best).flaw() is None and rate >= MIN_GAIN * s.output_tok_s
    rng = random.Random(1)
    for _ in range(2000):  # no valid configuration found by chance beats it
        b = behaviour(s, {k.name: rng.choice(k.domain()) for k in s.knob})
        assert b.flaw() is not None or b.output_tok_s <= rate * (1 + 1e-9)


@pytest.mark.parametrize("name", ["nope", "gen-", "gen--1", "gen-007", "gen-x", "gen-1.5", "Gen-7"])
def test_unknown_names_are_refused_with_the_forms_known(name: str) -> None:
    with pytest.raises(InputError) as caught:
        scenario(name)
    assert "layered" in str(caught.value) and "gen-<seed>" in str(caught.value)


def test_names_resolve_to_shipped_and_generated_scenarios() -> None:
    assert scenario("gen-7") is generate(7) and scenario("gen-0").name == "gen-0"
    assert scenario("layered").name == "layered"
    for bad in (-1, True, "3", 2.0):
        with pytest.raises(InputError, match="non-negative integer"):
            generate(bad)  # type: ignore[arg-type]


def test_the_server_takes_a_generated_name_and_refuses_an_unknown_one(capsys: pytest.CaptureFixture[str]) -> None:
    knob = generate(7).knob[0]
    value = next(v for v in knob.domain() if v != knob.default)
    _, s, config = parse_args(["--scenario", "gen-7", f"--{knob.name}", str(value).lower()])
    assert s is generate(7) and config == {knob.name: value}
    with pytest.raises(SystemExit) as caught:
        parse_args(["--scenario", "gen-07"])
    assert caught.value.code == 2 and "gen-<seed>" in capsys.readouterr().err


@pytest.mark.anyio
async def test_a_generated_stack_serves_for_real_and_crashes_where_it_says(tmp_path: Path) -> None:
    spec = StackSpec(kind="sim", model="gen-7", base_args=["--seed", "1"])
    server = await launcher.launch(spec, {}, tmp_path)
    try:
        workload = Workload(model="gen-7", input_len=16, output_len=32, max_concurrency=4, num_prompts=8, warmup=1)
        result = await run_benchmark(server.info.base_url, workload)
    finally:
        launcher.stop(server)
    assert group_members(server.child.pgid) == [], "nothing left running"
    assert result.failed == 0 and result.lengths_ok and result.output_throughput > 0
    crash = generate(7).crash[0]
    with pytest.raises(LaunchError) as caught:
        await launcher.launch(spec, dict(crash.when), tmp_path)
    assert any(crash.log in e.text for e in caught.value.failure.evidence)
