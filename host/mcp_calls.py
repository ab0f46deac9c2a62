"""Calling Arbor's MCP servers from the host: structured results validated into their models, ServiceError out."""

from __future__ import annotations

from typing import Any, TypeVar

from mcp import Client
from pydantic import BaseModel, ValidationError

from .errors import ServiceError

M = TypeVar("M", bound=BaseModel)


async def call(client: Client, tool: str, args: dict[str, Any], progress: Any = None) -> dict[str, Any]:
    """Call `tool` and return its structured content; an error result becomes ServiceError with its text."""
    result = await client.call_tool(tool, args, progress_callback=progress)
    if result.is_error:
        text = " ".join(getattr(block, "text", "") for block in result.content)
        raise ServiceError(f"{tool}: {text}")
    if result.structured_content is None:
        raise ServiceError(f"{tool} returned no structured content")
    return dict(result.structured_content)


async def call_as(client: Client, tool: str, args: dict[str, Any], model: type[M]) -> M:
    """Call `tool` and validate its structured content into the tool's own result model."""
    content = await call(client, tool, args)
    try:
        return model.model_validate(content)
    except ValidationError as exc:
        raise ServiceError(f"{tool} answered what {model.__name__} does not hold: {exc.errors()[0]['msg']} at "
                           f"{'.'.join(map(str, exc.errors()[0]['loc']))}") from exc
