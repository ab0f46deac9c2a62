"""Small vLLM and SGLang source trees, written the way the real releases declare their options, for the readers."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

VLLM = {
    "vllm-9.9.9.dist-info/METADATA": "Metadata-Version: 2.1\nName: vllm\nVersion: 9.9.9\n",
    "vllm/__init__.py": "",
    "vllm/config/__init__.py": '''
        from vllm.config.cache import CacheConfig
        from vllm.config.parallel import ParallelConfig
    ''',
    "vllm/config/cache.py": '''
        from dataclasses import dataclass
        from typing import Literal, TYPE_CHECKING
        if TYPE_CHECKING:
            from vllm.quant import QuantMethods
        else:
            QuantMethods = str
        CacheDType = Literal["auto", "fp8", "fp8_e4m3"]
        BlockSize = Literal[16, 32]

        @dataclass
        class CacheConfig:
            block_size: BlockSize = 16
            cache_dtype: CacheDType | str = "auto"
            enable_prefix_caching: bool | None = None
            kv_offloading_size: float | None = None
            quantization: QuantMethods | str | None = None
    ''',
    "vllm/quant.py": 'from typing import Literal\nQuantMethods = Literal["fp8", "awq"]\n',
    "vllm/config/parallel.py": '''
        from enum import IntEnum
        from typing import Literal
        from vllm.config.utils import config
        PASSTHROUGH = "passthrough"
        All2AllBackend = Literal["naive", "deepep_low_latency", "passthrough"]

        class Level(IntEnum):
            O0 = 0
            O2 = 2

        @config
        class ParallelConfig:
            all2all_backend: All2AllBackend = "naive"
            tensor_parallel_size: int = 1
            level: Level = Level.O2
            disable_custom_all_reduce: bool = False
    ''',
    "vllm/utils/argparse_utils.py": "class EnableDisableAction:\n    pass\n",
    "vllm/engine/arg_utils.py": '''
        import argparse
        import json
        from vllm.config import CacheConfig, ParallelConfig
        from vllm.config.parallel import PASSTHROUGH

        _OLD_MESSAGE = "--old-flag is deprecated and will be removed in v10."

        class EngineArgs:
            @staticmethod
            def add_cli_args(parser):
                cache_kwargs = get_kwargs(CacheConfig)
                group = parser.add_argument_group("CacheConfig")
                group.add_argument("--block-size", **cache_kwargs["block_size"])
                group.add_argument("--kv-cache-dtype", **cache_kwargs["cache_dtype"])
                group.add_argument("--enable-prefix-caching", **cache_kwargs["enable_prefix_caching"])
                group.add_argument("--kv-offloading-size", **cache_kwargs["kv_offloading_size"])
                group.add_argument("--quantization", "-q", **cache_kwargs["quantization"])
                parallel_kwargs = get_kwargs(ParallelConfig)
                parallel_kwargs["all2all_backend"]["choices"].remove(PASSTHROUGH)
                group.add_argument("--all2all-backend", **parallel_kwargs["all2all_backend"])
                group.add_argument("--tensor-parallel-size", "-tp", **parallel_kwargs["tensor_parallel_size"])
                group.add_argument("--optimization-level", **parallel_kwargs["level"])
                group.add_argument("--disable-custom-all-reduce", **parallel_kwargs["disable_custom_all_reduce"])
                group.add_argument("--old-flag", **{**cache_kwargs["block_size"], "help": _OLD_MESSAGE})
                group.add_argument("--speculative-config", type=optional_type(json.loads), default=None)

        class AsyncEngineArgs(EngineArgs):
            @staticmethod
            def add_cli_args(parser):
                parser = EngineArgs.add_cli_args(parser)
                parser.add_argument("--enable-log-requests", action=argparse.BooleanOptionalAction, default=False)
                return parser
    ''',
    "vllm/entrypoints/__init__.py": "",
    "vllm/entrypoints/cli/serve.py": "from vllm.entrypoints.common.cli_args import make_arg_parser\n",
    "vllm/entrypoints/common/cli_args.py": '''
        from dataclasses import dataclass

        @dataclass
        class BaseFrontendArgs:
            host: str | None = None

        @dataclass
        class FrontendArgs(BaseFrontendArgs):
            port: int = 8000

        def make_arg_parser(parser):
            parser.add_argument("model_tag", nargs="?")
            parser.add_argument("--api-server-count", "-asc", type=int, default=None)
            parser = FrontendArgs.add_cli_args(parser)
            return parser
    ''',
    "vllm/envs.py": '''
        import os
        if TYPE_CHECKING:
            VLLM_USE_FLASHINFER_SAMPLER: bool = True
        removed_environment_variables: dict[str, str] = {"VLLM_ATTENTION_BACKEND": "use --attention-backend"}
        environment_variables = {
            "VLLM_USE_FLASHINFER_SAMPLER": lambda: bool(int(os.environ["VLLM_USE_FLASHINFER_SAMPLER"])),
            "VLLM_MODE": env_with_choices("VLLM_MODE", "a", ["a", "b"]),
        }
    ''',
    "vllm/v1/metrics/loggers.py": '''
        class Logger:
            def __init__(self):
                self.running = self._gauge_cls(name="vllm:num_requests_running", documentation="d")
                self.tokens = self._counter_cls(name="vllm:generation_tokens", documentation="d")
    ''',
}

SGLANG = {
    "sglang-1.2.3.dist-info/METADATA": "Metadata-Version: 2.1\nName: sglang\nVersion: 1.2.3\n",
    "sglang/srt/arg_groups/choices.py": 'MOE_CHOICES = [\n    "auto",\n    "triton",\n]\n',
    "sglang/srt/arg_groups/fields/parallel.py": '''
        from typing import Literal, Optional
        import msgspec
        from sglang.srt.arg_groups.arg_utils import A, Arg
        from sglang.srt.arg_groups.choices import MOE_CHOICES

        class Parallel(msgspec.Struct):
            _NS_PATH = "parallel"
            tp_size: A[int, Arg(help="The tensor parallelism size.", aliases=["--tensor-parallel-size"])] = 1
            a2a: A[Optional[Literal["none", "deepep"]], Arg(help="a2a", cli_name="--moe-a2a-backend")] = None
            moe_runner_backend: A[str, Arg(help="MoE kernels.", choices=MOE_CHOICES)] = "auto"
            enable_mixed_chunk: A[bool, "Mix prefill and decode."] = False
            speculative_num_steps: A[Optional[int], "Draft steps."] = None
            cuda_graph_bs: A[Optional[list[int]], "Batch sizes."] = None
            disable_cuda_graph: A[bool, Arg(no_cli=True)] = False
            internal_only: int = 0
    ''',
    "sglang/srt/server_args.py": '''
        from sglang.srt.arg_groups.argparse_actions import DeprecatedStoreTrueAction
        from sglang.srt.arg_groups.fields.parallel import Parallel

        class ServerArgs:
            @staticmethod
            def add_cli_args(parser):
                add_cli_args_from_dataclass(parser, ServerArgs)
                parser.add_argument("--enable-dp-attention", action=DeprecatedStoreTrueAction,
                                    new_flag="--attn-dp-size <dp-size>", help="Deprecated. Use --attn-dp-size.")
                parser.add_argument("--config", type=str, help="Read options from a file.")

        ServerArgs = defstruct("ServerArgs", [Parallel])
    ''',
    "sglang/srt/environ.py": '''
        class Envs:
            SGLANG_ENABLE_TORCH_COMPILE = EnvBool(False)
            SGLANG_CHUNK = EnvIntWithAlias(32, deprecated_name="SGLANG_OLD_CHUNK")

        _DEPRECATED_ENVS: Dict[str, _DeprecatedEnv] = {
            "SGLANG_GONE": _DeprecatedEnv(note="Removed without replacement."),
        }
    ''',
    "sglang/srt/observability/metrics_collector.py": '''
        from prometheus_client import Counter, Gauge
        RUNNING = Gauge(name="sglang:num_running_reqs", documentation="d")
        PROMPT = Counter(name="sglang:prompt_tokens", documentation="d")
        CACHED = Counter(name="sglang:cached_tokens_total", documentation="d")
    ''',
}


def write_tree(root: Path, files: dict[str, str]) -> Path:
    """Write `files` (relative path -> source) under `root`; returns `root`."""
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dedent(text).lstrip("\n"))
    return root
