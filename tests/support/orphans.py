"""An orphaned process group as a killed owner leaves it: the leader gone, a member alive, a record in the registry."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from arbor.tools.procs import registry_dir, start_time


def orphan_group(argv: list[str], log_path: Path | None = None) -> tuple[int, int]:
    """Start a group whose leader exits at once, leaving a sleeping member; record it under a dead owner.

    Returns (leader pid = process group id, member pid). The record's argv is what the
    report should show; the processes themselves are a shell and `sleep`.
    """
    leader = subprocess.Popen(["/bin/sh", "-c", "sleep 300 >/dev/null 2>&1 & echo $!"], stdout=subprocess.PIPE,
                              text=True, start_new_session=True)
    member = int(leader.stdout.readline())
    leader.stdout.close()
    leader_start = start_time(leader.pid)
    leader.wait()
    dead_owner = subprocess.Popen(["true"])
    dead_owner.wait()
    folder = registry_dir()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{leader.pid}.json").write_text(json.dumps({
        "pid": leader.pid, "start_time": leader_start, "argv": argv,
        "log_path": str(log_path) if log_path else None,
        # A reused owner pid would carry another start time: 1 is nobody's.
        "owner_pid": dead_owner.pid, "owner_start_time": 1, "created": time.time()}))
    return leader.pid, member


def kill(pid: int) -> None:
    """SIGKILL `pid` if it still exists (cleanup after a failed assertion)."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
