"""How each engine release is started with its torch profiler on: --profiler-config, the old variable, SGLang's body."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from arbor.tools.errors import InputError
from arbor.tools.serving.enginedefs import stored
from arbor.tools.serving.flagcheck import check_stack
from arbor.tools.serving.stack import StackSpec
from arbor.tools.serving.torchprof import PROFILER_CONFIG, profiler_config, torch_profiling


def vllm(**extra: object) -> StackSpec:
    return StackSpec(kind="vllm", model="m", **extra)


def before_0_13():
    """The stored release's definitions without --profiler-config: what a release before 0.13 registers."""
    defs = stored("vllm")
    return defs.model_copy(update={"flags": [f for f in defs.flags if f.name != PROFILER_CONFIG]})


def test_a_current_vllm_gets_profiler_config_with_the_folder(tmp_path: Path) -> None:
    setup = torch_profiling(vllm(), tmp_path / "traces", stored("vllm"))
    assert setup is not None and setup.api == "vllm" and setup.trace_dir == tmp_path / "traces"
    flag, value = setup.stack.base_args[-2:]
    assert flag == PROFILER_CONFIG
    assert json.loads(value) == {"profiler": "torch", "torch_profiler_dir": str(tmp_path / "traces")}
    assert "VLLM_TORCH_PROFILER_DIR" not in setup.stack.env
    # The stored release's own definitions take what is added (a json-valued flag it registers).
    assert check_stack(setup.stack, stored("vllm"))[0].startswith("flags checked against vllm 0.34.0")


def test_the_stored_release_is_read_when_no_vllm_is_installed(tmp_path: Path) -> None:
    setup = torch_profiling(vllm(binary=str(tmp_path / "no-vllm-here")), tmp_path / "traces")
    assert setup is not None and PROFILER_CONFIG in setup.stack.base_args


def test_a_release_before_0_13_gets_the_variable(tmp_path: Path) -> None:
    setup = torch_profiling(vllm(), tmp_path / "traces", before_0_13())
    assert setup is not None and setup.stack.base_args == []
    assert setup.stack.env == {"VLLM_TORCH_PROFILER_DIR": str(tmp_path / "traces")}
    assert "VLLM_TORCH_PROFILER_DIR" in setup.how


def test_the_operators_variable_names_the_folder_on_either_release(tmp_path: Path) -> None:
    stack = vllm(env={"VLLM_TORCH_PROFILER_DIR": str(tmp_path / "mine")})
    current = torch_profiling(stack, tmp_path / "traces", stored("vllm"))
    assert current is not None and current.trace_dir == tmp_path / "mine"
    assert json.loads(current.stack.base_args[-1])["torch_profiler_dir"] == str(tmp_path / "mine")
    old = torch_profiling(stack, tmp_path / "traces", before_0_13())
    assert old is not None and old.trace_dir == tmp_path / "mine" and old.stack == stack


@pytest.mark.parametrize("args", [
    [PROFILER_CONFIG, '{"profiler": "torch", "torch_profiler_dir": "DIR"}'],
    [PROFILER_CONFIG + '={"profiler": "torch", "torch_profiler_dir": "DIR"}'],
    ["--profiler_config.profiler", "torch", "--profiler-config.torch_profiler_dir=DIR"],
])
def test_the_targets_own_profiler_config_is_kept(tmp_path: Path, args: list[str]) -> None:
    args = [a.replace("DIR", str(tmp_path / "own")) for a in args]
    stack = vllm(base_args=["--max-num-seqs", "8", *args])
    setup = torch_profiling(stack, tmp_path / "traces", stored("vllm"))
    assert setup is not None and setup.stack == stack and setup.trace_dir == tmp_path / "own"


@pytest.mark.parametrize("config", ['{"profiler": "cuda"}', '{"profiler": "torch", "torch_profiler_dir": "gs://b/t"}'])
def test_no_torch_route_when_the_target_profiles_otherwise(tmp_path: Path, config: str) -> None:
    assert torch_profiling(vllm(base_args=[PROFILER_CONFIG, config]), tmp_path, stored("vllm")) is None


@pytest.mark.parametrize(("args", "message"), [
    ([PROFILER_CONFIG, "torch"], "not JSON"), ([PROFILER_CONFIG, "[1]"], "JSON object"),
    ([PROFILER_CONFIG], "has no value"),
])
def test_a_malformed_profiler_config_is_named(args: list[str], message: str) -> None:
    with pytest.raises(InputError, match=message):
        profiler_config(args)


def test_sglang_is_told_the_folder_and_gets_it_as_default(tmp_path: Path) -> None:
    setup = torch_profiling(StackSpec(kind="sglang", model="m"), tmp_path / "traces")
    assert setup is not None and setup.api == "sglang" and setup.stack.base_args == []
    assert setup.stack.env == {"SGLANG_TORCH_PROFILER_DIR": str(tmp_path / "traces")}
    mine = StackSpec(kind="sglang", model="m", env={"SGLANG_TORCH_PROFILER_DIR": str(tmp_path / "mine")})
    kept = torch_profiling(mine, tmp_path / "traces")
    assert kept is not None and kept.stack == mine and kept.trace_dir == tmp_path / "mine"


def test_the_sim_speaks_current_vllm_and_cpu_stacks_have_no_torch_route(tmp_path: Path) -> None:
    setup = torch_profiling(StackSpec(kind="sim", model="layered"), tmp_path / "traces")
    assert setup is not None and setup.stack.base_args[0] == PROFILER_CONFIG
    assert torch_profiling(StackSpec(kind="llamacpp", model="m"), tmp_path) is None
