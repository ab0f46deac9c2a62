"""Priors back off and move with evidence; warm starts differ; retrieval finds the labelled entries."""

from __future__ import annotations

from pathlib import Path

import pytest

from arbor.kb.distill import distill
from arbor.kb.models import Change, Context, EntryIn
from arbor.kb.priors import GLOBAL, priors
from arbor.kb.records import record_outcome, upsert_entry
from arbor.kb.retrieve import retrieve
from arbor.kb.store import open_store
from tests.kb.test_store import CTX, outcome

PARALLEL = Change(category="config", knob="parallel", value=16)


@pytest.fixture
def db(tmp_path: Path):
    return open_store(tmp_path / "kb.sqlite", seed=False)


def test_empty_kb_answers_with_the_global_default(db) -> None:
    prior = priors(db, CTX, PARALLEL)
    assert (prior.level, prior.n, prior.multiplier) == ("global", 0, 1.0)
    assert (prior.speedup, prior.p_crash, prior.p_regress) == (GLOBAL["speedup"], GLOBAL["p_crash"],
                                                               GLOBAL["p_regress"])


def test_back_off_from_exact_to_category(db) -> None:
    elsewhere = Context(stack="vllm", hardware="MI300X")
    record_outcome(db, outcome(context=elsewhere, knob="max_num_seqs", value=256, gain=0.3))
    assert priors(db, CTX, PARALLEL).level == "category"
    record_outcome(db, outcome(knob="threads", value=2, gain=0.1))
    same_hw = priors(db, CTX, PARALLEL)
    assert same_hw.level == "category_hardware" and same_hw.n == 1
    record_outcome(db, outcome(gain=0.5))
    exact = priors(db, CTX, PARALLEL)
    assert exact.level == "exact" and exact.n == 1
    assert exact.speedup > same_hw.speedup, "a measured +50% at the exact change pulls the prior up"


def test_priors_move_with_outcomes_and_one_crash_is_not_certainty(db) -> None:
    crashy = Change(category="config", knob="parallel", value=64)
    before = priors(db, CTX, crashy)
    record_outcome(db, outcome(result="crashed", value=64, gain=None, diagnosis="oom"))
    after_one = priors(db, CTX, crashy)
    assert before.p_crash < after_one.p_crash < 0.6
    for _ in range(5):
        record_outcome(db, outcome(result="crashed", value=64, gain=None))
    assert priors(db, CTX, crashy).p_crash > 0.75
    record_outcome(db, outcome(result="invalid", value=128, gain=None))
    assert priors(db, CTX, Change(category="config", knob="parallel", value=128)).level != "exact", \
        "invalid measurements say nothing about the change"


def test_warm_start_and_failure_modes_lower_the_score(tmp_path: Path) -> None:
    fresh = open_store(tmp_path / "fresh.sqlite", seed=False)
    warm = open_store(tmp_path / "warm.sqlite", seed=False)
    crashy = Change(category="config", knob="parallel", value=64)
    # first campaign on this target: 16 helped, 64 crashed
    record_outcome(warm, outcome(value=16, gain=0.4, gain_low=0.3, gain_high=0.5))
    record_outcome(warm, outcome(result="crashed", value=64, gain=None, diagnosis="out of memory"))
    entries = distill(warm, "c1")
    assert {e.kind for e in entries} == {"technique", "failure_mode", "campaign_summary"}
    cold_good, warm_good = priors(fresh, CTX, PARALLEL), priors(warm, CTX, PARALLEL)
    cold_bad, warm_bad = priors(fresh, CTX, crashy), priors(warm, CTX, crashy)
    assert warm_good.expected_gain(0.8) > cold_good.expected_gain(0.8)
    assert warm_bad.multiplier < 1.0 and warm_bad.p_crash > cold_bad.p_crash
    assert warm_bad.expected_gain(0.8) < cold_bad.expected_gain(0.8), "a known failure scores lower, unmeasured"
    failure = next(e for e in entries if e.kind == "failure_mode")
    assert failure.constraint_text and "parallel=64" in failure.constraint_text
    assert "out of memory" in failure.body


def test_stale_entries_count_half_and_are_flagged(db) -> None:
    old = upsert_entry(db, EntryIn(kind="failure_mode", title="fp8 kv crashes", body="crashed on old ROCm",
                                   stack="vllm", hardware="MI300X", knob="kv_cache_dtype", value="fp8",
                                   driver_version="6.2", source="c0", outcome_ids=["x"]))
    ctx = Context(stack="vllm", hardware="MI300X", driver_version="7.0")
    change = Change(category="config", knob="kv_cache_dtype", value="fp8")
    prior = priors(db, ctx, change)
    assert prior.stale_entries == [old.id] and prior.multiplier == pytest.approx(0.6)
    same_version = priors(db, ctx.model_copy(update={"driver_version": "6.2"}), change)
    assert same_version.multiplier == pytest.approx(0.2) and same_version.stale_entries == []
    (hit,) = retrieve(db, "fp8 crashes", ctx)
    assert hit.stale and any("driver 6.2, now 7.0" in r for r in hit.reasons)
    from arbor.kb.staleness import retest_candidates

    assert [(i, r) for i, _, r in retest_candidates(db, ctx)] == [
        (old.id, "learned on driver 6.2, now 7.0: re-test before trusting")]
    assert retest_candidates(db, ctx.model_copy(update={"driver_version": "6.2"})) == []


@pytest.mark.parametrize(("query", "stack", "expected"), [
    ("requests preempted not enough KV cache space", "vllm", "vLLM: frequent preemption means too little KV cache"),
    ("quantized V cache fails without flash attention", "llamacpp",
     "llama.cpp: quantized V cache needs flash attention"),
    ("token usage low requests waiting in queue", "sglang",
     "SGLang: lower schedule conservativeness when token usage stays low"),
    ("time to first token grows with concurrency, requests wait for a slot", "llamacpp",
     "llama-server: more slots when requests queue"),
    ("inter-token latency versus time to first token prefill budget", "vllm",
     "vLLM chunked prefill: the token budget trades ITL against TTFT"),
    ("out of memory at start static memory fraction", "sglang",
     "SGLang: out of memory from too large a static memory fraction"),
])
def test_retrieval_on_a_labelled_set(tmp_path: Path, query: str, stack: str, expected: str) -> None:
    db = open_store(tmp_path / "kb.sqlite")  # the shipped seeds
    hits = retrieve(db, query, Context(stack=stack, hardware="any"))
    assert hits[0].entry.title == expected, [h.entry.title for h in hits[:3]]
    assert any(r.startswith("text match") for r in hits[0].reasons)


def test_structured_retrieval_without_text(db) -> None:
    upsert_entry(db, EntryIn(kind="technique", title="A on X", body="bbb", stack="vllm", hardware="X", knob="a",
                             source="s"))
    upsert_entry(db, EntryIn(kind="technique", title="A on Y", body="bbb", stack="vllm", hardware="Y", knob="a",
                             source="s"))
    hits = retrieve(db, None, Context(stack="vllm", hardware="X"), knob="a")
    assert [h.entry.title for h in hits] == ["A on X", "A on Y"]
    assert "same hardware (X)" in hits[0].reasons and "same hardware (X)" not in hits[1].reasons


def test_the_parent_level_lends_its_other_outcomes(db) -> None:
    # Category-on-this-hardware answers; the category elsewhere (other outcomes) is what it leans on.
    elsewhere = Context(stack="vllm", hardware="MI300X")
    for _ in range(6):
        record_outcome(db, outcome(context=elsewhere, knob="max_num_seqs", value=256, result="crashed", gain=None))
    record_outcome(db, outcome(knob="threads", value=2, gain=0.1))
    prior = priors(db, CTX, PARALLEL)
    assert prior.level == "category_hardware" and prior.n == 1
    # parent p_crash = (6 + 2*0.1) / (6 + 2) = 0.775; this level: (0 + 2*0.775) / (1 + 2)
    assert prior.p_crash == pytest.approx(2 * 0.775 / 3)


def test_a_knob_set_back_to_its_default_distils(db) -> None:
    # A retry that steps a knob back to the server's default records value None beside set values.
    record_outcome(db, outcome(value=16, gain=0.1))
    record_outcome(db, outcome(result="reverted", value=None, gain=-0.05))
    best = next(e for e in distill(db, "c1") if e.kind == "parameter")
    assert best.value == "16" and "Values tried: 16, None" in best.body  # entries keep values as JSON
