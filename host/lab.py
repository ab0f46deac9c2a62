"""The served stack under test: one server at a time, its measurements, and the way back to known-good."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from arbor.servers.serving import LaunchOutcome
from arbor.tools.bench.models import BenchResult
from arbor.tools.bench.parity import ParityReport
from arbor.tools.serving.launcher import ServerInfo

from . import critic, policy
from .errors import HostError, ServiceError
from .models import Node
from .services import Services
from .store import CampaignStore
from .tree import SearchTree

# The metrics of a benchmark repeat kept in the store (the full result is in its file).
POINT_METRICS = ("output_throughput", "median_ttft_ms", "median_tpot_ms", "p99_ttft_ms", "completed", "failed",
                 "max_concurrent_requests", "lengths_ok", "total_cached_tokens", "interactivity")


class Lab:
    """Starts and stops the campaign's server and measures it; every measurement lands in the store."""

    def __init__(self, svc: Services, store: CampaignStore, tree: SearchTree, say: Callable[[str], None],
                 refresh: bool = False) -> None:
        self.svc, self.store, self.tree, self.say = svc, store, tree, say
        self.refresh = refresh  # a fresh reference repeat of the best each time it is restored
        self.spec = tree.spec
        self.server: ServerInfo | None = None
        self.serving: str | None = None  # the key of the configuration the server runs, once known healthy

    # the server ----------------------------------------------------------------------
    async def stop(self) -> None:
        """Stop the running server, if any; processes that outlive it raise an alert."""
        if self.server is None:
            return
        server, self.server, self.serving = self.server, None, None
        stopped = await self.svc.stop(server.id)
        leftover = critic.check_leftovers(stopped.survivors)
        if leftover:
            self.store.add_alert(leftover.severity, leftover.kind, leftover.message, leftover.evidence)

    async def start(self, config: dict[str, Any], name: str) -> LaunchOutcome:
        """The stack started on `config` (the running one stopped first): the server, or why it failed."""
        await self.stop()
        outcome = await self.svc.launch(config, name)
        if outcome.ok:
            self.server = outcome.server
        return outcome

    def running(self) -> ServerInfo:
        """The server under test (a step that measures without one is a bug)."""
        if self.server is None:
            raise HostError("no server is running")
        return self.server

    def serves(self, config: dict[str, Any]) -> None:
        """Record that the running server serves `config` healthy (a keep, the baseline)."""
        self.serving = policy.config_key(config)

    async def restore(self, best: Node) -> None:
        """After a revert or crash: the last known-good configuration, running and verified healthy."""
        if self.server is not None and self.serving == policy.config_key(best.config):
            return
        for attempt in range(2):
            outcome = await self.start(best.config, f"known-good-{best.id}-{int(time.time())}")
            if outcome.ok:
                probe = await self.svc.probe(self.running().id)
                if probe.healthy:
                    self.serves(best.config)
                    self.store.event("known_good_restored", best.id, attempt=attempt + 1)
                    if self.refresh:
                        # The reference rolls: one read of a fast or slow spell must not bias every later
                        # comparison (a keep's fresh repeats that read 10% high sank 30 honest moves in a row).
                        await self.repeat(best, f"n{best.id}-ref-{int(time.time() * 1000)}", kind="reference")
                    return
        self.store.add_alert("critical", "known_good_unhealthy", "the last known-good configuration does not come "
                             "back healthy; the campaign stops", {"node": best.id}, best.id, needs_human=True)
        raise HostError("the known-good configuration no longer starts healthy; see the alerts")

    # measurements --------------------------------------------------------------------
    async def repeat(self, node: Node, label: str, kind: str = "primary") -> tuple[BenchResult, str]:
        """One repeat at the primary point, stored as a measurement of `node` (a `reference` one after a keep)."""
        result, path = await self.svc.bench(self.running().base_url, self.tree.workload(), label)
        metrics = {k: getattr(result, k) for k in POINT_METRICS}
        self.store.add_measurement(node.id, kind, metrics, path, result.fingerprint)
        check = result.input_len_check
        if not check.verified and not any(a.kind == "lengths_unverified" for a in self.store.alerts()):
            # Said once: no tokenizer is a property of the server, not a fault of any candidate.
            self.store.add_alert("info", "lengths_unverified", f"{check.note}; the Critic judges every candidate's "
                                 "lengths against the baseline's for the same prompts", {"result": path}, node.id)
        return result, path

    def set_aside(self, node: Node, why: str) -> None:
        """Set `node`'s last repeat aside (the Critic asked for a re-test)."""
        self.store.invalidate_measurement(self.store.node(node.id).measurement_ids[-1], why)

    async def parity_reference(self) -> None:
        """The baseline's greedy outputs, the accuracy gate's reference."""
        ref = await self.svc.parity_reference(self.running().base_url, self.tree.served_model())
        self.store.set_meta("parity_reference", ref.path)

    async def parity(self, node: Node) -> ParityReport:
        """The accuracy gate: greedy agreement with the baseline's outputs, stored as a measurement of `node`."""
        check = await self.svc.parity_check(self.running().base_url, self.tree.served_model(),
                                            str(self.store.meta("parity_reference")), self.spec.gates.min_agreement)
        self.store.add_measurement(node.id, "parity", {"agreement_rate": check.agreement_rate, "passed": check.passed,
                                                       "failed_requests": check.failed_requests})
        return check

    async def sweep(self, node: Node) -> dict[str, dict[str, Any]]:
        """A concurrency sweep of `node`: throughput, TTFT and interactivity per point."""
        w = self.spec.workload
        out = await self.svc.sweep(self.running().base_url, self.tree.workload(), w.sweep,
                                   w.sweep_prompts_per_concurrency, w.sweep_min_prompts, f"n{node.id}-sweep")
        points = {str(r.max_concurrency): {"output_throughput": r.output_throughput,
                                           "median_ttft_ms": r.median_ttft_ms, "interactivity": r.interactivity,
                                           "failed": r.failed} for r in out.sweep.results}
        frontier = [p.model_dump(mode="json") for p in out.sweep.points]
        self.store.add_measurement(node.id, "sweep", {"points": points, "frontier": frontier}, json.dumps(out.paths))
        return points

    async def profile(self, node: Node) -> str | None:
        """Where the time goes at `node`, under load; the saved profile's path (None when profiling failed)."""
        try:
            out = await self.svc.profile(self.running().pid, self.running().base_url, self.tree.workload(),
                                         self.spec.search.profile_seconds, f"n{node.id}")
        except ServiceError as exc:
            self.store.add_alert("warning", "profile_failed", f"profiling failed: {exc}", node=node.id)
            return None
        profile = out.result.profile
        top = [{"name": k.name, "share": k.share, "category": k.category} for k in profile.kernels[:10]]
        self.store.add_measurement(node.id, "profile", {"categories": profile.categories, "top": top,
                                                        "unknown": profile.unknown[:20]}, out.path)
        return out.path

    # after a keep ---------------------------------------------------------------------
    async def remeasure(self, node: Node, before: Node) -> None:
        """Fresh repeats of a kept configuration, the reference later candidates are compared with.

        The repeats that won the keep were selected for reading high (the winner's curse); compared with
        them, the next real gains look smaller than they are and fail to settle. Every later candidate is
        compared with this reference, so it gets as many repeats as the defaults did.
        """
        for i in range(self.spec.search.baseline_repeats):
            await self.repeat(node, f"n{node.id}-ref{i + 1}", kind="reference")
        cmp = await self.svc.compare(self.tree.reference_paths(before), self.tree.reference_paths(node),
                                     self.spec.search.confidence, False)
        self.store.event("keep_remeasured", node.id, gain=cmp.rel_change, low=cmp.ci_low, high=cmp.ci_high,
                         decided=node.gain)
        self.say(f"  remeasured: {cmp.rel_change:+.1%} over the previous best (the keep read {node.gain:+.1%})")

    async def reprofile(self, node: Node, before: Node) -> None:
        """Profile the new best and log whether the bottleneck moved since `before`."""
        previous = self.tree.profile_path(before)
        path = await self.profile(node)
        if not (path and previous):
            return
        try:
            moved = await self.svc.diff(previous, path)
        except ServiceError:
            return
        self.store.event("profile_diff", node.id, top_before=moved.top_before, top_after=moved.top_after,
                         bottleneck_moved=moved.bottleneck_moved,
                         shifts=[s.model_dump() for s in moved.shifts[:4]])
        if moved.bottleneck_moved:
            self.say(f"  bottleneck moved: {moved.top_before} -> {moved.top_after}")

    async def record_best(self, root: Node, best: Node) -> None:
        """The best configuration against the defaults, and its launch command, kept for the report."""
        try:
            overall = None if root.id == best.id else await self.svc.compare(
                self.tree.reference_paths(root), self.tree.reference_paths(best), self.spec.search.confidence)
            command = await self.svc.launch_command(best.config)
        except ServiceError as exc:
            self.store.add_alert("warning", "report_figures", f"the best configuration's figures: {exc}", node=best.id)
            return
        self.store.set_meta("overall_gain", overall)
        self.store.set_meta("launch_command", command.command)
