"""`arbor-host run` as a real process: stopping it, even by SIGKILL, leaves no server behind."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import our_processes

pytestmark = pytest.mark.llama
HOST = Path(sys.executable).with_name("arbor-host")


def _start(tmp_path: Path) -> tuple[subprocess.Popen, list[int]]:
    proc = subprocess.Popen([str(HOST), "run", "--runs-dir", str(tmp_path), "--concurrencies", "2",
                             "--input-len", "16", "--output-len", "400", "--min-prompts", "40"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        if line.startswith("ready in"):
            break
    else:
        pytest.fail(f"host never got the server ready: {proc.stdout.read()}")
    time.sleep(1.0)
    return proc, [int(line.split("pid ")[1].rstrip(")\n"))]


def _gone(binary: Path, pid: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pid not in our_processes(binary):
            return True
        time.sleep(0.1)
    return False


def test_sigterm_stops_the_server_and_says_so(tmp_path: Path, target) -> None:
    proc, (pid,) = _start(tmp_path)
    assert pid in our_processes(target.server_binary)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "interrupted; the server was stopped" in err
    assert _gone(target.server_binary, pid, timeout=1)


def test_sigkill_of_the_host_still_stops_the_server(tmp_path: Path, target) -> None:
    proc, (pid,) = _start(tmp_path)
    proc.kill()
    proc.wait()
    assert _gone(target.server_binary, pid), "the watchdog must stop the server of a killed host"
