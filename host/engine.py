"""The campaign engine: profile, score every candidate, dispatch, gate, update the tree, re-score."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import Any

from arbor.kb.models import Prior
from arbor.tools.errors import ArborError
from arbor.tools.procs import group_members, reap_orphans

from . import critic, policy
from .agents import critic_agent, orchestrator
from .agents.proposals import queued, validate_injection
from .agents.team import Ablation, Team
from .errors import HostError
from .evaluate import evaluate
from .models import EVALUATED, Action, Constraint, Node
from .report import kept_path
from .scoring import score, time_share, urgency
from .services import Services
from .spec import CampaignSpec
from .store import CampaignStore

Say = Callable[[str], None]
BROKE_ACCURACY = "broke accuracy before, and nothing else in its layer has changed since"
REGRESSED = "fell short of the keep bar beyond doubt before, and the bottleneck it targets has not grown since"
# What a node's priors carry through re-scoring (the rest is the KB's answer of the moment).
KEPT_PRIORS = ("proposer_estimate", "proposer_cost_s", "task", "retest_of", "last_resort")
CRASHED_HERE = "crashed with partners that still hold the values it crashed with"


class Campaign:
    """One campaign over one run folder; `run()` starts or resumes it and returns the summary."""

    def __init__(self, spec: CampaignSpec, run_dir: Path, store: CampaignStore, services: Services,
                 context: dict[str, Any], say: Say) -> None:
        self.spec, self.run_dir, self.store, self.svc, self.context, self.say = (
            spec, run_dir, store, services, context, say)
        self.server: dict[str, Any] | None = None
        self.session_start = time.monotonic()
        self.elapsed_before = float(store.meta("elapsed_s", 0.0))
        self.campaign_id = str(store.meta("campaign_id"))
        self.ablation = Ablation.model_validate(store.meta("ablation") or {})
        self.team: Team | None = None  # the LLM agents; None runs the offline policy

    # bookkeeping ----------------------------------------------------------
    def elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self.session_start

    def save_clock(self) -> None:
        self.store.set_meta("elapsed_s", self.elapsed())
        self.store.set_meta("clock_saved_at", time.time())  # lets a watcher (the TUI) tick between saves

    def workload(self) -> dict[str, Any]:
        return self.spec.workload.bench(self.model_name())

    def model_name(self) -> str:
        return self.spec.target.served_model_name or self.svc.stack.model

    def baseline_node(self) -> Node:
        return self.store.node(int(self.store.meta("baseline_node")))

    def evaluated_keys(self) -> set[str]:
        return set(self.store.meta("evaluated", []))

    def actions_done(self) -> list[Node]:
        """Evaluated actions (the baseline is not one)."""
        return [n for n in self.store.nodes() if n.status in EVALUATED and n.kind != "baseline"]

    def dead_moves(self, base: Node) -> dict[str, str]:
        """One-knob moves not worth proposing again from `base`, with why.

        A move whose interval fell below the keep bar (it can never be kept alone) comes back once its layer's
        profiled share has grown by half (the offline policy re-proposed the same losing value after every
        keep: a 1% move measured five times in one campaign), in a pair, or as a last resort
        when nothing else is left; one that broke accuracy, once another knob of its layer has changed; one
        that crashed in context, once one of the partners it crashed with has changed.
        """
        profile = self.latest_profile(base)
        dead: dict[str, str] = {}
        ran = self.ran_configs()
        for n in self.store.nodes("crashed"):
            first = next(iter(n.change), None)
            if n.kind != "config" or first is None or set(n.change) - {first} - set(policy.prerequisite(
                    first, n.change[first])):
                continue
            # A value that crashed only in context stays out while its suspects keep their crash-time values.
            context = policy.crash_context(self.spec, n.config, first, ran)
            if context and all(policy.same_value(self.spec, base.config, n.config, k) for k in context):
                dead[policy.config_key(n.change)] = CRASHED_HERE
        for n in self.store.nodes("reverted"):
            if len(n.change) != 1 or n.kind != "config":
                continue
            if n.gain is None and self.broke_accuracy(n):  # a failed gate leaves no gain: no query otherwise
                # Outputs break through the move itself (a coarse quantisation) or through a partner in its
                # layer (an FP8 KV cache with an attention kernel that mishandles it): worth another try only
                # once another knob of that layer has changed.
                partners = {k.name for k in self.spec.knobs if k.layer == n.layer} - set(n.change)
                if all(base.config.get(k) == n.config.get(k) for k in partners):
                    dead[policy.config_key(n.change)] = BROKE_ACCURACY
                continue
            if n.gain_high is None or n.gain_high >= self.spec.search.min_gain:
                continue
            then = float(n.score_terms.get("time_share", 1.0))
            if time_share(n.layer, profile) < 1.5 * then:
                dead[policy.config_key(n.change)] = REGRESSED
        return dead

    def ran_configs(self) -> list[dict[str, Any]]:
        """Configurations a server started with and served (kept, reverted or invalid, never crashed)."""
        return [n.config for n in self.store.nodes() if n.status in ("kept", "reverted", "invalid")]

    def crash_context(self, node: Node, knob: str) -> dict[str, Any]:
        """The partners a crash of `knob` at `node` may need (see `policy.crash_context`); empty when none."""
        return policy.crash_context(self.spec, node.config, knob, self.ran_configs())

    def broke_accuracy(self, node: Node) -> bool:
        """`node` failed the accuracy gate."""
        rows = self.store.measurements(node.id, "parity")
        return bool(rows) and not rows[-1]["metrics"]["passed"]

    def mark_evaluated(self, config: dict[str, Any]) -> None:
        keys = self.evaluated_keys() | {policy.config_key(config)}
        self.store.set_meta("evaluated", sorted(keys))

    def budget_left(self) -> str | None:
        """Why the campaign must stop now, or None."""
        if self.elapsed() >= self.spec.budget.wall_clock_s:
            return "wall-clock budget spent"
        if len(self.actions_done()) >= self.spec.budget.max_actions:
            return "action budget spent"
        if self.store.meta("stop_requested"):
            return "stop requested"
        if self.store.meta("baseline_node") is not None and \
                self.elapsed() + self.unit_cost() > self.spec.budget.wall_clock_s:
            return "not enough budget left for another evaluation"
        return None

    # servers --------------------------------------------------------------
    async def stop_server(self) -> None:
        if self.server is None:
            return
        server, self.server = self.server, None
        await self.svc.stop(server["id"])
        leftover = critic.check_leftovers(group_members(server["pid"]))
        if leftover:
            self.store.add_alert(leftover.severity, leftover.kind, leftover.message, leftover.evidence)

    async def start_server(self, config: dict[str, Any], name: str) -> dict[str, Any]:
        await self.stop_server()
        outcome = await self.svc.launch(config, name)
        if outcome["ok"]:
            self.server = outcome["server"]
        return outcome

    async def restore_known_good(self) -> None:
        """After a revert or crash: the last known-good configuration, running and verified healthy."""
        base = self.baseline_node()
        if self.server is not None and self.server.get("config_key") == policy.config_key(base.config):
            return
        for attempt in range(2):
            outcome = await self.start_server(base.config, f"known-good-{base.id}-{int(time.time())}")
            if outcome["ok"]:
                probe = await self.svc.probe(self.server["id"])  # type: ignore[index]
                if probe["healthy"]:
                    self.server["config_key"] = policy.config_key(base.config)  # type: ignore[index]
                    self.store.event("known_good_restored", base.id, attempt=attempt + 1)
                    return
        self.store.add_alert("critical", "known_good_unhealthy", "the last known-good configuration does not come "
                             "back healthy; the campaign stops", {"node": base.id}, base.id, needs_human=True)
        raise HostError("the known-good configuration no longer starts healthy; see the alerts")

    # measurements ---------------------------------------------------------
    async def measure_primary(self, node: Node, label: str, kind: str = "primary") -> dict[str, Any]:
        """One repeat at the primary point, stored as a measurement of `node` (a fresh `reference` one after a keep)."""
        assert self.server is not None
        out = await self.svc.bench(self.server["base_url"], self.workload(), label)
        result = out["result"]
        metrics = {k: result[k] for k in ("output_throughput", "median_ttft_ms", "median_tpot_ms", "p99_ttft_ms",
                                          "completed", "failed", "max_concurrent_requests", "lengths_ok",
                                          "total_cached_tokens", "interactivity")}
        mid = self.store.add_measurement(node.id, kind, metrics, out["path"], result["fingerprint"])
        self.store.update_node(node.id, measurement_ids=[*self.store.node(node.id).measurement_ids, mid])
        return out

    async def measure_sweep(self, node: Node) -> dict[str, Any]:
        assert self.server is not None
        w = self.spec.workload
        out = await self.svc.sweep(self.server["base_url"], self.workload(), w.sweep, w.sweep_prompts_per_concurrency,
                                   w.sweep_min_prompts, f"n{node.id}-sweep")
        points = {str(r["max_concurrency"]): {"output_throughput": r["output_throughput"],
                                              "median_ttft_ms": r["median_ttft_ms"],
                                              "interactivity": r["interactivity"], "failed": r["failed"]}
                  for r in out["sweep"]["results"]}
        self.store.add_measurement(node.id, "sweep", {"points": points,
                                                      "frontier": out["sweep"]["points"]}, json.dumps(out["paths"]))
        return points

    async def measure_profile(self, node: Node) -> dict[str, Any] | None:
        assert self.server is not None
        try:
            out = await self.svc.profile(self.server["pid"], self.server["base_url"], self.workload(),
                                         self.spec.search.profile_seconds, f"n{node.id}")
        except HostError as exc:
            self.store.add_alert("warning", "profile_failed", f"profiling failed: {exc}", node=node.id)
            return None
        profile = out["result"]["profile"]
        top = [{"name": k["name"], "share": k["share"], "category": k["category"]} for k in profile["kernels"][:10]]
        self.store.add_measurement(node.id, "profile", {"categories": profile["categories"], "top": top,
                                                        "unknown": profile["unknown"][:20]}, out["path"])
        return {"categories": profile["categories"], "path": out["path"]}

    # the search loop ----------------------------------------------------------
    async def run(self) -> None:
        """Baseline (once), then the loop until no candidate scores above the threshold or the budget is spent."""
        reaped = reap_orphans()
        if reaped:
            self.store.event("orphans_reaped", None, pids=[r["pid"] for r in reaped])
        self.recover_interrupted()
        if self.store.meta("baseline_node") is None:
            await self.baseline()
        else:
            await self.restore_known_good()
        while True:
            self.save_clock()
            why = self.budget_left()
            if why:
                self.store.event("stopping", None, reason=why)
                self.say(f"stopping: {why}")
                break
            self.apply_commands()
            full = critic.check_disk(self.run_dir)
            if full is not None:
                self.store.add_alert(full.severity, full.kind, full.message, full.evidence, None, full.needs_human)
                self.store.event("stopping", None, reason=full.message)
                self.say(f"stopping: {full.message}")
                break
            if self.store.meta("paused"):
                await asyncio.sleep(1.0)
                continue
            node = await self.next_candidate()
            if node is None:
                self.store.event("stopping", None, reason="no candidate scores above the threshold")
                self.say("stopping: no candidate scores above the threshold")
                break
            await self.evaluate(node)
            await self.stability_review()
        self.save_clock()
        await self.stop_server()
        self.store.set_meta("state", "finished")

    async def stability_review(self) -> None:
        """Every `agent.review_every` evaluations, the LLM Critic looks over the whole trajectory."""
        every = self.spec.agent.review_every
        if self.team is None or not self.team.available() or not self.ablation.guarded or every == 0:
            return
        done = len(self.actions_done())
        if done - int(self.store.meta("last_review_at", 0)) >= every:
            await critic_agent.review(self.team, self, done)

    def recover_interrupted(self) -> None:
        """A node left running by a killed host is re-queued, its partial measurements set aside."""
        for node in self.store.nodes("running"):
            dropped = self.store.invalidate_measurements(node.id)
            if node.kind == "baseline":
                self.store.update_node(node.id, status="proposed", diagnosis="interrupted; baseline re-run")
            else:
                self.store.update_node(node.id, status="proposed", diagnosis="interrupted; will be re-run",
                                       measurement_ids=[])
            self.store.event("interrupted", node.id, measurements_set_aside=dropped)

    async def baseline(self) -> None:
        """Measure the server's own defaults: the root of the tree."""
        roots = [n for n in self.store.nodes() if n.kind == "baseline"]
        node = roots[0] if roots else self.store.add_node(
            parent=None, depth=0, status="proposed", title="baseline: the server's defaults", category="config",
            kind="baseline", change={}, config={}, proposer="engine", rationale="the reference every change beats")
        self.store.update_node(node.id, status="running", started_at=time.time())
        self.say("baseline: launching the server with its defaults")
        outcome = await self.start_server({}, f"baseline-{node.id}")
        if not outcome["ok"]:
            failure = outcome["failure"]
            self.store.update_node(node.id, status="crashed", diagnosis=failure["summary"], finished_at=time.time())
            raise HostError(f"the baseline does not start: {failure['kind']}: {failure['summary']}")
        self.server["config_key"] = policy.config_key({})  # type: ignore[index]
        ref = await self.svc.parity_reference(self.server["base_url"], self.model_name())  # type: ignore[index]
        self.store.set_meta("parity_reference", ref["path"])
        for i in range(self.spec.search.baseline_repeats):
            out = await self.measure_primary(node, f"n{node.id}-r{i + 1}")
            self.say(f"baseline repeat {i + 1}: {out['result']['output_throughput']:.1f} tok/s, "
                     f"TTFT p50 {out['result']['median_ttft_ms']:.0f} ms")
        await self.measure_sweep(node)
        await self.measure_profile(node)
        self.store.update_node(node.id, status="kept", gain=0.0, finished_at=time.time())
        self.store.set_meta("baseline_node", node.id)
        self.store.set_meta("root_node", node.id)
        self.mark_evaluated({})

    def apply_commands(self) -> None:
        """Steering written by the TUI: pause, resume, prune, pin, veto, stop."""
        for command in self.store.pending_commands():
            kind, payload = command["kind"], command["payload"]
            try:
                if kind == "pause":
                    self.store.set_meta("paused", True)
                elif kind == "resume":
                    self.store.set_meta("paused", False)
                elif kind == "stop":
                    self.store.set_meta("stop_requested", True)
                elif kind in ("prune", "veto"):
                    self.prune(int(payload["node"]), kind, bool(payload.get("subtree")))
                elif kind in ("pin", "boost"):
                    node = self.store.node(int(payload["node"]))
                    if node.status != "proposed":
                        raise HostError(f"node {node.id} is {node.status}, only proposed nodes can be pinned")
                    self.store.update_node(node.id, pinned=1)
                elif kind in ("ack", "answer"):
                    answer = payload.get("answer")
                    if kind == "answer" and not (isinstance(answer, str) and answer.strip()):
                        raise HostError("an answer needs text")
                    self.store.ack_alert(int(payload["alert"]), answer.strip() if kind == "answer" else None)
                elif kind == "inject":
                    self.inject(payload)
                else:
                    raise HostError(f"unknown command {kind!r}")
                self.store.mark_command(command["id"], "applied")
            except (HostError, ArborError, KeyError, ValueError, TypeError) as exc:
                self.store.mark_command(command["id"], f"refused: {str(exc).splitlines()[0]}")

    def prune(self, node_id: int, kind: str, subtree: bool) -> None:
        """An operator's prune or veto: a proposed node, or every proposed node under `node_id`."""
        node = self.store.node(node_id)
        targets = [node]
        if subtree:
            children: dict[int, list[Node]] = {}
            for n in self.store.nodes():
                children.setdefault(n.parent or 0, []).append(n)
            stack, targets = [node], []
            while stack:
                current = stack.pop()
                targets.append(current)
                stack += children.get(current.id, [])
        proposed = [n for n in targets if n.status == "proposed"]
        if not proposed:
            raise HostError(f"node {node.id} is {node.status} and nothing under it is proposed" if subtree else
                            f"node {node.id} is {node.status}, only proposed nodes can be pruned")
        for n in proposed:
            self.store.update_node(n.id, status="pruned", diagnosis=f"{kind} by the operator")

    def inject(self, payload: dict[str, Any]) -> Node:
        """An operator's hypothesis, validated like any proposal, queued and pinned."""
        ok = validate_injection(self.spec, self.store, payload)
        estimate = {"proposer_estimate": ok.estimate} if "speedup_estimate" in payload else {}
        node = self.add_candidate(ok.action, self.baseline_node(), ok.config, estimate)
        return self.store.update_node(node.id, pinned=1)

    async def next_candidate(self) -> Node | None:
        """Propose, score every candidate, and return the best one (or None below the threshold)."""
        base = self.baseline_node()
        constraints = self.store.constraints()
        evaluated = self.evaluated_keys()
        dead = self.dead_moves(base)
        asked = await self.ask_orchestrator(base)
        proposed = [n for n in self.store.nodes("proposed") if n.kind != "baseline"]
        if not asked or not proposed:
            # The offline policy is the safety net: no model to ask, or a model that proposed nothing
            # (a weak one may never call the tool); the score threshold still decides when to stop.
            if asked:
                self.store.event("offline_fallback", base.id, reason="the Orchestrator proposed nothing")
            self.offer_moves(base, evaluated, constraints, dead)
        candidates = await self.scored(base, evaluated, constraints, dead)
        if not self.worthwhile(candidates) and self.ablation.guarded:
            # Every promising move from here is measured: the Critic gives those not shown to regress another
            # try, in pairs.
            self.queue_new(base, [(a, {"proposer_estimate": e}) for a, e in policy.pair_moves(
                base.config, self.open_moves(base), evaluated, constraints)])
            candidates = await self.scored(base, evaluated, constraints, dead)
        if not self.worthwhile(candidates) and self.ablation.guarded:
            # Before stopping with budget left: one more look at the moves from here that noise may have
            # sunk (not shown to regress), their first repeats pooled with the new ones.
            retests = [self.retest(n, base) for n in self.retestable(base)]
            if retests:
                self.store.event("retest", base.id, nodes=retests)
                candidates = await self.scored(base, evaluated, constraints, dead)
        if not self.worthwhile(candidates) and self.ablation.guarded and dead:
            # The last resort: a move that fell short once may pay from here (a knob that pays only with
            # another's new value); one that broke accuracy or crashed here stays out.
            dead = {k: why for k, why in dead.items() if why in (BROKE_ACCURACY, CRASHED_HERE)}
            revived = self.offer_moves(base, evaluated, constraints, dead, {"last_resort": True})
            if revived:
                self.store.event("last_resort", base.id, nodes=revived)
            candidates = await self.scored(base, evaluated, constraints, dead)
        if not self.worthwhile(candidates):
            return None
        return max(candidates, key=lambda n: (n.pinned, n.score or 0.0))

    def worthwhile(self, candidates: list[Node]) -> bool:
        """Some candidate is pinned or scores above the threshold."""
        return any(n.pinned or (n.score or 0.0) >= self.spec.search.score_threshold for n in candidates)

    def retest(self, node: Node, base: Node) -> int:
        """Queue a retest of `node` from `base` (its repeats are pooled with the new ones); the new node's id."""
        action = node.action().model_copy(update={
            "proposer": "critic", "title": f"retest: {node.title}",
            "rationale": f"measured {node.gain:+.1%} (up to {node.gain_high:+.1%}) on {len(node.measurement_ids)} "
                         "repeats: noise may have sunk it; its repeats are pooled with new ones"})
        return self.add_candidate(action, base, node.config, {"proposer_estimate": node.gain_high,
                                                              "retest_of": node.id}).id

    def offer_moves(self, base: Node, evaluated: set[str], constraints: list[Constraint],
                    dead: dict[str, str], priors: dict[str, Any] | None = None) -> list[int]:
        """Queue the offline policy's one-knob moves from `base` that are not queued already nor dead; their ids."""
        return self.queue_new(base, [(a, priors) for a in policy.propose(self.spec, base.config, evaluated,
                                                                            constraints)
                                     if policy.config_key(a.change) not in dead])

    def queue_new(self, base: Node, actions: list[tuple[Action, dict[str, Any] | None]]) -> list[int]:
        """Queue each action from `base` whose configuration no proposed node would run already; their ids."""
        # Proposals made under an earlier baseline apply to the current one now: compare on that.
        known = queued(self.store, base.config)
        added = []
        for action, priors in actions:
            config = policy.apply(base.config, action.change)
            if policy.config_key(config) not in known:
                added.append(self.add_candidate(action, base, config, priors).id)
                known.add(policy.config_key(config))
        return added

    def measured_from(self, node: Node, base: Node) -> bool:
        """`node` was measured from the values `base` still has for its knobs: its gain still means something."""
        parent = self.store.node(node.parent) if node.parent is not None else base
        return all(parent.config.get(k) == base.config.get(k) for k in node.change)

    def open_moves(self, base: Node) -> list[tuple[Action, float, float]]:
        """Reverted config moves (gain, upper bound) measured from `base`'s values and not shown to regress."""
        out = []
        for n in self.store.nodes("reverted"):
            if n.kind == "config" and n.gain is not None and n.gain_high is not None \
                    and n.gain_high >= 0 and self.measured_from(n, base) \
                    and (len(n.change) == 1 or n.proposer != "introspection"):  # not pairs of pairs
                out.append((n.action(), n.gain, n.gain_high))
        return out

    def retestable(self, base: Node) -> list[Node]:
        """Reverted config moves measured from `base` itself, not shown to regress and not retested yet."""
        nodes = self.store.nodes()
        done = {n.priors.get("retest_of") for n in nodes if n.priors.get("retest_of") is not None}
        return [n for n in nodes if n.status == "reverted" and n.kind == "config" and n.parent == base.id
                and n.gain_high is not None and n.gain_high >= 0 and n.id not in done
                and n.priors.get("retest_of") is None]

    async def scored(self, base: Node, evaluated: set[str], constraints: list[Constraint],
                     dead: dict[str, str]) -> list[Node]:
        """Every proposed node still worth measuring from `base`, scored; the rest pruned."""
        candidates = []
        for node in self.store.nodes("proposed"):
            if node.kind == "baseline":
                continue
            config = policy.apply(base.config, node.change)
            measured = policy.config_key(config) in evaluated and node.priors.get("retest_of") is None
            if measured or policy.violates(constraints, config):
                self.store.update_node(node.id, status="pruned",
                                       diagnosis="already measured, or ruled out by a constraint")
                continue
            if node.proposer in ("offline", "introspection") and policy.config_key(node.change) in dead:
                self.store.update_node(node.id, status="pruned", diagnosis=dead[policy.config_key(node.change)])
                continue
            if node.config != config:
                # Proposed under an earlier baseline: re-aimed at the current one.
                title = node.title if node.kind == "kernel" else policy.describe(node.change, base.config)
                node = self.store.update_node(node.id, config=config, parent=base.id, depth=base.depth + 1,
                                              title=title)
            candidates.append(await self.score_node(node, base))
        return candidates

    async def ask_orchestrator(self, base: Node) -> bool:
        """The LLM Orchestrator's proposals for this step; False when it could not be asked (offline fallback)."""
        if self.team is None or not self.team.available():
            return False
        if self.ablation.single_agent:
            # One propose-implement-test loop: nothing queued, one action at a time.
            for node in self.store.nodes("proposed"):
                self.store.update_node(node.id, status="pruned", diagnosis="single agent: not chosen")
        accepted = await orchestrator.propose(self.team, self, limit=1 if self.ablation.single_agent else 4)
        if accepted is None:
            return False
        for item in accepted:
            self.add_candidate(item.action, base, item.config, {"proposer_estimate": item.estimate,
                                                               "proposer_cost_s": item.cost_s, "task": item.task})
        self.store.event("orchestrator_proposed", base.id, titles=[a.action.title for a in accepted])
        return True

    def add_candidate(self, action: Action, parent: Node, config: dict[str, Any],
                      priors: dict[str, Any] | None = None) -> Node:
        return self.store.add_node(parent=parent.id, depth=parent.depth + 1, status="proposed", title=action.title,
                                   category=action.category, layer=action.layer, kind=action.kind,
                                   change=action.change, config=config, rationale=action.rationale,
                                   proposer=action.proposer, priors=priors or {})

    async def score_node(self, node: Node, base: Node) -> Node:
        knob, value = next(iter(node.change.items()))
        prior = await self.svc.priors(self.context, {"category": node.category, "layer": node.layer, "knob": knob,
                                                     "value": value})
        p = Prior.model_validate(prior)
        # The proposer's own estimate (an LLM's) where the KB has no history; else the offline policy's.
        proposer_estimate = node.priors.get("proposer_estimate")
        proposer_cost = float(node.priors.get("proposer_cost_s") or 0.0)
        guess = proposer_estimate if proposer_estimate is not None else policy.estimate(self.spec, base.config,
                                                                                        node.change)
        # A last resort is a fresh chance from here: judged on its prior, not on what it measured elsewhere.
        measured = self.measured_speedup(node) if proposer_estimate is None and not node.priors.get(
            "last_resort") else None
        prior |= {k: node.priors[k] for k in KEPT_PRIORS if k in node.priors}
        if measured is not None:
            # This very move was measured from an earlier configuration: more specific than any pooled prior.
            p = p.model_copy(update={"speedup": measured})
            prior = prior | {"speedup": measured, "kb_speedup": prior["speedup"], "source": "measured before"}
        elif guess is not None and p.level != "exact":
            # With no history for this value the proposer's estimate stands alone; with history for the
            # knob (any value) it is averaged in, since pooled values do not know which way this one moves.
            speedup = guess if p.level == "global" else (p.speedup + guess) / 2
            p = p.model_copy(update={"speedup": speedup})
            source = "proposer" if proposer_estimate is not None else "offline policy"
            prior = prior | {"speedup": speedup, "kb_speedup": prior["speedup"], "estimate": guess,
                             "source": f"{source} estimate" if p.level == "global" else f"KB and {source} estimate"}
        profile = self.latest_profile(base)
        evaluated = self.actions_done()
        current = self.primary_mean(base)
        unit = self.unit_cost()
        terms = score(p, time_share(node.layer, profile), urgency(current, self.spec.throughput_target,
                                                                  self.spec.search.urgency_max),
                      unit + proposer_cost, unit, self.spec.search.exploration, len(evaluated),
                      sum(1 for n in evaluated if n.category == node.category))
        return self.store.update_node(node.id, score=terms.score, score_terms=terms.model_dump(), priors=prior)

    def measured_speedup(self, node: Node) -> float | None:
        """The speedup of its target the same move measured from an earlier configuration (gain / share then).

        A move re-proposed after a keep was scored as if never tried: a +1% move stood level with fresh ones.
        Times the target's share now, it is the gain expected from here.
        """
        key = policy.config_key(node.change)
        earlier = [n for n in self.store.nodes("reverted") if n.gain is not None and n.kind == node.kind
                   and n.id != node.id and policy.config_key(n.change) == key]
        if not earlier:
            return self.undone_keep(node)
        last = max(earlier, key=lambda n: n.finished_at or 0.0)
        then = float(last.score_terms.get("time_share", 1.0)) or 1.0
        return float(last.gain) / then  # type: ignore[arg-type]

    def undone_keep(self, node: Node) -> float | None:
        """For a move back to the value the last keep of its knob moved away from: that keep, reversed.

        Tuned GEMMs after aggressive ones won by 15% scored highest of all on the KB's record of "tuned".
        """
        if len(node.change) != 1 or node.kind != "config":
            return None
        ((knob, value),) = node.change.items()
        path = kept_path(self.store, self.baseline_node())
        for before, kept in reversed(list(pairwise(path))):
            if knob in kept.change:
                if kept.gain is None or not policy.same_value(self.spec, before.config, {knob: value}, knob):
                    return None
                then = float(kept.score_terms.get("time_share", 1.0)) or 1.0
                return -kept.gain / (1 + kept.gain) / then
        return None

    def latest_profile(self, node: Node) -> dict[str, float] | None:
        rows = self.store.measurements(node.id, "profile")
        return rows[-1]["metrics"]["categories"] if rows else None

    def reference_paths(self, node: Node) -> list[str]:
        """What later candidates are compared with: the fresh repeats taken after the keep, else the primary ones."""
        return [m["path"] for m in self.store.reference(node.id)]

    def primary_mean(self, node: Node) -> float | None:
        values = [m["metrics"]["output_throughput"] for m in self.store.reference(node.id)]
        return sum(values) / len(values) if values else None

    def unit_cost(self) -> float:
        spent = self.svc.timer.spent
        evaluations = max(1, sum(1 for n in self.store.nodes() if n.status in EVALUATED))
        measured = (spent.get("bench", 0.0) + spent.get("server", 0.0) + spent.get("gate", 0.0)) / evaluations
        return max(measured, self.spec.search.restart_cost_s)

    # one evaluation -------------------------------------------------------------
    async def evaluate(self, node: Node) -> None:
        """The gate: restart on the candidate, readiness, accuracy, benchmark until settled, sweep after a keep."""
        await evaluate(self, node)
