"""Labels for the knowledge base: which hardware this is and which framework version runs."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path


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
