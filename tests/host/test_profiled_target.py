"""The host prepares a GPU target for its torch profiler before any server starts, and says how."""

from __future__ import annotations

import json
from pathlib import Path

from arbor.host.services import torch_profiled
from arbor.tools.serving.stack import StackSpec


def test_a_vllm_target_profiles_into_the_runs_traces_folder(tmp_path: Path) -> None:
    # No vLLM is installed here: the stored release's definitions (0.34, which takes --profiler-config) decide.
    stack = StackSpec(kind="vllm", model="m", binary=str(tmp_path / "no-vllm-here"))
    ready, method, how = torch_profiled(stack, tmp_path, "run1")
    assert method == {"method": "torch", "trace_dir": "run1/traces", "api": "vllm"}
    assert json.loads(ready.base_args[-1])["torch_profiler_dir"] == str(tmp_path / "run1" / "traces")
    assert how.startswith("torch via --profiler-config")


def test_an_sglang_target_names_its_api(tmp_path: Path) -> None:
    ready, method, _ = torch_profiled(StackSpec(kind="sglang", model="m"), tmp_path, "run1")
    assert method is not None and method["api"] == "sglang" and method["trace_dir"] == "run1/traces"
    assert ready.env["SGLANG_TORCH_PROFILER_DIR"] == str(tmp_path / "run1" / "traces")


def test_a_folder_outside_the_runs_root_falls_back_to_perf(tmp_path: Path) -> None:
    stack = StackSpec(kind="sim", model="layered", env={"VLLM_TORCH_PROFILER_DIR": str(tmp_path / "elsewhere")})
    ready, method, how = torch_profiled(stack, tmp_path / "runs", "run1")
    assert ready == stack and method is None and "outside the runs root" in how


def test_a_cpu_target_is_perf_profiled(tmp_path: Path) -> None:
    stack = StackSpec(kind="llamacpp", model="m")
    assert torch_profiled(stack, tmp_path, "run1") == (stack, None, "perf (no torch profiler for this target)")
