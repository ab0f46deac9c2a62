"""The servers one process has launched, by id; orphans of a dead owner reaped at start; all stopped on exit."""

from __future__ import annotations

import asyncio
import atexit
import logging
import threading
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from ..errors import InputError
from ..procs import group_members, reap_orphans
from . import launcher
from .launcher import Progress, Server, ServerInfo
from .secrets import redact_argv
from .stack import StackSpec

log = logging.getLogger(__name__)


class ReapedGroup(BaseModel):
    """A process group left by an owner that is gone (a killed host or server), stopped by this fleet."""

    pid: int = Field(description="pid (and process group id) of the group's leader")
    argv: list[str] = Field(description="the command it was started with, credentials masked")
    log_path: str | None = Field(None, description="where its output went")
    owner_pid: int = Field(description="pid of the process that started it, now gone")
    created: float | None = Field(None, description="when it was started (Unix time)")
    survivors: list[int] = Field(default_factory=list,
                                 description="pids that outlived SIGKILL; its record is kept for the next start")

    @classmethod
    def from_record(cls, record: dict) -> ReapedGroup:
        """From a registry record as reap_orphans returns it (pid and owner_pid already checked)."""
        argv = record.get("argv")
        created = record.get("created")
        pid = int(record["pid"])
        return cls(pid=pid, argv=redact_argv([str(a) for a in argv]) if isinstance(argv, list) else [],
                   log_path=str(record["log_path"]) if record.get("log_path") else None,
                   owner_pid=int(record["owner_pid"]),
                   created=float(created) if isinstance(created, (int, float)) else None,
                   survivors=group_members(pid))


class Fleet:
    """Launched servers by id; `close()` (also run at interpreter exit) stops them all.

    A new fleet first stops the process groups whose owner is gone (found through the
    process registry), so a serving server restarted after a crash cleans up after the
    one that died; `reaped` keeps what it stopped, for the caller to log.
    """

    def __init__(self) -> None:
        self._servers: dict[str, Server] = {}
        self._lock = threading.Lock()
        self._reaped: list[ReapedGroup] = []
        self.reap()
        atexit.register(self.close)

    def reap(self) -> list[ReapedGroup]:
        """Stop process groups whose owner is gone; returns those stopped now (also kept in `reaped`)."""
        return self._keep(reap_orphans())

    def _keep(self, records: list[dict]) -> list[ReapedGroup]:
        found = [ReapedGroup.from_record(r) for r in records]
        for group in found:
            log.warning("stopped process group %d left by a dead owner: %s (log %s)", group.pid,
                        " ".join(group.argv), group.log_path)
        with self._lock:
            self._reaped.extend(found)
        return found

    @property
    def reaped(self) -> list[ReapedGroup]:
        """Every orphaned group this fleet has stopped, oldest first."""
        with self._lock:
            return list(self._reaped)

    async def launch(self, spec: StackSpec, knobs: dict[str, Any], logs_dir: Path, name: str | None = None,
                     progress: Progress | None = None) -> ServerInfo:
        """Start a server and wait until it is ready (LaunchError otherwise, nothing left running)."""
        if name is not None:
            with self._lock:
                existing = self._servers.get(name)
            if existing is not None and not existing.child.stopped:
                raise InputError(f"a server named {name!r} is running; stop it first")
        server = await asyncio.to_thread(launcher.start, spec, knobs, logs_dir, name)
        self._keep(server.reaped)  # launcher.start reaps too, once the input is known to be good
        with self._lock:
            self._servers[server.info.id] = server
        try:
            await launcher.wait_ready(server, progress)
        except BaseException:
            await asyncio.to_thread(server.child.stop, 5)
            raise
        return server.info

    def get(self, server_id: str) -> Server:
        """The server with this id, or InputError listing the known ones."""
        with self._lock:
            server = self._servers.get(server_id)
        if server is None:
            raise InputError(f"no server {server_id!r}; known: {sorted(self._servers)}")
        return server

    def status(self, server_id: str) -> ServerInfo:
        """Current state of one server."""
        return launcher.status(self.get(server_id))

    def stop(self, server_id: str, grace: float = 10.0) -> ServerInfo:
        """Stop one server's whole process group."""
        return launcher.stop(self.get(server_id), grace)

    def list(self) -> list[ServerInfo]:
        """Every server launched here, with a fresh state."""
        with self._lock:
            servers = list(self._servers.values())
        return [launcher.status(s) for s in servers]

    def close(self) -> None:
        """Stop every server still running; one that will not die does not keep the others alive."""
        with self._lock:
            servers = list(self._servers.values())
        for server in servers:
            if not server.child.stopped:
                try:
                    launcher.stop(server, grace=5)
                except Exception:  # noqa: BLE001 - best effort on the way out
                    log.exception("could not stop %s", server.info.id)
