"""The simulated stack run for real: started by the launcher, benchmarked, profiled, crashing where the model says."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import pytest

from arbor.tools.bench.client import run_benchmark
from arbor.tools.bench.models import Workload
from arbor.tools.errors import InputError, LaunchError
from arbor.tools.procs import group_members
from arbor.tools.profiling.build import ProfileError
from arbor.tools.profiling.live import torch_profile_under_load
from arbor.tools.serving import launcher
from arbor.tools.serving.stack import StackSpec, build_command
from arbor.tools.serving.torchprof import torch_profiling
from arbor.tools.sim.model import behaviour
from arbor.tools.sim.server import Engine
from arbor.tools.sim.stack import scenario

pytestmark = pytest.mark.anyio


def sim(scenario: str = "layered", seed: int = 0, **extra: object) -> StackSpec:
    return StackSpec(kind="sim", model=scenario, base_args=["--seed", str(seed)], **extra)


class Running:
    """A launched simulated server that is always stopped."""

    def __init__(self, spec: StackSpec, config: dict, logs: Path) -> None:
        self.spec, self.config, self.logs = spec, config, logs

    async def __aenter__(self) -> launcher.Server:
        self.server = await launcher.launch(self.spec, self.config, self.logs)
        return self.server

    async def __aexit__(self, *exc: object) -> None:
        launcher.stop(self.server)
        assert group_members(self.server.child.pgid) == [], "nothing left running"


async def greedy(url: str, prompt: str, **body: object) -> dict:
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(url + "/v1/completions", json={"prompt": prompt, "max_tokens": 12,
                                                                    "temperature": 0} | body)
    assert response.status_code == 200
    return response.json()


def workload(model: str, **extra: object) -> Workload:
    base: dict = {"input_len": 16, "output_len": 32, "max_concurrency": 4, "num_prompts": 16, "warmup": 1}
    return Workload(model=model, **(base | extra))


def test_sim_stack_command_and_knobs() -> None:
    spec = sim()
    argv, env = build_command(spec, {"gemm_tuning": "tuned", "cuda_graphs": True}, 9000)
    assert argv[:3] == [sys.executable, "-m", "arbor.tools.sim.server"] and env == {}
    assert argv[argv.index("--scenario") + 1] == "layered" and argv[-4:] == ["--cuda_graphs", "true",
                                                                            "--gemm_tuning", "tuned"]
    assert set(spec.knob_space()) == {k.name for k in scenario("layered").knob}
    with pytest.raises(ValueError, match="unknown simulated scenario 'nope'"):
        sim("nope")
    with pytest.raises(InputError, match="set by Arbor itself"):
        build_command(StackSpec(kind="sim", model="layered", base_args=["--port", "1"]), {}, 9000)


async def test_serves_the_wire_deterministic_outputs_and_a_corrupt_region(tmp_path: Path) -> None:
    async with Running(sim(seed=1), {}, tmp_path) as a, Running(sim(seed=2), {"kv_cache_dtype": "fp8"}, tmp_path) as b:
        url_a, url_b = a.info.base_url, b.info.base_url
        async with httpx.AsyncClient(timeout=30) as client:
            models = (await client.get(url_a + "/v1/models")).json()
            assert models["data"][0]["id"] == "layered"
            tokens = (await client.post(url_a + "/tokenize", json={"content": "one two three"})).json()["tokens"]
            back = (await client.post(url_a + "/detokenize", json={"tokens": tokens})).json()["content"]
            assert len(tokens) == 3 and back == "one two three"
        one = await greedy(url_a, "tell me about rivers")
        assert one["usage"]["completion_tokens"] == 12 and len(one["choices"][0]["text"].split()) == 12
        assert (await greedy(url_a, "tell me about rivers"))["choices"] == one["choices"], "greedy is repeatable"
        assert (await greedy(url_b, "tell me about rivers"))["choices"] == one["choices"], \
            "another seed and a harmless knob: the same greedy text"
    async with Running(sim(), {"kv_cache_dtype": "fp8", "attention_backend": "triton"}, tmp_path) as bad:
        corrupt = await greedy(bad.info.base_url, "tell me about rivers")
    assert corrupt["choices"][0]["text"] != one["choices"][0]["text"], "the corrupt region changes greedy outputs"


async def test_the_trap_shrinks_the_benchmark_workload_but_not_greedy_outputs(tmp_path: Path) -> None:
    async with Running(sim(), {"early_stop": True}, tmp_path) as server:
        url = server.info.base_url
        plain = await greedy(url, "a prompt")
        shrunk = await greedy(url, "a prompt", ignore_eos=True)
        result = await run_benchmark(url, workload("layered", num_prompts=4))
    assert plain["usage"]["completion_tokens"] == 12, "parity requests see nothing unusual"
    assert shrunk["usage"]["completion_tokens"] == 6, "an ignore_eos request stops at half"
    assert not result.lengths_ok and result.output_len_check.max == 16


@pytest.mark.parametrize(("scenario", "config", "kind", "line"), [
    ("layered", {"max_num_seqs": 256, "cuda_graphs": True, "gemm_tuning": "aggressive"}, "oom", "out of memory"),
    ("tp_comm", {"custom_all_reduce": True, "max_num_batched_tokens": 8192}, "gpu_memory_fault",
     "illegal memory access"),
    ("moe_decode", {"moe_backend": "ck", "moe_block_size": 256}, "abort", "unsupported block size"),
])
async def test_crash_regions_die_at_start_with_their_log_line(tmp_path: Path, scenario: str, config: dict,
                                                              kind: str, line: str) -> None:
    with pytest.raises(LaunchError) as caught:
        await launcher.launch(sim(scenario), config, tmp_path)
    failure = caught.value.failure
    assert failure.kind == kind, failure
    assert any(line in e.text for e in failure.evidence)


async def test_a_bad_knob_value_is_refused_at_start(tmp_path: Path) -> None:
    spec = StackSpec(kind="generic", model="layered", command=[
        sys.executable, "-m", "arbor.tools.sim.server", "--scenario", "layered", "--port", "{port}",
        "--max_num_seqs", "4"])
    with pytest.raises(LaunchError) as caught:
        await launcher.launch(spec, {}, tmp_path)
    assert caught.value.failure.exit_code == 2
    assert any("outside [8, 512]" in e.text for e in caught.value.failure.evidence)


async def test_measured_speedup_follows_the_model(tmp_path: Path) -> None:
    # Side by side, alternating, so machine noise hits both alike; the model's ratio is 1.6.
    fast = {"gemm_tuning": "aggressive", "attention_backend": "flash"}
    s = scenario("layered")
    expected = behaviour(s, fast).output_tok_s / behaviour(s, {}).output_tok_s
    rates: dict[str, list[float]] = {"base": [], "fast": []}
    async with Running(sim(), {}, tmp_path) as base, Running(sim(), fast, tmp_path) as quick:
        for _ in range(2):
            for label, server in (("base", base), ("fast", quick)):
                result = await run_benchmark(server.info.base_url, workload("layered"))
                assert result.failed == 0 and result.lengths_ok
                rates[label].append(result.output_throughput)
    ratio = sum(rates["fast"]) / sum(rates["base"])
    assert expected * 0.8 < ratio < expected * 1.2, (ratio, expected, rates)


def profiled(traces: Path) -> StackSpec:
    """The sim started as current vLLM is for profiling: --profiler-config naming the trace folder."""
    config = json.dumps({"profiler": "torch", "torch_profiler_dir": str(traces)})
    return StackSpec(kind="sim", model="layered", base_args=["--seed", "0", "--profiler-config", config])


async def test_profile_endpoints_write_a_trace_the_profiler_reads(tmp_path: Path) -> None:
    traces = tmp_path / "traces"
    async with Running(profiled(traces), {"gemm_tuning": "aggressive"}, tmp_path) as server:
        loaded = await torch_profile_under_load(server.info.base_url, traces, workload("layered"), 1.0, wait_s=10)
    shares = behaviour(scenario("layered"), {"gemm_tuning": "aggressive"}).shares()
    got = loaded.profile.categories
    # Host time is a gap between kernels in a trace: the profiler counts the GPU's idle gaps as host_idle.
    for category, share in shares.items():
        assert got[category] == pytest.approx(share, abs=0.01), (category, got)
    assert loaded.load_requests > 0 and not loaded.profile.unknown
    assert len(list(traces.glob("*.pt.trace.json.gz"))) == 1


async def test_an_env_var_start_cannot_profile_the_sim_and_profiler_config_can(tmp_path: Path) -> None:
    # Current vLLM no longer reads VLLM_TORCH_PROFILER_DIR: started with it alone, the routes are not there.
    traces = tmp_path / "traces"
    by_env = sim(env={"VLLM_TORCH_PROFILER_DIR": str(traces)})
    async with Running(by_env, {}, tmp_path) as server:
        with pytest.raises(ProfileError, match="answered 404.*--profiler-config"):
            await torch_profile_under_load(server.info.base_url, traces, workload("layered"), 0.5, wait_s=2)
    assert not traces.exists()
    # The host's route for the same target passes the operator's folder in --profiler-config instead.
    setup = torch_profiling(by_env, tmp_path / "elsewhere")
    assert setup is not None and setup.trace_dir == traces
    async with Running(setup.stack, {}, tmp_path) as server:
        loaded = await torch_profile_under_load(server.info.base_url, traces, workload("layered"), 0.5, wait_s=10)
    assert loaded.profile.tool == "torch.profiler" and len(list(traces.glob("*.pt.trace.json.gz"))) == 1


@pytest.mark.parametrize(("config", "message"), [
    ('{"profiler": "torch"}', "torch_profiler_dir must be set when profiler is 'torch'"),
    ('{"torch_profiler_dir": "/tmp/x"}', "only applicable when profiler is set to 'torch'"),
    ("torch", "not JSON"),
])
async def test_a_bad_profiler_config_stops_the_start(tmp_path: Path, config: str, message: str) -> None:
    spec = StackSpec(kind="sim", model="layered", base_args=["--profiler-config", config])
    with pytest.raises(LaunchError) as caught:
        await launcher.launch(spec, {}, tmp_path)
    assert caught.value.failure.exit_code == 2
    assert any(message in e.text for e in caught.value.failure.evidence)


async def test_a_cuda_profiler_serves_the_routes_and_writes_no_trace(tmp_path: Path) -> None:
    spec = StackSpec(kind="sim", model="layered", base_args=["--profiler-config", '{"profiler": "cuda"}'])
    async with Running(spec, {}, tmp_path) as server:
        async with httpx.AsyncClient(timeout=10) as client:
            answers = [await client.post(server.info.base_url + path) for path in ("/start_profile", "/stop_profile")]
    assert [a.status_code for a in answers] == [200, 200]
    assert not list(tmp_path.rglob("*.trace.json*"))


def test_noise_is_seeded_per_start() -> None:
    s = scenario("layered")
    b = behaviour(s, {})

    def draws(seed: int, start: int) -> list[float]:
        engine = Engine(s, b, seed, "m", start)
        return [engine.rng.gauss(1, 1) for _ in range(5)]

    assert draws(3, 1) == draws(3, 1) and draws(3, 1) != draws(4, 1)
    assert draws(3, 1) != draws(3, 2), "a restart does not replay the noise of the last start"



async def test_many_streams_share_the_rate(tmp_path: Path) -> None:
    # Beyond saturation the aggregate rate holds: twice the streams, about the same tokens per second.
    async with Running(sim(), {}, tmp_path) as server:
        four = await run_benchmark(server.info.base_url, workload("layered"))
        eight = await run_benchmark(server.info.base_url, workload("layered", max_concurrency=8))
        one = await run_benchmark(server.info.base_url, workload("layered", max_concurrency=1, num_prompts=4))
    assert 0.75 < eight.output_throughput / four.output_throughput < 1.3
    assert one.output_throughput < 0.5 * four.output_throughput, "one stream gets a quarter of a full batch"
