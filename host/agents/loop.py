"""The agent loop: a model turn, its tool calls through the bridge, the results back, until it is done."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field

from .backend import Backend, Role
from .bridge import Bridge
from .ledger import Ledger


class AgentRun(BaseModel):
    """What one agent did: its final text, every tool call with the outcome, and timings."""

    text: str = ""
    turns: int = 0
    calls: list[dict[str, Any]] = Field(default_factory=list)
    llm_seconds: list[float] = Field(default_factory=list)
    stopped: str = "end_turn"


def _blocks(text: str, calls: list[Any]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": c.input} for c in calls]
    return blocks or [{"type": "text", "text": "(no output)"}]


async def run_agent(backend: Backend, ledger: Ledger, role: Role, model: str, system: str, prompt: str,
                    bridge: Bridge, node: int | None = None, max_turns: int = 8, max_tokens: int = 4096,
                    done: Callable[[], bool] | None = None) -> AgentRun:
    """Converse until the model stops calling tools, `done()` says so, or `max_turns` runs out."""
    run = AgentRun()
    messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
    for _ in range(max_turns):
        ledger.check()
        started = time.perf_counter()
        reply = await backend.complete(role, model, system, messages, bridge.specs, max_tokens)
        run.llm_seconds.append(time.perf_counter() - started)
        run.turns += 1
        messages.append({"role": "assistant", "content": _blocks(reply.text, reply.tool_calls)})
        ledger.record(role, node, model, reply.usage,
                      {"system": system, "messages": messages[-3:], "stop_reason": reply.stop_reason})
        run.text = reply.text or run.text
        if not reply.tool_calls:
            run.stopped = reply.stop_reason
            return run
        results = []
        for call in reply.tool_calls:
            outcome = await bridge.call(call.name, call.input)
            run.calls.append({"name": call.name, "input": call.input, "is_error": outcome.is_error,
                              "result": outcome.content[:2000], "seconds": round(outcome.seconds, 6)})
            results.append({"type": "tool_result", "tool_use_id": call.id, "content": outcome.content,
                            "is_error": outcome.is_error})
        messages.append({"role": "user", "content": results})
        if done is not None and done():
            run.stopped = "done"
            return run
    run.stopped = "max_turns"
    return run
