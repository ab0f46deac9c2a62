"""`arbor-host` as a real process: SIGTERM and SIGKILL leave no server behind, and resume after kill -9."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from arbor.host.store import CampaignStore
from arbor.kb.records import outcomes
from arbor.kb.store import open_store
from tests.conftest import STUB, our_processes

HOST = Path(sys.executable).with_name("arbor-host")

SLOW_STUB = f"""
name = "resumable"
[target]
stack = "generic"
model = "stub"
served_model_name = "stub"
command = [{sys.executable!r}, {str(STUB)!r}, "--port", "{{port}}", "--ttft-ms", "20"]
hardware = "test-box"
[workload]
input_len = 8
output_len = 40
concurrency = 4
num_prompts = 8
sweep = [4]
sweep_min_prompts = 4
[budget]
wall_clock_s = 300
max_actions = 4
[search]
min_repeats = 2
max_repeats = 2
profile_seconds = 1
[[knobs]]
name = "itl_ms"
flag = "--itl-ms"
type = "float"
min = 0
max = 100
values = [5.0, 20.0, 40.0]
category = "config"
layer = "scheduler"
"""


def _spawn(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([str(HOST), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)


def _wait_for_line(proc: subprocess.Popen, prefix: str) -> Path:
    run_dir = None
    for line in proc.stderr:
        if line.startswith("run folder: "):
            run_dir = Path(line.split(": ", 1)[1].strip())
        if line.startswith(prefix):
            assert run_dir is not None
            return run_dir
    pytest.fail(f"never saw {prefix!r}: {proc.stdout.read()}")


def _stub_pids() -> list[int]:
    return [p for p in our_processes(sys.executable)
            if str(STUB) in Path(f"/proc/{p}/cmdline").read_bytes().decode(errors="replace")]


def _gone(check, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not check():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.llama
def test_sigterm_stops_the_server_and_says_how_to_resume(tmp_path: Path, target) -> None:
    before = set(our_processes(target.server_binary))
    proc = _spawn(["run", str(Path(__file__).parent / "small_campaign.toml"), "--runs-dir", str(tmp_path),
                   "--fresh-kb"])
    run_dir = _wait_for_line(proc, "baseline repeat 1")
    started = set(our_processes(target.server_binary)) - before
    assert started, "a llama-server is serving the baseline"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert f"interrupted; the server was stopped. Continue with: arbor-host resume {run_dir}" in err
    assert _gone(lambda: started & set(our_processes(target.server_binary)), timeout=2)


def test_kill_9_mid_action_then_resume_finishes_a_consistent_tree(tmp_path: Path) -> None:
    spec = tmp_path / "c.toml"
    spec.write_text(SLOW_STUB)
    proc = _spawn(["run", str(spec), "--runs-dir", str(tmp_path / "runs"), "--fresh-kb"])
    run_dir = _wait_for_line(proc, "[")  # the first action has started
    db = sqlite3.connect(run_dir / "campaign.sqlite")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        running = db.execute("SELECT id FROM nodes WHERE status = 'running' AND kind != 'baseline'").fetchall()
        measured = db.execute("SELECT COUNT(*) FROM measurements m JOIN nodes n ON m.node = n.id WHERE "
                              "n.status = 'running' AND m.kind = 'primary'").fetchone()[0]
        if running and measured >= 1:
            break
        time.sleep(0.05)
    else:
        pytest.fail("no action was ever in flight")
    interrupted = running[0][0]
    proc.kill()
    proc.wait()
    assert _gone(_stub_pids), "the watchdog stopped the server of the killed host"
    done = subprocess.run([str(HOST), "resume", str(run_dir)], capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-2000:]
    store = CampaignStore(run_dir)
    nodes = store.nodes()
    assert not [n for n in nodes if n.status == "running"]
    node = store.node(interrupted)
    assert node.status in ("kept", "reverted") and node.attempts == 2, "the interrupted action was re-run"
    assert len(store.measurements(node.id, "primary")) == 2, "its partial measurement was set aside, not counted"
    evaluated = [n for n in nodes if n.kind != "baseline" and n.status in ("kept", "reverted", "crashed")]
    configs = [json.dumps(n.config, sort_keys=True) for n in evaluated]
    assert len(configs) == len(set(configs)), "no configuration evaluated twice"
    kb = open_store(Path(store.meta("kb_path")))
    assert len(outcomes(kb, campaign=store.meta("campaign_id"))) == len(evaluated), "no outcome counted twice"
    kinds = [e.kind for e in store.events()]
    assert "interrupted" in kinds and kinds.count("session_started") == 2
    assert (run_dir / "report.md").is_file() and _stub_pids() == []
