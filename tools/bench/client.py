"""The async load generator: streaming OpenAI-compatible requests with per-token timestamps."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone

import httpx

from ..errors import BenchError
from .models import BenchResult, RequestRecord, Workload
from .prompts import Prompt, build_prompts
from .summary import summarize

Progress = Callable[[int, int], Awaitable[None] | None]

# A request that got no byte back never reached the engine, so one retry is safe.
_NO_BYTE_ERRORS = (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


def make_client(workload: Workload) -> httpx.AsyncClient:
    """An httpx client with keep-alive off: llama-server drops reused connections under load."""
    return httpx.AsyncClient(
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=0),
        timeout=httpx.Timeout(workload.request_timeout_s, connect=30.0),
    )


def request_body(workload: Workload, prompt: str, max_tokens: int) -> dict:
    """The JSON body of one streaming request."""
    body: dict = {
        "model": workload.model,
        "max_tokens": max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.0,
        "seed": workload.seed,
    }
    if workload.ignore_eos:
        body["ignore_eos"] = True
    if workload.endpoint == "chat":
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    return body


def endpoint_url(base_url: str, workload: Workload) -> str:
    """Full URL of the endpoint the workload targets."""
    path = "/v1/chat/completions" if workload.endpoint == "chat" else "/v1/completions"
    return base_url.rstrip("/") + path


def _delta_text(event: dict, chat: bool) -> str | None:
    choices = event.get("choices") or []
    if not choices:
        return None
    choice = choices[0]
    if chat:
        delta = choice.get("delta") or {}
        return delta.get("content") or delta.get("reasoning_content") or None
    return choice.get("text") or None


async def _stream_once(client: httpx.AsyncClient, url: str, body: dict, chat: bool,
                       record: RequestRecord) -> bool:
    """Run one streaming request into `record`; return False if it failed before any byte came back."""
    got_byte = False
    try:
        async with client.stream("POST", url, json=body) as response:
            got_byte = True
            if response.status_code != 200:
                text = (await response.aread()).decode(errors="replace")
                record.error = f"HTTP {response.status_code}: {text[:300]}"
                return True
            buffer = b""
            async for chunk in response.aiter_raw():
                now = time.perf_counter()
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if not line.startswith(b"data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == b"[DONE]":
                        record.success = True
                        continue
                    event = json.loads(payload)
                    if "error" in event:
                        record.error = f"server error: {json.dumps(event['error'])[:300]}"
                        return True
                    text = _delta_text(event, chat)
                    if text is not None:
                        record.token_times.append(now)
                        record.generated_text += text
                    usage = event.get("usage")
                    if usage:
                        record.output_tokens = int(usage.get("completion_tokens") or 0)
                        if usage.get("prompt_tokens"):
                            record.prompt_len = int(usage["prompt_tokens"])
                            record.prompt_len_from_server = True
            if not record.success and record.token_times:
                # Some servers end the stream without [DONE]; a closed stream with tokens is complete.
                record.success = True
            if not record.token_times and not record.error:
                record.success = False
                record.error = "stream ended without any token"
            return True
    except _NO_BYTE_ERRORS as exc:
        if not got_byte:
            record.error = f"{type(exc).__name__}: {exc}"
            return False
        record.success = False
        record.error = f"{type(exc).__name__} mid-stream: {exc}"
        return True
    except (httpx.HTTPError, ValueError) as exc:
        record.success = False
        record.error = f"{type(exc).__name__}: {exc}"
        return True


async def send_request(client: httpx.AsyncClient, url: str, workload: Workload, prompt: Prompt,
                       max_tokens: int) -> RequestRecord:
    """One measured request, retried once when the connection failed before any byte."""
    chat = workload.endpoint == "chat"
    body = request_body(workload, prompt.text, max_tokens)
    record = RequestRecord(success=False, prompt_len=prompt.tokens)
    record.start = time.perf_counter()
    complete = await _stream_once(client, url, body, chat, record)
    if not complete:
        record = RequestRecord(success=False, prompt_len=prompt.tokens, retried=True)
        record.start = time.perf_counter()
        if not await _stream_once(client, url, body, chat, record):
            record.success = False
    record.end = time.perf_counter()
    if record.success:
        times = record.token_times
        record.ttft = times[0] - record.start
        record.itl = [b - a for a, b in zip(times, times[1:])]
        record.latency = record.end - record.start
        if record.output_tokens == 0:
            record.output_tokens = len(times)
            record.output_tokens_from_server = False
    return record


async def _arrivals(workload: Workload) -> list[float]:
    if workload.request_rate is None:
        return [0.0] * workload.num_prompts
    rng = random.Random(f"arrivals:{workload.seed}")
    offsets, t = [], 0.0
    for _ in range(workload.num_prompts):
        offsets.append(t)
        t += rng.expovariate(workload.request_rate)
    return offsets


async def run_benchmark(base_url: str, workload: Workload, *, prompts: list[Prompt] | None = None,
                        progress: Progress | None = None) -> BenchResult:
    """Offer `workload` to the server at `base_url` and measure every request."""
    url = endpoint_url(base_url, workload)
    async with make_client(workload) as client:
        if prompts is None:
            try:
                prompts = await build_prompts(client, base_url, workload.model, workload.input_len,
                                              workload.num_prompts, workload.seed)
            except httpx.HTTPError as exc:
                raise BenchError(f"cannot prepare prompts against {base_url}: {exc}") from exc
        if len(prompts) < workload.num_prompts:
            raise BenchError(f"{len(prompts)} prompts given, workload needs {workload.num_prompts}")
        for i in range(workload.warmup):
            await send_request(client, url, workload, prompts[i % len(prompts)], min(workload.output_len, 16))
        offsets = await _arrivals(workload)
        gate = asyncio.Semaphore(workload.max_concurrency or workload.num_prompts)
        in_flight = 0
        peak = 0
        done = 0
        t0 = time.perf_counter()

        async def one(i: int) -> RequestRecord:
            nonlocal in_flight, peak, done
            delay = t0 + offsets[i] - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            async with gate:
                in_flight += 1
                peak = max(peak, in_flight)
                try:
                    return await send_request(client, url, workload, prompts[i], workload.output_len)
                finally:
                    in_flight -= 1
                    done += 1
                    if progress is not None:
                        maybe = progress(done, workload.num_prompts)
                        if asyncio.iscoroutine(maybe):
                            await maybe

        records = await asyncio.gather(*(one(i) for i in range(workload.num_prompts)))
    return summarize(
        records,
        workload=workload,
        base_url=base_url,
        max_concurrent=peak,
        verified_input=all(p.verified for p in prompts[: workload.num_prompts]),
        date=datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S"),
    )
