"""Workload, per-request records and results, named as `vllm bench serve` names them."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Endpoint = Literal["completions", "chat"]

FINGERPRINT_FIELDS = ("model", "input_len", "output_len", "max_concurrency", "request_rate",
                      "num_prompts", "seed", "endpoint", "unique_prompts", "ignore_eos")


class Workload(BaseModel):
    """What load to offer: lengths, concurrency or rate, prompt count, seed, endpoint."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, description="served model name sent in each request")
    endpoint: Endpoint = "completions"
    input_len: int = Field(128, ge=1, le=1_000_000, description="prompt tokens per request (ISL)")
    output_len: int = Field(64, ge=1, le=1_000_000, description="generated tokens per request (OSL)")
    max_concurrency: int | None = Field(16, ge=1, le=100_000, description="requests in flight at most")
    request_rate: float | None = Field(None, gt=0, description="Poisson arrivals per second; None = all at once")
    num_prompts: int = Field(64, ge=1, le=1_000_000)
    seed: int = Field(0, ge=0)
    warmup: int = Field(2, ge=0, le=10_000, description="unmeasured requests before the run")
    ignore_eos: bool = True
    unique_prompts: bool = Field(True, description="start every prompt with a fresh tag so no request hits the"
                                 " prefix cache of an earlier one; false to measure prefix caching")
    num_gpus: int = Field(1, ge=1, le=4096, description="devices serving, for per-GPU throughput")
    tokenizer: str | None = Field(None, max_length=4096,
                                  description="a tokenizer.json (or the model folder holding one) that counts prompt "
                                              "tokens when the server has no /tokenize and /detokenize")
    request_timeout_s: float = Field(600.0, gt=0, le=86_400)

    @model_validator(mode="after")
    def _some_limit(self) -> Workload:
        if self.max_concurrency is None and self.request_rate is None:
            raise ValueError("set max_concurrency, request_rate, or both")
        return self

    def fingerprint(self) -> dict[str, object]:
        """The fields that must match for two results to be comparable."""
        return {name: getattr(self, name) for name in FINGERPRINT_FIELDS}


class RequestRecord(BaseModel):
    """One request's timings (seconds) and lengths."""

    success: bool
    prompt_len: int
    output_tokens: int = 0
    ttft: float | None = None
    itl: list[float] = Field(default_factory=list)
    latency: float | None = None
    start: float = 0.0
    end: float = 0.0
    token_times: list[float] = Field(default_factory=list, exclude=True)
    generated_text: str = ""
    error: str = ""
    retried: bool = False
    prompt_len_from_server: bool = False
    cached_tokens: int = 0
    output_tokens_from_server: bool = True


class LengthCheck(BaseModel):
    """Did the requests get the lengths asked for; comparisons judge them against a baseline's (bench.lengths)."""

    expected: int
    min: int | None = None
    max: int | None = None
    mean: float | None = None
    mismatched: int = 0
    source: Literal["server", "client", "none"] = "none"
    verified: bool = Field(True, description="false when the prompts could not be cut to an exact token count")
    note: str = ""

    @property
    def drifted(self) -> bool:
        return self.mismatched > 0


class BenchResult(BaseModel):
    """One benchmark run; field names follow `vllm bench serve` where it has them."""

    date: str
    backend: str = "openai"
    base_url: str
    endpoint: Endpoint
    model_id: str
    workload: Workload
    fingerprint: dict[str, object]
    num_prompts: int
    request_rate: str | float
    burstiness: float = 1.0
    max_concurrency: int | None
    duration: float
    completed: int
    failed: int
    total_input_tokens: int
    total_output_tokens: int
    total_cached_tokens: int = Field(0, description="prompt tokens the server served from its prefix cache")
    request_throughput: float
    request_goodput: float | None = None
    output_throughput: float
    total_token_throughput: float
    max_output_tokens_per_s: float
    max_concurrent_requests: int
    output_throughput_per_gpu: float
    interactivity: float | None = Field(description="1000 / median TPOT: tokens/s per user")
    mean_ttft_ms: float | None = None
    median_ttft_ms: float | None = None
    std_ttft_ms: float | None = None
    p90_ttft_ms: float | None = None
    p99_ttft_ms: float | None = None
    mean_tpot_ms: float | None = None
    median_tpot_ms: float | None = None
    std_tpot_ms: float | None = None
    p90_tpot_ms: float | None = None
    p99_tpot_ms: float | None = None
    mean_itl_ms: float | None = None
    median_itl_ms: float | None = None
    std_itl_ms: float | None = None
    p90_itl_ms: float | None = None
    p99_itl_ms: float | None = None
    mean_e2el_ms: float | None = None
    median_e2el_ms: float | None = None
    std_e2el_ms: float | None = None
    p90_e2el_ms: float | None = None
    p99_e2el_ms: float | None = None
    input_len_check: LengthCheck
    output_len_check: LengthCheck
    lengths_ok: bool = Field(description="every request got the lengths asked; outputs that end on EOS first do not, "
                                         "so comparisons judge lengths against the baseline's (bench.lengths)")
    input_lens: list[int]
    output_lens: list[int]
    ttfts: list[float | None]
    errors: list[str]
    retried: int = 0


class Comparison(BaseModel):
    """Relative change of one metric from baseline to candidate, with its interval."""

    metric: str
    higher_is_better: bool
    baseline_mean: float
    candidate_mean: float
    rel_change: float = Field(description="candidate / baseline - 1")
    ci_low: float | None = Field(None, description="lower bound of rel_change; None with < 2 repeats a side")
    ci_high: float | None = None
    confidence: float
    n_baseline: int
    n_candidate: int
    fingerprint: dict[str, object]


class ParetoPoint(BaseModel):
    """One operating point of a sweep."""

    max_concurrency: int | None
    request_rate: str | float
    output_throughput_per_gpu: float
    interactivity: float | None
    on_frontier: bool


class Sweep(BaseModel):
    """A concurrency sweep and its throughput-interactivity Pareto frontier."""

    results: list[BenchResult]
    points: list[ParetoPoint]


def finite_or_none(value: float) -> float | None:
    """JSON has no NaN: map it to None."""
    return None if value is None or math.isnan(value) or math.isinf(value) else value
