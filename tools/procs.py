"""Child processes in their own process group: start, watch, stop, and reap what a dead host left.

Every child gets (1) its own session, so stop can kill the whole group; (2) a
watchdog process that kills the group if the starting process dies, even by
SIGKILL; (3) a record in a registry folder, so a later start reaps orphans that
survived anything else (a reboot of the watchdog, say).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from .errors import ProcessError
from .paths import cache_dir

WATCHDOG = Path(__file__).with_name("watchdog.py")


def registry_dir() -> Path:
    """Folder of pid records (ARBOR_PROC_REGISTRY overrides)."""
    return Path(os.environ.get("ARBOR_PROC_REGISTRY") or cache_dir() / "procs")


def start_time(pid: int) -> int | None:
    """Kernel start time of `pid` in clock ticks, or None if it does not exist; tells a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19])


def _state_and_pgid(pid: int) -> tuple[str, int] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[0], int(fields[2])


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) pids in process group `pgid`, read from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        info = _state_and_pgid(int(entry.name))
        if info and info[1] == pgid and info[0] != "Z":
            members.append(int(entry.name))
    return members


def _kill_group(pgid: int, grace: float) -> None:
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not group_members(pgid):
            return
        time.sleep(0.05)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 5
    while group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)


@dataclass
class Child:
    """A started child process group with its watchdog and registry record."""

    argv: list[str]
    popen: subprocess.Popen
    log_path: Path | None
    record_path: Path
    watchdog: subprocess.Popen
    _watch_pipe: IO[bytes] | None = field(repr=False, default=None)
    stopped: bool = False
    unkillable: bool = False

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def pgid(self) -> int:
        return self.popen.pid

    def poll(self) -> int | None:
        """Exit status: None while running, negative for a signal, as subprocess reports it."""
        return self.popen.poll()

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for the leader to exit; None on timeout."""
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM the whole group, SIGKILL after `grace` seconds; idempotent, never raises.

        A process that survives SIGKILL (stuck in the kernel, e.g. a hung GPU driver) is
        marked `unkillable` and its registry record kept, so a later start tries again.
        """
        if not self.stopped:
            _kill_group(self.pgid, grace)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.unkillable = True
            self._release()
        return self.popen.returncode

    def _release(self) -> None:
        self.stopped = True
        if self._watch_pipe is not None:
            self._watch_pipe.close()
            self._watch_pipe = None
        try:
            self.watchdog.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.watchdog.kill()
        if not self.unkillable:
            self.record_path.unlink(missing_ok=True)


def spawn(
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    log_path: Path | None = None,
    grace: float = 10.0,
) -> Child:
    """Start `argv` (never a shell string) in its own session, logging stdout+stderr to `log_path`."""
    if not argv or not all(isinstance(a, str) for a in argv):
        raise ProcessError("argv must be a non-empty list of strings")
    log: IO[bytes] | int = subprocess.DEVNULL
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(log_path, "ab")
    try:
        popen = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        raise ProcessError(f"cannot start {argv[0]!r}: {exc.strerror or exc}") from exc
    finally:
        if not isinstance(log, int):
            log.close()
    watchdog = subprocess.Popen(
        [sys.executable, "-I", str(WATCHDOG), str(popen.pid), str(grace)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    record_path = _write_record(popen.pid, argv, log_path)
    return Child(argv=list(argv), popen=popen, log_path=log_path, record_path=record_path,
                 watchdog=watchdog, _watch_pipe=watchdog.stdin)


def _write_record(pid: int, argv: list[str], log_path: Path | None) -> Path:
    folder = registry_dir()
    folder.mkdir(parents=True, exist_ok=True)
    record = {
        "pid": pid,
        "start_time": start_time(pid),
        "argv": argv,
        "log_path": str(log_path) if log_path else None,
        "owner_pid": os.getpid(),
        "owner_start_time": start_time(os.getpid()),
        "created": time.time(),
    }
    path = folder / f"{pid}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    tmp.replace(path)
    return path


def reap_orphans(grace: float = 5.0) -> list[dict]:
    """Stop process groups whose starting process is gone; return the records reaped."""
    folder = registry_dir()
    reaped: list[dict] = []
    if not folder.is_dir():
        return reaped
    for path in folder.glob("*.json"):
        try:
            record = json.loads(path.read_text())
            pid, owner_pid = int(record["pid"]), int(record["owner_pid"])
        except (OSError, ValueError, KeyError, TypeError):
            path.unlink(missing_ok=True)  # unreadable: nothing can be done with it
            continue
        owner = start_time(owner_pid)
        if owner is not None and owner == record.get("owner_start_time"):
            continue
        leader = start_time(pid)
        # A pid is never reused while its process group lives on, so a missing leader with
        # members left means survivors of our group; a different start time means reuse.
        if leader == record.get("start_time") or (leader is None and group_members(pid)):
            _kill_group(pid, grace)
            reaped.append(record)
            if group_members(pid):
                continue  # survived SIGKILL: keep the record and try again next time
        path.unlink(missing_ok=True)
    return reaped


@dataclass
class Captured:
    """How a short-lived command ended, with its output."""

    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool
    seconds: float


def run_captured(argv: list[str], *, timeout: float, input_text: str | None = None, cwd: Path | None = None,
                 env: dict[str, str] | None = None) -> Captured:
    """Run `argv` in its own process group with a timeout; the whole group is killed on timeout or after."""
    if not argv or not all(isinstance(a, str) for a in argv):
        raise ProcessError("argv must be a non-empty list of strings")
    started = time.monotonic()
    try:
        popen = subprocess.Popen(
            argv, cwd=cwd, env=env, text=True, start_new_session=True,
            stdin=subprocess.PIPE if input_text is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
    except OSError as exc:
        raise ProcessError(f"cannot start {argv[0]!r}: {exc.strerror or exc}") from exc
    try:
        out, err = popen.communicate(input_text, timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        _kill_group(popen.pid, grace=1.0)
        out, err = popen.communicate()
        timed_out = True
    finally:
        if popen.poll() is None or group_members(popen.pid):
            _kill_group(popen.pid, grace=1.0)  # nothing it started may outlive it
    return Captured(popen.returncode, out or "", err or "", timed_out, time.monotonic() - started)
