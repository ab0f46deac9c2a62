"""One small interface over the model providers: a call returns text, tool calls and usage."""

from __future__ import annotations

from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

Role = Literal["orchestrator", "specialist", "critic"]


class ToolSpec(BaseModel):
    """A tool as the model sees it."""

    name: str
    description: str = ""
    input_schema: dict[str, Any]


class ToolCall(BaseModel):
    """The model asks for a tool."""

    id: str
    name: str
    input: dict[str, Any] = Field(default_factory=dict)


class Usage(BaseModel):
    """Tokens of one call, cache reads and writes included."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0


class LLMResponse(BaseModel):
    """One model turn."""

    text: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    stop_reason: str = "end_turn"
    usage: Usage = Field(default_factory=Usage)
    model: str = ""


class Capabilities(BaseModel):
    """What a backend can do."""

    tools: bool = True
    prompt_caching: bool = False
    name: str


class Backend(Protocol):
    """A model provider. Messages use content blocks: text, tool_use, tool_result (Anthropic's shapes)."""

    capabilities: Capabilities

    async def complete(self, role: Role, model: str, system: str, messages: list[dict[str, Any]],
                       tools: list[ToolSpec], max_tokens: int) -> LLMResponse: ...

    async def aclose(self) -> None: ...


class BackendError(Exception):
    """The provider failed after its retries; the message carries no secret."""
