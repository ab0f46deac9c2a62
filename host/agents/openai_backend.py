"""Any OpenAI-compatible /v1/chat/completions with tools, over httpx (vLLM, SGLang, llama.cpp, hosted)."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import httpx

from .backend import BackendError, Capabilities, LLMResponse, Role, ToolCall, ToolSpec, Usage

RETRY_STATUS = {429, 500, 502, 503, 504}


def to_openai(system: str, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Anthropic-shaped content blocks to OpenAI chat messages."""
    out: list[dict[str, Any]] = [{"role": "system", "content": system}]
    for message in messages:
        content = message["content"]
        if isinstance(content, str):
            out.append({"role": message["role"], "content": content})
            continue
        texts = [b["text"] for b in content if b.get("type") == "text"]
        uses = [b for b in content if b.get("type") == "tool_use"]
        results = [b for b in content if b.get("type") == "tool_result"]
        if message["role"] == "assistant":
            entry: dict[str, Any] = {"role": "assistant", "content": "\n".join(texts) or None}
            if uses:
                entry["tool_calls"] = [{"id": u["id"], "type": "function", "function": {
                    "name": u["name"], "arguments": json.dumps(u.get("input") or {})}} for u in uses]
            out.append(entry)
        else:
            for result in results:
                body = result.get("content")
                text = body if isinstance(body, str) else "\n".join(
                    b.get("text", "") for b in body or [] if isinstance(b, dict))
                out.append({"role": "tool", "tool_call_id": result["tool_use_id"], "content": text})
            if texts:
                out.append({"role": "user", "content": "\n".join(texts)})
    return out


class OpenAIBackend:
    """Chat completions with function tools; retries with backoff on 429/5xx and connection errors."""

    capabilities = Capabilities(name="openai", tools=True, prompt_caching=False)

    def __init__(self, base_url: str, api_key: str | None = None, timeout_s: float = 600.0,
                 max_retries: int = 4) -> None:
        key = api_key or os.environ.get("OPENAI_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.base_url = base_url.rstrip("/")
        self.client = httpx.AsyncClient(timeout=timeout_s, headers=headers,
                                        limits=httpx.Limits(max_keepalive_connections=0))
        self.max_retries = max_retries

    async def complete(self, role: Role, model: str, system: str, messages: list[dict[str, Any]],
                       tools: list[ToolSpec], max_tokens: int) -> LLMResponse:
        body: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "messages": to_openai(system, messages)}
        if tools:
            body["tools"] = [{"type": "function", "function": {"name": t.name, "description": t.description,
                                                               "parameters": t.input_schema}} for t in tools]
        url = f"{self.base_url}/v1/chat/completions"
        for attempt in range(self.max_retries + 1):
            try:
                response = await self.client.post(url, json=body)
            except httpx.HTTPError as exc:
                if attempt == self.max_retries:
                    raise BackendError(f"openai {role} call failed: {type(exc).__name__}") from exc
                await asyncio.sleep(min(30.0, 0.5 * 2**attempt))
                continue
            if response.status_code in RETRY_STATUS and attempt < self.max_retries:
                await asyncio.sleep(min(30.0, 0.5 * 2**attempt))
                continue
            if response.status_code != 200:
                raise BackendError(f"openai {role} call failed: HTTP {response.status_code}: {response.text[:300]}")
            break
        data = response.json()
        choice = data["choices"][0]
        message = choice.get("message") or {}
        calls = []
        for call in message.get("tool_calls") or []:
            try:
                arguments = json.loads(call["function"].get("arguments") or "{}")
            except ValueError:
                arguments = {"_unparsed": call["function"].get("arguments")}
            calls.append(ToolCall(id=call.get("id") or f"call_{len(calls)}", name=call["function"]["name"],
                                  input=arguments if isinstance(arguments, dict) else {"value": arguments}))
        usage = data.get("usage") or {}
        details = usage.get("prompt_tokens_details") or {}
        reason = {"tool_calls": "tool_use", "length": "max_tokens", "stop": "end_turn"}.get(
            choice.get("finish_reason") or "stop", choice.get("finish_reason") or "end_turn")
        return LLMResponse(text=message.get("content") or "", tool_calls=calls, stop_reason=reason,
                           model=data.get("model", model), usage=Usage(
                               input_tokens=usage.get("prompt_tokens") or 0,
                               output_tokens=usage.get("completion_tokens") or 0,
                               cache_read_tokens=details.get("cached_tokens") or 0))

    async def aclose(self) -> None:
        await self.client.aclose()
