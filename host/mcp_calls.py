"""Calling Arbor's MCP servers from the host: structured results in, HostError out."""

from __future__ import annotations

from typing import Any

from mcp import Client

from .errors import HostError


async def call(client: Client, tool: str, args: dict[str, Any], progress: Any = None) -> dict[str, Any]:
    """Call `tool` and return its structured content; an error result becomes HostError with its text."""
    result = await client.call_tool(tool, args, progress_callback=progress)
    if result.is_error:
        text = " ".join(getattr(block, "text", "") for block in result.content)
        raise HostError(f"{tool}: {text}")
    if result.structured_content is None:
        raise HostError(f"{tool} returned no structured content")
    return dict(result.structured_content)
