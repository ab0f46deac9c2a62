"""Scrape and parse Prometheus `/metrics` (vLLM, SGLang, llama.cpp with --metrics)."""

from __future__ import annotations

import re

import httpx
from pydantic import BaseModel

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\S+)?$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

# The gauges and counters a performance engineer looks at first, per stack.
KEY_METRICS = (
    "vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc",
    "vllm:gpu_cache_usage_perc", "vllm:num_preemptions_total", "vllm:generation_tokens_total",
    "sglang:num_running_reqs", "sglang:num_queue_reqs", "sglang:token_usage", "sglang:gen_throughput",
    "llamacpp:requests_processing", "llamacpp:requests_deferred", "llamacpp:tokens_predicted_total",
    "llamacpp:prompt_tokens_total", "llamacpp:predicted_tokens_seconds", "llamacpp:prompt_tokens_seconds",
    "llamacpp:kv_cache_usage_ratio", "llamacpp:n_decode_total", "llamacpp:n_busy_slots_per_decode",
)


class Sample(BaseModel):
    """One sample line: metric name, labels, value."""

    name: str
    labels: dict[str, str] = {}
    value: float


def parse(text: str) -> list[Sample]:
    """Parse the Prometheus text exposition format; comments and malformed lines are skipped."""
    samples = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if not match:
            continue
        name, _, labels, value, _ = match.groups()
        try:
            number = float(value)
        except ValueError:
            continue
        parsed = {k: v.replace('\\"', '"').replace("\\\\", "\\") for k, v in _LABEL.findall(labels or "")}
        samples.append(Sample(name=name, labels=parsed, value=number))
    return samples


def key_values(samples: list[Sample]) -> dict[str, float]:
    """Sum of each key metric across label sets (several engines or GPUs add up)."""
    out: dict[str, float] = {}
    for sample in samples:
        if sample.name in KEY_METRICS:
            out[sample.name] = out.get(sample.name, 0.0) + sample.value
    return out


async def scrape(base_url: str, timeout_s: float = 10.0) -> list[Sample]:
    """GET `/metrics` and parse it."""
    async with httpx.AsyncClient(timeout=timeout_s) as client:
        response = await client.get(base_url.rstrip("/") + "/metrics")
        response.raise_for_status()
        return parse(response.text)
