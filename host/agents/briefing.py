"""What agents are told: the knob space, the tree, constraints, hardware, as compact text."""

from __future__ import annotations

import os
from typing import Any

from ..models import EVALUATED, Node, Status
from ..spec import CampaignSpec
from ..tree import SearchTree


def hardware(spec: CampaignSpec, context: dict[str, Any]) -> str:
    """The device, cores and memory the target runs on."""
    try:
        with open("/proc/meminfo") as f:
            mem_kib = int(f.readline().split()[1])
    except (OSError, ValueError, IndexError):
        mem_kib = 0
    return (f"{context.get('hardware')}; {os.cpu_count()} cores; {mem_kib / 2**20:.0f} GiB RAM; "
            f"stack {spec.target.stack} {context.get('framework_version') or ''}").strip()


def target(spec: CampaignSpec, context: dict[str, Any]) -> str:
    """The stack and the model it serves."""
    return f"{spec.target.stack} serving {context.get('model')}"


def knobs(spec: CampaignSpec) -> str:
    """One line per knob: type, domain, values to try, default, category/layer."""
    out = []
    for k in spec.knobs:
        domain = k.choices if k.type == "choice" else f"[{k.min}, {k.max}]" if k.type in ("int", "float") else k.type
        out.append(f"- {k.name}: {k.type} {domain}; suggested {k.values}; default {k.default}; "
                   f"{k.category}/{k.layer}. {k.description or ''}".rstrip())
    for t in spec.agent.kernel_tasks:
        out.append(f"- kernel task {t.name!r} ({t.category}/{t.layer}): {t.description or 'a rewritable kernel'}")
    return "\n".join(out)


def node_line(n: Node) -> str:
    """A node as one line of the tree."""
    gain = "" if n.gain is None else f" gain {n.gain:+.1%}"
    if n.gain_low is not None and n.gain_high is not None:
        gain += f" [{n.gain_low:+.1%}, {n.gain_high:+.1%}]"
    return (f"node:{n.id} (parent {n.parent}) {n.status}{gain}: {n.title} {n.change} by {n.proposer}"
            + (f" — {n.diagnosis}" if n.diagnosis else ""))


def tree(t: SearchTree, limit: int = 40) -> str:
    """Evaluated and queued nodes, newest last."""
    nodes = [n for n in t.nodes() if n.status in (*EVALUATED, Status.PROPOSED, Status.PRUNED)]
    return "\n".join(node_line(n) for n in nodes[-limit:]) or "(only the baseline)"


def constraints(t: SearchTree) -> str:
    """The Critic's constraints."""
    return "\n".join(f"- {r.knob} {r.op} {r.value!r}" + (f" unless {r.requires}" if r.requires else "")
                     + f": {r.reason}" for r in t.constraints()) or "(none)"


def metrics(t: SearchTree, node: Node) -> dict[str, Any]:
    """The node's mean primary metrics."""
    rows = t.store.measurements(node.id, "primary")
    if not rows:
        return {}
    keys = ("output_throughput", "median_ttft_ms", "median_tpot_ms")
    return {k: round(sum(r.metrics[k] for r in rows) / len(rows), 2) for k in keys}


def similar(t: SearchTree, category: str, limit: int = 10) -> str:
    """Earlier attempts in a category, for a specialist's or the Critic's history."""
    rows = [n for n in t.actions_done() if n.category == category]
    return "\n".join(node_line(n) for n in rows[-limit:]) or "(none yet)"
