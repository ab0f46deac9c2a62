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
