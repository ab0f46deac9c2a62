"""The built-in demo stack: llama-server with SmolLM2-135M-Instruct Q4_1 on the CPU."""

from __future__ import annotations

from ..provision import DefaultTarget, cached_server_binary, find_model, source_version
from .stack import StackSpec

DEMO_STACK = "demo"
DEMO_MODEL_NAME = "smollm2-135m-instruct-q4_1"


def demo_stack(target: DefaultTarget) -> StackSpec:
    """The demo stack for a provisioned default target."""
    return StackSpec(kind="llamacpp", binary=str(target.server_binary), model=str(target.model_path),
                     served_model_name=DEMO_MODEL_NAME, ready_timeout_s=300)


def find_demo_stack() -> StackSpec | None:
    """The demo stack if its binary and model are already here (never builds or downloads)."""
    binary, model = cached_server_binary(), find_model()
    if not binary.is_file() or model is None:
        return None
    return demo_stack(DefaultTarget(binary, model, source_version()))
