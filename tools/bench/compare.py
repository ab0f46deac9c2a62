"""Compare results (refusing mismatched workloads) and find the throughput-interactivity frontier."""

from __future__ import annotations

import math
from statistics import fmean

from ..errors import BenchError, FingerprintMismatch
from ..stats import pooled_interval
from .lengths import result_drifts
from .models import BenchResult, Comparison, ParetoPoint


def higher_is_better(metric: str) -> bool:
    """Throughputs and interactivity go up; latencies (…_ms) and failures go down."""
    return not (metric.endswith("_ms") or metric == "failed")


def check_same_workload(results: list[BenchResult]) -> dict[str, object]:
    """Return the shared fingerprint, or raise naming every field that differs."""
    if not results:
        raise BenchError("no results to compare")
    reference = results[0].fingerprint
    for other in results[1:]:
        diffs = {k: (reference.get(k), other.fingerprint.get(k))
                 for k in sorted(set(reference) | set(other.fingerprint))
                 if reference.get(k) != other.fingerprint.get(k)}
        if diffs:
            detail = ", ".join(f"{k}: {a!r} vs {b!r}" for k, (a, b) in diffs.items())
            raise FingerprintMismatch(f"refusing to compare different workloads ({detail})")
    return dict(reference)


def _metric(result: BenchResult, metric: str) -> float:
    value = getattr(result, metric, None)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise BenchError(f"metric {metric!r} is not a number in these results")
    return float(value)


def flaws(result: BenchResult, baseline: list[BenchResult] | None = None) -> list[str]:
    """Why a result is not a clean measurement: failed requests, lengths unlike the baseline's for the same prompts.

    Lengths are judged against the baseline's, not against what was asked: a model that ends on its
    end-of-sequence token early does so at the baseline too.
    """
    found = []
    if result.failed:
        found.append(f"{result.failed} failed request(s)")
    if result.completed == 0:
        found.append("no completed request")
    if baseline and (drifted := result_drifts(baseline, result)):
        found.append("lengths unlike the baseline's for the same prompts: " + "; ".join(d.message for d in drifted))
    return found


def compare(baseline: list[BenchResult], candidate: list[BenchResult], metric: str = "output_throughput",
            confidence: float = 0.95, allow_flawed: bool = False) -> Comparison:
    """Relative change of `metric`, with a pooled-variance t interval on the log ratio when both sides have repeats.

    Refuses different workloads always, and flawed results (failures, lengths unlike the baseline's)
    unless `allow_flawed`: a candidate that drops requests or shortens them can look faster than it is.
    """
    if not baseline or not candidate:
        raise BenchError("both sides need at least one result")
    fingerprint = check_same_workload([*baseline, *candidate])
    if not allow_flawed:
        for side, results, reference in (("baseline", baseline, None), ("candidate", candidate, baseline)):
            for i, result in enumerate(results):
                if found := flaws(result, reference):
                    raise BenchError(f"{side} result {i + 1} is not a clean measurement ({'; '.join(found)}); "
                                     "pass allow_flawed to compare anyway")
    base = [_metric(r, metric) for r in baseline]
    cand = [_metric(r, metric) for r in candidate]
    base_mean, cand_mean = fmean(base), fmean(cand)
    if base_mean <= 0 or any(v <= 0 for v in base + cand):
        raise BenchError(f"metric {metric!r} must be positive on both sides to compare ratios")
    # Intervals on log values: ratios are what matter and log makes them symmetric.
    interval = pooled_interval([math.log(v) for v in base], [math.log(v) for v in cand], confidence)
    ci_low = ci_high = None
    if interval is not None:
        _, low, high = interval
        ci_low, ci_high = math.exp(low) - 1.0, math.exp(high) - 1.0
    return Comparison(
        metric=metric,
        higher_is_better=higher_is_better(metric),
        baseline_mean=base_mean,
        candidate_mean=cand_mean,
        rel_change=cand_mean / base_mean - 1.0,
        ci_low=ci_low,
        ci_high=ci_high,
        confidence=confidence,
        n_baseline=len(base),
        n_candidate=len(cand),
        fingerprint=fingerprint,
    )


def pareto(results: list[BenchResult]) -> list[ParetoPoint]:
    """Mark the operating points no other point beats on both throughput/GPU and interactivity."""
    points = []
    for r in results:
        x, y = r.output_throughput_per_gpu, r.interactivity or 0.0
        dominated = any(
            (o.output_throughput_per_gpu >= x and (o.interactivity or 0.0) >= y)
            and (o.output_throughput_per_gpu > x or (o.interactivity or 0.0) > y)
            for o in results
        )
        points.append(ParetoPoint(max_concurrency=r.max_concurrency, request_rate=r.request_rate,
                                  output_throughput_per_gpu=x, interactivity=r.interactivity,
                                  on_frontier=not dominated and r.completed > 0))
    return points
