"""Shared fixtures: the real llama-server target, a stub OpenAI server, isolated caches and run folders."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from arbor.tools import provision
from arbor.tools.serving.launcher import ServerInfo
from arbor.tools.serving.stack import StackSpec

ROOT = Path(__file__).resolve().parent
STUB = ROOT / "support" / "stub_openai.py"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _isolated_registry(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # Each test gets its own process registry so orphan reaping never touches another test's children.
    monkeypatch.setenv("ARBOR_PROC_REGISTRY", str(tmp_path_factory.mktemp("procs")))


@pytest.fixture(scope="session")
def target() -> provision.DefaultTarget:
    """The real llama-server build and SmolLM2 model; bootstrap.sh makes them, tests never build."""
    binary = provision.cached_server_binary()
    override = os.environ.get("ARBOR_LLAMA_SERVER")
    model = provision.find_model()
    if not (override or binary.is_file()) or model is None:
        pytest.fail("llama-server or the model is missing: run `make test` (scripts/bootstrap.sh builds them)")
    return provision.DefaultTarget(Path(override) if override else binary, model, provision.source_version())


@pytest.fixture(scope="session")
def llama_stack(target: provision.DefaultTarget) -> StackSpec:
    """A stack spec for the real llama-server with SmolLM2."""
    return StackSpec(kind="llamacpp", binary=str(target.server_binary), model=str(target.model_path),
                     served_model_name="smollm2", ready_timeout_s=120, stall_timeout_s=60)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def start_stub(*args: str) -> tuple[subprocess.Popen, str]:
    """Start the stub OpenAI server in its own process; returns (process, base_url)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(STUB), "--port", str(port), *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return proc, f"http://127.0.0.1:{port}"


@pytest.fixture
def stub() -> Iterator[str]:
    """A stub server with 20 ms to the first token and 2 ms between tokens."""
    proc, url = start_stub("--ttft-ms", "20", "--itl-ms", "2")
    yield url
    proc.kill()
    proc.wait()


def our_processes(binary: str | Path) -> list[int]:
    """Pids whose command line starts with `binary`, read from the process table."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if cmd and cmd[0] == str(binary).encode() and state != "Z":
            pids.append(int(entry.name))
    return pids


@pytest.fixture(scope="session")
def llama_server(llama_stack: StackSpec, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerInfo]:
    """One real llama-server (8 slots) shared by the tests that only send it load."""
    import anyio

    from arbor.tools.serving import launcher

    logs = tmp_path_factory.mktemp("shared-llama")
    server = anyio.run(launcher.launch, llama_stack, {"parallel": 8, "ctx_size": 8192}, logs)
    yield server.info
    launcher.stop(server)
