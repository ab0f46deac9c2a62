"""Specialists at once: what one returns, and a bounded pool where device-bound work waits for a free device."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from pydantic import BaseModel, Field

from arbor.tools.kernels.gate import GateReport

from ..errors import HostError


class SpecialistResult(BaseModel):
    """What came back from one specialist: the patch, the host's own gate run, and what was refused."""

    reported: bool = False
    summary: str = ""
    diff_path: str | None = None
    diff_lines: int = 0
    gate: GateReport | None = None
    passed: bool = False
    refused_paths: list[str] = Field(default_factory=list)
    error: str | None = None


class Pool:
    """Specialists at once: at most `slots` working, device-bound gates waiting for one of `devices`."""

    def __init__(self, slots: int, devices: int, timeout_s: float) -> None:
        self.slots = asyncio.Semaphore(slots)
        self.devices = asyncio.Semaphore(max(devices, 1))
        self.has_devices = devices > 0
        self.timeout_s = timeout_s

    async def run(self, needs_device: bool, work: Any) -> SpecialistResult:
        """Run one specialist's coroutine under the pool's limits and timeout."""
        if needs_device and not self.has_devices:
            work.close()
            return SpecialistResult(error="the task needs a GPU and this campaign has none (agent.devices = 0)")
        # A device-bound specialist waits for its device before taking a slot, so waiting never blocks CPU work.
        async with self.devices if needs_device else contextlib.nullcontext(), self.slots:
            try:
                return await asyncio.wait_for(work, self.timeout_s)
            except TimeoutError:
                return SpecialistResult(error=f"the specialist ran out of time ({self.timeout_s:.0f} s)")
            except HostError as exc:
                return SpecialistResult(error=str(exc))
