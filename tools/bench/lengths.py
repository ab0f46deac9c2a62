"""Lengths judged against a baseline's own lengths for the same seeded prompts, not against what was asked.

A model may end on its end-of-sequence token before `max_tokens` (a server that does not
honour `ignore_eos`), and a prompt built without the server's tokenizer is only about
`input_len` tokens long: neither is a fault as long as the baseline and the candidate
see the same. What is a fault is a candidate whose requests are shorter or longer than
the baseline's for the same prompts: it measures another workload.
"""

from __future__ import annotations

import math
from statistics import fmean, stdev
from typing import Literal

from pydantic import BaseModel

from ..stats import t_quantile
from .models import BenchResult

# A trap region of the simulated stacks shortens outputs by 3% or more; honest runs differ by none.
TOLERANCE = 0.02
# Where lengths vary from run to run for the same prompt, a drift must stand out of that noise this surely.
CONFIDENCE = 0.99

Side = Literal["input", "output"]


class LengthDrift(BaseModel):
    """Requests of a candidate whose lengths differ from the baseline's for the same prompts."""

    side: Side
    prompts: int
    baseline_mean: float
    candidate_mean: float
    rel_change: float
    message: str


class LengthReport(BaseModel):
    """A candidate run's lengths against the baseline's: what drifted (nothing when they agree)."""

    drifts: list[LengthDrift]
    compared: bool = True
    note: str = ""


def per_prompt(runs: list[list[int]], answered: list[list[int]]) -> list[float | None]:
    """Mean length of each prompt over the runs that answered it (None where none did)."""
    width = max((len(r) for r in runs), default=0)
    out: list[float | None] = []
    for i in range(width):
        values = [run[i] for run, ok in zip(runs, answered, strict=True)
                  if i < len(run) and i < len(ok) and ok[i] > 0]
        out.append(fmean(values) if values else None)
    return out


def drift(side: Side, baseline: list[float | None], candidate: list[int], candidate_answered: list[int],
          tolerance: float = TOLERANCE, confidence: float = CONFIDENCE) -> LengthDrift | None:
    """The candidate's lengths against the baseline's per prompt; None when they agree within the noise."""
    pairs = [(b, c) for b, c, ok in zip(baseline, candidate, candidate_answered, strict=False)
             if b is not None and ok > 0]
    if not pairs or sum(b for b, _ in pairs) <= 0:
        return None
    diffs = [c - b for b, c in pairs]
    base_mean, cand_mean = fmean(b for b, _ in pairs), fmean(c for _, c in pairs)
    rel = cand_mean / base_mean - 1.0
    if abs(rel) <= tolerance:
        return None
    if len(diffs) >= 2:
        spread = stdev(diffs)
        # Lengths that vary run to run (an end-of-sequence that moves with the prompt's fresh tag) must
        # differ by more than that noise; with no spread every prompt moved alike and the drift is plain.
        if spread > 0:
            t = fmean(diffs) / (spread / math.sqrt(len(diffs)))
            if abs(t) < t_quantile(0.5 + confidence / 2.0, len(diffs) - 1):
                return None
    return LengthDrift(side=side, prompts=len(pairs), baseline_mean=base_mean, candidate_mean=cand_mean,
                       rel_change=rel, message=f"{side} {cand_mean:.1f} vs {base_mean:.1f} tokens a request "
                                               f"({rel:+.1%} over {len(pairs)} prompts)")


def drifts(baseline: list[tuple[list[int], list[int]]], candidate: tuple[list[int], list[int]],
           tolerance: float = TOLERANCE, confidence: float = CONFIDENCE) -> list[LengthDrift]:
    """Input and output drift of one candidate run against baseline runs, each given as (input_lens, output_lens).

    A request that failed has no output (0 tokens) and is left out on either side.
    """
    outputs = [out for _, out in baseline]
    sides: tuple[tuple[Side, int], ...] = (("input", 0), ("output", 1))
    found = []
    for side, index in sides:
        reference = per_prompt([run[index] for run in baseline], outputs)
        one = drift(side, reference, candidate[index], candidate[1], tolerance, confidence)
        if one is not None:
            found.append(one)
    return found


def result_drifts(baseline: list[BenchResult], candidate: BenchResult) -> list[LengthDrift]:
    """`drifts` of one benchmark result against baseline results of the same workload."""
    return drifts([(r.input_lens, r.output_lens) for r in baseline], (candidate.input_lens, candidate.output_lens))


def report(baseline: list[BenchResult], candidate: BenchResult) -> LengthReport:
    """The candidate's lengths against the baseline's; not compared when the workloads differ (other prompts)."""
    differ = sorted({k for r in baseline for k in {*r.fingerprint, *candidate.fingerprint}
                     if r.fingerprint.get(k) != candidate.fingerprint.get(k)})
    if differ:
        return LengthReport(drifts=[], compared=False,
                            note=f"not compared: the workloads differ in {', '.join(differ)}")
    return LengthReport(drifts=result_drifts(baseline, candidate))
