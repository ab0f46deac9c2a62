"""A local fake of the Anthropic Messages API (and OpenAI chat completions), scripted per role.

A real HTTP server on loopback: the official SDK talks to it through `base_url`. It checks
what the real API checks that matters here (API key, `anthropic-version`, no sampling
parameters since 2026-10-21), reports usage with prompt-cache reads and writes, records
every request, and lets a script play each agent from what the request shows it.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

REMOVED_PARAMS = ("temperature", "top_p", "top_k")


@dataclass
class Turn:
    """What a scripted agent sees of one request, the same for both wires."""

    role: str
    system: str
    prompt: str
    n_assistant: int
    results: list[dict[str, Any]]
    tools: list[str]
    model: str


@dataclass
class Reply:
    """A scripted answer: text and tool calls (name, input)."""

    text: str = ""
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


Script = Callable[[Turn], Reply]


def role_of(system: str) -> str:
    for role, marker in (("orchestrator", "Orchestrator of Arbor"), ("critic", "Critic of Arbor"),
                         ("specialist", "Domain Specialist of Arbor")):
        if marker in system:
            return role
    return "other"


def _tokens(value: Any) -> int:
    return max(1, len(json.dumps(value)) // 4)


class FakeLLM:
    """The server; `with FakeLLM(script, api_key) as fake:` then `fake.url`."""

    def __init__(self, script: Script, api_key: str = "sk-ant-test-0123456789abcdef", delay_s: float = 0.0,
                 fail_first: int = 0) -> None:
        self.script, self.api_key, self.delay_s = script, api_key, delay_s
        self.requests: list[dict[str, Any]] = []
        self.raw: list[dict[str, Any]] = []  # every request as received, refused ones included
        self.cached: set[str] = set()
        self.fail_first = fail_first
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                status, out = fake.handle(self.path, dict(self.headers), body)
                data = json.dumps(out).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeLLM:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def by_role(self, role: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["role"] == role]

    # ------------------------------------------------------------------
    def handle(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        headers = {k.lower(): v for k, v in headers.items()}
        with self.lock:
            self.raw.append({"path": path, "headers": headers, "body": body})
            if self.fail_first > 0:
                self.fail_first -= 1
                return 529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        if path.rstrip("/").endswith("/v1/messages"):
            return self.messages(headers, body)
        if path.rstrip("/").endswith("/v1/chat/completions"):
            return self.chat(headers, body)
        return 404, {"type": "error", "error": {"type": "not_found_error", "message": path}}

    def _error(self, status: int, kind: str, message: str) -> tuple[int, dict[str, Any]]:
        return status, {"type": "error", "error": {"type": kind, "message": message}}

    def messages(self, headers: dict[str, str], body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        # SDK 1.x sends x-api-key; 2.x sends the key as a bearer token. The API takes both.
        if self.api_key not in (headers.get("x-api-key"), headers.get("authorization", "").removeprefix("Bearer ")):
            return self._error(401, "authentication_error", "invalid x-api-key")
        if not headers.get("anthropic-version"):
            return self._error(400, "invalid_request_error", "anthropic-version header is required")
        for name in REMOVED_PARAMS:
            if name in body:
                return self._error(400, "invalid_request_error", f"{name}: Extra inputs are not permitted")
        for key in ("model", "max_tokens", "messages"):
            if key not in body:
                return self._error(400, "invalid_request_error", f"{key}: Field required")
        system = body.get("system") or ""
        cached_prefix = isinstance(system, list) and any("cache_control" in b for b in system)
        system_text = "".join(b["text"] for b in system) if isinstance(system, list) else system
        messages = body["messages"]
        results = []
        for block in messages[-1]["content"] if isinstance(messages[-1]["content"], list) else []:
            if block.get("type") == "tool_result":
                content = block.get("content")
                text = content if isinstance(content, str) else "".join(b.get("text", "") for b in content or [])
                results.append({"content": text, "is_error": bool(block.get("is_error"))})
        first = messages[0]["content"]
        turn = Turn(role=role_of(system_text), system=system_text,
                    prompt=first if isinstance(first, str) else json.dumps(first),
                    n_assistant=sum(1 for m in messages if m["role"] == "assistant"), results=results,
                    tools=[t["name"] for t in body.get("tools", [])], model=body["model"])
        reply = self._play(turn, body, headers)
        content: list[dict[str, Any]] = [{"type": "text", "text": reply.text}] if reply.text else []
        for i, (name, args) in enumerate(reply.calls):
            content.append({"type": "tool_use", "id": f"toolu_{len(self.requests)}_{i}", "name": name,
                            "input": args})
        static = _tokens(system) + _tokens(body.get("tools", []))
        write = read = 0
        if cached_prefix:
            key = body["model"] + system_text
            read, write = (static, 0) if key in self.cached else (0, static)
            self.cached.add(key)
        usage = {"input_tokens": _tokens(messages), "output_tokens": _tokens(content),
                 "cache_creation_input_tokens": write, "cache_read_input_tokens": read}
        return 200, {"id": f"msg_{len(self.requests)}", "type": "message", "role": "assistant",
                     "model": body["model"], "content": content or [{"type": "text", "text": "(done)"}],
                     "stop_reason": "tool_use" if reply.calls else "end_turn", "stop_sequence": None,
                     "usage": usage}

    def chat(self, headers: dict[str, str], body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if headers.get("authorization") != f"Bearer {self.api_key}":
            return self._error(401, "authentication_error", "invalid bearer token")
        messages = body["messages"]
        system = next((m["content"] for m in messages if m["role"] == "system"), "")
        tail = []
        for m in reversed(messages):
            if m["role"] != "tool":
                break
            tail.append({"content": m["content"], "is_error": False})
        users = [m for m in messages if m["role"] == "user"]
        turn = Turn(role=role_of(system), system=system, prompt=users[0]["content"] if users else "",
                    n_assistant=sum(1 for m in messages if m["role"] == "assistant"), results=tail[::-1],
                    tools=[t["function"]["name"] for t in body.get("tools", [])], model=body.get("model", ""))
        reply = self._play(turn, body, headers)
        message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
        if reply.calls:
            message["tool_calls"] = [{"id": f"call_{len(self.requests)}_{i}", "type": "function",
                                      "function": {"name": n, "arguments": json.dumps(a)}}
                                     for i, (n, a) in enumerate(reply.calls)]
        return 200, {"id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion", "model": turn.model,
                     "choices": [{"index": 0, "message": message,
                                  "finish_reason": "tool_calls" if reply.calls else "stop"}],
                     "usage": {"prompt_tokens": _tokens(messages), "completion_tokens": _tokens(message),
                               "total_tokens": _tokens(messages) + _tokens(message)}}

    def _play(self, turn: Turn, body: dict[str, Any], headers: dict[str, str]) -> Reply:
        started = time.perf_counter()
        reply = self.script(turn)
        if self.delay_s:
            time.sleep(self.delay_s)
        with self.lock:
            self.requests.append({"role": turn.role, "turn": turn, "body": body, "headers": headers,
                                  "reply": reply, "fake_s": time.perf_counter() - started})
        return reply


def find_line(text: str, pattern: str) -> int | None:
    """The number of the first `N: ...` line of a numbered log excerpt matching `pattern`."""
    for line in text.splitlines():
        match = re.match(r"^(\d+): (.*)$", line)
        if match and re.search(pattern, match.group(2)):
            return int(match.group(1))
    return None
