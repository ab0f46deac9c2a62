"""The proposer: every way a candidate is born, read from the tree.

It writes nothing. Like an Optuna sampler, which reads a study and returns parameters, it reads
the tree and returns candidates; the engine queues them, prunes what `screen` says is stale,
and scores the rest. Sources: the Orchestrator (an LLM) or the offline policy's knob moves; when
nothing scores above the threshold, the Critic's fallbacks (pairs, retests, a last resort); after
a decision, follow-ups (refinements and near misses together after a regression, constrained
retries after a crash, the LLM Critic's refined sub-actions).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field

from . import policy
from .agents import orchestrator
from .agents.team import Team
from .models import Ablation, Action, Candidate, DeadReason, Decision, FollowUp, Node, ProposedBy
from .tree import SearchTree

# What a last resort may bring back: a move that fell short once may pay from here (a knob that pays only
# with another's new value); one that broke accuracy or crashed here stays out.
STILL_DEAD = (DeadReason.BROKE_ACCURACY, DeadReason.CRASHED_HERE)


class Stage(BaseModel):
    """Candidates from one source, and how the engine takes them."""

    name: str
    candidates: list[Candidate] = Field(default_factory=list)
    dedupe: bool = Field(True, description="skip a candidate whose configuration is queued already")
    dead: dict[str, DeadReason] = Field(default_factory=dict, description="what screening prunes after it")
    logged: bool = Field(False, description="log the stage as an event (with the queued ids) when it queues any")


class Screen(BaseModel):
    """The queue judged from the current best: what is stale (with why), and what must be re-aimed at it."""

    prune: list[tuple[int, str]] = Field(default_factory=list)
    reaim: list[tuple[int, dict[str, Any]]] = Field(default_factory=list)
    keep: list[int] = Field(default_factory=list)


class Proposer:
    """Candidates for one campaign, from its tree (and its LLM team, when it has one)."""

    def __init__(self, tree: SearchTree, ablation: Ablation, team: Team | None = None) -> None:
        self.tree, self.ablation, self.team = tree, ablation, team

    def llm(self) -> bool:
        """The LLM agents can be asked."""
        return self.team is not None and self.team.available()

    # the first stage of every step ---------------------------------------------------------
    async def from_orchestrator(self, base: Node) -> list[Candidate] | None:
        """The Orchestrator's validated proposals; None when it could not be asked (the offline policy steps in)."""
        if self.team is None or not self.team.available():
            return None
        accepted = await orchestrator.propose(self.team, self.tree, limit=1 if self.ablation.single_agent else 4)
        if accepted is None:
            return None
        return [Candidate(action=a.action, parent=base.id, config=a.config,
                          priors={"proposer_estimate": a.estimate, "proposer_cost_s": a.cost_s, "task": a.task})
                for a in accepted]

    def moves(self, base: Node, dead: dict[str, DeadReason], priors: dict[str, Any] | None = None) -> list[Candidate]:
        """The offline policy's one-knob moves from `base` that are not dead."""
        return [Candidate(action=a, parent=base.id, config=policy.apply(base.config, a.change), priors=priors or {})
                for a in policy.propose(self.tree.spec, base.config, self.tree.evaluated_keys(),
                                        self.tree.constraints())
                if policy.config_key(a.change) not in dead]

    def branch_moves(self, best: Node) -> list[Candidate]:
        """Moves from the other measured configurations most worth expanding (UCB over branches), not re-aimed.

        A move measured short of the bar elsewhere is not dead here: the keep it ran with may have held it back.
        """
        spec = self.tree.spec
        out = []
        for base in self.tree.branches(spec.search.branches, spec.search.branch_exploration):
            dead = {k: why for k, why in self.tree.dead_moves(base).items() if why != DeadReason.REGRESSED}
            out += [c.model_copy(update={"priors": {"branch": True, "base": base.id}})
                    for c in self.moves(base, dead)]
        return out

    # when nothing scores above the threshold --------------------------------------------------
    def fallbacks(self) -> list[Callable[[Node, dict[str, DeadReason]], Stage]]:
        """The Critic's answers to "nothing is worth measuring", in order (none without the Critic)."""
        return [self.pairs, self.retests, self.branch_pairs, self.last_resort] if self.ablation.guarded else []

    def pairs(self, base: Node, dead: dict[str, DeadReason]) -> Stage:
        """Every promising move from here is measured: those not shown to regress get another try, in pairs."""
        pairs = policy.pair_moves(base.config, self.tree.open_moves(base), self.tree.evaluated_keys(),
                                  self.tree.constraints())
        return Stage(name="pairs", dead=dead, candidates=[
            Candidate(action=a, parent=base.id, config=policy.apply(base.config, a.change),
                      priors={"proposer_estimate": e}) for a, e in pairs])

    def branch_pairs(self, best: Node, dead: dict[str, DeadReason]) -> Stage:
        """Pairs on the other branches worth expanding: two moves that pay only together, and only without a keep
        that blocks them, are found there or nowhere."""
        spec, out = self.tree.spec, []
        for base in self.tree.branches(spec.search.branches, spec.search.branch_exploration):
            pairs = policy.pair_moves(base.config, self.tree.open_moves(base), self.tree.evaluated_keys(),
                                      self.tree.constraints())
            out += [Candidate(action=a, parent=base.id, config=policy.apply(base.config, a.change),
                              priors={"proposer_estimate": e, "branch": True, "base": base.id}) for a, e in pairs]
        return Stage(name="branch_pairs", candidates=out, dead=dead, logged=True)

    def retests(self, base: Node, dead: dict[str, DeadReason]) -> Stage:
        """One more look at the moves from here that noise may have sunk, their first repeats pooled with new ones."""
        out = []
        for node in self.tree.retestable(base):
            action = node.action().model_copy(update={
                "proposer": ProposedBy.CRITIC, "title": f"retest: {node.title}",
                "rationale": f"measured {node.gain:+.1%} (up to {node.gain_high:+.1%}) on "
                             f"{len(node.measurement_ids)} repeats: noise may have sunk it; its repeats are pooled "
                             "with new ones"})
            out.append(Candidate(action=action, parent=base.id, config=node.config,
                                 priors={"proposer_estimate": node.gain_high, "retest_of": node.id}))
        return Stage(name="retest", candidates=out, dedupe=False, dead=dead, logged=True)

    def last_resort(self, base: Node, dead: dict[str, DeadReason]) -> Stage:
        """Before stopping with budget left: the moves that fell short once, judged afresh on their priors."""
        if not dead:
            return Stage(name="last_resort", dead=dead)
        still = {k: why for k, why in dead.items() if why in STILL_DEAD}
        # Not deduplicated: a branch may hold the same configuration, queued from a base far below the best
        # (whichever runs first, the other is pruned as measured).
        return Stage(name="last_resort", candidates=self.moves(base, still, {"last_resort": True}), dead=still,
                     dedupe=False, logged=True)

    # the queue -------------------------------------------------------------------------
    def screen(self, base: Node, dead: dict[str, DeadReason]) -> Screen:
        """Each queued candidate judged from `base`: measured already, ruled out, dead, or re-aimed at `base`."""
        evaluated, constraints = self.tree.evaluated_keys(), self.tree.constraints()
        spec = self.tree.spec
        live = {n.id for n in self.tree.branches(spec.search.branches, spec.search.branch_exploration)} | {base.id}
        out = Screen()
        for node in self.tree.proposed():
            if node.priors.get("branch") and node.proposer == ProposedBy.OFFLINE and not node.pinned \
                    and self.tree.base_of(node) not in live:
                # The offline moves of a branch that fell out of the most promising: queued again if it returns.
                out.prune.append((node.id, "its branch is no longer among the most promising"))
                continue
            # A branch candidate extends its own configuration, never re-aimed at the best.
            config = node.config if node.priors.get("branch") else policy.apply(base.config, node.change)
            measured = policy.config_key(config) in evaluated and node.priors.get("retest_of") is None
            if measured or policy.violates(constraints, config):
                out.prune.append((node.id, "already measured, or ruled out by a constraint"))
                continue
            why = None if node.priors.get("branch") else dead.get(policy.config_key(node.change))
            if why is not None and node.proposer in (ProposedBy.OFFLINE, ProposedBy.INTROSPECTION):
                out.prune.append((node.id, why.value))
                continue
            if node.config != config:
                # Proposed under an earlier best: re-aimed at the current one.
                title = node.title if node.kind == "kernel" else policy.describe(node.change, base.config)
                out.reaim.append((node.id, {"config": config, "parent": base.id, "depth": base.depth + 1,
                                            "title": title, "priors": node.priors | {"base": base.id}}))
            out.keep.append(node.id)
        return out

    # after a decision -------------------------------------------------------------------
    def follow_ups(self, node: Node, decision: Decision) -> list[Candidate]:
        """What a decision calls for next: refinements after a regression, constrained retries after a crash, each
        from the configuration `node` extended (on a branch, that branch's)."""
        base = self.tree.base_node(node)
        out: list[Candidate] = []
        if decision.follow_up == FollowUp.REFINE:
            # The LLM Critic refined or pruned, with evidence; else the offline policy refines.
            out = list(decision.proposals) if decision.critic_answered else self._refinements(node, base,
                                                                                              decision.gain)
        elif decision.follow_up == FollowUp.RETRY:
            retry = self._retry(node, base, decision.retry_with, f"retry with the prerequisite {decision.retry_with}")
            out = [retry] if retry else []
        elif decision.follow_up == FollowUp.IN_CONTEXT and decision.crashed_knob:
            out = self._in_context(node, base, decision.crashed_knob, decision.suspects)
        branch = {"branch": True} if base.id != self.tree.best().id else {}
        return [c.model_copy(update={"priors": c.priors | {"base": base.id} | branch}) for c in out]

    def _refinements(self, node: Node, base: Node, gain: float | None) -> list[Candidate]:
        # One level of introspection: a refinement that regresses too is not halved again (a cliff stays a cliff).
        if not self.ablation.guarded or node.proposer == ProposedBy.INTROSPECTION:
            return []
        evaluated, constraints = self.tree.evaluated_keys(), self.tree.constraints()
        out = [Candidate(action=a, parent=node.id, config=policy.apply(base.config, a.change))
               for a in policy.refine_after_regression(self.tree.spec, base.config, node.action(), evaluated,
                                                       constraints)]
        if gain is not None and gain > 0 and node.kind == "config":
            # This unsettled gain together with the others measured on the kept path.
            found = policy.combine_near_misses(self.tree.spec, base.config, self.tree.near_misses(base), evaluated,
                                               constraints)
            if found is not None:
                action, estimate = found
                out.append(Candidate(action=action, parent=node.id, config=policy.apply(base.config, action.change),
                                     priors={"proposer_estimate": estimate}))
        return out

    def _retry(self, node: Node, base: Node, extra: dict[str, Any], rationale: str,
               priors: dict[str, Any] | None = None) -> Candidate | None:
        """`node`'s change together with `extra`, from `base`, unless measured before or ruled out."""
        change = node.change | extra
        config = policy.apply(base.config, change)
        if policy.config_key(config) in self.tree.evaluated_keys() or policy.violates(self.tree.constraints(),
                                                                                      config):
            return None
        action: Action = node.action().model_copy(update={"change": change, "proposer": ProposedBy.CRITIC,
                                                          "rationale": rationale,
                                                          "title": policy.describe(change, base.config)})
        return Candidate(action=action, parent=node.id, config=config, priors=priors or {})

    def _in_context(self, node: Node, base: Node, knob: str, context: dict[str, Any]) -> list[Candidate]:
        """Constrained retries of a value that crashed only in context: with each suspect stepped back by one.

        A step back costs what the keep that set the suspect gained (half of it for a part step); a retry
        expected to lose more than the value is worth is not proposed, nor any for a value that lost more
        than the keep bar where it ran.
        """
        share = float(node.score_terms.get("time_share", 1.0)) or 1.0
        measured = self.tree.measured_speedup(node)
        if measured is not None and measured * share < -self.tree.spec.search.min_gain:
            return []  # it lost clearly where it ran: no partner's loss is worth a retry
        # What it ran at says little (graphs pay only with a bigger batch): its worth is the KB's prior.
        worth = share * float(node.priors.get("kb_speedup", node.priors.get("speedup", 0.05)))
        path = self.tree.kept_path(base)
        out = []
        for suspect, earlier in context.items():
            value = policy.step_back(self.tree.spec, suspect, base.config.get(suspect), earlier)
            setter = next((n for n in reversed(path) if suspect in n.change), None)
            cost = max(0.0, setter.gain or 0.0) if setter is not None else 0.0
            partial = value != earlier  # stopped at a listed value short of the earlier one
            estimate = worth - (cost / 2 if partial else cost)
            if estimate > 0:
                retry = self._retry(node, base, {suspect: value},
                                    f"{knob}={node.change[knob]} ran without crashing before; it crashed once "
                                    f"{suspect} became {base.config.get(suspect)}: retry with {suspect}={value}",
                                    {"proposer_estimate": estimate / share})
                if retry is not None:
                    out.append(retry)
        return out

