"""Compilers and devices per kernel language: what is here, how to build, whether it can run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from pydantic import BaseModel

# Default build argv per language; {cc} is the compiler, {sources} expands to every source file.
BUILD = {
    "c": ["{cc}", "-O3", "-march=native", "-std=c11", "-shared", "-fPIC", "-o", "{output}", "{sources}", "-lm"],
    "cpp": ["{cc}", "-O3", "-march=native", "-std=c++17", "-shared", "-fPIC", "-o", "{output}", "{sources}"],
    "hip": ["{cc}", "-O3", "-shared", "-fPIC", "-o", "{output}", "{sources}"],
    "cuda": ["{cc}", "-O3", "-shared", "-Xcompiler", "-fPIC", "-o", "{output}", "{sources}"],
}
COMPILER_ENV = {"c": ("CC", "gcc"), "cpp": ("CXX", "g++"), "hip": ("HIPCC", "hipcc"), "cuda": ("NVCC", "nvcc")}


class Toolchain(BaseModel):
    """A language's compiler and whether a device to run it exists here."""

    language: str
    compiler: str | None
    compiler_found: bool
    device: str | None
    can_run: bool
    note: str


def compiler(language: str) -> str | None:
    """Path of the language's compiler (CC/CXX/HIPCC/NVCC override), or None."""
    if language == "triton":
        return sys.executable
    var, default = COMPILER_ENV[language]
    return shutil.which(os.environ.get(var, default))


def _quiet(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout if done.returncode == 0 else ""


def device(language: str) -> str | None:
    """The device kernels of this language run on here, or None (no GPU, no driver)."""
    if language in ("c", "cpp"):
        return "cpu"
    if language in ("cuda", "triton") and shutil.which("nvidia-smi"):
        listing = _quiet(["nvidia-smi", "-L"]).strip().splitlines()
        if listing:
            return listing[0]
    if language in ("hip", "triton") and shutil.which("rocminfo"):
        gfx = [line.split()[-1] for line in _quiet(["rocminfo"]).splitlines() if "Name:" in line and "gfx" in line]
        if gfx:
            return f"AMD {gfx[0]}"
    return None


def triton_installed() -> bool:
    """Whether `import triton` works in this interpreter."""
    return bool(_quiet([sys.executable, "-c", "import triton; print(triton.__version__)"]))


def toolchain(language: str) -> Toolchain:
    """What this machine can do for `language`."""
    cc = compiler(language)
    found = cc is not None and (language != "triton" or triton_installed())
    dev = device(language)
    if not found:
        what = "triton (pip install triton)" if language == "triton" else COMPILER_ENV[language][1]
        note = f"{what} not found: {language} kernels cannot be built here"
    elif dev is None:
        note = f"{language} kernels build here but no GPU is present to run them"
    else:
        note = f"{language} kernels build and run here on {dev}"
    return Toolchain(language=language, compiler=cc, compiler_found=found, device=dev,
                     can_run=found and dev is not None, note=note)
