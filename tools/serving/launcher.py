"""Start a server from a stack spec and knob values, wait until it really serves, watch it, stop it."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import BaseModel, Field

from ..errors import InputError, LaunchError, ProcessError
from ..procs import Child, group_members, reap_orphans, spawn
from .failures import Failure, classify, match_signatures, read_log_tail
from .secrets import child_env, redact_argv, redact_env
from .stack import StackSpec, build_command

State = Literal["starting", "ready", "failed", "stopped"]
Progress = Callable[[float, str], Awaitable[None] | None]
POLL_S = 0.25


class ServerInfo(BaseModel):
    """What a caller needs to know about one launched server."""

    id: str
    kind: str
    base_url: str
    model_name: str
    host: str
    port: int
    pid: int
    argv: list[str]
    env: dict[str, str]
    knobs: dict[str, Any]
    log_path: str
    started_at: float
    ready_after_s: float | None = None
    state: State = "starting"
    exit_code: int | None = None
    failure: Failure | None = None
    survivors: list[int] = Field(default_factory=list,
                                 description="live (non-zombie) pids still in the server's process group after "
                                             "stop; empty after a clean stop, anything else is a leftover process")


@dataclass
class Server:
    """A launched server: its info, spec and child process group."""

    info: ServerInfo
    spec: StackSpec
    child: Child
    reaped: list[dict] = field(default_factory=list)  # registry records of orphans stopped before it started

    @property
    def log_path(self) -> Path:
        return Path(self.info.log_path)


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _fresh_log(logs_dir: Path, server_id: str) -> Path:
    # A relaunch under the same name gets its own log: old lines must not be read as new failures.
    path = Path(logs_dir) / f"{server_id}.log"
    n = 1
    while path.exists():
        n += 1
        path = Path(logs_dir) / f"{server_id}.{n}.log"
    return path


def start(spec: StackSpec, knob_values: dict[str, Any], logs_dir: Path, name: str | None = None) -> Server:
    """Validate, then start the server in its own process group; raises before starting anything on bad input."""
    port = spec.port or free_port(spec.host)
    argv, extra_env = build_command(spec, knob_values, port)
    reaped = reap_orphans()
    server_id = name or f"{spec.kind}-{uuid.uuid4().hex[:8]}"
    log_path = _fresh_log(logs_dir, server_id)
    env = child_env(dict(os.environ), extra_env)
    try:
        child = spawn(argv, env=env, log_path=log_path)
    except ProcessError as exc:
        failure = Failure(kind="exited", summary=str(exc), phase="launch", log_path=str(log_path))
        raise LaunchError(f"{server_id}: {exc}", failure) from exc
    info = ServerInfo(
        id=server_id, kind=spec.kind, base_url=f"http://{spec.host}:{port}", model_name=spec.model_name,
        host=spec.host, port=port, pid=child.pid, argv=redact_argv(argv), env=redact_env(extra_env),
        knobs=dict(knob_values),
        log_path=str(log_path), started_at=time.time(),
    )
    return Server(info=info, spec=spec, child=child, reaped=reaped)


async def generate_one_token(client: httpx.AsyncClient, base_url: str, model: str) -> str | None:
    """Ask for one real token; None if the engine gave one, else the reason it did not."""
    try:
        response = await client.post(
            f"{base_url}/v1/completions",
            json={"model": model, "prompt": "Hello", "max_tokens": 1, "temperature": 0.0},
        )
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    if response.status_code != 200:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    try:
        data = response.json()
        choices = data["choices"]
        usage = data.get("usage") or {}
        tokens = usage.get("completion_tokens")
    except (ValueError, KeyError, TypeError, AttributeError):
        return f"unexpected completion body: {response.text[:200]}"
    if not isinstance(choices, list) or not choices or (isinstance(tokens, int) and tokens < 1):
        return "completion returned no token"
    return None


async def _healthy(client: httpx.AsyncClient, url: str) -> bool:
    try:
        return (await client.get(url)).status_code == 200
    except httpx.HTTPError:
        return False


async def _fail(server: Server, failure: Failure) -> LaunchError:
    await asyncio.to_thread(server.child.stop, 5)
    server.info.state = "failed"
    server.info.exit_code = server.child.poll()
    server.info.failure = failure
    return LaunchError(f"{server.info.id}: {failure.summary}", failure)


def _last_line(path: Path) -> str:
    _, lines = read_log_tail(path)
    for line in reversed(lines):
        if line.strip():
            return line.strip()[:200]
    return ""


FATAL_WHILE_ALIVE = ("unknown_flag", "model_not_found", "port_in_use", "oom", "gpu_memory_fault", "gpu_xid",
                     "engine_dead")


async def _report(progress: Progress | None, value: float, message: str) -> None:
    if progress is not None:
        maybe = progress(value, message)
        if asyncio.iscoroutine(maybe):
            await maybe


async def wait_ready(server: Server, progress: Progress | None = None) -> ServerInfo:
    """Wait for health and one generated token; on exit, hang or timeout stop the group and raise LaunchError."""
    spec, child, info = server.spec, server.child, server.info
    t0 = time.monotonic()
    last_growth = last_scan = t0
    last_size = -1
    failing_since: float | None = None  # healthy, yet no token since then
    token_problem: str | None = None
    health_url = info.base_url + spec.health_path
    async with httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=2.0),
                                 limits=httpx.Limits(max_keepalive_connections=0)) as client:
        while True:
            now = time.monotonic()
            elapsed = now - t0
            code = child.poll()
            if code is not None:
                raise await _fail(server, classify(server.log_path, code, "launch"))
            size = server.log_path.stat().st_size if server.log_path.exists() else 0
            if size != last_size:
                last_size, last_growth = size, now
            if last_growth > last_scan and now - last_scan >= 1.0:
                # A fatal signature can show while the process lingers (a stuck engine, a retry loop).
                last_scan = now
                first, lines = read_log_tail(server.log_path)
                if any(m[0] in FATAL_WHILE_ALIVE for m in match_signatures(lines, first)):
                    raise await _fail(server, classify(server.log_path, child.poll(), "launch"))
            if await _healthy(client, health_url):
                token_problem = await generate_one_token(client, info.base_url, info.model_name)
                if token_problem is None:
                    info.state = "ready"
                    info.ready_after_s = time.monotonic() - t0
                    await _report(progress, info.ready_after_s, "ready")
                    return info
                failing_since = failing_since or now
            else:
                failing_since = None
            why = f"; last generation attempt: {token_problem}" if token_problem else ""
            # Healthy but unable to generate is a hang even while the log grows (it may log our polls).
            if failing_since is not None and now - failing_since > spec.stall_timeout_s:
                raise await _fail(server, classify(server.log_path, child.poll(), "ready", fallback="hang",
                                             detail=f"healthy but no generated token for {spec.stall_timeout_s:g}s"
                                             + why))
            if failing_since is None and now - last_growth > spec.stall_timeout_s:
                raise await _fail(server, classify(server.log_path, child.poll(), "ready", fallback="hang",
                                             detail=f"no log output and no readiness for {spec.stall_timeout_s:g}s"))
            if elapsed > spec.ready_timeout_s:
                raise await _fail(server, classify(server.log_path, child.poll(), "ready", fallback="timeout",
                                             detail=f"not ready after {spec.ready_timeout_s:g}s" + why))
            await _report(progress, elapsed, _last_line(server.log_path))
            await asyncio.sleep(POLL_S)


async def launch(spec: StackSpec, knob_values: dict[str, Any], logs_dir: Path, name: str | None = None,
                 progress: Progress | None = None) -> Server:
    """Start and wait until ready; the server is stopped again if it never gets there."""
    server = await asyncio.to_thread(start, spec, knob_values, logs_dir, name)
    try:
        await wait_ready(server, progress)
    except BaseException:
        await asyncio.to_thread(server.child.stop, 5)
        raise
    return server


def status(server: Server) -> ServerInfo:
    """Refresh the state: an exited process becomes `failed` with its classification (may block up to seconds)."""
    code = server.child.poll()
    if code is not None and server.info.state in ("starting", "ready"):
        server.info.exit_code = code
        server.info.state = "failed"
        server.info.failure = classify(server.log_path, code, "running")
        server.child.stop(grace=5)
    return server.info


async def probe(server: Server, timeout_s: float = 30.0) -> Failure | None:
    """Is it still serving? Health and one token within `timeout_s`; a Failure says why not."""
    info = await asyncio.to_thread(status, server)
    if info.state == "stopped":
        raise InputError(f"server {info.id!r} was stopped; launch it again to probe it")
    if info.state == "failed":
        return info.failure
    async with httpx.AsyncClient(timeout=timeout_s, limits=httpx.Limits(max_keepalive_connections=0)) as client:
        healthy = await _healthy(client, info.base_url + server.spec.health_path)
        problem = None if healthy else "health check failed"
        if problem is None:
            problem = await generate_one_token(client, info.base_url, info.model_name)
    if problem is None:
        return None
    info = await asyncio.to_thread(status, server)
    if info.state == "failed":
        return info.failure
    return classify(server.log_path, None, "running", fallback="hang", detail=problem)


def stop(server: Server, grace: float = 10.0) -> ServerInfo:
    """Stop the whole process group (SIGTERM, then SIGKILL) and record how it ended."""
    if server.info.state != "failed":
        status(server)
    code = server.child.stop(grace=grace)
    if server.child.unkillable:
        server.info.state = "failed"
        server.info.failure = Failure(kind="unknown", phase="running", log_path=str(server.log_path),
                                      summary="a process of the group survived SIGKILL (stuck in the kernel?); "
                                              "its record is kept so the next start tries again")
    elif server.info.state != "failed":
        server.info.state = "stopped"
    server.info.exit_code = code
    # Read here, beside the processes: a remote caller cannot see this machine's process table.
    server.info.survivors = group_members(server.child.pgid)
    return server.info
