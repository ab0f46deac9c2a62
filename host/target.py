"""The target a campaign serves: its binary and model resolved (the demo built when asked), and its labels for the
knowledge base (which hardware, which framework version)."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Building the demo target is an install step that runs before any server exists (the serving server is
# created for the stack this resolves): the one place the host calls into the tools directly.
from arbor.tools.errors import ArborError
from arbor.tools.provision import DefaultTarget, ensure_default_target

from .errors import HostError, SpecError
from .spec import DEFAULT, CampaignSpec


def build_default(say: Callable[[str], None]) -> DefaultTarget:
    """Build or find llama-server and the SmolLM2 model (cached per source version)."""
    try:
        return ensure_default_target(say)
    except ArborError as exc:
        raise HostError(f"the demo target could not be made ready: {exc}") from exc


def resolve(spec: CampaignSpec, say: Callable[[str], None]) -> tuple[str | None, str]:
    """The binary and model paths, building the demo target when the spec asks for "default"."""
    binary, model = spec.target.binary, spec.target.model
    if binary == DEFAULT or model == DEFAULT:
        target = build_default(say)
        binary = str(target.server_binary) if binary == DEFAULT else binary
        model = str(target.model_path) if model == DEFAULT else model
    if binary and "/" in binary and not Path(binary).is_file():
        raise SpecError(f"target.binary: {binary} does not exist")
    return binary, model


def kb_context(spec: CampaignSpec, binary: str | None, model: str) -> dict[str, Any]:
    """Where this campaign's measurements are made, for the knowledge base."""
    t = spec.target
    hardware = hardware_label() if t.hardware == "auto" else t.hardware
    version = framework_version(binary) if t.framework_version == "auto" else t.framework_version
    return {"stack": t.stack, "hardware": hardware[:127], "model": Path(model).name[:300],
            "model_family": t.model_family, "framework_version": version}


def hardware_label() -> str:
    """e.g. 'cpu:amd-epyc:2c' from /proc/cpuinfo, or a GPU name when nvidia-smi/rocm-smi report one."""
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                              text=True, timeout=10)
        if done.returncode == 0 and done.stdout.strip():
            return "gpu:" + re.sub(r"[^a-z0-9]+", "-", done.stdout.splitlines()[0].lower()).strip("-")
    except (OSError, subprocess.TimeoutExpired):
        pass
    model = "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1]
                break
    except OSError:
        pass
    slug = re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-")[:40] or "cpu"
    return f"cpu:{slug}:{os.cpu_count() or 1}c"


def framework_version(binary: str | None) -> str | None:
    """The serving binary's own version line (llama-server --version), or None."""
    if not binary:
        return None
    try:
        done = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in (done.stdout + done.stderr).splitlines():
        if "version" in line.lower():
            return line.strip()[:100]
    return None
