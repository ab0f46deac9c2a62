"""Which profilers this machine has, with their versions."""

from __future__ import annotations

import shutil
import subprocess

from pydantic import BaseModel

from . import perf

# name -> (executable, version argv, what it profiles)
KNOWN = {
    "perf": ("perf", ["perf", "--version"], "CPU symbols of a live process (cpu-clock sampling)"),
    "rocprofv3": ("rocprofv3", ["rocprofv3", "--version"], "AMD GPU kernels (kernel trace + stats, CSV)"),
    "rocprof": ("rocprof", ["rocprof", "--version"], "AMD GPU kernels, legacy (results.stats.csv)"),
    "nsys": ("nsys", ["nsys", "--version"], "NVIDIA GPU kernels (cuda_gpu_kern_sum)"),
    "ncu": ("ncu", ["ncu", "--version"], "NVIDIA per-kernel metrics (gpu__time_duration.sum)"),
}


class ProfilerInfo(BaseModel):
    """One profiler: is it here, which version, what it measures."""

    name: str
    available: bool
    version: str | None = None
    path: str | None = None
    profiles: str


def _version(argv: list[str]) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0][:200] if text else None


def available() -> list[ProfilerInfo]:
    """Every known profiler, present or not (PyTorch's is in-process and always listed as file-based)."""
    out = []
    for name, (exe, argv, what) in KNOWN.items():
        path = shutil.which(exe)
        version = (perf.version() if name == "perf" else _version(argv)) if path else None
        out.append(ProfilerInfo(name=name, available=path is not None, version=version, path=path, profiles=what))
    out.append(ProfilerInfo(name="torch.profiler", available=False, profiles="PyTorch key_averages JSON or Chrome "
                            "trace files written by the framework (vLLM /start_profile, /stop_profile); parse only"))
    return out
