"""A Chrome trace's GPU timeline: the gaps between kernels are host time, overlapping streams leave none."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from arbor.tools.profiling.categorize import categorize
from arbor.tools.profiling.formats import parse_chrome_trace


def write(path: Path, events: list[dict]) -> Path:
    path.write_text(json.dumps({"traceEvents": events}))
    return path


def kernel(name: str, ts: float, dur: float, pid: int = 0, tid: int = 7) -> dict:
    return {"ph": "X", "cat": "kernel", "name": name, "ts": ts, "dur": dur, "pid": pid, "tid": tid}


def test_gaps_between_kernels_are_host_idle(tmp_path: Path) -> None:
    gemm = "sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n"
    events = [kernel(gemm, 0, 60), kernel(gemm, 80, 60),  # a 20 us gap
              kernel(gemm, 150, 30, tid=8), kernel(gemm, 160, 30, tid=9),  # overlapping streams: 10 us gap before
              {"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "ts": 140, "dur": 10, "pid": 0, "tid": 1}]
    profile = parse_chrome_trace(write(tmp_path / "t.json", events))
    busy = 60 + 60 + 30 + 30
    assert profile.categories["host_idle"] == pytest.approx(30 / (busy + 30))
    assert profile.categories["gemm"] == pytest.approx(busy / (busy + 30))


def test_a_trace_without_gaps_has_no_idle_and_devices_are_apart(tmp_path: Path) -> None:
    events = [kernel("flash_fwd_kernel", 0, 50, pid=0), kernel("flash_fwd_kernel", 0, 50, pid=1),
              kernel("flash_fwd_kernel", 50, 50, pid=0), kernel("flash_fwd_kernel", 50, 50, pid=1)]
    profile = parse_chrome_trace(write(tmp_path / "t.json", events))
    assert profile.categories == {"attention": pytest.approx(1.0)}


def test_flashinfer_kernels_outside_attention_keep_their_category() -> None:
    assert categorize("void flashinfer::sampling::TopKTopPSamplingFromProbKernel<1024, 1, 4, float, int>") == \
        "sampling"
    assert categorize("flashinfer::norm::RMSNormKernel<8, bf16>") == "norm_elementwise"
    assert categorize("flashinfer::BatchDecodeWithPagedKVCacheKernel<...>") == "attention"


def test_a_cpu_only_frontend_trace_beside_worker_traces_is_left_out(tmp_path: Path) -> None:
    # vLLM writes its API server's trace (CPU ops only) into the same folder as the workers' kernel traces.
    gemm = "sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n"
    worker = write(tmp_path / "host_1.111.pt.trace.json", [kernel(gemm, 0, 50), kernel(gemm, 50, 50)])
    frontend = write(tmp_path / "host_2_async_llm.222.pt.trace.json",
                     [{"ph": "X", "cat": "cpu_op", "name": "aten::copy_", "ts": 0, "dur": 900, "pid": 2, "tid": 1}])
    profile = parse_chrome_trace([frontend, worker])
    assert profile.categories == {"gemm": pytest.approx(1.0)} and profile.source == [str(worker)]
    alone = parse_chrome_trace(frontend)  # with no kernel anywhere, CPU ops are all there is
    assert [k.name for k in alone.kernels] == ["aten::copy_"]


def test_a_folder_of_sglang_traces_is_recognised(tmp_path: Path) -> None:
    import gzip

    from arbor.tools.profiling.formats import detect_and_parse

    # SGLang names its per-rank traces {profile_id}-TP-{rank}.trace.json.gz (no ".pt").
    for rank in (0, 1):
        with gzip.open(tmp_path / f"1767000000.5-TP-{rank}.trace.json.gz", "wt") as handle:
            json.dump({"traceEvents": [kernel("flash_fwd_kernel", 0, 50, pid=rank)]}, handle)
    (tmp_path / "1767000000.5-TP-0-memory.pickle").write_bytes(b"\x80\x04N.")
    profile = detect_and_parse(tmp_path)
    assert len(profile.source) == 2 and profile.categories == {"attention": pytest.approx(1.0)}
