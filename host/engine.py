"""The campaign engine: the one writer of the tree. Each step it proposes, scores, evaluates and applies.

    proposer.py   candidates, read from the tree (it writes nothing)
    scorer.py     every term of each candidate's score
    gate.py       a candidate launched, checked and measured: a Decision
    engine.py     queues, prunes, applies decisions (status, knowledge base, best node, known-good, follow-ups)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import critic, policy, steering
from .agents import critic_agent
from .agents.team import Team
from .errors import HostError
from .gate import Gate
from .lab import Lab
from .models import EVALUATED, Candidate, DeadReason, Decision, FollowUp, Node, ProposedBy, Status
from .proposer import Proposer, Stage
from .scorer import Scorer
from .services import Services
from .spec import CampaignSpec
from .store import CampaignStore
from .tree import SearchTree

Say = Callable[[str], None]


class Campaign:
    """One campaign over one run folder; `run()` starts or resumes it."""

    def __init__(self, spec: CampaignSpec, run_dir: Path, store: CampaignStore, services: Services, say: Say,
                 team: Team | None = None) -> None:
        self.spec, self.run_dir, self.store, self.svc, self.say, self.team = spec, run_dir, store, services, say, team
        self.context: dict[str, Any] = store.meta("context")
        self.ablation = store.meta("ablation")
        self.campaign_id = str(store.meta("campaign_id"))
        self.session_start = time.monotonic()
        self.elapsed_before = float(store.meta("elapsed_s"))
        self.tree = SearchTree(store, spec)
        self.lab = Lab(services, store, self.tree, say, refresh=self.ablation.guarded)
        self.proposer = Proposer(self.tree, self.ablation, team)
        self.gate = Gate(self.tree, self.lab, self.ablation, team)
        self.scorer = Scorer(self.tree, lambda change: services.priors(self.context, change), self.unit_cost)

    # bookkeeping ----------------------------------------------------------------------
    def elapsed(self) -> float:
        """Campaign wall clock over every session."""
        return self.elapsed_before + time.monotonic() - self.session_start

    def save_clock(self) -> None:
        self.store.set_meta("elapsed_s", self.elapsed())
        self.store.set_meta("clock_saved_at", time.time())  # lets a watcher (the TUI) tick between saves

    def unit_cost(self) -> float:
        """The wall clock of one evaluation so far (restart, gate, benchmark), at least the spec's restart cost."""
        spent = self.svc.timer.spent
        evaluations = max(1, sum(1 for n in self.store.nodes() if n.status in EVALUATED))
        measured = (spent.get("bench", 0.0) + spent.get("server", 0.0) + spent.get("gate", 0.0)) / evaluations
        return max(measured, self.spec.search.restart_cost_s)

    def budget_left(self) -> str | None:
        """Why the campaign must stop now, or None."""
        if self.elapsed() >= self.spec.budget.wall_clock_s:
            return "wall-clock budget spent"
        if len(self.tree.actions_done()) >= self.spec.budget.max_actions:
            return "action budget spent"
        if self.store.meta("stop_requested"):
            return "stop requested"
        if self.store.meta("best_node") is not None and \
                self.elapsed() + self.unit_cost() > self.spec.budget.wall_clock_s:
            return "not enough budget left for another evaluation"
        return None

    def mark_evaluated(self, config: dict[str, Any]) -> None:
        self.store.set_meta("evaluated_configs", sorted(self.tree.evaluated_keys() | {policy.config_key(config)}))

    # the loop -------------------------------------------------------------------------
    async def run(self) -> None:
        """Baseline (once), then the loop until nothing is worth measuring or the budget is spent."""
        reaped = (await self.svc.servers()).reaped
        if reaped:
            self.store.event("orphans_reaped", None, pids=[r.pid for r in reaped])
            self.say(f"stopped {len(reaped)} process group(s) left by an earlier run")
        self.recover_interrupted()
        if self.store.meta("best_node") is None:
            await self.baseline()
        else:
            await self.lab.restore(self.tree.best())
        while True:
            self.save_clock()
            why = self.budget_left()
            if why is None:
                self.apply_commands()
                why = self.disk_full()
            if why is None and self.store.meta("paused"):
                await asyncio.sleep(1.0)
                continue
            node = await self.next_candidate() if why is None else None
            if node is None:
                why = why or self.nothing_worth()
                self.store.event("stopping", None, reason=why)
                self.say(f"stopping: {why}")
                break
            await self.evaluate(node)
            await self.stability_review()
        self.save_clock()
        await self.lab.stop()
        self.store.set_meta("state", "finished")

    def nothing_worth(self) -> str:
        """Why the search stops with budget left: the tree's upper bound, in the report's words."""
        top = self.store.meta("stop_bound")
        if top is None:
            return "the tree's upper bound: no candidate is left to measure"
        return (f"the tree's upper bound: no candidate scores above the threshold, and the most any could gain over "
                f"the best is {top:+.1%}, below the keep bar of +{self.spec.search.min_gain:.0%}")

    def disk_full(self) -> str | None:
        """Why the run folder's disk cannot take more (an alert for the operator), or None."""
        full = critic.check_disk(self.run_dir)
        if full is None:
            return None
        self.store.add_alert(full.severity, full.kind, full.message, full.evidence, None, full.needs_human)
        return full.message

    def recover_interrupted(self) -> None:
        """A node left running by a killed host is re-queued, its partial measurements set aside."""
        for node in self.store.nodes(Status.RUNNING):
            dropped = self.store.invalidate_measurements(node.id)
            if node.kind == "baseline":
                self.store.update_node(node.id, status=Status.PROPOSED, diagnosis="interrupted; baseline re-run")
            else:
                self.store.update_node(node.id, status=Status.PROPOSED, diagnosis="interrupted; will be re-run",
                                       measurement_ids=[])
            self.store.event("interrupted", node.id, measurements_set_aside=dropped)

    async def baseline(self) -> None:
        """Measure the server's own defaults: the root of the tree."""
        roots = [n for n in self.store.nodes() if n.kind == "baseline"]
        node = roots[0] if roots else self.store.add_node(
            parent=None, depth=0, status=Status.PROPOSED, title="baseline: the server's defaults", category="config",
            kind="baseline", change={}, config={}, proposer=ProposedBy.ENGINE,
            rationale="the reference every change beats")
        self.store.update_node(node.id, status=Status.RUNNING, started_at=time.time())
        self.say("baseline: launching the server with its defaults")
        outcome = await self.lab.start({}, f"baseline-{node.id}")
        if not outcome.ok or outcome.failure is not None:
            failure = outcome.failure
            summary = failure.summary if failure else "no server"
            self.store.update_node(node.id, status=Status.CRASHED, diagnosis=summary, finished_at=time.time())
            raise HostError(f"the baseline does not start: {failure.kind if failure else '?'}: {summary}")
        self.lab.serves({})
        await self.lab.parity_reference()
        for i in range(self.spec.search.baseline_repeats):
            result, _ = await self.lab.repeat(node, f"n{node.id}-r{i + 1}")
            self.say(f"baseline repeat {i + 1}: {result.output_throughput:.1f} tok/s, "
                     f"TTFT p50 {result.median_ttft_ms or 0:.0f} ms")
        await self.lab.sweep(node)
        await self.lab.profile(node)
        node = self.store.update_node(node.id, status=Status.KEPT, gain=0.0, finished_at=time.time())
        self.store.set_meta("best_node", node.id)
        self.store.set_meta("root_node", node.id)
        self.mark_evaluated({})
        await self.lab.record_best(node, node)

    # choosing the next candidate ----------------------------------------------------------
    async def next_candidate(self) -> Node | None:
        """Propose, score every candidate, and return the best one (None when none is worth measuring)."""
        base = self.tree.best()
        dead = self.tree.dead_moves(base)
        self.scorer.new_step()
        if self.ablation.single_agent and self.proposer.llm():
            # One propose-implement-test loop: nothing queued, one action at a time.
            self.prune([n.id for n in self.tree.proposed()], "single agent: not chosen")
        asked = await self.proposer.from_orchestrator(base)
        if asked is not None:
            self.queue(asked, dedupe=False)
            self.store.event("orchestrator_proposed", base.id, titles=[c.action.title for c in asked])
        if asked is None or not self.tree.proposed():
            # The offline policy is the safety net: no model to ask, or a model that proposed nothing
            # (a weak one may never call the tool); the score threshold still decides when to stop.
            if asked is not None:
                self.store.event("offline_fallback", base.id, reason="the Orchestrator proposed nothing")
            self.queue(self.proposer.moves(base, dead))
        if not self.ablation.single_agent:
            self.queue(self.proposer.branch_moves(base))
        candidates = await self.scored(base, dead)
        for fallback in self.proposer.fallbacks():
            if self.worthwhile(candidates):
                break
            stage = fallback(base, dead)
            if self.take(base, stage) or stage.dead != dead:
                dead = stage.dead
                candidates = await self.scored(base, dead)
        if self.worthwhile(candidates):
            return max(candidates, key=lambda n: (n.pinned, n.score or 0.0))
        # Nothing is expected to pay; while some candidate's optimistic bound still clears the keep bar, the
        # budget is better spent on it than kept.
        hopeful = [n for n in candidates if self.bound(n) >= self.spec.search.min_gain]
        if hopeful:
            return max(hopeful, key=lambda n: n.score or 0.0)
        top = max((self.bound(n) for n in candidates), default=None)
        self.store.set_meta("stop_bound", top)
        return None

    @staticmethod
    def bound(node: Node) -> float:
        """A candidate's optimistic gain over the best (its score's bound term)."""
        return float(node.score_terms.get("bound", node.score_terms.get("gain", 0.0)))

    def take(self, base: Node, stage: Stage) -> list[int]:
        """Queue a fallback stage's candidates; log it when it is one the report tells of."""
        ids = self.queue(stage.candidates, stage.dedupe)
        if ids and stage.logged:
            self.store.event(stage.name, base.id, nodes=ids)
        return ids

    def worthwhile(self, candidates: list[Node]) -> bool:
        """Some candidate is pinned or scores above the threshold."""
        return any(n.pinned or (n.score or 0.0) >= self.spec.search.score_threshold for n in candidates)

    async def scored(self, base: Node, dead: dict[str, DeadReason]) -> list[Node]:
        """Every queued candidate still worth measuring from `base`, scored; the stale ones pruned."""
        screen = self.proposer.screen(base, dead)
        for node_id, why in screen.prune:
            self.store.update_node(node_id, status=Status.PRUNED, diagnosis=why)
        for node_id, fields in screen.reaim:
            self.store.update_node(node_id, **fields)
        # Every candidate scored first, then written: the tree reads the same store state throughout.
        nodes = [self.store.node(node_id) for node_id in screen.keep]
        scores = [await self.scorer.score(node, base) for node in nodes]  # from its own base, against the best
        return [self.store.update_node(node.id, score=s.terms.score, score_terms=s.terms.model_dump(),
                                       priors=s.priors) for node, s in zip(nodes, scores, strict=True)]

    def queue(self, candidates: list[Candidate], dedupe: bool = True) -> list[int]:
        """Add candidates to the tree (`dedupe`: not one whose configuration a queued node runs already); their ids."""
        known = self.tree.queued_keys(self.tree.best().config) if dedupe else set()
        added = []
        for c in candidates:
            key = policy.config_key(c.config)
            if key in known:
                continue
            parent = self.store.node(c.parent)
            added.append(self.store.add_node(
                parent=parent.id, depth=parent.depth + 1, status=Status.PROPOSED, title=c.action.title,
                category=c.action.category, layer=c.action.layer, kind=c.action.kind, change=c.action.change,
                config=c.config, rationale=c.action.rationale, proposer=c.action.proposer, priors=c.priors).id)
            known |= {key} if dedupe else set()
        return added

    def prune(self, node_ids: list[int], why: str) -> None:
        for node_id in node_ids:
            self.store.update_node(node_id, status=Status.PRUNED, diagnosis=why)

    # evaluating and applying -----------------------------------------------------------------
    async def evaluate(self, node: Node) -> None:
        """The gate's decision on `node`, applied (kernel actions: a batch of specialists at once)."""
        if node.kind == "kernel":
            await self.evaluate_kernels(node)
            return
        node = self.store.update_node(node.id, status=Status.RUNNING, started_at=time.time(),
                                      attempts=node.attempts + 1)
        terms, best = node.score_terms, sum(1 for n in self.store.nodes(Status.KEPT) if n.kind != "baseline")
        self.say(f"[{self.elapsed():4.0f}s of {self.spec.budget.wall_clock_s:.0f}s, {best} kept] node {node.id}: "
                 f"{node.title} (score {node.score or 0:.4f}, prior {terms.get('speedup', 0):+.0%} at level "
                 f"{terms.get('prior_level')})")
        await self.apply(node, await self.gate.judge(node))

    async def evaluate_kernels(self, node: Node) -> None:
        if not self.proposer.llm():
            self.prune([node.id], "no agent can implement it (LLM work stopped)")
            return
        batch = [node] + [n for n in self.tree.proposed() if n.kind == "kernel" and n.id != node.id]
        batch = [self.store.update_node(n.id, status=Status.RUNNING, started_at=time.time(), attempts=n.attempts + 1)
                 for n in batch[:self.spec.agent.specialists]]
        for n in batch:
            self.store.event("specialist_dispatched", n.id,
                             role="specialist" if self.ablation.specialists and not self.ablation.single_agent
                             else "orchestrator")
        for n, decision in zip(batch, await self.gate.kernels(batch), strict=True):
            await self.apply(n, decision)

    async def apply(self, node: Node, d: Decision) -> None:
        """The one place a decision takes effect: the Critic's rulings and findings, the node's status, the
        knowledge base, the best node, the way back to known-good, and the follow-ups."""
        for r in d.rulings:
            self.store.add_constraint(r.knob, r.op, r.value, r.reason, r.evidence, node.id, requires=r.requires or None,
                                      context=r.context or None)
        for f in d.findings:
            self.store.add_alert(f.severity, f.kind, f.message, f.evidence, node.id, f.needs_human)
        node = self.store.update_node(node.id, status=d.outcome, diagnosis=d.diagnosis, gain=d.gain,
                                      gain_low=d.gain_low, gain_high=d.gain_high, finished_at=time.time())
        await self.record(node, d)
        self.mark_evaluated(node.config)
        interval = f", interval {d.gain_low:+.1%} to {d.gain_high:+.1%}" if d.gain_low is not None else ""
        self.say(f"  -> {d.outcome}{'' if d.gain is None else f' ({d.gain:+.1%}{interval})'}: {d.diagnosis}")
        if d.follow_up == FollowUp.IN_CONTEXT:
            self.store.event("crash_in_context", node.id, knob=d.crashed_knob, suspects=d.suspects)
        self.queue(self.proposer.follow_ups(node, d), dedupe=False)
        if d.outcome == Status.KEPT:
            before = self.tree.best()
            self.store.set_meta("best_node", node.id)
            self.undone(before, node)
            self.lab.serves(node.config)
            if self.ablation.guarded:
                await self.lab.remeasure(node, before)
            root = self.tree.root()
            await self.lab.record_best(root or node, node)
            await self.lab.reprofile(node, before)
        elif node.kind != "kernel":
            await self.lab.restore(self.tree.best())

    def undone(self, before: Node, best: Node) -> None:
        """A new best on a branch that excludes earlier keeps undoes them: an event the report tells of."""
        path = self.tree.kept_path(best)
        if before.id in {n.id for n in path}:
            return  # the new best extends the old one: nothing undone
        lost = [n for n in self.tree.kept_path(before) if n.kind != "baseline" and n.id not in {m.id for m in path}
                and any(not policy.same_value(self.spec, best.config, n.config, k) for k in n.change)]
        if lost:
            self.store.event("keeps_undone", best.id, nodes=[n.id for n in lost], titles=[n.title for n in lost])
            self.say(f"  keeps undone: a branch without {', '.join(n.title for n in lost)} measured higher")

    async def record(self, node: Node, d: Decision) -> None:
        """The outcome in the knowledge base, so the next campaign starts from it."""
        knob, value = next(iter(node.change.items()))
        extra = {k: v for k, v in node.change.items() if k != knob}

        def bounded(x: float | None) -> float | None:
            return None if x is None else max(-1.0, min(100.0, x))
        await self.svc.record({
            "id": f"{self.campaign_id}-{node.id}", "campaign": self.campaign_id, "context": self.context,
            "change": {"category": node.category, "layer": node.layer, "knob": knob, "value": value,
                       "patch_summary": f"together with {extra}" if extra else None},
            "result": str(d.outcome), "gain": bounded(d.gain), "gain_low": bounded(d.gain_low),
            "gain_high": bounded(d.gain_high), "cost_s": max(0.0, time.time() - (node.started_at or time.time())),
            "diagnosis": d.diagnosis[:4000] or None})

    # steering and reviews ------------------------------------------------------------------
    def apply_commands(self) -> None:
        """Steering written by the TUI, checked by `steering` and applied here; a refusal is the command's answer."""
        steering.answer(self.store, self.tree, self.store.commands(pending=True), self.steer)

    def steer(self, steer: steering.Steer) -> None:
        """What one checked command does to the run and the tree."""
        if steer.meta is not None:
            self.store.set_meta(*steer.meta)
        self.prune(steer.prune, steer.why)
        for node_id in steer.pin:
            self.store.update_node(node_id, pinned=1)
        if steer.ack is not None:
            self.store.ack_alert(steer.ack, steer.answer)
        for node_id in self.queue(steer.inject, dedupe=False):
            self.store.update_node(node_id, pinned=1)

    async def stability_review(self) -> None:
        """Every `agent.review_every` evaluations, the LLM Critic looks over the whole trajectory."""
        every = self.spec.agent.review_every
        if self.team is None or not self.team.available() or not self.ablation.guarded or every == 0:
            return
        done = len(self.tree.actions_done())
        if done - int(self.store.meta("reviewed_at_actions")) >= every:
            await critic_agent.review(self.team, self.tree, done, self.elapsed())
            self.store.set_meta("reviewed_at_actions", done)
