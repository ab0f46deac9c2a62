"""The async load generator: streaming OpenAI-compatible requests with per-token timestamps."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import httpx

from ..errors import BenchError
from .models import BenchResult, RequestRecord, Workload
from .prompts import Prompt, build_prompts
from .summary import summarize
from .wire import Endpoint, NoByteError, StreamedResponse, StreamError, stream_post

Progress = Callable[[int, int], Awaitable[None] | None]


def make_client(workload: Workload) -> httpx.AsyncClient:
    """An httpx client (prompt preparation) with keep-alive off: llama-server drops reused connections."""
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
    choices = event.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    choice = choices[0]
    if chat:
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            return None
        text = delta.get("content") or delta.get("reasoning_content")
    else:
        text = choice.get("text")
    return text if isinstance(text, str) and text else None


def _apply(response: StreamedResponse, chat: bool, record: RequestRecord) -> None:
    """Fill `record` from a finished stream: token arrival times, text, server-reported lengths."""
    if response.status != 200:
        record.error = f"HTTP {response.status}: {bytes(response.body[:300]).decode(errors='replace')}"
        return
    finished = False
    for arrived, payload in response.events:
        if payload == b"[DONE]":
            finished = True
            continue
        try:
            event = json.loads(payload)
        except ValueError:
            event = None
        if not isinstance(event, dict):
            record.error = f"undecodable event: {payload[:100]!r}"
            return
        choices = event.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict) and choices[0].get("finish_reason"):
            finished = True
        if "error" in event:
            record.error = f"server error: {json.dumps(event['error'])[:300]}"
            return
        text = _delta_text(event, chat)
        if text is not None:
            record.token_times.append(arrived)
            record.generated_text += text
        usage = event.get("usage")
        if isinstance(usage, dict):
            if isinstance(usage.get("completion_tokens"), int):
                record.output_tokens = usage["completion_tokens"]
            if isinstance(usage.get("prompt_tokens"), int) and usage["prompt_tokens"] > 0:
                record.prompt_len = usage["prompt_tokens"]
                record.prompt_len_from_server = True
            details = usage.get("prompt_tokens_details")
            if isinstance(details, dict) and isinstance(details.get("cached_tokens"), int):
                record.cached_tokens = details["cached_tokens"]
    if not record.token_times:
        record.error = record.error or "stream ended without any token"
    elif not finished:
        # A server that dies mid-stream closes the socket like a normal end: only [DONE] or a
        # finish_reason proves the generation completed.
        record.error = f"stream ended after {len(record.token_times)} tokens without [DONE] or finish_reason"
    else:
        record.success = True


async def send_request(endpoint: Endpoint, workload: Workload, prompt: Prompt, max_tokens: int) -> RequestRecord:
    """One measured request, retried once when the connection failed before any byte came back."""
    chat = workload.endpoint == "chat"
    body = request_body(workload, prompt.text, max_tokens)
    for attempt in (1, 2):
        record = RequestRecord(success=False, prompt_len=prompt.tokens, retried=attempt == 2)
        record.start = time.perf_counter()
        try:
            response = await stream_post(endpoint, body, workload.request_timeout_s)
        except NoByteError as exc:
            record.end = time.perf_counter()
            record.error = f"no response: {exc}"
            continue
        except StreamError as exc:
            record.end = time.perf_counter()
            record.error = str(exc)
            return record
        record.end = response.events[-1][0] if response.events else time.perf_counter()
        try:
            _apply(response, chat, record)
        except Exception as exc:  # noqa: BLE001 - one odd response fails its request, never the run
            record.success = False
            record.error = f"cannot read the response: {type(exc).__name__}: {exc}"
        break
    if record.success:
        times = record.token_times
        record.ttft = times[0] - record.start
        record.itl = [b - a for a, b in zip(times, times[1:], strict=False)]
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


async def collect_records(base_url: str, workload: Workload, prompts: list[Prompt] | None = None,
                          progress: Progress | None = None) -> tuple[list[RequestRecord], int, list[Prompt]]:
    """Offer `workload` and return (per-request records, peak requests in flight, the measured prompts)."""
    try:
        endpoint = Endpoint(endpoint_url(base_url, workload))
    except ValueError as exc:
        raise BenchError(str(exc)) from exc
    async with make_client(workload) as client:
        if prompts is None:
            try:
                # Warm-up gets prompts of its own: reusing a measured prompt would warm its cache.
                prompts = await build_prompts(client, base_url, workload.model, workload.input_len,
                                              workload.num_prompts + workload.warmup, workload.seed,
                                              workload.unique_prompts, workload.tokenizer)
                warm, prompts = prompts[workload.num_prompts:], prompts[: workload.num_prompts]
            except (httpx.HTTPError, BenchError) as exc:
                raise BenchError(f"cannot prepare prompts against {base_url}: {exc}") from exc
        else:
            warm = prompts[workload.num_prompts:]
        if len(prompts) < workload.num_prompts:
            raise BenchError(f"{len(prompts)} prompts given, workload needs {workload.num_prompts}")
        for i in range(workload.warmup):
            source = warm or prompts
            await send_request(endpoint, workload, source[i % len(source)], min(workload.output_len, 16))
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
                    record = await send_request(endpoint, workload, prompts[i], workload.output_len)
                finally:
                    in_flight -= 1
                    done += 1
            # Reported outside the gate: a slow progress consumer must not lower the offered load.
            if progress is not None:
                maybe = progress(done, workload.num_prompts)
                if asyncio.iscoroutine(maybe):
                    await maybe
            return record

        records = await asyncio.gather(*(one(i) for i in range(workload.num_prompts)))
    return list(records), peak, prompts[: workload.num_prompts]


async def run_benchmark(base_url: str, workload: Workload, *, prompts: list[Prompt] | None = None,
                        progress: Progress | None = None) -> BenchResult:
    """Offer `workload` to the server at `base_url` and measure every request."""
    records, peak, measured = await collect_records(base_url, workload, prompts, progress)
    notes = sorted({p.note for p in measured if p.note})
    return summarize(records, workload=workload, base_url=base_url, max_concurrent=peak,
                     verified_input=all(p.verified for p in measured), input_note="; ".join(notes),
                     date=datetime.now(UTC).strftime("%Y%m%d-%H%M%S"))
