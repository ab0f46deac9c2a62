"""Every profiler format, from fixtures written to the documented headers, into one schema."""

from __future__ import annotations

from pathlib import Path

import pytest

from arbor.tools.profiling.build import ProfileError
from arbor.tools.profiling.categorize import categorize
from arbor.tools.profiling.diff import diff
from arbor.tools.profiling.formats import (
    detect_and_parse,
    parse_nsys_kern_sum,
    parse_rocprof_stats,
)
from arbor.tools.profiling.models import Profile

FIX = Path(__file__).parent.parent / "fixtures" / "profiles"


def check_schema(profile: Profile) -> None:
    assert sum(k.share for k in profile.kernels) == pytest.approx(1.0)
    assert sum(profile.categories.values()) == pytest.approx(1.0)
    assert profile.total_ns == pytest.approx(sum(k.total_ns for k in profile.kernels))
    assert [k.total_ns for k in profile.kernels] == sorted((k.total_ns for k in profile.kernels), reverse=True)
    assert set(profile.unknown) == {k.name for k in profile.kernels if k.category == "unknown"}


def test_rocprofv3_stats_from_two_processes_are_merged() -> None:
    profile = detect_and_parse(FIX / "rocprofv3")
    check_schema(profile)
    assert profile.tool == "rocprofv3" and len(profile.source) == 2
    gemm = profile.kernels[0]
    assert gemm.name.startswith("Cijk_Alik_Bljk") and gemm.category == "gemm"
    assert gemm.calls == 8192 and gemm.total_ns == 1_600_000_000 and gemm.avg_ns == pytest.approx(195312.5)
    by_name = {k.name: k for k in profile.kernels}
    assert by_name["kernel_unified_attention_2d"].category == "attention"
    assert by_name["ncclDevKernel_Generic(ncclDevKernelArgsStorage<4096ul>)"].category == "communication"
    assert by_name["__amd_rocclr_copyBuffer"].category == "memcpy"
    assert profile.unknown == ["my_custom_fused_thing"], "unknown names are listed, not dropped"
    assert profile.categories["unknown"] == pytest.approx(56e6 / profile.total_ns)


def test_rocprofv3_kernel_trace_aggregates_dispatches() -> None:
    profile = detect_and_parse(FIX / "rocprofv3_kernel_trace.csv")
    check_schema(profile)
    moe = profile.kernels[0]
    assert (moe.name, moe.calls, moe.total_ns, moe.category) == ("fused_moe_kernel", 2, 1_200_000, "moe")
    assert profile.categories["moe"] == pytest.approx(1_250_000 / 1_450_000)


def test_legacy_rocprof_stats() -> None:
    profile = detect_and_parse(FIX / "results.stats.csv")
    check_schema(profile)
    assert profile.tool == "rocprof"
    assert profile.categories == pytest.approx({"gemm": 0.6, "attention": 0.3, "norm_elementwise": 0.1})


@pytest.mark.parametrize("name", ["nsys_cuda_gpu_kern_sum.csv", "nsys_cuda_gpu_kern_sum_old.csv"])
def test_nsys_current_and_older_layouts(name: str) -> None:
    profile = detect_and_parse(FIX / name)
    check_schema(profile)
    assert profile.tool == "nsys" and profile.kernels[0].category == "gemm"
    assert profile.categories["attention"] > 0.19
    if name == "nsys_cuda_gpu_kern_sum.csv":
        assert profile.kernels[0].total_ns == 1_224_000_000, "thousands separators are numbers too"
        assert profile.categories["communication"] == pytest.approx(0.09, abs=0.001)


def test_ncu_raw_skips_prof_lines_and_reads_units() -> None:
    profile = detect_and_parse(FIX / "ncu_raw.csv")
    check_schema(profile)
    gemm = profile.kernels[0]
    assert gemm.calls == 2 and gemm.total_ns == pytest.approx((204.16 + 198.40) * 1000)
    assert profile.kernels[1].category == "attention"


def test_torch_key_averages_and_chrome_trace() -> None:
    averages = detect_and_parse(FIX / "torch_key_averages.json")
    check_schema(averages)
    assert averages.kernels[0].category == "gemm" and averages.kernels[0].calls == 480
    assert "aten::mm" not in {k.name for k in averages.kernels if k.total_ns > 0}
    trace = detect_and_parse(FIX / "torch_trace.json")
    check_schema(trace)
    assert [k.name for k in trace.kernels][0] == "sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n"
    assert trace.kernels[0].calls == 2 and trace.kernels[0].total_ns == pytest.approx(400_000)
    assert "aten::mm" not in {k.name for k in trace.kernels}, "GPU kernels win over CPU ops when present"
    assert trace.categories["memcpy"] > 0


@pytest.mark.parametrize(("path", "message"), [
    ("malformed/results.stats.csv", r"results.stats.csv:3: column 'Calls' is not a number: 'ten'"),
    ("malformed/nsys_missing_column.csv", r"nsys_missing_column.csv:3: missing column\(s\) \['Instances'\]"),
    ("malformed/short_kernel_stats.csv", r"short_kernel_stats.csv:2: row has fewer cells than the header"),
])
def test_malformed_files_name_the_line(path: str, message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        detect_and_parse(FIX / path)


def test_unrecognised_and_missing(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("hello\n")
    with pytest.raises(ProfileError, match="unrecognised profile format"):
        detect_and_parse(tmp_path / "x.txt")
    with pytest.raises(ProfileError, match="no such file"):
        detect_and_parse(tmp_path / "absent.csv")
    with pytest.raises(ProfileError, match="no rocprof"):
        detect_and_parse(tmp_path)


def test_diff_says_when_the_bottleneck_moved() -> None:
    before = parse_rocprof_stats([FIX / "results.stats.csv"], tool="rocprof")
    after = parse_nsys_kern_sum(FIX / "nsys_cuda_gpu_kern_sum_old.csv")
    same = diff(before, before)
    assert not same.bottleneck_moved and all(s.delta == 0 for s in same.shifts)
    moved = diff(before, after)
    assert moved.top_before == "gemm" and moved.top_after == "gemm" and not moved.bottleneck_moved
    assert {s.category: round(s.delta, 3) for s in moved.shifts} == {
        "gemm": 0.2, "attention": -0.1, "norm_elementwise": -0.1}
    attention_heavy = after.model_copy(update={"categories": {"attention": 0.7, "gemm": 0.3}})
    assert diff(before, attention_heavy).bottleneck_moved


@pytest.mark.parametrize(("name", "category"), [
    ("ggml_vec_dot_q4_K_q8_K", "gemm"), ("ggml_compute_forward_flash_attn_ext_f16", "attention"),
    ("ggml_compute_forward_rms_norm", "norm_elementwise"), ("GOMP_barrier", "host_idle"),
    ("__memmove_avx_unaligned_erms", "memcpy"), ("llama_sampler_top_k_impl", "sampling"),
    ("ck_tile::FmhaFwdKernel<...>", "attention"), ("_ZN5aiter24fmha_fwd_v3_kernel", "attention"),
    ("wvSplitK_hf_sml_", "gemm"), ("cutlass_80_wmma_tensorop_f16_s161616gemm", "gemm"),
    ("void vllm::cross_device_reduce_1stage<__hip_bfloat16, 8>", "communication"),
    ("fused_moe_kernel_gptq_awq", "moe"), ("BatchPrefillWithPagedKVCacheKernel", "attention"),
    ("ncclDevKernel_ReduceScatter_Sum_f32_RING_LL", "communication"),
    ("triton_red_fused_add_rms_norm", "norm_elementwise"),
])
def test_categories_cover_the_common_libraries(name: str, category: str) -> None:
    assert categorize(name) == category


@pytest.mark.anyio
async def test_vllm_torch_profiler_endpoints(tmp_path: Path) -> None:
    # vLLM itself needs a GPU; the stub speaks its /start_profile and /stop_profile endpoints and
    # writes gzipped Chrome traces the way vLLM's torch profiler does.
    from arbor.tools.bench.models import Workload
    from arbor.tools.profiling.live import torch_profile_under_load
    from tests.conftest import start_stub

    traces = tmp_path / "traces"
    traces.mkdir()
    proc, url = start_stub("--ttft-ms", "1", "--itl-ms", "1", "--profile-dir", str(traces))
    try:
        workload = Workload(model="stub", input_len=4, output_len=4, max_concurrency=2, num_prompts=4)
        loaded = await torch_profile_under_load(url, traces, workload, 1.0, wait_s=10)
    finally:
        proc.kill()
        proc.wait()
    profile = loaded.profile
    assert profile.tool == "torch.profiler" and profile.source[0].endswith(".pt.trace.json.gz")
    assert profile.categories == pytest.approx({"gemm": 0.7, "attention": 0.3})
    # One GEMM event per request the stub served while profiling: at least every completed one.
    assert loaded.load_requests > 0 and profile.kernels[0].calls >= loaded.load_requests


@pytest.mark.anyio
async def test_torch_profiler_refused_without_a_profiler_dir(stub: str, tmp_path: Path) -> None:
    from arbor.tools.bench.models import Workload
    from arbor.tools.profiling.live import torch_profile_under_load

    # A server started without a profiler has no such route; the error says how vLLM is started with one.
    with pytest.raises(ProfileError, match="start_profile answered 404.*started with --profiler-config .*"
                                           "torch_profiler_dir"):
        await torch_profile_under_load(stub, tmp_path, Workload(model="m"), 0.5)


@pytest.mark.anyio
async def test_sglang_torch_profiler_is_told_the_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # SGLang itself needs a GPU; the stub speaks its endpoints: the start body's output_dir, else the variable.
    from arbor.tools.bench.models import Workload
    from arbor.tools.profiling.live import torch_profile_under_load
    from tests.conftest import start_stub

    default, traces = tmp_path / "default", tmp_path / "traces"
    monkeypatch.setenv("SGLANG_TORCH_PROFILER_DIR", str(default))
    proc, url = start_stub("--ttft-ms", "1", "--itl-ms", "1", "--sglang-profiler")
    try:
        workload = Workload(model="stub", input_len=4, output_len=4, max_concurrency=2, num_prompts=4)
        loaded = await torch_profile_under_load(url, traces, workload, 1.0, wait_s=10, api="sglang")
    finally:
        proc.kill()
        proc.wait()
    (trace,) = traces.iterdir()
    assert trace.name.endswith("-TP-0.trace.json.gz") and loaded.profile.source == [str(trace)]
    assert loaded.profile.categories == pytest.approx({"gemm": 0.7, "attention": 0.3})
    assert not default.exists(), "the folder came from the request, not the server's default"
