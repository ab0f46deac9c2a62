"""The engine's pure parts: proposals, constraints, refinements, scoring terms, Critic rules, store invariants."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from arbor.host import critic, policy
from arbor.host.models import Ablation, Action, DeadReason, Decision, FollowUp
from arbor.host.proposer import Proposer
from arbor.host.scoring import score, time_share, urgency
from arbor.host.spec import load_spec, parse_spec
from arbor.host.store import CampaignStore
from arbor.host.tree import SearchTree
from arbor.kb.models import Prior
from arbor.tools.bench.models import BenchResult

SPEC = load_spec(None)


def bench(result: dict) -> BenchResult:
    """A benchmark result with just the fields the Critic's checks read."""
    return BenchResult.model_construct(**result)


def constraint(store: CampaignStore, knob: str, op: str, value, requires=None):
    store.add_constraint(knob, op, value, "test", {}, None, requires)
    return store.constraints()


def test_proposals_cover_the_knob_space_once(tmp_path: Path) -> None:
    actions = policy.propose(SPEC, {}, set(), [])
    changes = [a.change for a in actions]
    expected = sum(len(k.values) for k in SPEC.knobs)
    assert len(changes) == expected
    assert {"parallel": 16} in changes and {"cont_batching": False} in changes
    # a quantized V cache comes with its prerequisite
    assert {"cache_type_v": "q8_0", "flash_attn": "on"} in changes
    evaluated = {policy.config_key({"parallel": 16})}
    assert {"parallel": 16} not in [a.change for a in policy.propose(SPEC, {}, evaluated, [])]
    current = policy.propose(SPEC, {"parallel": 16}, set(), [])
    assert {"parallel": 16} not in [a.change for a in current]


def test_constraints_prune_regions_unless_their_requirement_is_met(tmp_path: Path) -> None:
    store = CampaignStore(tmp_path)
    rules = constraint(store, "parallel", "ge", 24)
    changes = [a.change for a in policy.propose(SPEC, {}, set(), rules)]
    assert {"parallel": 16} in changes and {"parallel": 24} not in changes and {"parallel": 32} not in changes
    rules = constraint(store, "cache_type_k", "eq", "q4_0", {"flash_attn": "on"})
    assert policy.violates(rules, {"cache_type_k": "q4_0"}) is not None
    assert policy.violates(rules, {"cache_type_k": "q4_0", "flash_attn": "on"}) is None


def test_crash_regions() -> None:
    up = Action(title="x", category="config", change={"parallel": 32})
    assert policy.crash_region(SPEC, {"parallel": 8}, up) == ("parallel", "ge", 32)
    down = Action(title="x", category="config", change={"parallel": 2})
    assert policy.crash_region(SPEC, {"parallel": 8}, down) == ("parallel", "le", 2)
    assert policy.crash_region(SPEC, {}, up) == ("parallel", "eq", 32), "from an unknown default, only the value"
    choice = Action(title="x", category="config", change={"flash_attn": "on"})
    assert policy.crash_region(SPEC, {}, choice) == ("flash_attn", "eq", "on")
    # a combination re-applied where the baseline already has part of it: only what really moved counts
    combo = Action(title="x", category="config", change={"flash_attn": "on", "parallel": 32})
    assert policy.crash_region(SPEC, {"flash_attn": "on", "parallel": 8}, combo) == ("parallel", "ge", 32)
    assert policy.crash_region(SPEC, {"flash_attn": "on", "parallel": 32}, combo) is None, "nothing moved"
    assert policy.crash_region(SPEC, {}, combo) is None, "two knobs moved: which one (or both) is not known"
    needs = Action(title="x", category="config", change={"cache_type_v": "q8_0", "flash_attn": "on"})
    assert policy.crash_region(SPEC, {}, needs) == ("cache_type_v", "eq", "q8_0"), "with its prerequisite"


def test_refinements_after_a_regression() -> None:
    regressed = Action(title="x", category="config", layer="scheduler", change={"parallel": 32})
    refined = policy.refine_after_regression(SPEC, {"parallel": 8}, regressed, set(), [])
    changes = [a.change for a in refined]
    assert {"parallel": 20} in changes, "half step"
    assert {"parallel": 2} in changes, "other direction (the nearest value below in the domain)"
    assert all(a.proposer == "introspection" for a in refined)
    needs = Action(title="x", category="config", change={"cache_type_v": "q8_0"})
    assert {"cache_type_v": "q8_0", "flash_attn": "on"} in [
        a.change for a in policy.refine_after_regression(SPEC, {}, needs, set(), [])]


def test_score_terms() -> None:
    prior = Prior(speedup=0.2, p_crash=0.1, p_regress=0.5, multiplier=1.25, level="exact", n=3)
    terms = score(prior, share=0.8, urgency_value=1.5, cost_s=60, unit_cost_s=30, exploration=0.02, n_total=4,
                  n_category=1)
    assert terms.gain == pytest.approx(0.8 * 0.2 * 1.25)
    assert terms.cost == pytest.approx(2.0)
    assert terms.exploit == pytest.approx(1.5 * 0.2 * 0.9 * 0.5 / 2.0)
    assert terms.explore == pytest.approx(0.02 * (__import__("math").log(5) / 2) ** 0.5)
    assert terms.score == pytest.approx(terms.exploit + terms.explore)
    assert terms.bound == pytest.approx(terms.gain) and terms.relative == 1.0
    # On a branch measured 10% below the best, the same move must first make up the gap.
    behind = score(prior, share=0.8, urgency_value=1.0, cost_s=30, unit_cost_s=30, exploration=0.0, n_total=4,
                   n_category=0, relative=0.9, speedup_high=0.5)
    assert behind.exploit == pytest.approx((0.9 * (1 + 0.2) - 1) * 0.9 * 0.5)
    assert behind.bound == pytest.approx(0.9 * (1 + 0.8 * 0.5 * 1.25) - 1)
    # A branch that was not kept is never assumed better than the best, however its repeats read.
    ahead = score(prior, share=0.8, urgency_value=1.0, cost_s=30, unit_cost_s=30, exploration=0.0, n_total=4,
                  n_category=0, relative=1.1)
    assert ahead.relative == 1.0
    assert ahead.exploit == pytest.approx(ahead.gain * (1 - ahead.p_crash) * (1 - ahead.p_regress))
    assert urgency(100, 160, 2.0) == pytest.approx(1 + 60 / 160) and urgency(200, 160, 2.0) == 1.0
    assert time_share("attention", {"attention": 0.3, "gemm": 0.6}) == 0.3
    # A whole-step layer gets an average category's share: below the bottleneck, above a sliver.
    assert time_share("scheduler", {"attention": 0.2, "gemm": 0.7, "host_idle": 0.1, "memcpy": 0.0}) == \
        pytest.approx(1 / 3)
    assert time_share("scheduler", None) == 1.0
    assert time_share("graph", {"host_idle": 0.1, "norm_elementwise": 0.05, "gemm": 0.85}) == pytest.approx(0.15)
    # OpenMP threads spinning at a barrier are the lever of the openmp knobs, not idle time.
    assert time_share("openmp", {"omp_spin": 0.89, "gemm": 0.11}) == pytest.approx(0.89)


def test_critic_rules() -> None:
    # Out of repeats: above zero with the estimate over the bar is a keep; either alone is not.
    assert critic.keep_out_of_repeats(0.003, 0.027, 0.02)
    assert not critic.keep_out_of_repeats(-0.001, 0.027, 0.02) and not critic.keep_out_of_repeats(0.001, 0.017, 0.02)
    assert not critic.keep_out_of_repeats(None, 0.05, 0.02)
    result = {"fingerprint": {"input_len": 128}, "max_concurrent_requests": 16, "lengths_ok": True, "completed": 32,
              "failed": 0, "input_len_check": {}, "output_len_check": {}}
    assert critic.check_result(SPEC, bench(result), {"input_len": 128}, "p").stable
    drifted = critic.check_result(SPEC, bench(result | {"fingerprint": {"input_len": 64}}), {"input_len": 128}, "p")
    assert not drifted.stable and drifted.retest and drifted.findings[0].kind == "fingerprint_mismatch"
    few = critic.check_result(SPEC, bench(result | {"max_concurrent_requests": 3}), None, "p")
    assert few.retest and few.findings[0].kind == "concurrency_drift"
    noisy = critic.check_repeats(SPEC, [100.0, 130.0], 0.1, 0.05, False)
    assert noisy.more_repeats and noisy.findings[0].kind == "noisy"
    too_good = critic.check_repeats(SPEC, [100.0, 101.0], 0.9, 0.05, False)
    assert too_good.confirm and not critic.check_repeats(SPEC, [100.0, 101.0], 0.9, 0.05, True).confirm


def test_store_is_append_only_and_resumable(tmp_path: Path) -> None:
    store = CampaignStore(tmp_path)
    node = store.add_node(parent=None, depth=0, status="running", title="t", category="config", kind="config",
                          change={"a": 1}, config={"a": 1}, proposer="engine")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store.conn.execute("UPDATE events SET kind = 'x'")
    store.close()
    again = CampaignStore(tmp_path)
    assert again.node(node.id).change == {"a": 1}
    with pytest.raises(sqlite3.IntegrityError):
        again.add_node(parent=None, depth=0, status="dreaming", title="t", category="c", kind="config", change={},
                       config={}, proposer="engine")


def test_disk_and_leftover_checks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil
    from collections import namedtuple

    assert critic.check_disk(tmp_path) is None
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage(10 << 30, (10 << 30) - (100 << 20), 100 << 20))
    finding = critic.check_disk(tmp_path)
    assert finding.kind == "disk_full" and finding.needs_human and "100 MiB free" in finding.message
    assert critic.check_leftovers([]) is None and critic.check_leftovers([42]).evidence == {"pids": [42]}


def test_unsettled_gains_are_combined(tmp_path: Path) -> None:
    def act(change: dict) -> Action:
        return Action(title=policy.describe(change, {}), category="config", layer="scheduler", kind="config",
                      change=change, rationale="t")

    misses = [(act({"parallel": 8}), 0.012), (act({"poll": 0}), 0.021), (act({"parallel": 16}), 0.005),
              (act({"threads": 1}), -0.03)]
    action, estimate = policy.combine_near_misses(SPEC, {}, misses, set(), [])
    assert action.change == {"poll": 0, "parallel": 8}, "positive gains only, the larger value of a knob wins"
    assert action.title.startswith("together: poll") and action.proposer == "introspection"
    assert estimate == pytest.approx(0.033) and "+2.1%" in action.rationale
    assert policy.combine_near_misses(SPEC, {}, misses[:1] + misses[3:], set(), []) is None, "one alone is no combo"
    done = {policy.config_key({"poll": 0, "parallel": 8})}
    assert policy.combine_near_misses(SPEC, {}, misses, done, []) is None, "never measured twice"
    store = CampaignStore(tmp_path)
    assert policy.combine_near_misses(SPEC, {}, misses, set(), constraint(store, "poll", "eq", 0)) is None



def test_moves_not_shown_to_regress_are_paired_once_singles_are_spent(tmp_path: Path) -> None:
    def act(change: dict) -> Action:
        return Action(title=policy.describe(change, {}), category="config", layer="scheduler", kind="config",
                      change=change, rationale="t")

    unsettled = [(act({"poll": 0}), 0.01, 0.04), (act({"parallel": 8}), 0.02, 0.05),
                 (act({"parallel": 16}), 0.0, 0.03), (act({"threads": 1}), 0.03, 0.06)]
    pairs = policy.pair_moves({"threads": 1}, unsettled, set(), [])
    # threads=1 is already applied, and two values of one knob never go together
    assert [a.change for a, _ in pairs] == [{"poll": 0, "parallel": 8}, {"poll": 0, "parallel": 16}]
    action, estimate = pairs[0]
    assert action.proposer == "introspection" and action.title.startswith("pair: poll")
    assert estimate == pytest.approx((0.01 + 0.04 + 0.02 + 0.05) / 2), "halfway between measured and optimistic"
    done = {policy.config_key({"threads": 1, "poll": 0, "parallel": 8})}
    assert [a.change for a, _ in policy.pair_moves({"threads": 1}, unsettled, done, [])] == [
        {"poll": 0, "parallel": 16}], "a pair measured before is not proposed again"
    store = CampaignStore(tmp_path)
    ruled = policy.pair_moves({}, unsettled, set(), constraint(store, "poll", "eq", 0))
    assert ruled and all("poll" not in a.change for a, _ in ruled)
    assert policy.pair_moves({}, unsettled[:1], set(), []) == [], "one move alone is no pair"


def test_a_move_that_broke_accuracy_waits_for_its_layer_to_change(tmp_path: Path) -> None:
    spec = parse_spec('name = "x"\n[target]\nstack = "sim"\nmodel = "moe_decode"\n', "t")
    store = CampaignStore(tmp_path)
    c = SearchTree(store, spec)

    def node(parent, status, change, config, layer, gain=None, high=None):
        return store.add_node(parent=parent, depth=1, status=status, title=policy.describe(change, {}),
                              category="config", layer=layer, kind="config", change=change, config=config,
                              proposer="offline", gain=gain, gain_high=high)

    root = store.add_node(parent=None, depth=0, status="kept", title="baseline", category="config",
                          kind="baseline", change={}, config={}, proposer="engine")
    fp8 = node(root.id, "reverted", {"kv_cache_dtype": "fp8"}, {"kv_cache_dtype": "fp8"}, "attention")
    store.add_measurement(fp8.id, "parity", {"agreement_rate": 0.0, "passed": False})
    flash = node(root.id, "reverted", {"attention_backend": "flash"}, {"attention_backend": "flash"}, "attention",
                 0.01, 0.04)
    node(root.id, "reverted", {"moe_backend": "ck"}, {"moe_backend": "ck"}, "moe", -0.1, -0.03)
    node(root.id, "reverted", {"expert_parallel": True}, {"expert_parallel": True}, "parallelism", -0.01, 0.01)
    assert c.broke_accuracy(fp8) and not c.broke_accuracy(flash)
    assert policy.config_key({"kv_cache_dtype": "fp8"}) in c.dead_moves(root)
    assert [a.change for a, _, _ in c.open_moves(root)] == [{"attention_backend": "flash"},
                                                            {"expert_parallel": True}], "not the regression"
    # Another layer changed: FP8 stays out. Its own layer changed: it may be tried again, and the
    # unsettled attention move, measured against the old attention kernel, means nothing any more.
    sampler = node(root.id, "kept", {"sampler": "flashinfer"}, {"sampler": "flashinfer"}, "sampling", 0.05, 0.08)
    assert policy.config_key({"kv_cache_dtype": "fp8"}) in c.dead_moves(sampler)
    aiter = node(sampler.id, "kept", {"attention_backend": "rocm_aiter"},
                 {"sampler": "flashinfer", "attention_backend": "rocm_aiter"}, "attention", 0.07, 0.1)
    assert policy.config_key({"kv_cache_dtype": "fp8"}) not in c.dead_moves(aiter)
    assert [a.change for a, _, _ in c.open_moves(aiter)] == [{"expert_parallel": True}]
    assert len(c.open_moves(sampler)) == 2


def test_a_keep_is_judged_by_its_fresh_repeats_and_old_stores_migrate(tmp_path: Path) -> None:
    from arbor.tools.migrations import connect, load

    conn = connect(tmp_path / "campaign.sqlite", load("arbor.host"), "campaign", upto=2)
    conn.execute("INSERT INTO nodes (parent, depth, status, title, category, kind, change, config, proposer, "
                 "created_at) VALUES (NULL, 0, 'kept', 'b', 'config', 'baseline', '{}', '{}', 'engine', 0)")
    conn.execute("INSERT INTO measurements (node, kind, metrics, created_at) VALUES (1, 'primary', ?, 0)",
                 ['{"output_throughput": 100}'])
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO measurements (node, kind, metrics, created_at) VALUES (1, 'reference', '{}', 0)")
    conn.commit()
    conn.close()
    store = CampaignStore(tmp_path)
    assert [m.metrics for m in store.reference(1)] == [{"output_throughput": 100}], "primary until remeasured"
    store.add_measurement(1, "reference", {"output_throughput": 90})
    store.add_measurement(1, "reference", {"output_throughput": 92})
    assert [m.throughput for m in store.reference(1)] == [90, 92]
    assert [m.kind for m in store.measurements(1)] == ["primary", "reference", "reference"]
    store.add_measurement(1, "reference", {"output_throughput": 95})  # a refresh when it was restored
    assert [m.throughput for m in store.reference(1, window=2)] == [92, 95], "the reference rolls"


def test_a_value_that_crashed_only_in_context_is_retried_not_ruled_out(tmp_path: Path) -> None:
    spec = parse_spec('name = "x"\n[target]\nstack = "sim"\nmodel = "layered"\n', "t")
    store = CampaignStore(tmp_path)
    c = SearchTree(store, spec)
    proposer = Proposer(c, Ablation())

    def crashed_in_context(node, knob, suspects):
        return proposer.follow_ups(node, Decision(outcome="crashed", diagnosis="segfault", crashed_knob=knob,
                                                  follow_up=FollowUp.IN_CONTEXT, suspects=suspects))

    def node(parent, status, change, config, gain=None, layer="graph"):
        return store.add_node(parent=parent, depth=1, status=status, title=policy.describe(change, {}),
                              category="config", layer=layer, kind="config", change=change, config=config,
                              proposer="offline", gain=gain, priors={"speedup": 0.05})

    root = store.add_node(parent=None, depth=0, status="kept", title="baseline", category="config",
                          kind="baseline", change={}, config={}, proposer="engine")
    node(root.id, "reverted", {"cuda_graphs": True}, {"cuda_graphs": True}, -0.015)
    gemm = node(root.id, "kept", {"gemm_tuning": "aggressive"}, {"gemm_tuning": "aggressive"}, 0.5, "gemm")
    seqs = node(gemm.id, "kept", {"max_num_seqs": 256}, {"gemm_tuning": "aggressive", "max_num_seqs": 256}, 0.03,
                "scheduler")
    store.set_meta("best_node", seqs.id)
    crashed = node(seqs.id, "crashed", {"cuda_graphs": True},
                   {"gemm_tuning": "aggressive", "max_num_seqs": 256, "cuda_graphs": True})
    # Graphs ran at the default batch and GEMM tuning: what changed since is to blame, not graphs.
    assert c.crash_context(crashed, "cuda_graphs") == {"gemm_tuning": None, "max_num_seqs": None}
    assert c.crash_context(crashed, "max_num_seqs") == {"cuda_graphs": None}, "256 ran, without graphs"
    never = crashed.model_copy(update={"config": {"max_num_seqs": 32}})
    assert c.crash_context(never, "max_num_seqs") == {}, "32 never ran: nothing else to blame"
    assert policy.step_back(spec, "max_num_seqs", 256, None) == 128, "one listed value back toward the default"
    assert policy.step_back(spec, "max_num_seqs", 128, None) is None, "the default itself is left out"
    assert policy.step_back(spec, "gemm_tuning", "aggressive", None) is None
    assert policy.same_value(spec, {}, {"max_num_seqs": 64}, "max_num_seqs"), "a stated default is the default"
    before = store.conn.total_changes
    # stepping GEMM tuning back would cost more than graphs can win
    (retry,) = crashed_in_context(crashed, "cuda_graphs", c.crash_context(crashed, "cuda_graphs"))
    assert store.conn.total_changes == before, "the proposer writes nothing"
    assert retry.parent == crashed.id
    assert retry.action.change == {"cuda_graphs": True, "max_num_seqs": 128} and retry.action.proposer == "critic"
    assert retry.priors["proposer_estimate"] == pytest.approx(0.05 - 0.03 / 2), "half the keep it partly undoes"
    # Graphs stay out while 256 sequences and aggressive tuning stay; a new batch size lets them back in.
    assert c.dead_moves(seqs)[policy.config_key({"cuda_graphs": True})] == DeadReason.CRASHED_HERE
    # A value that lost clearly where it ran is not retried with a partner stepped back.
    node(root.id, "reverted", {"max_num_seqs": 32}, {"max_num_seqs": 32}, -0.13, "scheduler")
    crashed32 = node(seqs.id, "crashed", {"max_num_seqs": 32}, {"gemm_tuning": "aggressive", "max_num_seqs": 32})
    assert crashed_in_context(crashed32, "max_num_seqs", {"kv_cache_dtype": "fp8"}) == [], "even a free step back"
    attention = node(seqs.id, "kept", {"attention_backend": "flash"},
                     {"gemm_tuning": "aggressive", "max_num_seqs": 256, "attention_backend": "flash"}, 0.1,
                     "attention")
    assert policy.config_key({"cuda_graphs": True}) in c.dead_moves(attention), "not a suspect"
    smaller = node(attention.id, "kept", {"max_num_seqs": 128},
                   {"gemm_tuning": "aggressive", "max_num_seqs": 128, "attention_backend": "flash"}, 0.02,
                   "scheduler")
    assert policy.config_key({"cuda_graphs": True}) not in c.dead_moves(smaller)


def test_a_move_measured_before_is_judged_by_that_measurement(tmp_path: Path) -> None:
    spec = parse_spec('name = "x"\n[target]\nstack = "sim"\nmodel = "moe_decode"\n', "t")
    store = CampaignStore(tmp_path)
    c = SearchTree(store, spec)

    def node(status, change, layer, gain=None, high=None, share=1.0):
        return store.add_node(parent=root.id, depth=1, status=status, title=policy.describe(change, {}),
                              category="config", layer=layer, kind="config", change=change, config=change,
                              proposer="offline", gain=gain, gain_high=high, score_terms={"time_share": share},
                              finished_at=1.0)

    root = store.add_node(parent=None, depth=0, status="kept", title="baseline", category="config",
                          kind="baseline", change={}, config={}, proposer="engine")
    store.add_measurement(root.id, "profile", {"categories": {"moe": 0.6, "attention": 0.2, "sampling": 0.05}})
    store.set_meta("best_node", root.id)
    node("reverted", {"sampler": "flashinfer"}, "sampling", 0.01, 0.015, 0.05)
    flash = node("reverted", {"attention_backend": "flash"}, "attention", 0.02, 0.05, 0.2)
    # An interval below the keep bar can never be kept alone: not proposed alone again until its target grows.
    dead = c.dead_moves(root)
    assert dead.get(policy.config_key({"sampler": "flashinfer"})) == DeadReason.REGRESSED
    assert policy.config_key({"attention_backend": "flash"}) not in dead, "unsettled, may clear the bar"
    # A whole-step move targets no category whose share could grow: the average category's share rising
    # (here from ten sampled categories then to three now) does not bring it back alone.
    node("reverted", {"max_tokens_per_step": 4}, "decoding", -0.04, -0.01, 0.1)
    assert time_share("decoding", c.latest_profile(root)) >= 1.5 * 0.1
    assert c.dead_moves(root).get(policy.config_key({"max_tokens_per_step": 4})) == DeadReason.REGRESSED
    again = node("proposed", {"attention_backend": "flash"}, "attention")
    assert c.measured_speedup(again) == pytest.approx(0.02 / 0.2), "its gain over the share it acted on then"
    assert c.measured_speedup(flash) is None, "a node is no evidence about itself"
    assert c.measured_speedup(node("proposed", {"moe_backend": "aiter"}, "moe")) is None, "never measured"
    # Going back to what a keep moved away from: that keep, reversed.
    aiter = store.add_node(parent=root.id, depth=1, status="kept", title="a", category="kernel", layer="moe",
                           kind="config", change={"moe_backend": "aiter"}, config={"moe_backend": "aiter"},
                           proposer="offline", gain=0.25, score_terms={"time_share": 0.5})
    ck = store.add_node(parent=aiter.id, depth=2, status="kept", title="c", category="kernel", layer="moe",
                        kind="config", change={"moe_backend": "ck"}, config={"moe_backend": "ck"},
                        proposer="offline", gain=0.1, score_terms={"time_share": 0.4})
    store.set_meta("best_node", ck.id)
    back = node("proposed", {"moe_backend": "aiter"}, "moe")
    assert c.measured_speedup(back) == pytest.approx(-0.1 / 1.1 / 0.4), "the last keep of the knob, undone"
    assert c.measured_speedup(node("proposed", {"moe_backend": "triton"}, "moe")) is None, "older values: unknown"


def test_moves_noise_may_have_sunk_are_retested_once(tmp_path: Path) -> None:
    spec = parse_spec('name = "x"\n[target]\nstack = "sim"\nmodel = "moe_decode"\n', "t")
    store = CampaignStore(tmp_path)
    c = SearchTree(store, spec)

    def node(parent, change, gain, high, priors=None):
        return store.add_node(parent=parent, depth=1, status="reverted", title=policy.describe(change, {}),
                              category="config", layer="sampling", kind="config", change=change, config=change,
                              proposer="offline", gain=gain, gain_high=high, priors=priors or {})

    root = store.add_node(parent=None, depth=0, status="kept", title="baseline", category="config",
                          kind="baseline", change={}, config={}, proposer="engine")
    other = store.add_node(parent=root.id, depth=1, status="kept", title="k", category="config", kind="config",
                           change={"moe_backend": "aiter"}, config={"moe_backend": "aiter"}, proposer="offline")
    sunk = node(root.id, {"sampler": "flashinfer"}, -0.016, 0.007)
    node(root.id, {"moe_backend": "ck"}, -0.08, -0.05)
    node(other.id, {"moe_backend": "aiter", "sampler": "flashinfer"}, 0.01, 0.03)
    assert [n.id for n in c.retestable(root)] == [sunk.id], "not a regression beyond doubt, not from elsewhere"
    node(root.id, sunk.change, 0.02, 0.04, {"retest_of": sunk.id})
    assert c.retestable(root) == [], "once: neither the move nor its retest again"


def test_the_proposer_reads_the_tree_and_writes_nothing(tmp_path: Path) -> None:
    spec = parse_spec('name = "x"\n[target]\nstack = "sim"\nmodel = "moe_decode"\n', "t")
    store = CampaignStore(tmp_path)
    tree = SearchTree(store, spec)
    proposer = Proposer(tree, Ablation())
    root = store.add_node(parent=None, depth=0, status="kept", title="baseline", category="config",
                          kind="baseline", change={}, config={}, proposer="engine")
    store.set_meta("best_node", root.id)
    store.set_meta("root_node", root.id)
    store.set_meta("evaluated_configs", [policy.config_key({})])
    unsettled = store.add_node(parent=root.id, depth=1, status="reverted", title="s", category="config",
                               layer="sampling", kind="config", change={"sampler": "flashinfer"},
                               config={"sampler": "flashinfer"}, proposer="offline", gain=0.01, gain_high=0.04)
    store.add_node(parent=root.id, depth=1, status="reverted", title="a", category="config", layer="attention",
                   kind="config", change={"attention_backend": "flash"}, config={"attention_backend": "flash"},
                   proposer="offline", gain=0.015, gain_high=0.05)
    stale = store.add_node(parent=root.id, depth=1, status="proposed", title="again", category="config",
                           layer="sampling", kind="config", change={"sampler": "flashinfer"}, config={},
                           proposer="offline")
    store.set_meta("evaluated_configs", [policy.config_key(c) for c in ({}, {"sampler": "flashinfer"},
                                                                        {"attention_backend": "flash"})])
    before = store.conn.total_changes
    dead = tree.dead_moves(root)
    moves = proposer.moves(root, dead)
    pairs = proposer.pairs(root, dead)
    retests = proposer.retests(root, dead)
    screen = proposer.screen(root, dead)
    refined = proposer.follow_ups(unsettled, Decision(outcome="reverted", diagnosis="unsettled", gain=0.01,
                                                      follow_up=FollowUp.REFINE))
    assert store.conn.total_changes == before, "nothing written"
    assert moves and all(m.parent == root.id and m.action.proposer == "offline" for m in moves)
    assert [c.action.change for c in pairs.candidates] == [{"attention_backend": "flash", "sampler": "flashinfer"}]
    assert sorted(c.priors["retest_of"] for c in retests.candidates) == sorted(
        n.id for n in store.nodes("reverted")), "each move not shown to regress, once"
    assert screen.prune == [(stale.id, "already measured, or ruled out by a constraint")] and not screen.keep
    assert [c.action.change for c in refined] == [{"attention_backend": "flash", "sampler": "flashinfer"}], \
        "the unsettled gains together (a choice knob has no half step)"
    assert all(c.parent == unsettled.id for c in refined)
