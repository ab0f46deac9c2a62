"""Claude through the official SDK (2.x): tool use, prompt caching, retries, timeouts, ANTHROPIC_BASE_URL."""

from __future__ import annotations

import os
from typing import Any

import anthropic

from .backend import BackendError, Capabilities, LLMResponse, Role, ToolCall, ToolSpec, Usage

DEFAULT_MODELS = {"orchestrator": "claude-opus-5-5", "critic": "claude-opus-5-5", "specialist": "claude-sonnet-5-5"}


class AnthropicBackend:
    """Messages API. The static parts (system prompt, tool list) are marked for prompt caching."""

    capabilities = Capabilities(name="anthropic", tools=True, prompt_caching=True)

    def __init__(self, api_key: str | None = None, base_url: str | None = None, timeout_s: float = 600.0,
                 max_retries: int = 4) -> None:
        key = api_key or os.environ.get("ANTHROPIC_API_KEY")
        if not key:
            raise BackendError("the anthropic backend needs ANTHROPIC_API_KEY")
        # base_url None lets the SDK read ANTHROPIC_BASE_URL itself.
        self.client = anthropic.AsyncAnthropic(api_key=key, base_url=base_url, timeout=timeout_s,
                                               max_retries=max_retries)

    async def complete(self, role: Role, model: str, system: str, messages: list[dict[str, Any]],
                       tools: list[ToolSpec], max_tokens: int) -> LLMResponse:
        tool_params: list[dict[str, Any]] = [t.model_dump() for t in tools]
        if tool_params:
            tool_params[-1] = tool_params[-1] | {"cache_control": {"type": "ephemeral"}}
        try:
            reply = await self.client.messages.create(
                model=model, max_tokens=max_tokens, messages=messages,  # type: ignore[arg-type]
                system=[{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}],
                tools=tool_params,  # type: ignore[arg-type]
            )
        except anthropic.APIError as exc:
            status = getattr(exc, "status_code", None)
            raise BackendError(f"anthropic {role} call failed ({status or type(exc).__name__}): "
                               f"{getattr(exc, 'message', '')[:300]}") from exc
        text, calls = [], []
        for block in reply.content:
            if block.type == "text":
                text.append(block.text)
            elif block.type == "tool_use":
                calls.append(ToolCall(id=block.id, name=block.name, input=dict(block.input or {})))
        usage = reply.usage
        return LLMResponse(text="\n".join(text), tool_calls=calls, stop_reason=reply.stop_reason or "end_turn",
                           model=reply.model, usage=Usage(
                               input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
                               cache_read_tokens=usage.cache_read_input_tokens or 0,
                               cache_write_tokens=usage.cache_creation_input_tokens or 0))

    async def aclose(self) -> None:
        await self.client.close()
