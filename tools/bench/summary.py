"""Turn per-request records into a BenchResult: throughput, latency percentiles, length checks."""

from __future__ import annotations

import math
from statistics import fmean, median, pstdev

from ..stats import percentile
from .models import BenchResult, LengthCheck, RequestRecord, Workload, finite_or_none

# Chat templates add tokens around the user's text; more than this many means something else.
CHAT_TEMPLATE_ALLOWANCE = 64


def _ms_stats(prefix: str, values_s: list[float]) -> dict[str, float | None]:
    if not values_s:
        return {f"{k}_{prefix}_ms": None for k in ("mean", "median", "std", "p90", "p99")}
    ms = [v * 1000.0 for v in values_s]
    return {
        f"mean_{prefix}_ms": fmean(ms),
        f"median_{prefix}_ms": median(ms),
        f"std_{prefix}_ms": pstdev(ms),
        f"p90_{prefix}_ms": percentile(ms, 90),
        f"p99_{prefix}_ms": percentile(ms, 99),
    }


def _length_check(expected: int, actual: list[int], source: str, chat_input: bool = False, verified: bool = True,
                  note: str = "") -> LengthCheck:
    if not actual:
        return LengthCheck(expected=expected, source="none", verified=verified, note=note)
    if not verified:
        # Prompts cut without a tokenizer are only about `expected` long: nothing to hold them to here.
        mismatched = 0
    elif chat_input:
        mismatched = sum(1 for n in actual if n < expected or n > expected + CHAT_TEMPLATE_ALLOWANCE)
    else:
        mismatched = sum(1 for n in actual if n != expected)
    return LengthCheck(expected=expected, min=min(actual), max=max(actual), mean=fmean(actual),
                       mismatched=mismatched, source=source, verified=verified, note=note)  # type: ignore[arg-type]


def _output_note(expected: int, actual: list[int]) -> str:
    short = sum(1 for n in actual if n < expected)
    if not short:
        return ""
    return (f"{short} of {len(actual)} outputs ended before {expected} tokens (an end-of-sequence the server did not "
            "ignore, or a changed workload): compare them with a baseline's for the same prompts")


def _max_tokens_per_s(records: list[RequestRecord], t0: float) -> float:
    buckets: dict[int, int] = {}
    for record in records:
        for t in record.token_times:
            second = int(t - t0)
            buckets[second] = buckets.get(second, 0) + 1
    return float(max(buckets.values())) if buckets else 0.0


def summarize(records: list[RequestRecord], *, workload: Workload, base_url: str, max_concurrent: int,
              verified_input: bool, date: str, input_note: str = "") -> BenchResult:
    """Aggregate one run's records the way `vllm bench serve` does."""
    ok = [r for r in records if r.success]
    if records:
        t0 = min(r.start for r in records)
        duration = max(r.end for r in records) - t0
    else:
        t0, duration = 0.0, 0.0
    duration = max(duration, 1e-9)
    total_in = sum(r.prompt_len for r in ok)
    total_out = sum(r.output_tokens for r in ok)
    tpots = [
        (r.latency - r.ttft) / (r.output_tokens - 1)
        for r in ok
        if r.latency is not None and r.ttft is not None and r.output_tokens > 1
    ]
    itls = [gap for r in ok for gap in r.itl]
    stats: dict[str, float | None] = {}
    stats |= _ms_stats("ttft", [r.ttft for r in ok if r.ttft is not None])
    stats |= _ms_stats("tpot", tpots)
    stats |= _ms_stats("itl", itls)
    stats |= _ms_stats("e2el", [r.latency for r in ok if r.latency is not None])
    median_tpot = stats["median_tpot_ms"]
    interactivity = 1000.0 / median_tpot if median_tpot else None
    input_source = "server" if ok and all(r.prompt_len_from_server for r in ok) else (
        "client" if verified_input else "none")
    output_source = "server" if ok and all(r.output_tokens_from_server for r in ok) else "client"
    input_check = _length_check(workload.input_len, [r.prompt_len for r in ok] if input_source != "none" else [],
                                input_source, chat_input=workload.endpoint == "chat", verified=verified_input,
                                note=input_note)
    outputs = [r.output_tokens for r in ok]
    output_check = _length_check(workload.output_len, outputs, output_source,
                                 note=_output_note(workload.output_len, outputs))
    output_throughput = total_out / duration
    return BenchResult(
        date=date,
        base_url=base_url,
        endpoint=workload.endpoint,
        model_id=workload.model,
        workload=workload,
        fingerprint=workload.fingerprint(),
        num_prompts=workload.num_prompts,
        request_rate=workload.request_rate if workload.request_rate is not None else "inf",
        max_concurrency=workload.max_concurrency,
        duration=duration,
        completed=len(ok),
        failed=len(records) - len(ok),
        total_input_tokens=total_in,
        total_output_tokens=total_out,
        total_cached_tokens=sum(r.cached_tokens for r in ok),
        request_throughput=len(ok) / duration,
        output_throughput=output_throughput,
        total_token_throughput=(total_in + total_out) / duration,
        max_output_tokens_per_s=_max_tokens_per_s(ok, t0),
        max_concurrent_requests=max_concurrent,
        output_throughput_per_gpu=output_throughput / workload.num_gpus,
        interactivity=finite_or_none(interactivity) if interactivity is not None else None,
        **{k: (finite_or_none(v) if v is not None and not math.isnan(v) else None) for k, v in stats.items()},
        input_len_check=input_check,
        output_len_check=output_check,
        lengths_ok=not input_check.drifted and not output_check.drifted,
        input_lens=[r.prompt_len for r in records],
        output_lens=[r.output_tokens for r in records],
        ttfts=[r.ttft for r in records],
        errors=[r.error for r in records if not r.success],
        retried=sum(1 for r in records if r.retried),
    )
