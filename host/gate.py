"""The gate: a candidate launched, checked for accuracy and measured until the decision is settled; a `Decision` out.

The gate measures (measurements land in the store) and judges; it changes no node. The engine
applies the decision: status, knowledge base, the best node, the way back to known-good, follow-ups.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from arbor.tools.bench.models import Comparison
from arbor.tools.serving.failures import Failure

from . import critic, policy
from .agents import critic_agent
from .agents.pool import SpecialistResult
from .agents.specialist import implement, kernel_task
from .agents.team import Team
from .errors import HostError
from .lab import Lab
from .models import Ablation, Decision, Finding, FollowUp, Node, Ruling, Status
from .tree import SearchTree


@dataclass
class Trial:
    """One candidate under judgment: what it is compared with, and what the Critic noticed so far."""

    node: Node
    best: Node
    findings: list[Finding] = field(default_factory=list)


class Settled(NamedTuple):
    """Where the repeats left the gain: keep it or not, why, and the last comparison."""

    keep: bool
    why: str
    comparison: Comparison | None


class Gate:
    """Judges candidates for one campaign."""

    def __init__(self, tree: SearchTree, lab: Lab, ablation: Ablation, team: Team | None = None) -> None:
        self.tree, self.lab, self.ablation, self.team = tree, lab, ablation, team
        self.spec = tree.spec

    def llm_critic(self) -> bool:
        """The LLM Critic is at work (it may be asked)."""
        return self.team is not None and self.team.available() and self.ablation.guarded

    async def judge(self, node: Node) -> Decision:
        """Restart on the candidate, readiness, accuracy, benchmark until settled, the Critic, the sweep."""
        trial = Trial(node, self.tree.best())
        outcome = await self.lab.start(node.config, f"n{node.id}")
        if not outcome.ok:
            assert outcome.failure is not None
            return await self.crashed(trial, outcome.failure)
        if self.spec.gates.accuracy == "parity":
            check = await self.lab.parity(node)
            if not check.passed:
                return await self.reverted(trial, f"accuracy gate: greedy agreement {check.agreement_rate:.0%} < "
                                                  f"{self.spec.gates.min_agreement:.0%} of the baseline's outputs",
                                           refine=False)
        settled = await self.measure(trial)
        if isinstance(settled, Decision):
            return settled
        if not settled.keep:
            return await self.reverted(trial, settled.why, settled.comparison)
        return await self.kept(trial, settled.why, settled.comparison)

    async def measure(self, trial: Trial) -> Decision | Settled:
        """Benchmark repeats until the interval of the gain settles, or a Decision when the measurements themselves
        fail the Critic's checks."""
        spec, node, best, guarded = self.spec, trial.node, trial.best, self.ablation.guarded
        base_paths, base_fingerprint = self.tree.reference_paths(best), self.tree.fingerprint(best)
        prior_speedup = float(node.priors.get("speedup", 0.05))
        paths: list[str] = []
        throughputs: list[float] = []
        retests = confirmed_at = 0
        cmp: Comparison | None = None
        retest_of = node.priors.get("retest_of")
        if retest_of is not None and self.tree.node(int(retest_of)).parent == best.id:
            # A retest pools the first measurement of the same configuration, taken against the same reference.
            for m in self.tree.store.measurements(int(retest_of), "primary"):
                paths.append(m.path or "")
                throughputs.append(m.throughput)
        limit = spec.search.max_repeats + len(paths)
        while len(paths) < limit:
            result, path = await self.lab.repeat(node, f"n{node.id}-r{len(paths) + retests + 1}")
            # Without the Critic nobody checks a measurement's integrity: comparisons take flawed ones as they come.
            verdict = critic.Verdict()
            if guarded:
                # Lengths are judged against the reference's for the same prompts, not against what was asked.
                lengths = await self.lab.svc.check_lengths(base_paths, path) if base_paths else None
                verdict = critic.check_result(spec, result, base_fingerprint, path, lengths)
            trial.findings += verdict.findings
            if verdict.retest:
                self.lab.set_aside(node, verdict.findings[0].message)
                retests += 1
                if retests > 2:
                    return self.invalid(trial, verdict.findings[0], path)
                continue
            if not verdict.stable:
                return await self.reverted(trial, "gate: " + "; ".join(f.message for f in verdict.findings),
                                           refine=False)
            paths.append(path)
            throughputs.append(result.output_throughput)
            if len(paths) < spec.search.min_repeats:
                continue
            cmp = await self.lab.svc.compare(base_paths, paths, spec.search.confidence, not guarded)
            if self.ablation.single_agent:
                # The single-agent baseline: keep if better, no interval, no Critic, no sweep.
                return Settled(cmp.rel_change > 0, f"single agent: {cmp.rel_change:+.1%} at the primary point", cmp)
            repeats = critic.check_repeats(spec, throughputs, cmp.rel_change, prior_speedup, confirmed_at > 0) \
                if guarded else critic.Verdict()
            trial.findings += repeats.findings
            low, high, gain = cmp.ci_low, cmp.ci_high, cmp.rel_change
            if repeats.more_repeats and len(paths) < limit:
                continue
            if low is not None and low > spec.search.min_gain:
                if repeats.confirm and len(paths) < limit:
                    confirmed_at = len(paths)  # one more repeat must keep the interval above the bar
                    continue
                return Settled(True, f"{gain:+.1%} over the baseline, interval {low:+.1%} to {high:+.1%}", cmp)
            if high is not None and high < spec.search.min_gain:
                return Settled(False, f"no gain: {gain:+.1%}, interval {low:+.1%} to {high:+.1%} below "
                                      f"+{spec.search.min_gain:.0%}", cmp)
        if paths and len(paths) < spec.search.min_repeats:
            cmp = await self.lab.svc.compare(base_paths, paths, spec.search.confidence, not guarded)
        if not paths or cmp is None:
            return Settled(False, "no valid measurement", None)
        # Out of repeats: the loop compared them all last.
        if guarded and critic.keep_out_of_repeats(cmp.ci_low, cmp.rel_change, spec.search.min_gain):
            why = (f"{cmp.rel_change:+.1%} over the baseline, interval {cmp.ci_low:+.1%} to {cmp.ci_high:+.1%}: "
                   f"above zero, its estimate clears +{spec.search.min_gain:.0%}")
            return Settled(True, why, cmp)
        return Settled(False, f"not settled after {len(paths)} repeats ({cmp.rel_change:+.1%})", cmp)

    # the decisions -------------------------------------------------------------------
    async def kept(self, trial: Trial, why: str, cmp: Comparison | None) -> Decision:
        """A settled gain: the LLM Critic's review, then the sweep must not regress elsewhere."""
        assert cmp is not None
        node = trial.node
        if self.llm_critic():
            # No keep over the Critic's instability mark (which must cite evidence to count).
            assert self.team is not None
            unstable = await critic_agent.review_keep(self.team, self.tree, node, cmp, trial.findings)
            if unstable:
                return await self.reverted(trial, f"Critic: unstable: {unstable}", cmp, refine=False)
        if self.ablation.single_agent:
            return self.decision(trial, Status.KEPT, why, cmp)
        # A keep must hold across operating points, not only at the primary one.
        points = await self.lab.sweep(node)
        before = self.tree.sweep_points(trial.best)
        if before:
            tolerance = self.spec.gates.pareto_tolerance
            worse = [f"c={k}: {v['output_throughput']:.1f} vs {before[k]['output_throughput']:.1f} tok/s"
                     for k, v in points.items() if k in before
                     and v["output_throughput"] < before[k]["output_throughput"] * (1 - tolerance)]
            if worse:
                trial.findings.append(Finding(
                    severity="warning", kind="pareto_regression", evidence={"points": worse},
                    message=f"{node.title} wins at the primary point but loses more than {tolerance:.0%} "
                            f"elsewhere: {'; '.join(worse)}"))
                return await self.reverted(trial, f"keep withdrawn: throughput regression at {'; '.join(worse)}",
                                           cmp)
        return self.decision(trial, Status.KEPT, why, cmp)

    async def reverted(self, trial: Trial, why: str, cmp: Comparison | None = None, refine: bool = True) -> Decision:
        """No keep; after a regression, refined sub-actions (the LLM Critic's, else the offline policy's)."""
        decision = self.decision(trial, Status.REVERTED, why, cmp)
        if not refine:
            return decision
        decision.follow_up = FollowUp.REFINE
        if self.llm_critic():
            assert self.team is not None
            judged = trial.node.model_copy(update={"diagnosis": why, "gain": decision.gain,
                                                   "gain_low": decision.gain_low, "gain_high": decision.gain_high})
            answer = await critic_agent.introspect(self.team, self.tree, judged)
            decision.critic_answered = answer.answered
            decision.proposals, decision.rulings = answer.proposals, decision.rulings + answer.rulings
        return decision

    def invalid(self, trial: Trial, finding: Finding, path: str) -> Decision:
        """Measurement integrity failed three times; a one-knob change that alters the workload is ruled out.

        Only a one-knob change is pinned on its value; which knob of several did it is not known.
        """
        decision = self.decision(trial, Status.INVALID, "measurement integrity: " + finding.message)
        node = trial.node
        if finding.kind in ("length_drift", "fingerprint_mismatch") and len(node.change) == 1:
            ((knob, value),) = node.change.items()
            decision.rulings.append(Ruling(knob=knob, op="eq", value=value,
                                           reason=f"changes the workload itself: {finding.message}",
                                           evidence={"node": node.id, "result": path, "finding": finding.kind}))
        return decision

    async def crashed(self, trial: Trial, failure: Failure) -> Decision:
        """Root-cause analysis of a crash: a constraint (with a retry when a prerequisite makes it safe), or, for a
        value that ran before without crashing, retries with the partners changed since stepped back."""
        node = trial.node
        lines = [f"line {e.line}: {e.text}" for e in failure.evidence]
        evidence = {"failure": failure.kind, "log": failure.log_path, "lines": lines, "node": node.id}
        trial.findings.append(Finding(severity="error", kind="crash", evidence=evidence,
                                      message=f"{node.title} crashed the server: {failure.summary}"))
        decision = self.decision(trial, Status.CRASHED, f"{failure.kind}: {failure.summary}")
        retry: dict[str, Any] = {}
        ruling = None
        if self.llm_critic():
            assert self.team is not None
            ruling = await critic_agent.crash_rca(self.team, self.tree, node, failure)
        if ruling is not None:
            decision.rulings.append(ruling)
            retry = {k: v for k, v in ruling.requires.items() if node.config.get(k) != v}
        elif self.ablation.guarded:
            # The rule-based Critic: the safety net when no LLM Critic answered.
            base = self.tree.base_node(node)
            region = policy.crash_region(self.spec, base.config, node.action())
            context = self.tree.crash_context(node, region[0]) if region is not None else {}
            if region is not None:
                knob, op, value = region
                retry = {} if context else {k: v for k, v in policy.prerequisite(knob, value).items()
                                            if node.config.get(k) != v}
                # It crashed where the base's other values held: elsewhere it may run (a partner may be to blame).
                where = {k: v for k, v in base.config.items() if k != knob and k not in retry}
                decision.rulings.append(Ruling(knob=knob, op=op, value=value, requires=retry, evidence=evidence,
                                               context=self.crash_scope(region, where),  # type: ignore[arg-type]
                                               reason=f"{failure.kind}: {failure.summary}"))
            if region is not None and context:
                # The value ran before without crashing: a partner changed since is to blame, not the value.
                decision.follow_up, decision.crashed_knob, decision.suspects = FollowUp.IN_CONTEXT, region[0], context
        if retry:
            # A constrained retry: the same value together with what it needs.
            decision.follow_up, decision.retry_with = FollowUp.RETRY, retry
        return decision

    def crash_scope(self, region: tuple[str, str, Any], where: dict[str, Any]) -> dict[str, Any]:
        """The context of a crash's constraint: `where`, narrowed to what earlier crashes of the region shared."""
        knob, op, value = region
        earlier = [c.context for c in self.tree.constraints() if (c.knob, c.op, c.value) == region and c.context]
        ran = [config for config in self.tree.ran_configs() if policy.in_region(op, value, config.get(knob))]
        return policy.crash_scope(where, earlier, ran)

    async def kernels(self, batch: list[Node]) -> list[Decision]:
        """Kernel actions, dispatched to Domain Specialists at once: each patch judged by the host's own gate run.

        A kernel patch counts end to end only once deployed into the served stack; there is no deploy route
        for kernel patches yet, so a patch that passes waits for the operator, its gate report as evidence.
        """
        assert self.team is not None
        team = self.team
        role = "specialist" if self.ablation.specialists and not self.ablation.single_agent else "orchestrator"

        async def one(n: Node) -> SpecialistResult:
            try:
                task = kernel_task(self.spec, n)
            except HostError as exc:
                return SpecialistResult(error=str(exc))
            return await team.pool.run(task.device, implement(team, self.tree, n, role))  # type: ignore[arg-type]

        results = await asyncio.gather(*(one(n) for n in batch))
        decisions = []
        for n, result in zip(batch, results, strict=True):
            gate = result.gate
            self.lab.store.event("specialist_report", n.id, role=role, reported=result.reported,
                                 summary=result.summary[:2000], diff=result.diff_path, diff_lines=result.diff_lines,
                                 gate_passed=result.passed, failed_step=gate.failed_step if gate else None,
                                 speedup=gate.speedup if gate else None, refused_paths=result.refused_paths,
                                 error=result.error)
            trial = Trial(n, self.tree.best())
            if result.refused_paths:
                trial.findings.append(Finding(severity="warning", kind="workspace_escape",
                                              message=f"the specialist tried to reach outside its workspace: "
                                                      f"{result.refused_paths[:5]}",
                                              evidence={"paths": result.refused_paths[:20]}))
            if not result.passed or gate is None:
                why = result.error or ("no change was made" if not result.diff_lines else
                                       f"the kernel failed its gate at {gate.failed_step if gate else None}")
                decisions.append(self.decision(trial, Status.REVERTED, f"kernel: {why}"))
                continue
            low, high = gate.speedup_ci or (float("nan"), float("nan"))
            why = (f"kernel passed the four-step gate: {gate.speedup or 0:.2f}x (interval {low:.2f}-{high:.2f}); "
                   f"not deployed end to end (no deploy route for kernel patches): patch {result.diff_path}")
            trial.findings.append(Finding(severity="info", kind="patch_ready", message=why,
                                          evidence={"patch": result.diff_path, "gate": gate.task}))
            decisions.append(self.decision(trial, Status.REVERTED, why))
        return decisions

    @staticmethod
    def decision(trial: Trial, outcome: Status, why: str, cmp: Comparison | None = None) -> Decision:
        """A decision on `trial` with what the Critic noticed along the way."""
        return Decision(outcome=outcome, diagnosis=why, findings=list(trial.findings),  # type: ignore[arg-type]
                        gain=cmp.rel_change if cmp else None, gain_low=cmp.ci_low if cmp else None,
                        gain_high=cmp.ci_high if cmp else None)
