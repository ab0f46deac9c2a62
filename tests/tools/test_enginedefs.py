"""Reading an engine's own definitions: vLLM and SGLang sources through `ast`, llama-server's `--help`."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from arbor.tools.errors import InputError
from arbor.tools.serving.enginedefs import ENGINES, EngineDefs, FlagDef, parse_defs, stored
from arbor.tools.serving.enginedefs.llamacpp import help_defs, metrics_from_source, parse_help
from arbor.tools.serving.enginedefs.sglang import read_sglang
from arbor.tools.serving.enginedefs.source import SourceTree
from arbor.tools.serving.enginedefs.vllm import read_vllm
from tests.support.engine_trees import SGLANG, VLLM, write_tree


def flags(defs: EngineDefs) -> dict[str, dict]:
    return {f.name: f.model_dump(exclude_defaults=True, exclude={"name"}) for f in defs.flags}


def test_vllm_options_take_type_and_choices_from_the_config_dataclasses(tmp_path: Path) -> None:
    defs = read_vllm(SourceTree.open(write_tree(tmp_path, VLLM)), "tree")
    got = flags(defs)
    assert defs.version == "9.9.9" and defs.flexible
    assert got["--block-size"] == {"type": "int", "choices": ["16", "32"]}  # a Literal alias
    assert got["--kv-cache-dtype"] == {"type": "str", "suggested": ["auto", "fp8", "fp8_e4m3"]}  # Literal | str
    assert got["--quantization"] == {"type": "str", "aliases": ["-q"], "suggested": ["fp8", "awq"]}  # TYPE_CHECKING
    assert got["--all2all-backend"]["choices"] == ["naive", "deepep_low_latency"]  # .remove(PASSTHROUGH) applied
    assert got["--tensor-parallel-size"] == {"type": "int", "aliases": ["-tp"]}
    assert got["--optimization-level"]["choices"] == ["0", "2"]  # an IntEnum is parsed from its value
    assert got["--kv-offloading-size"] == {"type": "float"}
    assert got["--speculative-config"] == {"type": "json"}


def test_vllm_booleans_take_their_negations(tmp_path: Path) -> None:
    got = flags(read_vllm(SourceTree.open(write_tree(tmp_path, VLLM)), "tree"))
    assert got["--enable-prefix-caching"] == {
        "type": "bool", "negations": ["--no-enable-prefix-caching", "--disable-prefix-caching"]}
    assert got["--disable-custom-all-reduce"]["negations"] == ["--no-disable-custom-all-reduce",
                                                              "--enable-custom-all-reduce"]


def test_vllm_without_enable_disable_pairs_has_only_no_forms(tmp_path: Path) -> None:
    files = {k: v for k, v in VLLM.items() if k != "vllm/utils/argparse_utils.py"}  # releases before the pairing
    got = flags(read_vllm(SourceTree.open(write_tree(tmp_path, files)), "tree"))
    assert got["--enable-prefix-caching"]["negations"] == ["--no-enable-prefix-caching"]


def test_vllm_serve_frontend_and_async_options_and_deprecations(tmp_path: Path) -> None:
    got = flags(read_vllm(SourceTree.open(write_tree(tmp_path, VLLM)), "tree"))
    assert got["--api-server-count"] == {"type": "int", "aliases": ["-asc"]}
    assert {"--host", "--port", "--enable-log-requests"} <= set(got)
    assert "model_tag" not in got  # the positional argument is no option
    assert got["--old-flag"]["deprecated"] == "--old-flag is deprecated and will be removed in v10."
    assert all("deprecated" not in v for k, v in got.items() if k != "--old-flag")


def test_vllm_environment_and_metrics(tmp_path: Path) -> None:
    defs = read_vllm(SourceTree.open(write_tree(tmp_path, VLLM)), "tree")
    env = {e.name: e for e in defs.env}
    assert env["VLLM_USE_FLASHINFER_SAMPLER"].type == "bool"
    assert env["VLLM_MODE"].choices == ["a", "b"]
    assert env["VLLM_ATTENTION_BACKEND"].deprecated == "use --attention-backend"  # removed: named, and why
    assert defs.metrics == ["vllm:generation_tokens_total", "vllm:num_requests_running"]  # counters gain _total


def test_vllm_wheel_reads_as_a_zip(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "tree", VLLM)
    wheel = tmp_path / "vllm-9.9.9-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path in tree.rglob("*"):
            if path.is_file():
                archive.write(path, path.relative_to(tree).as_posix())
    from_zip = SourceTree.open(wheel)
    try:
        assert read_vllm(from_zip, "wheel") == read_vllm(SourceTree.open(tree), "wheel")
    finally:
        from_zip.close()


def test_not_a_vllm_tree_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no vllm/engine/arg_utils.py"):
        read_vllm(SourceTree.open(write_tree(tmp_path, SGLANG)), "elsewhere")
    with pytest.raises(InputError, match="neither a wheel nor a folder"):
        SourceTree.open(tmp_path / "missing.whl")


def test_sglang_options_from_the_namespace_fields(tmp_path: Path) -> None:
    defs = read_sglang(SourceTree.open(write_tree(tmp_path, SGLANG)), "tree")
    got = flags(defs)
    assert defs.version == "1.2.3"
    assert got["--tp-size"] == {"type": "int", "aliases": ["--tensor-parallel-size"]}
    assert got["--moe-a2a-backend"] == {"type": "str", "choices": ["none", "deepep"]}  # cli_name, Literal choices
    assert got["--moe-runner-backend"]["choices"] == ["auto", "triton"]  # a list imported from choices.py
    assert got["--enable-mixed-chunk"] == {"type": "bool"}
    assert got["--speculative-num-steps"] == {"type": "int"}
    assert got["--cuda-graph-bs"] == {"type": "list"}
    assert "--disable-cuda-graph" not in got and "--internal-only" not in got  # no_cli, and no Arg at all
    assert "--tp" not in got  # argparse takes it as a prefix; the definitions hold only real spellings


def test_sglang_hand_registered_and_deprecated_options(tmp_path: Path) -> None:
    got = flags(read_sglang(SourceTree.open(write_tree(tmp_path, SGLANG)), "tree"))
    assert got["--enable-dp-attention"] == {"type": "bool", "deprecated": "Deprecated. Use --attn-dp-size."}
    assert got["--config"] == {"type": "str"}


def test_sglang_environment_and_metrics(tmp_path: Path) -> None:
    defs = read_sglang(SourceTree.open(write_tree(tmp_path, SGLANG)), "tree")
    env = {e.name: e for e in defs.env}
    assert env["SGLANG_ENABLE_TORCH_COMPILE"].type == "bool" and env["SGLANG_CHUNK"].type == "int"
    assert env["SGLANG_OLD_CHUNK"].deprecated == "use SGLANG_CHUNK"
    assert env["SGLANG_GONE"].deprecated == "Removed without replacement."
    assert defs.metrics == ["sglang:cached_tokens_total", "sglang:num_running_reqs", "sglang:prompt_tokens_total"]


HELP = """\
----- common params -----

-h,    --help, --usage                  print usage and exit
-t,    --threads N                      number of CPU threads to use during generation (default: -1)
                                        (env: LLAMA_ARG_THREADS)
--cpu-strict <0|1>                      use strict CPU placement (default: 0)
--poll <0...100>                        use polling level to wait for work (0 - no polling, default: 50)
-fa,   --flash-attn [on|off|auto]       set Flash Attention use ('on', 'off', or 'auto', default: 'auto')
                                        (env: LLAMA_ARG_FLASH_ATTN)
--rope-scaling {none,linear,yarn}       RoPE frequency scaling method
-ctk,  --cache-type-k TYPE              KV cache data type for K
                                        allowed values: f32, f16, q8_0
                                        (default: f16)
-dt,   --defrag-thold N                 KV cache defragmentation threshold (DEPRECATED)
-lm,   --load-mode MODE                 model loading mode (default: auto)
                                        - auto: mmap, unless a device does not support it
                                        - mmap: memory-map model
-kvu,  --kv-unified, -no-kvu, --no-kv-unified
                                        use single unified KV buffer shared across all sequences
                                        (env: LLAMA_ARG_KV_UNIFIED)
--control-vector-layer-range START END  layer range to apply the control vector(s) to
"""


def test_llama_help_spellings_values_and_variables() -> None:
    parsed, env = parse_help(HELP)
    got = {f.name: f.model_dump(exclude_defaults=True, exclude={"name"}) for f in parsed}
    assert got["--threads"] == {"aliases": ["-t"]}
    assert got["--help"] == {"aliases": ["-h", "--usage"], "type": "bool"}
    assert got["--cpu-strict"]["choices"] == ["0", "1"]
    assert "choices" not in got["--poll"]  # a range, not a list
    assert got["--flash-attn"] == {"aliases": ["-fa"], "choices": ["on", "off", "auto"]}
    assert got["--rope-scaling"]["choices"] == ["none", "linear", "yarn"]
    assert got["--cache-type-k"]["choices"] == ["f32", "f16", "q8_0"]
    assert got["--load-mode"]["choices"] == ["auto", "mmap"]
    assert got["--defrag-thold"]["deprecated"] == "deprecated"
    assert got["--kv-unified"] == {"aliases": ["-kvu"], "negations": ["-no-kvu", "--no-kv-unified"], "type": "bool"}
    assert "--control-vector-layer-range" in got
    assert [(e.name, e.choices) for e in env] == [("LLAMA_ARG_FLASH_ATTN", ["on", "off", "auto"]),
                                                  ("LLAMA_ARG_KV_UNIFIED", None), ("LLAMA_ARG_THREADS", None)]


def test_a_binary_without_llama_help_is_refused(tmp_path: Path) -> None:
    stub = tmp_path / "llama-server"
    stub.write_text("#!/bin/sh\necho usage: nothing here\n")
    stub.chmod(0o755)
    with pytest.raises(InputError, match="lists no llama-server options"):
        help_defs(stub)


def test_llama_metric_names_from_the_server_source() -> None:
    source = """
    const std::vector<metric_item> counters = {
        {
            "prompt_tokens_total",
            "Number of prompt tokens processed",
            (double) metrics.n_prompt_tokens_processed_total
        }, {
            "n_decode_total", "Total decode calls", (double) metrics.n_decode
        },
    };
    prometheus << "llamacpp:spec_decode_num_accepted_tokens_per_pos_total{position=\\"";
    """
    assert metrics_from_source([source]) == ["llamacpp:n_decode_total", "llamacpp:prompt_tokens_total",
                                             "llamacpp:spec_decode_num_accepted_tokens_per_pos_total"]


@pytest.mark.llama
def test_the_stored_llama_definitions_are_the_pinned_builds(target) -> None:  # noqa: ANN001 - conftest fixture
    live = help_defs(target.server_binary)
    assert [f.spellings() for f in live.flags] == [f.spellings() for f in stored("llamacpp").flags]
    assert [f.choices for f in live.flags] == [f.choices for f in stored("llamacpp").flags]


@pytest.mark.parametrize("engine", ENGINES)
def test_stored_definitions_load_and_round_trip(engine: str) -> None:
    defs = stored(engine)
    assert defs.engine == engine and len(defs.flags) > 100 and defs.metrics
    assert parse_defs(defs.to_json(), "again") == defs


def test_bad_stored_definitions_name_the_problem() -> None:
    with pytest.raises(InputError, match=r"broken.json: flags.0.name"):
        parse_defs('{"engine": "vllm", "version": "1", "source": "s", "flags": [{"name": "tp"}]}', "broken.json")
    with pytest.raises(InputError, match="no stored definitions for 'tgi'"):
        stored("tgi")


def test_lookup_normalizes_as_vllm_does_and_finds_the_nearest_spelling() -> None:
    defs = EngineDefs(engine="vllm", version="1", source="s", flexible=True, flags=[
        FlagDef(name="--max-num-seqs", type="int"), FlagDef(name="--compilation-config", type="json"),
        FlagDef(name="--optimization-level", choices=["0", "1", "2", "3"])])
    assert defs.flag("--max_num_seqs") is defs.flags[0]
    assert defs.flag("--compilation-config.mode") is defs.flags[1]
    assert defs.flag("-O3") is defs.flags[2]
    assert defs.flag("--max-num-seq") is None and defs.nearest_flag("--max-num-seq") == "--max-num-seqs"
    strict = EngineDefs(engine="sglang", version="1", source="s", flags=[FlagDef(name="--tp-size", type="int"),
                                                                         FlagDef(name="--ep", type="int")])
    assert strict.flag("--tp") is None and strict.nearest_flag("--tp") == "--tp-size"  # what it abbreviated
