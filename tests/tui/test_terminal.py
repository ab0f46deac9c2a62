"""A real terminal: tmux runs `arbor-host tui` on a running demo campaign, send-keys steers it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from arbor.host.store import CampaignStore
from tests.conftest import our_processes

pytestmark = [pytest.mark.llama,
              pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt install tmux)")]
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def wait(what: str, check, timeout: float, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def test_tmux_attach_watch_pause_resume(tmp_path: Path, target) -> None:
    runs = tmp_path / "runs"
    before = set(our_processes(target.server_binary))  # the session's shared server may be running
    socket = f"arbor-test-{os.getpid()}"
    tmux = ["tmux", "-L", socket]
    said = tmp_path / "host.err"
    # The small demo campaign, with room for one action after the baseline however slow the machine is.
    campaign = tmp_path / "campaign.toml"
    text = (ROOT / "tests/host/small_campaign.toml").read_text()
    campaign.write_text(text.replace("wall_clock_s = 150", "wall_clock_s = 900").replace("max_actions = 3",
                                                                                       "max_actions = 1"))
    host = subprocess.Popen([str(BIN / "arbor-host"), "run", str(campaign),
                             "--runs-dir", str(runs), "--fresh-kb"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=said.open("w"), start_new_session=True)
    try:
        run_dir = wait("the run folder", lambda: next(iter(runs.glob("*/campaign.sqlite")), None), 120).parent
        subprocess.run([*tmux, "new-session", "-d", "-s", "tui", "-x", "120", "-y", "35",
                        f"{BIN / 'arbor-host'} tui {run_dir} --poll-s 0.5"], check=True)

        def pane() -> str:
            return subprocess.run([*tmux, "capture-pane", "-p", "-t", "tui"], capture_output=True,
                                  text=True).stdout

        first = wait("the baseline in the tree", lambda: "#1 baseline" in pane() and pane(), 60)
        assert "RUNNING" in first, first
        subprocess.run([*tmux, "send-keys", "-t", "tui", "p"], check=True)
        store = CampaignStore(run_dir)
        try:
            wait("the campaign to apply the pause", lambda: store.meta("paused") is True, 240)
        except AssertionError:
            raise AssertionError(f"pause not applied: state {store.meta('state')}, commands "
                                 f"{store.conn.execute('SELECT * FROM commands').fetchall()}\n{pane()}") from None
        wait("PAUSED in the status bar", lambda: "PAUSED" in pane(), 10)
        frozen = [(n.id, n.status) for n in store.nodes()]
        time.sleep(4)
        assert [(n.id, n.status) for n in store.nodes()] == frozen, "nothing moves while paused"
        subprocess.run([*tmux, "send-keys", "-t", "tui", "p"], check=True)
        wait("the campaign to resume", lambda: store.meta("paused") is False, 30)
        wait("PAUSED to leave the status bar", lambda: "PAUSED" not in pane(), 10)
        wait("the tree to grow past the baseline", lambda: "#2 " in pane(), 120)
        assert host.wait(timeout=300) == 0, said.read_text()[-2000:]
        wait("FINISHED in the status bar", lambda: "FINISHED" in pane(), 15)
        kinds = [e.data.get("result") for e in store.events() if e.kind == "command"]
        assert kinds == ["applied", "applied"], "pause and resume were applied and logged"
        store.close()
        subprocess.run([*tmux, "send-keys", "-t", "tui", "q"], check=True)
        wait("the TUI to quit", lambda: subprocess.run([*tmux, "has-session", "-t", "tui"],
                                                       capture_output=True).returncode != 0, 10)
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)
        if host.poll() is None:
            os.killpg(host.pid, signal.SIGTERM)
            host.wait(30)
    assert set(our_processes(target.server_binary)) - before == set(), "no llama-server is left running"
