"""scripts/gpu_check.sh where it cannot run (no GPU): valid bash, and one JSON line that says why, exit status 2."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.sh"
GPU_TOOLS = ("nvidia-smi", "amd-smi", "rocm-smi")


def run(tmp_path: Path, path: str | None = None, **env: str) -> tuple[int, dict, str]:
    """Run the script with TMPDIR in `tmp_path`: (exit status, its one JSON line, stderr)."""
    environ = os.environ | {"TMPDIR": str(tmp_path / "tmp"), "PATH": path or os.environ["PATH"]} | env
    (tmp_path / "tmp").mkdir(exist_ok=True)
    done = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=environ, timeout=60)
    lines = done.stdout.splitlines()
    assert len(lines) == 1, done.stdout
    return done.returncode, json.loads(lines[0]), done.stderr


def test_the_script_is_valid_bash() -> None:
    done = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_without_gpu_tools_it_says_so_in_one_json_line(tmp_path: Path) -> None:
    present = [t for t in GPU_TOOLS if shutil.which(t)]
    if present:
        pytest.skip(f"{present} installed here: not the machine this test describes")
    status, answer, _ = run(tmp_path)
    assert status == 2
    assert answer["ok"] is False and answer["gpu"] is None and answer["actions"] == 0
    assert answer["error"] == "no GPU found: none of nvidia-smi, amd-smi, rocm-smi is installed"
    assert answer["errors"] == [answer["error"]]
    assert list((tmp_path / "tmp").iterdir()) == [], "nothing is created before a GPU is found"


def test_an_nvidia_smi_that_finds_no_device_is_no_gpu(tmp_path: Path) -> None:
    if shutil.which("amd-smi") or shutil.which("rocm-smi"):
        pytest.skip("AMD tools installed here")
    # The driver's tool without a device: `nvidia-smi -L` prints this and fails (6: no object found).
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "nvidia-smi").write_text('#!/bin/sh\necho "No devices were found"\nexit 6\n')
    (tools / "nvidia-smi").chmod(0o755)
    status, answer, _ = run(tmp_path, f"{tools}:{os.environ['PATH']}")
    assert status == 2 and answer["ok"] is False
    assert answer["error"] == "no GPU found: nvidia-smi: No devices were found"


def test_a_bad_deadline_is_named(tmp_path: Path) -> None:
    status, answer, _ = run(tmp_path, ARBOR_GPU_CHECK_S="ten")
    assert status == 1 and answer["error"] == "ARBOR_GPU_CHECK_S must be whole seconds, not 'ten'"
