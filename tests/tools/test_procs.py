"""Process groups: stop kills grandchildren too; a SIGKILLed owner's children die; orphans get reaped.

A new serving Fleet reaps too, and keeps what it reaped for its server to report.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from arbor.tools.errors import ProcessError
from arbor.tools.procs import group_members, reap_orphans, registry_dir, spawn, start_time
from arbor.tools.serving.fleet import Fleet
from tests.support.orphans import kill, orphan_group

# A parent that forks a grandchild, both sleeping: stop must take the whole group.
FAMILY = [sys.executable, "-c", "import subprocess,time; subprocess.Popen(['sleep','300']); time.sleep(300)"]


def _wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_stop_kills_whole_group_and_removes_record(tmp_path: Path) -> None:
    child = spawn(FAMILY, log_path=tmp_path / "x.log")
    assert _wait_for(lambda: len(group_members(child.pgid)) == 2)
    assert (registry_dir() / f"{child.pid}.json").is_file()
    code = child.stop(grace=2)
    assert code == -signal.SIGTERM
    assert group_members(child.pgid) == []
    assert not (registry_dir() / f"{child.pid}.json").exists()
    assert child.watchdog.poll() is not None


def test_stubborn_child_gets_sigkill(tmp_path: Path) -> None:
    stubborn = [sys.executable, "-c", "import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                "print('up', flush=True); time.sleep(300)"]
    child = spawn(stubborn, log_path=tmp_path / "s.log")
    assert _wait_for(lambda: "up" in (tmp_path / "s.log").read_text())
    started = time.monotonic()
    assert child.stop(grace=0.5) == -signal.SIGKILL
    assert time.monotonic() - started < 5


def test_missing_binary_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ProcessError, match="cannot start"):
        spawn([str(tmp_path / "nope")])
    assert list(registry_dir().glob("*.json")) == [] if registry_dir().exists() else True


def test_children_die_when_owner_is_sigkilled(tmp_path: Path) -> None:
    owner_code = textwrap.dedent(f"""
        import sys, time
        sys.path[:0] = {sys.path!r}
        from arbor.tools.procs import spawn
        child = spawn({FAMILY!r})
        print(child.pgid, flush=True)
        time.sleep(300)
    """)
    owner = subprocess.Popen([sys.executable, "-c", owner_code], stdout=subprocess.PIPE, text=True,
                             env=os.environ.copy())
    pgid = int(owner.stdout.readline())
    assert _wait_for(lambda: len(group_members(pgid)) == 2)
    owner.kill()
    owner.wait()
    assert _wait_for(lambda: group_members(pgid) == [], timeout=15), "watchdog did not stop the group"


def test_reap_orphans_stops_groups_of_dead_owners_only(tmp_path: Path) -> None:
    orphan = subprocess.Popen(["sleep", "300"], start_new_session=True)
    mine = spawn(["sleep", "300"])
    folder = registry_dir()
    dead_owner = subprocess.Popen(["true"])
    dead_owner.wait()
    (folder / f"{orphan.pid}.json").write_text(json.dumps({
        "pid": orphan.pid, "start_time": start_time(orphan.pid), "argv": ["sleep", "300"],
        "owner_pid": dead_owner.pid, "owner_start_time": 1}))
    try:
        reaped = reap_orphans(grace=2)
        assert [r["pid"] for r in reaped] == [orphan.pid]
        orphan.wait(timeout=5)
        assert mine.poll() is None, "a live owner's child must be left alone"
        assert not (folder / f"{orphan.pid}.json").exists()
    finally:
        mine.stop(grace=1)
        if orphan.poll() is None:
            orphan.kill()


def test_reap_skips_a_reused_pid(tmp_path: Path) -> None:
    stranger = subprocess.Popen(["sleep", "300"], start_new_session=True)
    (registry_dir()).mkdir(parents=True, exist_ok=True)
    (registry_dir() / f"{stranger.pid}.json").write_text(json.dumps({
        "pid": stranger.pid, "start_time": 12345, "argv": ["x"], "owner_pid": 999_999_999,
        "owner_start_time": None}))
    try:
        assert reap_orphans(grace=1) == []
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


@pytest.mark.parametrize("content", ["[1, 2]", '{"pid": 5}', "not json", '{"pid": "x", "owner_pid": 1}'])
def test_malformed_records_are_dropped_not_fatal(content: str) -> None:
    folder = registry_dir()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bad.json").write_text(content)
    assert reap_orphans() == []
    assert not (folder / "bad.json").exists()


def test_a_new_fleet_reaps_a_dead_owners_group_and_keeps_the_record(tmp_path: Path) -> None:
    mine = spawn(["sleep", "300"])
    leader, member = orphan_group(["llama-server", "-m", "/m.gguf", "--api-key", "sk-live"], tmp_path / "old.log")
    try:
        assert group_members(leader) == [member], "the leader is gone, its group lives on"
        fleet = Fleet()
        assert [g.pid for g in fleet.reaped] == [leader]
        group = fleet.reaped[0]
        assert group.argv == ["llama-server", "-m", "/m.gguf", "--api-key", "***"], "credentials masked"
        assert group.log_path == str(tmp_path / "old.log") and group.survivors == []
        assert group_members(leader) == []
        assert not (registry_dir() / f"{leader}.json").exists()
        assert mine.poll() is None, "a live owner's child must be left alone"
        assert Fleet().reaped == [], "reaped once, not again"
    finally:
        mine.stop(grace=1)
        kill(member)
