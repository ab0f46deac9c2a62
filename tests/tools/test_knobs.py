"""Knob validation and rendering; the built-in catalogues load and are consistent."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from arbor.tools.errors import InputError
from arbor.tools.serving.knobs import Knob, catalogue, resolve
from arbor.tools.serving.stack import StackSpec, build_command


@pytest.mark.parametrize("stack", ["llamacpp", "vllm", "sglang"])
def test_catalogues_load(stack: str) -> None:
    knobs = catalogue(stack)
    assert len(knobs) >= 10
    for knob in knobs.values():
        assert knob.flag or knob.env


def test_render_styles() -> None:
    llama = catalogue("llamacpp")
    assert llama["parallel"].render(16) == (["--parallel", "16"], {})
    assert llama["cont_batching"].render(False) == (["--no-cont-batching"], {})
    assert llama["flash_attn"].render("on") == (["--flash-attn", "on"], {})
    vllm = catalogue("vllm")
    assert vllm["enforce_eager"].render(True) == (["--enforce-eager"], {})
    assert vllm["enforce_eager"].render(False) == ([], {})
    assert vllm["rocm_use_aiter"].render(True) == ([], {"VLLM_ROCM_USE_AITER": "1"})
    assert vllm["compilation_config"].render('{"level": 3}') == (["--compilation-config", '{"level":3}'], {})
    assert vllm["gpu_memory_utilization"].render(0.9) == (["--gpu-memory-utilization", "0.9"], {})


@pytest.mark.parametrize(("name", "value", "message"), [
    ("parallel", "16", "integer"),
    ("parallel", 0, ">= 1"),
    ("parallel", True, "integer"),
    ("parallel", 1.5, "integer"),
    ("flash_attn", "maybe", "one of"),
    ("cont_batching", "yes", "true or false"),
    ("omp_wait_policy", "SPIN", "one of"),
    ("gomp_spincount", -1, ">= 0"),
    ("gomp_spincount", "INFINITE", "integer"),
])
def test_bad_values_name_the_knob(name: str, value: object, message: str) -> None:
    with pytest.raises(InputError, match=message) as caught:
        catalogue("llamacpp")[name].validate_value(value)
    assert repr(name) in str(caught.value)


def test_resolve_is_all_or_nothing() -> None:
    knobs = catalogue("llamacpp")
    with pytest.raises(InputError, match=r"unknown knob\(s\) \['paralel'\]"):
        resolve(knobs, {"threads": 2, "paralel": 4})
    argv, env = resolve(knobs, {"threads": 2, "parallel": 4})
    assert argv == ["--parallel", "4", "--threads", "2"] and env == {}



def test_openmp_knobs_are_environment_of_the_server() -> None:
    # The OpenMP runtime reads them at process start: they go into the server's environment, not its argv.
    llama = catalogue("llamacpp")
    assert {llama["omp_wait_policy"].layer, llama["gomp_spincount"].layer} == {"openmp"}
    assert llama["omp_wait_policy"].choices == ["PASSIVE", "ACTIVE"]
    spec = StackSpec(kind="llamacpp", binary="/opt/llama-server", model="/m.gguf", env={"HOME": "/h"})
    argv, env = build_command(spec, {"omp_wait_policy": "PASSIVE", "gomp_spincount": 30000000000, "threads": 2},
                              9000)
    assert argv[-2:] == ["--threads", "2"] and "PASSIVE" not in argv
    assert env == {"HOME": "/h", "OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "30000000000"}

def test_knob_definition_is_checked() -> None:
    with pytest.raises(ValidationError, match="exactly one of flag or env"):
        Knob(name="x", type="int")
    with pytest.raises(ValidationError, match="needs choices"):
        Knob(name="x", flag="--x", type="choice")
    with pytest.raises(ValidationError):
        Knob(name="x", flag="--x; rm -rf /", type="int")
    with pytest.raises(ValidationError, match="must be >= 1"):
        Knob(name="x", flag="--x", type="int", min=1, default=0)


def test_argv_per_stack() -> None:
    llama = StackSpec(kind="llamacpp", binary="/opt/llama-server", model="/m.gguf", served_model_name="m")
    argv, env = build_command(llama, {"parallel": 8}, 9000)
    assert argv == ["/opt/llama-server", "-m", "/m.gguf", "--host", "127.0.0.1", "--port", "9000", "--metrics",
                    "--alias", "m", "--parallel", "8"]
    vllm = StackSpec(kind="vllm", model="meta-llama/Llama-3.1-8B-Instruct")
    argv, env = build_command(vllm, {"tensor_parallel_size": 8, "attention_backend": "ROCM_AITER_FA",
                                     "flashinfer_sampler": False}, 8000)
    assert argv[:3] == ["vllm", "serve", "meta-llama/Llama-3.1-8B-Instruct"]
    assert argv[-4:] == ["--attention-backend", "ROCM_AITER_FA", "--tensor-parallel-size", "8"]
    assert env == {"VLLM_USE_FLASHINFER_SAMPLER": "0"}
    argv, _ = build_command(vllm, {"async_scheduling": False}, 8000)
    assert argv[-1] == "--no-async-scheduling"  # tri-state: unset leaves vLLM's choice, false turns it off
    sglang = StackSpec(kind="sglang", model="m", binary="/venv/bin/python")
    argv, _ = build_command(sglang, {"tp_size": 2, "mem_fraction_static": 0.8}, 30000)
    assert argv[:4] == ["/venv/bin/python", "-m", "sglang.launch_server", "--model-path"]
    assert argv[-4:] == ["--mem-fraction-static", "0.8", "--tp-size", "2"]


def test_generic_command_template() -> None:
    spec = StackSpec(kind="generic", model="/m", command=["my-server", "--model={model}", "--listen", "{host}:{port}"],
                     knobs=[Knob(name="workers", flag="--workers", type="int", min=1)])
    argv, _ = build_command(spec, {"workers": 3}, 7000)
    assert argv == ["my-server", "--model=/m", "--listen", "127.0.0.1:7000", "--workers", "3"]
    with pytest.raises(ValidationError, match="unknown placeholder"):
        StackSpec(kind="generic", model="/m", command=["x", "{shell}"])
    with pytest.raises(ValidationError, match="needs command"):
        StackSpec(kind="generic", model="/m")
    with pytest.raises(ValidationError, match="only for the generic kind"):
        StackSpec(kind="vllm", model="/m", command=["x"])


def test_base_args_clash_with_knob() -> None:
    spec = StackSpec(kind="llamacpp", model="/m.gguf", base_args=["--parallel", "2"])
    with pytest.raises(InputError, match="--parallel"):
        build_command(spec, {"parallel": 4}, 9000)


@pytest.mark.parametrize("base_args", [["--port", "9"], ["--host=0.0.0.0"], ["-m", "/other.gguf"]])
def test_reserved_flags_cannot_move_model_or_address(base_args: list[str]) -> None:
    spec = StackSpec(kind="llamacpp", model="/m.gguf", base_args=base_args)
    with pytest.raises(InputError, match="set by Arbor itself"):
        build_command(spec, {}, 9000)


def test_equals_form_counts_as_the_same_flag() -> None:
    spec = StackSpec(kind="llamacpp", model="/m.gguf", base_args=["--parallel=2"])
    with pytest.raises(InputError, match="--parallel"):
        build_command(spec, {"parallel": 4}, 9000)


def test_stacks_file(tmp_path) -> None:
    from arbor.tools.serving.stack import load_stacks

    good = tmp_path / "stacks.toml"
    good.write_text('[stack.mi300x-llama]\nkind = "vllm"\nmodel = "meta-llama/Llama-3.1-8B-Instruct"\n'
                    'env = { HF_HOME = "/data/hf" }\n')
    stacks = load_stacks(good)
    assert stacks["mi300x-llama"].kind == "vllm" and stacks["mi300x-llama"].env == {"HF_HOME": "/data/hf"}
    for text, message in [('[stack.x]\nkind = "tgi"\nmodel = "m"\n', "stack 'x': kind"),
                          ('[stack.x]\nkind = "vllm"\nmodle = "m"\n', "stack 'x': "),
                          ('[stacks.x]\nkind = "vllm"\n', "unknown top-level key"),
                          ("[stack.x\n", "not valid TOML")]:
        bad = tmp_path / "bad.toml"
        bad.write_text(text)
        with pytest.raises(InputError, match=message):
            load_stacks(bad)
    with pytest.raises(InputError, match="cannot read"):
        load_stacks(tmp_path / "absent.toml")
