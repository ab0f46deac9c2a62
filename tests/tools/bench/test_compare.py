"""Comparisons refuse mismatched workloads, give honest intervals, and find the Pareto frontier."""

from __future__ import annotations

import pytest

from arbor.tools.bench.compare import compare, pareto
from arbor.tools.bench.models import BenchResult, LengthCheck, Workload
from arbor.tools.errors import BenchError, FingerprintMismatch


def result(throughput: float, interactivity: float | None = 10.0, **workload: object) -> BenchResult:
    wl = Workload(model="m", **workload)
    return BenchResult(
        date="x", base_url="http://127.0.0.1:1", endpoint=wl.endpoint, model_id="m", workload=wl,
        fingerprint=wl.fingerprint(), num_prompts=wl.num_prompts, request_rate="inf",
        max_concurrency=wl.max_concurrency, duration=10.0, completed=wl.num_prompts, failed=0,
        total_input_tokens=1, total_output_tokens=1, request_throughput=1.0, output_throughput=throughput,
        total_token_throughput=throughput, max_output_tokens_per_s=throughput, max_concurrent_requests=1,
        output_throughput_per_gpu=throughput, interactivity=interactivity,
        input_len_check=LengthCheck(expected=1), output_len_check=LengthCheck(expected=1), lengths_ok=True,
        input_lens=[], output_lens=[], ttfts=[], errors=[])


@pytest.mark.parametrize(("field", "other"), [
    ("max_concurrency", 32), ("input_len", 256), ("output_len", 128), ("num_prompts", 10), ("seed", 7),
    ("endpoint", "chat"), ("model", "other"), ("ignore_eos", False), ("unique_prompts", False)])
def test_refuses_different_workloads(field: str, other: object) -> None:
    base = result(100.0)
    wl = base.workload.model_copy(update={field: other})
    cand = base.model_copy(update={"workload": wl, "fingerprint": wl.fingerprint()})
    with pytest.raises(FingerprintMismatch, match=field):
        compare([base], [cand])


def test_single_runs_give_a_point_estimate_without_interval() -> None:
    cmp = compare([result(100.0)], [result(120.0)])
    assert cmp.rel_change == pytest.approx(0.2)
    assert cmp.ci_low is None and cmp.ci_high is None


def test_repeats_give_an_interval_around_the_change() -> None:
    cmp = compare([result(100.0), result(102.0), result(98.0)], [result(120.0), result(123.0), result(117.0)])
    assert cmp.rel_change == pytest.approx(0.2)
    assert 0.1 < cmp.ci_low < 0.2 < cmp.ci_high < 0.3
    noisy = compare([result(100.0), result(140.0), result(60.0)], [result(110.0), result(150.0), result(70.0)])
    assert noisy.ci_low < 0 < noisy.ci_high, "a noisy small gain must not look settled"


def test_latency_metrics_are_lower_is_better_and_unknown_metric_fails() -> None:
    base = result(100.0).model_copy(update={"median_ttft_ms": 50.0})
    cand = result(100.0).model_copy(update={"median_ttft_ms": 40.0})
    cmp = compare([base], [cand], "median_ttft_ms")
    assert cmp.higher_is_better is False and cmp.rel_change == pytest.approx(-0.2)
    with pytest.raises(BenchError, match="not a number"):
        compare([base], [cand], "date")


def test_flawed_results_are_refused_unless_allowed() -> None:
    dropped = result(130.0).model_copy(update={"failed": 3})
    with pytest.raises(BenchError, match="candidate result 1 is not a clean measurement \\(3 failed"):
        compare([result(100.0)], [dropped])
    assert compare([result(100.0)], [dropped], allow_flawed=True).rel_change == pytest.approx(0.3)


def test_lengths_are_judged_against_the_baseline_for_the_same_prompts() -> None:
    # A model that ends on EOS before max_tokens (32) does so at the baseline and the candidate alike.
    ended = [32, 26, 30, 17, 32, 29, 32, 21]
    early = {"lengths_ok": False, "input_lens": [16] * 8, "output_lens": ended}
    base, cand = result(100.0).model_copy(update=early), result(120.0).model_copy(update=early)
    assert compare([base], [cand]).rel_change == pytest.approx(0.2)
    # A candidate whose outputs are 5% shorter for the same prompts measures another workload.
    short = cand.model_copy(update={"output_lens": [round(n * 0.95) for n in ended]})
    with pytest.raises(BenchError, match="candidate result 1 .* unlike the baseline's for the same prompts: output "
                                         "25.9 vs 27.4 tokens a request \\(-5.5% over 8 prompts\\)"):
        compare([base], [short])
    assert compare([base], [short], allow_flawed=True).rel_change == pytest.approx(0.2)


def test_pareto_frontier() -> None:
    points = pareto([result(50.0, 90.0, max_concurrency=1), result(120.0, 30.0, max_concurrency=8),
                     result(100.0, 20.0, max_concurrency=16), result(150.0, 10.0, max_concurrency=32)])
    assert [p.on_frontier for p in points] == [True, True, False, True]
