"""Scrape and parse Prometheus `/metrics` (vLLM, SGLang, llama.cpp with --metrics)."""

from __future__ import annotations

import re

import httpx
from pydantic import BaseModel

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\S+)?$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

# Which engine versions export which name (read from the engines' own sources):
# - vLLM's KV-cache gauge: `vllm:gpu_cache_usage_perc` alone before 0.9.2; both spellings in 0.9.2-0.10
#   (vllm-project/vllm#18354 added `vllm:kv_cache_usage_perc` and deprecated the old one); only the new one
#   from 0.11 (the old one hidden unless --show-hidden-metrics-for-version=0.10, #24245); the old one
#   removed from 0.12 (#29330). Both are read; the new one wins when a version exports both.
# - llama.cpp's llama-server: `llamacpp:kv_cache_usage_ratio` and `llamacpp:kv_cache_tokens` were removed
#   from /metrics by ggml-org/llama.cpp#13660 (May 2025); later builds, the pinned llama-cpp-python 0.3.36
#   sources among them, export no KV-cache gauge at all. Older builds' gauge is still read when present.
# No reading below is required: a name an engine version does not export is simply absent from the result.
RENAMED = {"vllm:gpu_cache_usage_perc": "vllm:kv_cache_usage_perc"}  # older spelling -> current one

# Key metrics the pinned releases no longer export but older builds do (tests check the rest against the releases).
OLDER_BUILDS = ("llamacpp:kv_cache_usage_ratio",)  # builds before llama.cpp#13660 only
# The gauges and counters a performance engineer looks at first, per stack (current spellings).
KEY_METRICS = (
    "vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc",
    "vllm:num_preemptions_total", "vllm:generation_tokens_total",
    "sglang:num_running_reqs", "sglang:num_queue_reqs", "sglang:token_usage", "sglang:gen_throughput",
    "llamacpp:requests_processing", "llamacpp:requests_deferred", "llamacpp:tokens_predicted_total",
    "llamacpp:prompt_tokens_total", "llamacpp:predicted_tokens_seconds", "llamacpp:prompt_tokens_seconds",
    "llamacpp:n_decode_total", "llamacpp:n_busy_slots_per_decode",
) + OLDER_BUILDS


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
    """Sum of each key metric across label sets (several engines or GPUs add up), under its current name."""
    current: dict[str, float] = {}
    older: dict[str, float] = {}
    for sample in samples:
        if sample.name in KEY_METRICS:
            current[sample.name] = current.get(sample.name, 0.0) + sample.value
        elif sample.name in RENAMED:
            older[RENAMED[sample.name]] = older.get(RENAMED[sample.name], 0.0) + sample.value
    # A version exporting both spellings reports one value twice: adding them would double it.
    return older | current


async def scrape(base_url: str, timeout_s: float = 10.0) -> list[Sample]:
    """GET `/metrics` and parse it."""
    async with httpx.AsyncClient(timeout=timeout_s) as client:
        response = await client.get(base_url.rstrip("/") + "/metrics")
        response.raise_for_status()
        return parse(response.text)
