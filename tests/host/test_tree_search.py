"""The tree searched, not logged: values and visits per configuration, branches by UCB, candidates that stay on
their branch, follow-ups from the configuration they extend, and crash constraints scoped to where they crashed."""

from __future__ import annotations

from pathlib import Path

import pytest

from arbor.host import policy
from arbor.host.gate import Gate, Trial
from arbor.host.models import Ablation, Decision, FollowUp, Status
from arbor.host.proposer import Proposer
from arbor.host.report import build_report, render_markdown
from arbor.host.scorer import Scorer
from arbor.host.spec import parse_spec
from arbor.host.store import CampaignStore
from arbor.host.tree import SearchTree
from arbor.kb.models import Prior
from arbor.tools.serving.failures import Failure

pytestmark = pytest.mark.anyio
SPEC = parse_spec('name = "x"\n[target]\nstack = "sim"\nmodel = "layered"\n', "t")


class Tree:
    """A store with a measured root and helpers to add measured nodes."""

    def __init__(self, path: Path) -> None:
        self.store = CampaignStore(path)
        self.tree = SearchTree(self.store, SPEC)
        self.root = self.node(None, Status.KEPT, {}, {}, rate=100.0, kind="baseline")
        self.store.set_meta("root_node", self.root.id)
        self.store.set_meta("best_node", self.root.id)
        self.store.add_measurement(self.root.id, "profile", {"categories": {"gemm": 0.6, "attention": 0.2,
                                                                            "host_idle": 0.2}})

    def node(self, parent, status, change, config, rate=None, gain=None, kind="config", priors=None, layer="gemm"):
        n = self.store.add_node(parent=parent, depth=0 if parent is None else 1, status=status,
                                title=str(change), category="kernel", layer=layer, kind=kind, change=change,
                                config=config, proposer="engine" if kind == "baseline" else "offline",
                                gain=gain, gain_high=None if gain is None else gain + 0.02,
                                score_terms={"time_share": 0.6}, priors=priors or {}, finished_at=1.0)
        if rate is not None:
            self.store.add_measurement(n.id, "primary", {"output_throughput": rate})
        return n


def test_values_visits_and_branches(tmp_path: Path) -> None:
    t = Tree(tmp_path)
    a = t.node(t.root.id, Status.KEPT, {"gemm_tuning": "tuned"}, {"gemm_tuning": "tuned"}, 130.0, 0.3)
    b = t.node(t.root.id, Status.REVERTED, {"attention_backend": "flash"}, {"attention_backend": "flash"}, 110.0, 0.1)
    t.node(t.root.id, Status.REVERTED, {"kv_cache_dtype": "fp8"}, {"kv_cache_dtype": "fp8"}, None, None)  # gate
    t.store.set_meta("best_node", a.id)
    assert t.tree.value(a) == pytest.approx(1.3) and t.tree.value(b) == pytest.approx(1.1)
    assert t.tree.value(t.tree.nodes()[3]) is None, "a failed gate is nothing to build on"
    assert t.tree.visits(t.root) == 3 and t.tree.visits(a) == 0
    # Without exploration the branch measured highest comes first; the best itself is never a branch.
    assert [n.id for n in t.tree.branches(5, 0.0)] == [b.id, t.root.id]
    # Exploration favours the configuration expanded least: b (0 visits) over the root (3).
    assert t.tree.branches(1, 10.0)[0].id == b.id


def test_the_path_of_a_best_found_on_another_branch_holds_its_reverted_base(tmp_path: Path) -> None:
    t = Tree(tmp_path)
    a = t.node(t.root.id, Status.KEPT, {"gemm_tuning": "tuned"}, {"gemm_tuning": "tuned"}, 130.0, 0.3)
    b = t.node(t.root.id, Status.REVERTED, {"attention_backend": "flash"}, {"attention_backend": "flash"}, 110.0,
               0.1)
    both = {"attention_backend": "flash", "kv_cache_dtype": "fp8"}
    c = t.node(b.id, Status.KEPT, {"kv_cache_dtype": "fp8"}, both, 140.0, 0.08, priors={"branch": True,
                                                                                          "base": b.id})
    assert [n.id for n in t.tree.kept_path(c)] == [t.root.id, b.id, c.id]
    assert [n.id for n in t.tree.kept_path(a)] == [t.root.id, a.id]
    # A refinement hangs under the reverted node it refines but extends the configuration before it.
    refine = t.node(b.id, Status.PROPOSED, {"attention_backend": "triton"}, {"attention_backend": "triton"})
    assert t.tree.base_of(refine) == t.root.id


def test_branch_candidates_keep_their_configuration_and_follow_ups_stay_on_their_branch(tmp_path: Path) -> None:
    t = Tree(tmp_path)
    a = t.node(t.root.id, Status.KEPT, {"gemm_tuning": "tuned"}, {"gemm_tuning": "tuned"}, 130.0, 0.3)
    t.node(t.root.id, Status.REVERTED, {"attention_backend": "flash"}, {"attention_backend": "flash"}, 125.0, -0.04)
    t.store.set_meta("best_node", a.id)
    t.store.set_meta("evaluated_configs", sorted(policy.config_key(n.config) for n in t.tree.nodes()))
    proposer = Proposer(t.tree, Ablation())
    moves = proposer.branch_moves(a)
    assert moves and all(c.priors["branch"] and c.priors["base"] in {n.id for n in t.tree.nodes()} for c in moves)
    assert all("gemm_tuning" not in c.config or c.action.change.get("gemm_tuning") for c in moves), "not re-aimed"
    queued = [t.store.add_node(parent=c.parent, depth=1, status=Status.PROPOSED, title=c.action.title,
                               category=c.action.category, layer=c.action.layer, kind="config", change=c.action.change,
                               config=c.config, proposer="offline", priors=c.priors) for c in moves]
    screen = proposer.screen(a, {})
    assert {i for i, _ in screen.reaim}.isdisjoint({n.id for n in queued})
    # A crash on a branch: its constrained retry extends that branch, not the best.
    crashed = t.store.update_node(queued[0].id, status=Status.CRASHED)
    decision = Decision(outcome=Status.CRASHED, diagnosis="x", follow_up=FollowUp.RETRY,
                        retry_with={"cuda_graphs": True})
    (retry,) = proposer.follow_ups(crashed, decision)
    assert retry.priors["base"] == queued[0].priors["base"] and retry.priors["branch"]
    assert "gemm_tuning" not in retry.config or queued[0].config.get("gemm_tuning") == retry.config["gemm_tuning"]


def test_a_crash_constraint_holds_only_in_its_context(tmp_path: Path) -> None:
    store = CampaignStore(tmp_path)
    store.add_constraint("cuda_graphs", "eq", True, "oom", {}, None, context={"max_num_seqs": 256})
    (rule,) = store.constraints()
    assert rule.context == {"max_num_seqs": 256}
    assert policy.violates([rule], {"cuda_graphs": True, "max_num_seqs": 256}) is not None
    assert policy.violates([rule], {"cuda_graphs": True, "max_num_seqs": 256, "gemm_tuning": "tuned"}) is not None
    assert policy.violates([rule], {"cuda_graphs": True}) is None, "elsewhere it may run"
    store.add_constraint("cuda_graphs", "eq", True, "oom at the defaults", {}, None)
    assert policy.violates(store.constraints(), {"cuda_graphs": True}) is not None



async def test_a_value_that_crashes_again_elsewhere_is_ruled_out_where_the_crashes_agree(tmp_path: Path) -> None:
    t = Tree(tmp_path)
    gate = Gate(t.tree, None, Ablation())  # type: ignore[arg-type]  # a crash needs no lab
    oom = Failure(kind="oom", summary="CUDA out of memory", phase="ready")
    graphs = {"cuda_graphs": True}
    t.node(t.root.id, Status.REVERTED, graphs, graphs, gain=-0.01)  # graphs ran at the defaults

    async def crash_from(config: dict) -> dict:
        base = t.node(t.root.id, Status.REVERTED, config, config, gain=0.0)
        crashed = t.node(base.id, Status.CRASHED, graphs, config | graphs, priors={"base": base.id})
        (ruling,) = (await gate.crashed(Trial(crashed, t.root), oom)).rulings
        t.store.add_constraint(ruling.knob, ruling.op, ruling.value, ruling.reason, ruling.evidence, crashed.id,
                               context=ruling.context)
        return ruling.context

    # First crash: only where every value it crashed among holds (which partner is to blame is not known).
    assert await crash_from({"gemm_tuning": "aggressive", "max_num_seqs": 256}) == \
        {"gemm_tuning": "aggressive", "max_num_seqs": 256}
    # Crashed again among other values: what the two crashes share is ruled out, on every branch.
    assert await crash_from({"gemm_tuning": "aggressive", "max_num_seqs": 128}) == {"gemm_tuning": "aggressive"}
    rules = t.store.constraints()
    assert policy.violates(rules, {"gemm_tuning": "aggressive", "max_num_seqs": 64, "cuda_graphs": True})
    assert policy.violates(rules, {"max_num_seqs": 64, "cuda_graphs": True}) is None, "where it ran, it may run"
    # Never narrowed onto a configuration that ran the value without crashing.
    ran = {"gemm_tuning": "tuned", "kv_cache_dtype": "fp8"}
    t.node(t.root.id, Status.REVERTED, graphs, ran | graphs, gain=0.01)
    assert await crash_from({"gemm_tuning": "tuned", "max_num_seqs": 128}) == \
        {"gemm_tuning": "tuned", "max_num_seqs": 128}
    assert await crash_from({"gemm_tuning": "tuned", "max_num_seqs": 64}) == \
        {"gemm_tuning": "tuned", "max_num_seqs": 64}, "tuned GEMM ran graphs: it is not the cause"
    # Narrowed by the earlier crash it agrees with, among crashes of several causes.
    assert await crash_from({"gemm_tuning": "aggressive", "max_num_seqs": 32}) == {"gemm_tuning": "aggressive"}
    assert policy.crash_scope({"a": 1, "b": 2}, [{"a": 1, "b": 3}], [{"a": 1}]) == {"a": 1, "b": 2}
    assert policy.crash_scope({"a": 1, "b": 2}, [{"a": 1, "b": 3}], [{"b": 2}]) == {"a": 1}
    assert policy.crash_scope({"a": 1, "b": 2}, [{"c": 1}], []) == {}, "crashed in disjoint places, never ran"

async def test_a_move_on_a_branch_must_make_up_the_gap_and_keeps_its_optimism(tmp_path: Path) -> None:
    t = Tree(tmp_path)
    a = t.node(t.root.id, Status.KEPT, {"gemm_tuning": "tuned"}, {"gemm_tuning": "tuned"}, 125.0, 0.25)
    t.store.set_meta("best_node", a.id)
    # attention_backend=flash measured flat from a: maybe a held it back.
    t.node(a.id, Status.REVERTED, {"attention_backend": "flash"},
           {"gemm_tuning": "tuned", "attention_backend": "flash"}, 125.0, 0.0, layer="attention")
    here = t.node(a.id, Status.PROPOSED, {"attention_backend": "flash"}, {"attention_backend": "flash"},
                  layer="attention", priors={"branch": True, "base": t.root.id})

    async def prior(change):
        return Prior(speedup=0.5, p_crash=0.0, p_regress=0.0, multiplier=1.0, level="knob_hardware", n=1)
    scored = await Scorer(t.tree, prior, lambda: 10.0).score(here, a)
    terms = scored.terms
    assert terms.relative == pytest.approx(1 / 1.25)
    assert scored.priors["source"] == "measured before" and scored.priors["measured_distance"] == 1
    # Expected: the flat measurement; optimistic: the prior, since it was measured where gemm_tuning differed.
    assert terms.gain == pytest.approx(0.0) and terms.exploit < 0
    assert terms.bound == pytest.approx(0.8 * (1 + 0.2 * 0.5) - 1)


def test_the_report_says_why_the_search_stopped_and_which_keeps_were_undone(tmp_path: Path) -> None:
    t = Tree(tmp_path)
    t.store.set_meta("spec", SPEC)
    a = t.node(t.root.id, Status.KEPT, {"gemm_tuning": "tuned"}, {"gemm_tuning": "tuned"}, 125.0, 0.25)
    b = t.node(t.root.id, Status.KEPT, {"attention_backend": "flash"}, {"attention_backend": "flash"}, 130.0, 0.04,
               priors={"branch": True, "base": t.root.id})
    t.store.set_meta("best_node", b.id)
    t.store.event("keeps_undone", b.id, nodes=[a.id], titles=[a.title])
    t.store.set_meta("stop_bound", 0.012)
    t.store.event("stopping", None, reason="the tree's upper bound: the most any could gain is +1.2%")
    report = build_report(t.store)
    assert report["summary"]["stopped"].startswith("the tree's upper bound") and report["summary"]["stop_bound"]
    assert report["keeps_undone"] == [{"node": b.id, "undone": [a.title]}]
    text = render_markdown(report)
    assert "Stopped: the tree's upper bound" in text and f"node {b.id} undid {a.title}" in text
    assert [n["node"] for n in report["kept_path"]] == [t.root.id, b.id]
