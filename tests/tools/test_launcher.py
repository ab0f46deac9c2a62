"""The launcher with generic command templates: ready, hang, exit and timeout, all with real processes."""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path

import pytest

from arbor.tools.errors import LaunchError
from arbor.tools.procs import group_members
from arbor.tools.serving import launcher
from arbor.tools.serving.stack import StackSpec
from tests.conftest import STUB

pytestmark = pytest.mark.anyio


def generic(*command: str, **extra: object) -> StackSpec:
    return StackSpec(kind="generic", model="stub", command=list(command), **extra)


async def test_generic_template_becomes_ready_and_stops(tmp_path: Path) -> None:
    spec = generic(sys.executable, str(STUB), "--port", "{port}", "--ttft-ms", "1", "--itl-ms", "1")
    messages: list[str] = []
    server = await launcher.launch(spec, {}, tmp_path, progress=lambda t, m: messages.append(m))
    try:
        assert server.info.state == "ready" and messages[-1] == "ready"
        assert await launcher.probe(server) is None
    finally:
        launcher.stop(server)
    assert group_members(server.child.pgid) == []


async def test_stop_reports_no_survivors_after_a_clean_stop(tmp_path: Path) -> None:
    # The stub serves while a grandchild sleeps in the same group: stop takes both, and says so.
    serve = f"sleep 300 & exec {shlex.quote(sys.executable)} {shlex.quote(str(STUB))} --port {{port}}"
    server = await launcher.launch(generic("/bin/sh", "-c", serve), {}, tmp_path)
    try:
        assert len(group_members(server.child.pgid)) == 2
        assert server.info.survivors == [], "nothing to report before a stop"
    finally:
        info = launcher.stop(server, grace=2)
    assert info.state == "stopped" and info.survivors == []
    assert group_members(server.child.pgid) == []
    assert launcher.ServerInfo.model_fields["survivors"].description


async def test_silent_process_is_a_hang(tmp_path: Path) -> None:
    spec = generic(sys.executable, "-c", "import time; time.sleep(60)", stall_timeout_s=1.0)
    started = time.monotonic()
    with pytest.raises(LaunchError) as caught:
        await launcher.launch(spec, {}, tmp_path, name="silent")
    assert time.monotonic() - started < 10
    assert caught.value.failure.kind == "hang" and "no log output" in caught.value.failure.summary


async def test_chatty_process_that_never_serves_times_out(tmp_path: Path) -> None:
    chatter = "import itertools, time; [(print('loading...', flush=True), time.sleep(0.1)) for _ in itertools.count()]"
    spec = generic(sys.executable, "-c", chatter, ready_timeout_s=1.5, stall_timeout_s=30)
    with pytest.raises(LaunchError) as caught:
        await launcher.launch(spec, {}, tmp_path)
    failure = caught.value.failure
    assert failure.kind == "timeout" and failure.evidence[-1].text == "loading..."


async def test_exit_code_and_last_lines(tmp_path: Path) -> None:
    spec = generic(sys.executable, "-c", "print('config parsed'); raise SystemExit(3)")
    with pytest.raises(LaunchError) as caught:
        await launcher.launch(spec, {}, tmp_path)
    failure = caught.value.failure
    assert (failure.kind, failure.exit_code, failure.phase) == ("exited", 3, "launch")
    assert [e.text for e in failure.evidence] == ["config parsed"]


async def test_healthy_but_not_generating_is_a_hang(tmp_path: Path) -> None:
    # Answers /health but every completion fails: readiness must not wait for the full timeout.
    spec = generic(sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "{port}", health_path="/",
                   stall_timeout_s=2.0)
    started = time.monotonic()
    with pytest.raises(LaunchError) as caught:
        await launcher.launch(spec, {}, tmp_path)
    assert time.monotonic() - started < 15
    assert caught.value.failure.kind == "hang"
    assert "last generation attempt: HTTP 501" in caught.value.failure.summary


async def test_missing_executable(tmp_path: Path) -> None:
    with pytest.raises(LaunchError, match="cannot start"):
        await launcher.launch(generic(str(tmp_path / "no-such-server")), {}, tmp_path)


async def test_relaunch_under_the_same_name_gets_a_fresh_log(tmp_path: Path) -> None:
    bad = generic(sys.executable, "-c", "print('error: invalid argument: --old'); raise SystemExit(1)")
    with pytest.raises(LaunchError):
        await launcher.launch(bad, {}, tmp_path, name="same")
    good = generic(sys.executable, str(STUB), "--port", "{port}")
    server = await launcher.launch(good, {}, tmp_path, name="same")
    try:
        assert server.info.state == "ready", "old log lines must not fail a healthy relaunch"
        assert server.log_path.name == "same.2.log"
    finally:
        launcher.stop(server)
