"""The search tree, read-only: every question the proposer, the gate, the agents, the report and the TUI ask of it.

Nothing here writes; the engine is the one writer of the tree.
"""

from __future__ import annotations

import math
from collections import Counter
from itertools import pairwise
from typing import Any, NamedTuple

from . import policy
from .models import EVALUATED, Action, Constraint, DeadReason, Measurement, Node, ProposedBy, Status
from .scoring import LAYER_TARGETS, time_share
from .spec import CampaignSpec
from .store import StoreReader


class MeasuredMove(NamedTuple):
    """A move measured before: its target's speedup, the optimistic one, and how far that configuration was."""

    speedup: float
    high: float
    distance: int


class SearchTree:
    """The tree of one campaign, over its store and spec."""

    def __init__(self, store: StoreReader, spec: CampaignSpec) -> None:
        self.store, self.spec = store, spec

    def served_model(self) -> str:
        """The model name requests are sent to."""
        return self.spec.target.served_model_name or str(self.store.meta("model"))

    def workload(self) -> dict[str, Any]:
        """The benchmark workload at the primary operating point."""
        return self.spec.workload.bench(self.served_model())

    # nodes --------------------------------------------------------------------------
    def node(self, node_id: int) -> Node:
        """One node."""
        return self.store.node(node_id)

    def nodes(self, status: str | None = None) -> list[Node]:
        """Nodes in id order, optionally of one status."""
        return self.store.nodes(status)

    def root(self) -> Node | None:
        """The baseline: the server's defaults (None before it is measured)."""
        root = self.store.meta("root_node")
        return None if root is None else self.store.node(root)

    def best(self) -> Node:
        """The current best configuration: what every candidate is measured against, and the way back after a
        revert or a crash."""
        best = self.store.meta("best_node")
        if best is None:
            raise LookupError("the baseline has not been measured yet")
        return self.store.node(best)

    def kept_path(self, best: Node | None = None) -> list[Node]:
        """The nodes whose changes make up `best`'s configuration (the current best by default), from the root.

        On a branch that was not the best when it was expanded, a reverted node may be on the path: its
        change is in the configuration all the same.
        """
        node = best or self.best()
        path = [node]
        while (base := self.base_of(node)) is not None:
            node = self.store.node(base)
            path.append(node)
        return list(reversed(path))

    def base_of(self, node: Node) -> int | None:
        """The node whose configuration `node` extends: a follow-up names it; else the nearest ancestor it builds
        on: a kept one (whose knob it may move again), or a reverted one whose change it still holds (a refinement
        hangs under the reverted node it refines, but extends the best)."""
        if node.priors.get("base") is not None:
            return int(node.priors["base"])
        parent = node.parent
        while parent is not None:
            up = self.store.node(parent)
            if up.kind == "baseline" or up.status == Status.KEPT or (
                    up.status == Status.REVERTED and all(node.config.get(k) == v for k, v in up.change.items())):
                return up.id
            parent = up.parent
        return None

    def base_node(self, node: Node) -> Node:
        """The configuration `node` extends, as a node (the best when it names none)."""
        base = self.base_of(node)
        return self.best() if base is None else self.store.node(base)

    def value(self, node: Node) -> float | None:
        """`node`'s measured throughput over the root's; None when it has no valid measurement to build on."""
        if node.kind not in ("config", "baseline") or node.status not in (Status.KEPT, Status.REVERTED):
            return None
        if node.kind != "baseline" and node.gain is None:  # a failed gate or no valid repeat
            return None
        root = self.root()
        if root is None:
            return None
        mine, reference = self.mean_metric(node), self.mean_metric(root)
        return mine / reference if mine and reference else None

    def visit_counts(self) -> Counter[int | None]:
        """Evaluations made from each configuration, by node id: n[b] of the score."""
        return Counter(self.base_of(n) for n in self.actions_done())

    def visits(self, node: Node) -> int:
        """Evaluations made from `node`'s configuration."""
        return self.visit_counts()[node.id]

    def branches(self, limit: int, exploration: float) -> list[Node]:
        """Measured configurations other than the best, most worth expanding first: UCB over branches.

        A branch's value is its measured value over the best's, plus exploration * sqrt(ln N / (1 + n[b])):
        one measured close to the best and expanded little comes first.
        """
        best = self.best()
        top = self.value(best)
        if not top or limit <= 0:
            return []
        total, visits = len(self.actions_done()), self.visit_counts()
        ranked = []
        for n in self.store.nodes():
            value = self.value(n)
            if n.id == best.id or value is None or n.depth >= self.spec.search.max_depth:
                continue
            bonus = exploration * math.sqrt(math.log(total + 1) / (1 + visits[n.id]))
            ranked.append((value / top + bonus, n))
        return [n for _, n in sorted(ranked, key=lambda r: -r[0])[:limit]]

    def proposed(self) -> list[Node]:
        """Candidates waiting in the queue."""
        return [n for n in self.store.nodes(Status.PROPOSED) if n.kind != "baseline"]

    def actions_done(self) -> list[Node]:
        """Evaluated actions (the baseline is not one)."""
        return [n for n in self.store.nodes() if n.status in EVALUATED and n.kind != "baseline"]

    def evaluated_keys(self) -> set[str]:
        """Keys of every configuration measured so far."""
        return set(self.store.meta("evaluated_configs"))

    def queued_keys(self, base: dict[str, Any]) -> set[str]:
        """Keys of the configurations the proposed nodes would run from `base` (the current best)."""
        return {policy.config_key(n.config if n.priors.get("branch") else policy.apply(base, n.change))
                for n in self.store.nodes(Status.PROPOSED)}

    def constraints(self) -> list[Constraint]:
        """The Critic's constraints in force."""
        return self.store.constraints()

    def ran_configs(self) -> list[dict[str, Any]]:
        """Configurations a server started with and served (kept, reverted or invalid, never crashed)."""
        return [n.config for n in self.store.nodes() if n.status in (Status.KEPT, Status.REVERTED, Status.INVALID)]

    # measurements ------------------------------------------------------------------------
    def reference(self, node: Node) -> list[Measurement]:
        """What later candidates are compared with: the last `baseline_repeats` fresh repeats of `node` (after its
        keep and each restore), else its primary ones."""
        return self.store.reference(node.id, self.spec.search.baseline_repeats)

    def reference_paths(self, node: Node) -> list[str]:
        """The benchmark files of `node`'s reference repeats."""
        return [m.path for m in self.reference(node) if m.path]

    def mean_metric(self, node: Node, key: str = "output_throughput") -> float | None:
        """A node's mean primary metric (from its fresh repeats after a keep, when it has them)."""
        values = [m.metrics[key] for m in self.reference(node) if m.metrics.get(key) is not None]
        return sum(values) / len(values) if values else None

    def fingerprint(self, node: Node) -> dict[str, Any] | None:
        """The workload `node`'s first repeat ran: what every comparison with it must match."""
        rows = self.store.measurements(node.id, "primary")
        return rows[0].fingerprint if rows else None

    def latest_profile(self, node: Node) -> dict[str, float] | None:
        """Profiled time share per category at `node`, if it was profiled."""
        rows = self.store.measurements(node.id, "profile")
        return rows[-1].metrics["categories"] if rows else None

    def profile_path(self, node: Node) -> str | None:
        """The saved profile of `node`, if any."""
        rows = self.store.measurements(node.id, "profile")
        return rows[-1].path if rows else None

    def sweep_points(self, node: Node) -> dict[str, dict[str, Any]] | None:
        """`node`'s last sweep, by concurrency."""
        rows = self.store.measurements(node.id, "sweep")
        return rows[-1].metrics["points"] if rows else None

    def sweep_series(self, node: Node) -> list[tuple[float, float, int]]:
        """`node`'s last sweep as (throughput, interactivity, concurrency) points."""
        points = self.sweep_points(node) or {}
        return [(v["output_throughput"], v["interactivity"] or 0.0, int(k)) for k, v in points.items()]

    def broke_accuracy(self, node: Node) -> bool:
        """`node` failed the accuracy gate."""
        rows = self.store.measurements(node.id, "parity")
        return bool(rows) and not rows[-1].metrics["passed"]

    # what the evidence says about moves ---------------------------------------------------
    def dead_moves(self, base: Node) -> dict[str, DeadReason]:
        """One-knob moves not worth proposing again from `base`, with why.

        A move whose interval fell below the keep bar (it can never be kept alone) comes back once the
        profiled share of the category it targets has grown by half (the offline policy re-proposed the
        same losing value after every keep: a 1% move measured five times in one campaign), in a pair, or
        as a last resort when nothing else is left; a move on a whole-step layer targets no category whose
        share could grow, so only the last two. One that broke accuracy comes back once another knob of its
        layer has changed; one that crashed in context, once one of the partners it crashed with has changed.
        """
        profile = self.latest_profile(base)
        dead: dict[str, DeadReason] = {}
        ran = self.ran_configs()
        for n in self.store.nodes(Status.CRASHED):
            first = next(iter(n.change), None)
            if n.kind != "config" or first is None or set(n.change) - {first} - set(policy.prerequisite(
                    first, n.change[first])):
                continue
            # A value that crashed only in context stays out while its suspects keep their crash-time values.
            context = policy.crash_context(self.spec, n.config, first, ran)
            if context and all(policy.same_value(self.spec, base.config, n.config, k) for k in context):
                dead[policy.config_key(n.change)] = DeadReason.CRASHED_HERE
        for n in self.store.nodes(Status.REVERTED):
            if len(n.change) != 1 or n.kind != "config":
                continue
            if n.gain is None and self.broke_accuracy(n):  # a failed gate leaves no gain: no query otherwise
                # Outputs break through the move itself (a coarse quantisation) or through a partner in its
                # layer (an FP8 KV cache with an attention kernel that mishandles it): worth another try only
                # once another knob of that layer has changed.
                partners = {k.name for k in self.spec.knobs if k.layer == n.layer} - set(n.change)
                if all(base.config.get(k) == n.config.get(k) for k in partners):
                    dead[policy.config_key(n.change)] = DeadReason.BROKE_ACCURACY
                continue
            if n.gain_high is None or n.gain_high >= self.spec.search.min_gain:
                continue
            then = float(n.score_terms.get("time_share", 1.0))
            if n.layer not in LAYER_TARGETS or time_share(n.layer, profile) < 1.5 * then:
                dead[policy.config_key(n.change)] = DeadReason.REGRESSED
        return dead

    def crashed_before(self, node: Node) -> bool:
        """The same move crashed the server from another configuration."""
        key = policy.config_key(node.change)
        return any(policy.config_key(n.change) == key for n in self.store.nodes(Status.CRASHED) if n.id != node.id)

    def crash_context(self, node: Node, knob: str) -> dict[str, Any]:
        """The partners a crash of `knob` at `node` may need (see `policy.crash_context`); empty when none."""
        return policy.crash_context(self.spec, node.config, knob, self.ran_configs())

    def measured_from(self, node: Node, base: Node) -> bool:
        """`node` was measured from the values `base` still has for its knobs: its gain still means something."""
        parent = self.store.node(node.parent) if node.parent is not None else base
        return all(parent.config.get(k) == base.config.get(k) for k in node.change)

    def open_moves(self, base: Node) -> list[tuple[Action, float, float]]:
        """Reverted config moves (gain, upper bound) measured from `base`'s values and not shown to regress."""
        out = []
        for n in self.store.nodes(Status.REVERTED):
            if n.kind == "config" and n.gain is not None and n.gain_high is not None \
                    and n.gain_high >= 0 and self.measured_from(n, base) \
                    and (len(n.change) == 1 or n.proposer != ProposedBy.INTROSPECTION):  # not pairs of pairs
                out.append((n.action(), n.gain, n.gain_high))
        return out

    def near_misses(self, base: Node) -> list[tuple[Action, float]]:
        """Unsettled gains measured on the kept path to `base`, from its values, that `base` does not hold."""
        path = {n.id for n in self.kept_path(base)}
        return [(n.action(), float(n.gain)) for n in self.store.nodes(Status.REVERTED)
                if n.parent in path and n.kind == "config" and n.gain is not None and n.gain > 0
                and n.proposer != ProposedBy.INTROSPECTION and self.measured_from(n, base)
                and any(base.config.get(k) != v for k, v in n.change.items())]

    def retestable(self, base: Node) -> list[Node]:
        """Reverted config moves measured from `base` itself, not shown to regress and not retested yet."""
        nodes = self.store.nodes()
        done = {n.priors.get("retest_of") for n in nodes if n.priors.get("retest_of") is not None}
        return [n for n in nodes if n.status == Status.REVERTED and n.kind == "config" and n.parent == base.id
                and n.gain_high is not None and n.gain_high >= 0 and n.id not in done
                and n.priors.get("retest_of") is None]

    def measured_speedup(self, node: Node) -> float | None:
        """The speedup of its target the same move measured elsewhere (gain / share then); see `measured_move`."""
        found = self.measured_move(node)
        return found.speedup if found is not None else self.undone_keep(node)

    def measured_move(self, node: Node) -> MeasuredMove | None:
        """The same move measured from the configuration nearest to `node`'s: speedup of its target (gain / share
        then), its optimistic bound, and how many knobs that configuration differed in.

        A move re-proposed after a keep was scored as if never tried: a +1% move stood level with fresh ones.
        Times the target's share now, it is the gain expected from here; measured where other knobs differed,
        it may have been blocked (or helped) by them, which the distance tells.
        """
        key = policy.config_key(node.change)
        earlier = [n for n in self.store.nodes(Status.REVERTED) if n.gain is not None and n.kind == node.kind
                   and n.id != node.id and policy.config_key(n.change) == key]
        if not earlier:
            return None
        names = {k.name for k in self.spec.knobs} | set(node.config)

        def distance(n: Node) -> int:
            return sum(1 for k in names if not policy.same_value(self.spec, n.config, node.config, k))
        nearest = min(earlier, key=lambda n: (distance(n), -(n.finished_at or 0.0)))
        then = float(nearest.score_terms.get("time_share", 1.0)) or 1.0
        high = nearest.gain_high if nearest.gain_high is not None else nearest.gain
        return MeasuredMove(float(nearest.gain) / then, float(high) / then,  # type: ignore[arg-type]
                            distance(nearest))

    def undone_keep(self, node: Node) -> float | None:
        """For a move back to the value the last keep of its knob moved away from: that keep, reversed.

        Tuned GEMMs after aggressive ones won by 15% scored highest of all on the KB's record of "tuned".
        """
        if len(node.change) != 1 or node.kind != "config":
            return None
        ((knob, value),) = node.change.items()
        for before, kept in reversed(list(pairwise(self.kept_path()))):
            if knob in kept.change and kept.status == Status.KEPT:
                if kept.gain is None or not policy.same_value(self.spec, before.config, {knob: value}, knob):
                    return None
                then = float(kept.score_terms.get("time_share", 1.0)) or 1.0
                return -kept.gain / (1 + kept.gain) / then
        return None
