"""The tool bridge: MCP tools become the model's tools; calls go through the MCP client. Each role sees its own."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from mcp import Client
from pydantic import BaseModel, ValidationError

from .backend import ToolSpec

# Which MCP tools each role may call (server, tool).
ROLE_TOOLS: dict[str, set[tuple[str, str]]] = {
    "orchestrator": {("kb", "query"), ("kb", "action_priors"), ("profiler", "diff_profiles"),
                     ("serving", "list_knobs")},
    "critic": {("serving", "read_log"), ("serving", "read_telemetry"), ("serving", "server_status"),
               ("kb", "query")},
    "specialist": {("kernels", "build_kernel"), ("kernels", "test_kernel"), ("kernels", "bench_kernel"),
                   ("kernels", "gate_kernel"), ("profiler", "parse_profile"), ("kb", "query")},
}


class LocalTool(BaseModel):
    """A tool implemented in the host (structured output, workspace files): a model for its input and a handler."""

    spec: ToolSpec
    model: Any
    handler: Any

    model_config = {"arbitrary_types_allowed": True}


def local_tool(name: str, description: str, model: type[BaseModel],
               handler: Callable[[Any], Awaitable[Any] | Any]) -> LocalTool:
    """Wrap a pydantic model and a handler as a tool the model can call."""
    return LocalTool(spec=ToolSpec(name=name, description=description, input_schema=model.model_json_schema()),
                     model=model, handler=handler)


class ToolResult(BaseModel):
    """What goes back to the model for one call."""

    content: str
    is_error: bool = False
    seconds: float = 0.0


class Bridge:
    """The tools of one role: MCP tools from the allowed servers plus local tools."""

    def __init__(self, clients: dict[str, Client], role: str, local: list[LocalTool] | None = None,
                 bind: dict[str, dict[str, Any]] | None = None, allowed: set[tuple[str, str]] | None = None) -> None:
        self.clients, self.role = clients, role
        self.local = {t.spec.name: t for t in local or []}
        # Arguments the host fixes (a specialist's own task folder): hidden from the model, never overridable.
        self.bind = bind or {}
        self.allowed = ROLE_TOOLS.get(role, set()) if allowed is None else allowed
        self.remote: dict[str, tuple[str, str]] = {}
        self.specs: list[ToolSpec] = []

    async def load(self) -> list[ToolSpec]:
        """List the allowed MCP tools (names prefixed by their server) and the local ones."""
        for server, client in self.clients.items():
            for tool in (await client.list_tools()).tools:
                if (server, tool.name) in self.allowed:
                    name = f"{server}__{tool.name}"
                    self.remote[name] = (server, tool.name)
                    self.specs.append(ToolSpec(name=name, description=tool.description or "",
                                               input_schema=_without(tool.input_schema, self.bind.get(name, {}))))
        self.specs += [t.spec for t in self.local.values()]
        return self.specs

    async def call(self, name: str, arguments: dict[str, Any]) -> ToolResult:
        """Run one tool call; unknown tools and bad arguments come back as errors, never exceptions."""
        started = time.perf_counter()
        result = await self._call(name, arguments)
        result.seconds = time.perf_counter() - started
        return result

    async def _call(self, name: str, arguments: dict[str, Any]) -> ToolResult:
        try:
            if name in self.local:
                tool = self.local[name]
                try:
                    args = tool.model.model_validate(arguments)
                except ValidationError as exc:
                    return ToolResult(content=f"invalid arguments for {name}: {exc}", is_error=True)
                result = tool.handler(args)
                if hasattr(result, "__await__"):
                    result = await result
                return ToolResult(content=result if isinstance(result, str) else json.dumps(result, default=str))
            if name not in self.remote:
                return ToolResult(content=f"no tool {name!r} for the {self.role}; tools: "
                                          f"{sorted([*self.remote, *self.local])}", is_error=True)
            fixed = self.bind.get(name, {})
            if set(arguments) & set(fixed):
                return ToolResult(content=f"{sorted(set(arguments) & set(fixed))} of {name} are fixed by the host "
                                          "for this task; leave them out", is_error=True)
            server, tool_name = self.remote[name]
            reply = await self.clients[server].call_tool(tool_name, arguments | fixed)
            if reply.is_error:
                return ToolResult(content=" ".join(getattr(b, "text", "") for b in reply.content), is_error=True)
            body = reply.structured_content if reply.structured_content is not None else \
                " ".join(getattr(b, "text", "") for b in reply.content)
            text = body if isinstance(body, str) else json.dumps(body, default=str)
            return ToolResult(content=text[:20_000])
        except Exception as exc:  # noqa: BLE001 - a failing tool is reported to the model, not raised
            return ToolResult(content=f"{name} failed: {type(exc).__name__}: {exc}", is_error=True)


def _without(schema: dict[str, Any], fixed: dict[str, Any]) -> dict[str, Any]:
    """A tool schema with the host-fixed arguments removed."""
    if not fixed:
        return schema
    out = dict(schema)
    out["properties"] = {k: v for k, v in schema.get("properties", {}).items() if k not in fixed}
    out["required"] = [k for k in schema.get("required", []) if k not in fixed]
    return out
