"""The servers one process has launched, by id, and stopping all of them on the way out."""

from __future__ import annotations

import asyncio
import atexit
import logging
import threading
from pathlib import Path
from typing import Any

from ..errors import InputError
from . import launcher
from .launcher import Progress, Server, ServerInfo
from .stack import StackSpec

log = logging.getLogger(__name__)


class Fleet:
    """Launched servers by id; `close()` (also run at interpreter exit) stops them all."""

    def __init__(self) -> None:
        self._servers: dict[str, Server] = {}
        self._lock = threading.Lock()
        atexit.register(self.close)

    async def launch(self, spec: StackSpec, knobs: dict[str, Any], logs_dir: Path, name: str | None = None,
                     progress: Progress | None = None) -> ServerInfo:
        """Start a server and wait until it is ready (LaunchError otherwise, nothing left running)."""
        if name is not None:
            with self._lock:
                existing = self._servers.get(name)
            if existing is not None and not existing.child.stopped:
                raise InputError(f"a server named {name!r} is running; stop it first")
        server = await asyncio.to_thread(launcher.start, spec, knobs, logs_dir, name)
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
