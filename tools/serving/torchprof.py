"""How a server is started with its PyTorch profiler on, so /start_profile and /stop_profile drive it.

vLLM 0.13 and later take `--profiler-config '{"profiler": "torch", "torch_profiler_dir": DIR}'` and mount the two
endpoints only when a profiler is configured; current releases no longer read VLLM_TORCH_PROFILER_DIR, which is all
older ones read. Whether a release takes the flag is read from its definitions (installed source, else the stored
release). SGLang always serves the endpoints: the body of /start_profile names `output_dir`, SGLANG_TORCH_PROFILER_DIR
the default. The simulated stack speaks current vLLM.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ..errors import InputError
from ..profiling.live import ProfileApi
from .enginedefs import EngineDefs
from .flagcheck import definitions_for
from .stack import StackSpec

PROFILER_CONFIG = "--profiler-config"
VLLM_ENV = "VLLM_TORCH_PROFILER_DIR"
SGLANG_ENV = "SGLANG_TORCH_PROFILER_DIR"


class TorchProfiling(BaseModel):
    """A stack set up for its torch profiler: the stack to launch, where traces land, which API drives it."""

    stack: StackSpec
    trace_dir: Path
    api: ProfileApi
    how: str


def torch_profiling(stack: StackSpec, folder: Path, defs: EngineDefs | None = None) -> TorchProfiling | None:
    """`stack` with its torch profiler writing into `folder` (or the folder the target already names); None for
    stacks without one, or whose target configures another profiler. `defs`: the vLLM release's definitions."""
    if stack.kind == "sglang":
        return _sglang(stack, folder)
    if stack.kind == "sim":
        return _vllm(stack, folder, takes_config=True)
    if stack.kind == "vllm":
        defs = defs or definitions_for("vllm", stack.binary)
        return _vllm(stack, folder, takes_config=defs is not None and defs.flag(PROFILER_CONFIG) is not None)
    return None


def _vllm(stack: StackSpec, folder: Path, takes_config: bool) -> TorchProfiling | None:
    given = profiler_config(stack.base_args)
    if given is not None:
        directory = given.get("torch_profiler_dir")
        if given.get("profiler") != "torch" or not isinstance(directory, str) or not directory or "://" in directory:
            return None  # another profiler (cuda, proton), or traces on remote storage: nothing here to read
        return TorchProfiling(stack=stack, trace_dir=_absolute(directory), api="vllm",
                              how=f"the target's own {PROFILER_CONFIG}")
    chosen = stack.env.get(VLLM_ENV)
    trace_dir = _absolute(chosen) if chosen else folder.absolute()
    if takes_config:
        # The operator's VLLM_TORCH_PROFILER_DIR names the folder; the release only reads it from the flag.
        config = json.dumps({"profiler": "torch", "torch_profiler_dir": str(trace_dir)})
        ready = stack.model_copy(update={"base_args": [*stack.base_args, PROFILER_CONFIG, config]})
        return TorchProfiling(stack=ready, trace_dir=trace_dir, api="vllm",
                              how=f"{PROFILER_CONFIG} (this release does not read {VLLM_ENV})")
    ready = stack if chosen else stack.model_copy(update={"env": stack.env | {VLLM_ENV: str(trace_dir)}})
    return TorchProfiling(stack=ready, trace_dir=trace_dir, api="vllm",
                          how=f"{VLLM_ENV} (this release has no {PROFILER_CONFIG})")


def _sglang(stack: StackSpec, folder: Path) -> TorchProfiling:
    chosen = stack.env.get(SGLANG_ENV)
    trace_dir = _absolute(chosen) if chosen else folder.absolute()
    # /start_profile names the folder itself; the variable makes it the default for any other caller too.
    ready = stack if chosen else stack.model_copy(update={"env": stack.env | {SGLANG_ENV: str(trace_dir)}})
    return TorchProfiling(stack=ready, trace_dir=trace_dir, api="sglang",
                          how=f"/start_profile's output_dir ({SGLANG_ENV} the default)")


def profiler_config(args: list[str]) -> dict[str, Any] | None:
    """The profiler configuration `args` give vLLM (`--profiler-config JSON`, `=JSON`, or dotted keys), or None."""
    config: dict[str, Any] | None = None
    i = 0
    while i < len(args):
        head, eq, inline = args[i].partition("=")
        name, dot, key = head.partition(".")
        # vLLM's parser reads `--profiler_config` as `--profiler-config`; keys after the dot keep their spelling.
        if not name.startswith("--") or name.replace("_", "-") != PROFILER_CONFIG:
            i += 1
            continue
        if not eq and i + 1 >= len(args):
            raise InputError(f"{head} in base_args has no value")
        value = inline if eq else args[i + 1]
        i += 1 if eq else 2
        config = config if config is not None else {}
        if dot:
            config[key] = value
            continue
        try:
            parsed = json.loads(value)
        except ValueError as exc:
            raise InputError(f"{PROFILER_CONFIG} in base_args is not JSON: {value[:80]!r}") from exc
        if not isinstance(parsed, dict):
            raise InputError(f"{PROFILER_CONFIG} in base_args must be a JSON object, not {value[:80]!r}")
        config.update(parsed)
    return config


def _absolute(path: str) -> Path:
    # As the engines do: `~` expanded, relative to the working folder the server inherits from this process.
    return Path(path).expanduser().absolute()
