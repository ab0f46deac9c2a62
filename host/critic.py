"""The rule-based Critic: measurement integrity and stability checks, each finding with its evidence."""

from __future__ import annotations

import shutil
from pathlib import Path
from statistics import fmean, pstdev

from pydantic import BaseModel, Field

from arbor.tools.bench.lengths import LengthReport
from arbor.tools.bench.models import BenchResult

from .models import Finding
from .spec import CampaignSpec

MIN_FREE_BYTES = 1 << 30


class Verdict(BaseModel):
    """What the Critic says about a candidate's measurements."""

    stable: bool = True
    retest: bool = False
    more_repeats: bool = False
    confirm: bool = False
    findings: list[Finding] = Field(default_factory=list)


def check_result(spec: CampaignSpec, result: BenchResult, baseline_fingerprint: dict[str, object] | None,
                 path: str, lengths: LengthReport | None = None) -> Verdict:
    """Integrity of one benchmark result: same workload as the baseline, concurrency reached, the baseline's lengths.

    `lengths` judges the result's per-prompt lengths against the baseline's for the same prompts; without it
    only the asked lengths are known, and a model that ends on its end-of-sequence token early fails them.
    """
    verdict = Verdict()
    evidence = {"result": path}
    if baseline_fingerprint is not None and result.fingerprint != baseline_fingerprint:
        diff = {k: (baseline_fingerprint.get(k), result.fingerprint.get(k)) for k in baseline_fingerprint
                if baseline_fingerprint.get(k) != result.fingerprint.get(k)}
        verdict.findings.append(Finding(severity="warning", kind="fingerprint_mismatch",
                                        message=f"workload differs from the baseline's: {diff}; re-test",
                                        evidence=evidence | {"diff": {k: list(v) for k, v in diff.items()}}))
        verdict.stable, verdict.retest = False, True
    wanted = min(spec.workload.concurrency, spec.workload.num_prompts)
    if result.max_concurrent_requests < wanted:
        verdict.findings.append(Finding(severity="warning", kind="concurrency_drift",
                                        message=f"only {result.max_concurrent_requests} requests were in flight, "
                                                f"{wanted} were asked; re-test", evidence=evidence))
        verdict.stable, verdict.retest = False, True
    if lengths is not None and lengths.drifts:
        drifts = lengths.drifts
        verdict.findings.append(Finding(
            severity="warning", kind="length_drift", evidence=evidence | {"drifts": [d.model_dump() for d in drifts]},
            message=f"lengths drifted from the baseline's for the same prompts: {'; '.join(d.message for d in drifts)}"
                    "; re-test"))
        verdict.stable, verdict.retest = False, True
    elif lengths is None and not result.lengths_ok:
        asked = f"input {result.input_len_check.model_dump()}, output {result.output_len_check.model_dump()}"
        verdict.findings.append(Finding(severity="warning", kind="length_drift", evidence=evidence,
                                        message=f"lengths drifted from the asked ones: {asked}; re-test"))
        verdict.stable, verdict.retest = False, True
    done = result.completed / max(1, result.completed + result.failed)
    if done < spec.gates.min_completion_rate:
        verdict.findings.append(Finding(severity="warning", kind="failed_requests",
                                        message=f"{result.failed} request(s) failed ({done:.0%} completed)",
                                        evidence=evidence | {"errors": result.errors[:3]}))
        verdict.stable = False
    return verdict


def check_repeats(spec: CampaignSpec, throughputs: list[float], gain: float | None, prior_speedup: float,
                  confirmed: bool) -> Verdict:
    """Noise across repeats and too-good-to-be-true gains."""
    verdict = Verdict()
    if len(throughputs) >= 2:
        cv = pstdev(throughputs) / fmean(throughputs) if fmean(throughputs) > 0 else 0.0
        if cv > spec.search.max_cv:
            verdict.more_repeats = True
            verdict.findings.append(Finding(severity="info", kind="noisy",
                                            message=f"coefficient of variation {cv:.1%} > {spec.search.max_cv:.0%}:"
                                                    " more repeats", evidence={"throughputs": throughputs}))
    if gain is not None and gain > spec.search.too_good and prior_speedup < spec.search.too_good / 3 and not confirmed:
        verdict.confirm = True
        verdict.findings.append(Finding(severity="warning", kind="too_good",
                                        message=f"gain {gain:+.0%} from an action whose prior was "
                                                f"{prior_speedup:+.0%}: confirm by re-measuring before keeping",
                                        evidence={"gain": gain, "prior_speedup": prior_speedup}))
    return verdict


def keep_out_of_repeats(low: float | None, gain: float, min_gain: float) -> bool:
    """Out of repeats and unsettled: keep a gain shown above zero whose estimate clears the bar.

    Demanding the whole interval above the bar left every real +3% gain unkept where the noise is 2%.
    """
    return low is not None and low > 0 and gain >= min_gain


def check_disk(run_dir: Path) -> Finding | None:
    """A run folder on a nearly full disk."""
    free = shutil.disk_usage(run_dir).free
    if free < MIN_FREE_BYTES:
        return Finding(severity="critical", kind="disk_full", needs_human=True,
                       message=f"only {free / 2**20:.0f} MiB free under {run_dir}: logs and profiles may be lost",
                       evidence={"free_bytes": free})
    return None


def check_leftovers(pids: list[int]) -> Finding | None:
    """Processes of a stopped server still alive."""
    if pids:
        return Finding(severity="error", kind="leftover_processes",
                       message=f"processes {pids} survived their server's stop", evidence={"pids": pids})
    return None
