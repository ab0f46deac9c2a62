"""The simulated OpenAI-compatible server run for real on loopback, stopped however the test ends."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from tests.conftest import free_port, wait_port


@contextmanager
def sim_server(scenario: str, *flags: str) -> Iterator[str]:
    """A `python -m arbor.tools.sim.server` process with `flags` (knobs and options); yields its base URL."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "arbor.tools.sim.server", "--scenario", scenario, "--seed", "0",
                             "--port", str(port), "--startup-s", "0", *flags],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait()
