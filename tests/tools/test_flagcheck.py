"""A stack's knobs, base_args and env checked against its engine's definitions, and where those come from."""

from __future__ import annotations

from pathlib import Path

import pytest

from arbor.tools.errors import InputError
from arbor.tools.serving.enginedefs import stored
from arbor.tools.serving.flagcheck import check_stack, definitions_for
from arbor.tools.serving.knobs import Knob
from arbor.tools.serving.stack import StackSpec
from tests.support.engine_trees import VLLM, write_tree


def stack(kind: str, *knobs: Knob, base_args: list[str] | None = None, env: dict[str, str] | None = None,
          binary: str | None = None) -> StackSpec:
    return StackSpec(kind=kind, model="m", binary=binary, knobs=list(knobs), base_args=base_args or [], env=env or {})


def refused(spec: StackSpec) -> str:
    with pytest.raises(InputError) as caught:
        check_stack(spec, definitions_for(spec.kind, None))
    return str(caught.value)


def test_an_unknown_flag_is_refused_with_the_nearest_spelling() -> None:
    message = refused(stack("sglang", Knob(name="tp", flag="--tp", type="int")))
    assert "knob 'tp': --tp is not one of its options; nearest real spelling: --tp-size" in message
    assert message.startswith("sglang 0.5.23 (")
    message = refused(stack("vllm", Knob(name="seqs", flag="--max-num-seq", type="int")))
    assert "--max-num-seq is not one of its options; nearest real spelling: --max-num-seqs" in message


def test_every_fatal_finding_is_named_at_once() -> None:
    message = refused(stack("llamacpp", Knob(name="a", flag="--paralel", type="int"),
                            Knob(name="b", flag="--ctx-sise", type="int")))
    assert "--paralel" in message and "--parallel" in message and "--ctx-sise" in message and "--ctx-size" in message


def test_an_engine_variable_the_engine_lacks_is_refused_and_a_foreign_one_passes() -> None:
    message = refused(stack("vllm", Knob(name="attn", env="VLLM_ATTENTION_BACKEND", type="str")))
    assert "VLLM_ATTENTION_BACKEND is not one of its environment variables" in message
    notes = check_stack(stack("vllm", Knob(name="omp", env="OMP_NUM_THREADS", type="int"),
                              Knob(name="sampler", env="VLLM_USE_FLASHINFER_SAMPLER", type="bool")), stored("vllm"))
    assert notes == ["flags checked against vllm 0.34.0 (" + stored("vllm").source + ")"]


def test_choices_the_engine_does_not_take_are_refused() -> None:
    message = refused(stack("sglang", Knob(name="kv", flag="--kv-cache-dtype", type="choice",
                                           choices=["auto", "fp8"])))
    assert "--kv-cache-dtype takes none of ['fp8']" in message
    # vLLM names its KV dtypes but lets platforms add more: an unnamed one is a note, not a refusal.
    notes = check_stack(stack("vllm", Knob(name="kv", flag="--kv-cache-dtype", type="choice",
                                           choices=["fp8", "fp9"])), stored("vllm"))
    assert any("['fp9'] not among the values the engine names" in n for n in notes)


def test_a_flag_rendered_the_wrong_way_is_refused() -> None:
    assert "--max-num-seqs takes a value; the knob passes it bare" in refused(
        stack("vllm", Knob(name="x", flag="--max-num-seqs", type="bool")))
    assert "--enforce-eager takes no value; the knob passes one" in refused(
        stack("vllm", Knob(name="x", flag="--enforce-eager", type="int")))
    assert "false_flag --no-enforce-eager sets --enforce-eager, not --enable-prefix-caching" in refused(
        stack("vllm", Knob(name="x", flag="--enable-prefix-caching", false_flag="--no-enforce-eager", type="bool",
                           bool_style="pair")))


def test_base_args_are_checked_as_the_engine_parses_them() -> None:
    fine = stack("vllm", base_args=["--max_num_seqs", "8", "-O3", "--compilation-config.mode=3", "--dtype=bfloat16",
                                    "--seed", "-1"])
    assert len(check_stack(fine, stored("vllm"))) == 1  # the summary line alone
    assert "base_args: --max-num-seq is not one of its options" in refused(
        stack("vllm", base_args=["--max-num-seq", "8"]))


def test_deprecated_spellings_and_unknown_fixed_variables_are_notes() -> None:
    notes = check_stack(stack("sglang", Knob(name="dpa", flag="--enable-dp-attention", type="bool"),
                              env={"SGLANG_NO_SUCH_THING": "1", "CUDA_VISIBLE_DEVICES": "0"}), stored("sglang"))
    assert any(n.startswith("knob 'dpa': --enable-dp-attention is deprecated: Deprecated. Use --attn-dp-size")
               for n in notes)
    assert any(n.startswith("target.env: SGLANG_NO_SUCH_THING is not one of its environment variables")
               for n in notes)
    assert not any("CUDA_VISIBLE_DEVICES" in n for n in notes)


def test_the_builtin_catalogue_is_checked_when_the_stack_names_no_knobs() -> None:
    spec = StackSpec(kind="sglang", model="m")
    assert check_stack(spec, stored("sglang"))[0].startswith("flags checked against sglang 0.5.23")


def test_kinds_without_an_engine_are_not_checked() -> None:
    assert definitions_for("generic", None) is None and definitions_for("sim", None) is None
    assert check_stack(StackSpec(kind="generic", model="m", command=["x", "{port}"],
                                 knobs=[Knob(name="w", flag="--anything", type="int")])) == []


def test_llama_server_without_its_help_falls_back_to_the_stored_definitions(tmp_path: Path) -> None:
    stub = tmp_path / "llama-server"
    stub.write_text("#!/bin/sh\necho usage: nothing here\n")
    stub.chmod(0o755)
    assert definitions_for("llamacpp", str(stub)) is stored("llamacpp")
    assert definitions_for("llamacpp", str(tmp_path / "absent")) is stored("llamacpp")


@pytest.mark.llama
def test_llama_server_answers_for_itself(target) -> None:  # noqa: ANN001 - conftest fixture
    defs = definitions_for("llamacpp", str(target.server_binary))
    assert defs is not None and defs.source == f"{target.server_binary} --help"
    assert defs.flag("--parallel") is not None


def venv_with_vllm(root: Path) -> Path:
    """A virtual environment folder with the small vLLM tree installed and a `vllm` script of its own."""
    write_tree(root / "lib" / "python3.11" / "site-packages", VLLM)
    (root / "bin").mkdir()
    python = root / "bin" / "python"
    python.write_text("")
    script = root / "bin" / "vllm"
    script.write_text(f"#!{python}\nfrom vllm.entrypoints.cli.main import main\n")
    script.chmod(0o755)
    return script


def test_the_installed_vllm_beside_the_binary_is_read(tmp_path: Path) -> None:
    script = venv_with_vllm(tmp_path / "venv")
    defs = definitions_for("vllm", str(script))
    assert defs is not None and defs.version == "9.9.9" and "installed vllm in" in defs.source
    with pytest.raises(InputError, match=r"vllm 9\.9\.9 .*--enable-expert-parallel is not one of its options"):
        check_stack(stack("vllm", Knob(name="ep", flag="--enable-expert-parallel", type="bool"),
                          binary=str(script)))


def test_vllm_without_an_installed_package_uses_the_stored_release(tmp_path: Path) -> None:
    assert definitions_for("vllm", str(tmp_path / "no-vllm-here")) is stored("vllm")
