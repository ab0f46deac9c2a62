"""Evaluating one candidate: launch, accuracy gate, benchmark until the decision is settled, sweep after a keep."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from . import critic, policy
from .agents import critic_agent
from .agents.specialist import SpecialistResult, implement, kernel_task
from .errors import HostError
from .models import Constraint, Node
from .report import kept_path

if TYPE_CHECKING:
    from .engine import Campaign


def _alert(c: Campaign, finding: critic.Finding, node: Node) -> None:
    c.store.add_alert(finding.severity, finding.kind, finding.message, finding.evidence, node.id, finding.needs_human)


async def _record(c: Campaign, node: Node, result: str, gain: float | None = None, low: float | None = None,
                  high: float | None = None, diagnosis: str | None = None) -> None:
    knob, value = next(iter(node.change.items()))
    extra = {k: v for k, v in node.change.items() if k != knob}
    started = node.started_at or time.time()
    await c.svc.record({
        "id": f"{c.campaign_id}-{node.id}", "campaign": c.campaign_id, "context": c.context,
        "change": {"category": node.category, "layer": node.layer, "knob": knob, "value": value,
                   "patch_summary": f"together with {extra}" if extra else None},
        "result": result, "gain": None if gain is None else max(-1.0, min(100.0, gain)),
        "gain_low": None if low is None else max(-1.0, min(100.0, low)),
        "gain_high": None if high is None else max(-1.0, min(100.0, high)),
        "cost_s": max(0.0, time.time() - started), "diagnosis": (diagnosis or "")[:4000] or None})


async def _finish(c: Campaign, node: Node, status: str, diagnosis: str, gain: float | None = None,
                  low: float | None = None, high: float | None = None) -> Node:
    node = c.store.update_node(node.id, status=status, diagnosis=diagnosis, gain=gain, gain_low=low, gain_high=high,
                               finished_at=time.time())
    await _record(c, node, status, gain, low, high, diagnosis)
    c.mark_evaluated(node.config)
    sign = "" if gain is None else f" ({gain:+.1%}, interval {low:+.1%} to {high:+.1%})" if low is not None else \
        f" ({gain:+.1%})"
    c.say(f"  -> {status}{sign}: {diagnosis}")
    return node


def _rule_out_workload_change(c: Campaign, node: Node, finding: critic.Finding, path: str) -> None:
    """A change that keeps altering what is measured (lengths, the workload itself) is ruled out, not retried.

    Only a one-knob change is pinned on its value; which knob of several did it is not known.
    """
    if finding.kind not in ("length_drift", "fingerprint_mismatch") or len(node.change) != 1:
        return
    ((knob, value),) = node.change.items()
    c.store.add_constraint(knob, "eq", value, f"changes the workload itself: {finding.message}",
                           {"node": node.id, "result": path, "finding": finding.kind}, node.id)


async def _crashed(c: Campaign, node: Node, failure: dict[str, Any]) -> None:
    base = c.baseline_node()
    lines = [f"line {e['line']}: {e['text']}" for e in failure.get("evidence", [])]
    evidence = {"failure": failure["kind"], "log": failure.get("log_path"), "lines": lines, "node": node.id}
    retry: dict[str, Any] = {}
    ruling: Constraint | None = None
    if _llm_critic(c):
        ruling = await critic_agent.crash_rca(c.team, c, node, failure)  # type: ignore[arg-type]
    if ruling is not None:
        retry = {k: v for k, v in ruling.requires.items() if node.config.get(k) != v}
    elif c.ablation.guarded:
        # The rule-based Critic: the safety net when no LLM Critic answered.
        region = policy.crash_region(c.spec, base.config, node.action())
        context = c.crash_context(node, region[0]) if region is not None else {}
        if context:
            # The value ran before without crashing: a partner changed since is to blame, not the value.
            _retry_in_context(c, node, base, region[0], context)
            c.store.event("crash_in_context", node.id, knob=region[0], suspects=context)
        elif region is not None:
            knob, op, value = region
            retry = {k: v for k, v in policy.prerequisite(knob, value).items() if node.config.get(k) != v}
            c.store.add_constraint(knob, op, value, f"{failure['kind']}: {failure['summary']}", evidence, node.id,
                                   requires=retry or None)
    c.store.add_alert("error", "crash", f"{node.title} crashed the server: {failure['summary']}", evidence, node.id)
    await _finish(c, node, "crashed", f"{failure['kind']}: {failure['summary']}")
    if retry:
        # A constrained retry: the same value together with what it needs.
        _queue_retry(c, node, base, retry, f"retry with the prerequisite {retry}")
    await c.restore_known_good()


def _queue_retry(c: Campaign, node: Node, base: Node, extra: dict[str, Any], rationale: str,
                 priors: dict[str, Any] | None = None) -> None:
    """Queue `node`'s change together with `extra` from `base`, unless measured before or ruled out."""
    change = node.change | extra
    config = policy.apply(base.config, change)
    if policy.config_key(config) in c.evaluated_keys() or policy.violates(c.store.constraints(), config):
        return
    action = node.action().model_copy(update={"change": change, "proposer": "critic", "rationale": rationale,
                                              "title": policy.describe(change, base.config)})
    c.add_candidate(action, node, config, priors)


def _retry_in_context(c: Campaign, node: Node, base: Node, knob: str, context: dict[str, Any]) -> None:
    """Constrained retries of a value that crashed only in context: with each suspect stepped back by one.

    A step back costs what the keep that set the suspect gained (half of it for a part step); a retry
    expected to lose more than the value is worth is not queued, nor any for a value that lost more than
    the keep bar where it ran.
    """
    share = float(node.score_terms.get("time_share", 1.0)) or 1.0
    measured = c.measured_speedup(node)
    if measured is not None and measured * share < -c.spec.search.min_gain:
        return  # it lost clearly where it ran: no partner's loss is worth a retry
    # What it ran at says little (graphs pay only with a bigger batch): its worth is the KB's prior.
    worth = share * float(node.priors.get("kb_speedup", node.priors.get("speedup", 0.05)))
    path = kept_path(c.store, base)
    for suspect, earlier in context.items():
        value = policy.step_back(c.spec, suspect, base.config.get(suspect), earlier)
        setter = next((n for n in reversed(path) if suspect in n.change), None)
        cost = max(0.0, setter.gain or 0.0) if setter is not None else 0.0
        partial = value != earlier  # stopped at a listed value short of the earlier one
        estimate = worth - (cost / 2 if partial else cost)
        if estimate > 0:
            _queue_retry(c, node, base, {suspect: value},
                         f"{knob}={node.change[knob]} ran without crashing before; it crashed once {suspect} "
                         f"became {base.config.get(suspect)}: retry with {suspect}={value}",
                         {"proposer_estimate": estimate / share})


def _combine_near_misses(c: Campaign, node: Node, base: Node) -> None:
    """Queue this unsettled gain together with the other unsettled gains measured on the kept path."""
    path = {n.id for n in kept_path(c.store, base)}
    misses = [(n.action(), float(n.gain)) for n in c.store.nodes("reverted")
              if n.parent in path and n.kind == "config" and n.gain is not None and n.gain > 0
              and n.proposer != "introspection" and c.measured_from(n, base)
              and any(base.config.get(k) != v for k, v in n.change.items())]
    found = policy.combine_near_misses(c.spec, base.config, misses, c.evaluated_keys(), c.store.constraints())
    if found is None:
        return
    action, estimate = found
    c.add_candidate(action, node, policy.apply(base.config, action.change), {"proposer_estimate": estimate})


async def _reverted(c: Campaign, node: Node, diagnosis: str, gain: float | None = None, low: float | None = None,
                    high: float | None = None, refine: bool = True) -> None:
    node = await _finish(c, node, "reverted", diagnosis, gain, low, high)
    if refine and _llm_critic(c) and await critic_agent.introspect(c.team, c, node):  # type: ignore[arg-type]
        refine = False  # the LLM Critic refined or pruned, with evidence
    # One level of introspection: a refinement that regresses too is not halved again (a cliff stays a cliff).
    if refine and c.ablation.guarded and node.proposer != "introspection":
        base = c.baseline_node()
        for action in policy.refine_after_regression(c.spec, base.config, node.action(), c.evaluated_keys(),
                                                     c.store.constraints()):
            c.add_candidate(action, node, policy.apply(base.config, action.change))
        if gain is not None and gain > 0 and node.kind == "config":
            _combine_near_misses(c, node, base)
    await c.restore_known_good()


async def _remeasure_keep(c: Campaign, node: Node, before: Node) -> None:
    """Fresh repeats of a kept configuration, the reference later candidates are compared with.

    The repeats that won the keep were selected for reading high (the winner's curse); compared with
    them, the next real gains look smaller than they are and fail to settle. Every later candidate is
    compared with this reference, so it gets as many repeats as the defaults did.
    """
    for i in range(c.spec.search.baseline_repeats):
        await c.measure_primary(node, f"n{node.id}-ref{i + 1}", kind="reference")
    cmp = await c.svc.compare(c.reference_paths(before), c.reference_paths(node), c.spec.search.confidence, False)
    c.store.event("keep_remeasured", node.id, gain=cmp["rel_change"], low=cmp["ci_low"], high=cmp["ci_high"],
                  decided=node.gain)
    c.say(f"  remeasured: {cmp['rel_change']:+.1%} over the previous best (the keep read {node.gain:+.1%})")


def _llm_critic(c: Campaign) -> bool:
    return c.team is not None and c.team.available() and c.ablation.guarded


async def _kernels(c: Campaign, node: Node) -> None:
    """Kernel actions go to Domain Specialists; queued kernel actions are dispatched with it, several at once."""
    team = c.team
    if team is None or not team.available():
        c.store.update_node(node.id, status="pruned", diagnosis="no agent can implement it (LLM work stopped)")
        return
    role = "specialist" if c.ablation.specialists and not c.ablation.single_agent else "orchestrator"
    batch = [node] + [n for n in c.store.nodes("proposed") if n.kind == "kernel" and n.id != node.id]
    batch = batch[:c.spec.agent.specialists]
    for n in batch:
        c.store.update_node(n.id, status="running", started_at=time.time(), attempts=n.attempts + 1)
        c.store.event("specialist_dispatched", n.id, role=role)

    async def one(n: Node) -> SpecialistResult:
        try:
            task = kernel_task(c, n)
        except HostError as exc:
            return SpecialistResult(error=str(exc))
        return await team.pool.run(task.device, implement(team, c, n, role))

    results = await asyncio.gather(*(one(n) for n in batch))
    for n, result in zip(batch, results, strict=True):
        gate = result.gate or {}
        c.store.event("specialist_report", n.id, role=role, reported=result.reported, summary=result.summary[:2000],
                      diff=result.diff_path, diff_lines=result.diff_lines, gate_passed=result.passed,
                      failed_step=gate.get("failed_step"), speedup=gate.get("speedup"),
                      refused_paths=result.refused_paths, error=result.error)
        if result.refused_paths:
            c.store.add_alert("warning", "workspace_escape", f"the specialist tried to reach outside its workspace: "
                              f"{result.refused_paths[:5]}", {"paths": result.refused_paths[:20]}, n.id)
        if not result.passed:
            why = result.error or ("no change was made" if not result.diff_lines else
                                   f"the kernel failed its gate at {gate.get('failed_step')}")
            c.store.update_node(n.id, status="reverted", diagnosis=f"kernel: {why}", finished_at=time.time())
        else:
            # A kernel patch counts end to end only once deployed into the served stack; there is no deploy
            # route for kernel patches yet, so it waits for the operator with its gate report as evidence.
            speedup, ci = gate.get("speedup"), gate.get("speedup_ci") or (None, None)
            why = (f"kernel passed the four-step gate: {speedup:.2f}x (interval {ci[0]:.2f}-{ci[1]:.2f}); "
                   f"not deployed end to end (no deploy route for kernel patches): patch {result.diff_path}")
            c.store.update_node(n.id, status="reverted", diagnosis=why, finished_at=time.time())
            c.store.add_alert("info", "patch_ready", why, {"patch": result.diff_path, "gate": gate.get("task")}, n.id)
        c.mark_evaluated(n.config)
        c.say(f"  -> node {n.id}: {c.store.node(n.id).diagnosis}")


async def evaluate(c: Campaign, node: Node) -> None:
    """Run the gate on `node` and update the tree, the knowledge base and the server."""
    spec, store = c.spec, c.store
    if node.kind == "kernel":
        await _kernels(c, node)
        return
    base = c.baseline_node()
    node = store.update_node(node.id, status="running", started_at=time.time(), attempts=node.attempts + 1)
    terms = node.score_terms
    best = sum(1 for n in store.nodes("kept") if n.kind != "baseline")
    c.say(f"[{c.elapsed():4.0f}s of {spec.budget.wall_clock_s:.0f}s, {best} kept] node {node.id}: {node.title} "
          f"(score {node.score or 0:.4f}, prior {terms.get('speedup', 0):+.0%} at level {terms.get('prior_level')})")
    outcome = await c.start_server(node.config, f"n{node.id}")
    if not outcome["ok"]:
        await _crashed(c, node, outcome["failure"])
        return
    assert c.server is not None
    if spec.gates.accuracy == "parity":
        check = await c.svc.parity_check(c.server["base_url"], c.model_name(), store.meta("parity_reference"),
                                         spec.gates.min_agreement)
        store.add_measurement(node.id, "parity", {"agreement_rate": check["agreement_rate"],
                                                  "passed": check["passed"],
                                                  "failed_requests": check["failed_requests"]})
        if not check["passed"]:
            await _reverted(c, node, f"accuracy gate: greedy agreement {check['agreement_rate']:.0%} < "
                                     f"{spec.gates.min_agreement:.0%} of the baseline's outputs", refine=False)
            return
    base_paths = c.reference_paths(base)
    base_rows = store.measurements(base.id, "primary")
    base_fingerprint = base_rows[0]["fingerprint"] if base_rows else None
    prior_speedup = float(node.priors.get("speedup", 0.05))
    paths: list[str] = []
    throughputs: list[float] = []
    retests = confirmed_at = 0
    decision: tuple[str, str, Any] | None = None
    cmp: dict[str, Any] | None = None
    retest_of = node.priors.get("retest_of")
    if retest_of is not None and store.node(int(retest_of)).parent == base.id:
        # A retest pools the first measurement of the same configuration, taken against the same reference.
        for m in store.measurements(int(retest_of), "primary"):
            paths.append(m["path"])
            throughputs.append(m["metrics"]["output_throughput"])
    limit = spec.search.max_repeats + len(paths)
    # Without the Critic nobody checks a measurement's integrity, so comparisons take flawed ones as they come.
    guarded = c.ablation.guarded
    while len(paths) < limit:
        out = await c.measure_primary(node, f"n{node.id}-r{len(paths) + retests + 1}")
        result = out["result"]
        verdict = critic.check_result(spec, result, base_fingerprint, out["path"]) if guarded else critic.Verdict()
        for finding in verdict.findings:
            _alert(c, finding, node)
        if verdict.retest:
            store.invalidate_measurement(store.node(node.id).measurement_ids[-1], verdict.findings[0].message)
            retests += 1
            if retests > 2:
                _rule_out_workload_change(c, node, verdict.findings[0], out["path"])
                await _finish(c, node, "invalid", "measurement integrity: " + verdict.findings[0].message)
                await c.restore_known_good()
                return
            continue
        if not verdict.stable:
            await _reverted(c, node, "gate: " + "; ".join(f.message for f in verdict.findings), refine=False)
            return
        paths.append(out["path"])
        throughputs.append(result["output_throughput"])
        if len(paths) < spec.search.min_repeats:
            continue
        cmp = await c.svc.compare(base_paths, paths, spec.search.confidence, not guarded)
        if c.ablation.single_agent:
            # The single-agent baseline: keep if better, no interval, no Critic, no sweep.
            better = cmp["rel_change"] > 0
            decision = ("keep" if better else "revert", f"single agent: {cmp['rel_change']:+.1%} at the primary "
                        "point", cmp)
            break
        repeats = critic.check_repeats(spec, throughputs, cmp["rel_change"], prior_speedup, confirmed_at > 0) \
            if guarded else critic.Verdict()
        for finding in repeats.findings:
            _alert(c, finding, node)
        low, high, gain = cmp["ci_low"], cmp["ci_high"], cmp["rel_change"]
        if repeats.more_repeats and len(paths) < limit:
            continue
        if low is not None and low > spec.search.min_gain:
            if repeats.confirm and len(paths) < limit:
                confirmed_at = len(paths)  # one more repeat must keep the interval above the bar
                continue
            decision = ("keep", f"{gain:+.1%} over the baseline, interval {low:+.1%} to {high:+.1%}", cmp)
            break
        if high is not None and high < spec.search.min_gain:
            decision = ("revert", f"no gain: {gain:+.1%}, interval {low:+.1%} to {high:+.1%} below "
                                  f"+{spec.search.min_gain:.0%}", cmp)
            break
    if decision is None and paths and len(paths) < spec.search.min_repeats:
        cmp = await c.svc.compare(base_paths, paths, spec.search.confidence, not guarded)  # too few to compare yet
    final = cmp if decision is None and paths else None  # out of repeats: the loop compared them all last
    if final and guarded and critic.keep_out_of_repeats(final["ci_low"], final["rel_change"], spec.search.min_gain):
        decision = ("keep", f"{final['rel_change']:+.1%} over the baseline, interval {final['ci_low']:+.1%} to "
                            f"{final['ci_high']:+.1%}: above zero, its estimate clears +{spec.search.min_gain:.0%}",
                    final)
    if decision is None:
        gain = final["rel_change"] if final else None
        await _reverted(c, node, f"not settled after {len(paths)} repeats ({gain:+.1%})" if gain is not None
                        else "no valid measurement", gain, final and final["ci_low"], final and final["ci_high"])
        return
    kind, why, cmp = decision
    if kind == "revert":
        await _reverted(c, node, why, cmp["rel_change"], cmp["ci_low"], cmp["ci_high"])
        return
    if _llm_critic(c):
        # No keep over the Critic's instability mark (which must cite evidence to count).
        unstable = await critic_agent.review_keep(c.team, c, node, cmp)  # type: ignore[arg-type]
        if unstable:
            await _reverted(c, node, f"Critic: unstable: {unstable}", cmp["rel_change"], cmp["ci_low"],
                            cmp["ci_high"], refine=False)
            return
    # A keep must hold across operating points, not only at the primary one.
    points = await c.measure_sweep(node) if not c.ablation.single_agent else {}
    base_sweep = store.measurements(base.id, "sweep")
    if base_sweep and not c.ablation.single_agent:
        before = base_sweep[-1]["metrics"]["points"]
        tolerance = spec.gates.pareto_tolerance
        worse = [f"c={k}: {v['output_throughput']:.1f} vs {before[k]['output_throughput']:.1f} tok/s"
                 for k, v in points.items() if k in before
                 and v["output_throughput"] < before[k]["output_throughput"] * (1 - tolerance)]
        if worse:
            store.add_alert("warning", "pareto_regression", f"{node.title} wins at the primary point but loses "
                            f"more than {tolerance:.0%} elsewhere: {'; '.join(worse)}", {"points": worse}, node.id)
            await _reverted(c, node, f"keep withdrawn: throughput regression at {'; '.join(worse)}", cmp["rel_change"],
                            cmp["ci_low"], cmp["ci_high"])
            return
    node = await _finish(c, node, "kept", why, cmp["rel_change"], cmp["ci_low"], cmp["ci_high"])
    store.set_meta("baseline_node", node.id)
    c.server["config_key"] = policy.config_key(node.config)  # type: ignore[index]
    if guarded:
        await _remeasure_keep(c, node, base)
    previous = store.measurements(base.id, "profile")
    profile = await c.measure_profile(node)
    if profile and previous:
        try:
            moved = await c.svc.diff(previous[-1]["path"], profile["path"])
        except HostError:
            moved = None
        if moved:
            store.event("profile_diff", node.id, top_before=moved["top_before"], top_after=moved["top_after"],
                        bottleneck_moved=moved["bottleneck_moved"], shifts=moved["shifts"][:4])
            if moved["bottleneck_moved"]:
                c.say(f"  bottleneck moved: {moved['top_before']} -> {moved['top_after']}")
