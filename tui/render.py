"""How the TUI shows things: node labels, the filter, the status line, the node detail, the Pareto plot."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from arbor.host.models import Alert, Node
from arbor.host.store import NodeRow as Row

from .source import RunSource, Status

STYLE = {"kept": ("✔", "bold green"), "reverted": ("↺", "yellow"), "crashed": ("✖", "bold red"),
         "pruned": ("✂", "dim"), "running": ("▶", "bold cyan"), "proposed": ("○", "white"),
         "invalid": ("⚠", "magenta")}
SEVERITY = {"info": "cyan", "warning": "yellow", "error": "red", "critical": "bold white on red"}


def pct(value: float | None) -> str:
    return "" if value is None else f"{value:+.1%}"


def node_label(node: Row, on_path: bool) -> Text:
    """One tree line: icon, id, title, gain with interval, score, and ⑂ for a move on another branch."""
    icon, style = STYLE.get(node.status, ("?", ""))
    text = Text()
    text.append(f"{icon} ", style)
    text.append(f"#{node.id} ", "dim")
    text.append(node.title, "bold green" if on_path else ("dim" if node.status == "pruned" else ""))
    if node.gain is not None:
        colour = "green" if node.gain > 0 else "red"
        text.append(f" {pct(node.gain)}", colour)
        if node.gain_low is not None and node.gain_high is not None:
            text.append(f" [{pct(node.gain_low)},{pct(node.gain_high)}]", "dim")
    elif node.status == "proposed" and node.score is not None:
        text.append(f" s={node.score:.3g}", "dim")
    if node.pinned and node.status == "proposed":
        text.append(" 📌")
    if node.branch:
        text.append(" ⑂", "cyan")  # expands a configuration other than the best's: the tree searched, not climbed
    return text


@dataclass
class Filter:
    """`status:crashed cat:config some words`: every part must match."""

    statuses: set[str]
    categories: set[str]
    words: list[str]

    @classmethod
    def parse(cls, text: str) -> Filter:
        statuses, categories, words = set(), set(), []
        for part in text.split():
            key, _, value = part.partition(":")
            if key in ("status", "s") and value:
                statuses |= set(value.split(","))
            elif key in ("cat", "category", "c") and value:
                categories |= set(value.split(","))
            else:
                words.append(part.lower())
        return cls(statuses, categories, words)

    def active(self) -> bool:
        return bool(self.statuses or self.categories or self.words)

    def match(self, node: Row) -> bool:
        if self.statuses and node.status not in self.statuses:
            return False
        if self.categories and node.category not in self.categories:
            return False
        hay = f"{node.title} {node.rationale} {node.diagnosis or ''} {json.dumps(node.change)}".lower()
        return all(w in hay for w in self.words)


def clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def status_line(s: Status) -> Text:
    """The status bar."""
    state = "STOPPING" if s.stop_requested and s.state == "running" else "PAUSED" if s.paused and \
        s.state == "running" else s.state.upper()
    style = {"RUNNING": "bold green", "PAUSED": "bold black on yellow", "FINISHED": "bold blue"}.get(state, "bold")
    text = Text()
    text.append(f" {state} ", style)
    text.append(f" {s.name}  ")
    text.append(f"⏱ {clock(s.elapsed_s)} / {clock(s.budget_s)} (left {clock(s.budget_s - s.elapsed_s)})  ")
    text.append(f"actions {s.actions}/{s.max_actions}  ")
    text.append("best ")
    text.append(pct(s.best_gain) or "-", "bold green" if (s.best_gain or 0) > 0 else "")
    if s.best_node is not None:
        text.append(f" (#{s.best_node})")
    text.append(f"  LLM ${s.llm_usd:.2f}" + (f"/${s.llm_budget:.2f}" if s.llm_budget else "") + f" {s.backend}")
    return text


def _kv(rows: list[tuple[str, Any]]) -> Table:
    table = Table.grid(padding=(0, 1))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for key, value in rows:
        table.add_row(key, value if isinstance(value, Text) else Text(str(value)))
    return table


def config_diff(parent: Node | None, node: Node) -> list[str]:
    """What the node changes, against its parent's configuration."""
    before = parent.config if parent else {}
    keys = sorted(set(before) | set(node.config))
    return [f"{k}: {before.get(k, 'default')} -> {node.config.get(k, 'default')}" for k in keys
            if before.get(k) != node.config.get(k)]


def detail(src: RunSource, node: Node) -> RenderableType:
    """Everything about one node, for the detail panel."""
    icon, style = STYLE.get(node.status, ("?", ""))
    parts: list[RenderableType] = [Text(f"{icon} #{node.id} {node.title}", style + " bold")]
    parts.append(_kv([("status", node.status), ("kind", f"{node.kind} ({node.category}/{node.layer})"),
                      ("proposer", node.proposer), ("parent", node.parent), ("attempts", node.attempts),
                      ("rationale", node.rationale or "-"), ("diagnosis", node.diagnosis or "-")]))
    if node.gain is not None:
        interval = f"  interval {pct(node.gain_low)} to {pct(node.gain_high)}" if node.gain_low is not None else ""
        parts.append(Text(f"gain {pct(node.gain)}{interval}", "bold green" if node.gain > 0 else "bold red"))
    parent = src.node(node.parent) if node.parent is not None else None
    diff = config_diff(parent, node)
    parts += [Text("\nConfiguration change", "bold underline"), Text("\n".join(diff) or "(none)")]
    if node.score_terms:
        t = node.score_terms
        parts.append(Text("\nScore = U·(R·(1+G)−1)·(1−p_crash)·(1−p_regress)/C + explore", "bold underline"))
        parts.append(_kv([(k, f"{t[k]:.4g}" if isinstance(t.get(k), float) else t.get(k)) for k in (
            "score", "urgency", "time_share", "speedup", "multiplier", "gain", "p_crash", "p_regress", "cost_s",
            "cost", "relative", "bound", "exploit", "explore", "n_total", "n_category", "n_branch", "prior_level",
            "prior_n")
            if k in t]))
    if node.priors:
        p = node.priors
        parts.append(Text("\nPriors", "bold underline"))
        parts.append(_kv([(k, p[k]) for k in ("source", "level", "n", "speedup", "kb_speedup", "estimate",
                                               "proposer_estimate", "proposer_cost_s", "p_crash", "p_regress",
                                               "multiplier", "entries", "stale_entries") if k in p]))
    rows = src.measurements(node.id)
    if rows:
        parts.append(Text("\nMeasurements", "bold underline"))
        table = Table(show_edge=False, pad_edge=False)
        for col in ("id", "kind", "tok/s", "TTFT p50", "TPOT p50", "note"):
            table.add_column(col)
        for m in rows:
            x = m.metrics
            note = "" if m.valid else "set aside"
            if m.kind == "parity":
                note = f"agreement {x.get('agreement_rate', 0):.0%} {'passed' if x.get('passed') else 'FAILED'}"
            elif m.kind == "profile":
                top = sorted(x.get("categories", {}).items(), key=lambda kv: -kv[1])[:3]
                note = ", ".join(f"{k} {v:.0%}" for k, v in top)
            elif m.kind == "reference":
                note = "fresh repeat after the keep"
            elif m.kind == "sweep":
                note = " ".join(f"c{k}:{v['output_throughput']:.0f}" for k, v in x.get("points", {}).items())
            table.add_row(str(m.id), m.kind, _num(x.get("output_throughput")), _num(x.get("median_ttft_ms")),
                          _num(x.get("median_tpot_ms")), note)
        parts.append(table)
    events = src.node_events(node.id)
    log = [line for e in events if e.kind == "alert" for line in [e.data.get("message", "")]]
    for alert in src.alerts():
        if alert.node == node.id and alert.evidence.get("lines"):
            log += alert.evidence["lines"]
    if log:
        parts += [Text("\nLog and alerts", "bold underline"), Text("\n".join(log[-20:]))]
    patch = src.patch(node.id)
    if patch:
        parts += [Text("\nPatch", "bold underline"), Text("\n".join(patch.splitlines()[:80]))]
    runs = [e for e in events if e.kind in ("agent_run", "specialist_report", "critic_approved", "critic_refined",
                                            "proposal_rejected")]
    calls = src.llm_calls(node.id)
    if runs or calls:
        parts.append(Text("\nAgents", "bold underline"))
        for e in runs:
            d = e.data
            if e.kind == "agent_run":
                parts.append(Text(f"{d.get('role')} ({d.get('model')}), {d.get('turns')} turns: "
                                  f"{(d.get('text') or '').strip()[:500]}"))
                for call in d.get("calls", []):
                    mark = "✖" if call.get("is_error") else "→"
                    parts.append(Text(f"  {mark} {call['name']}({json.dumps(call.get('input'))[:160]}) "
                                      f"{call.get('result', '')[:160]}", "red" if call.get("is_error") else "dim"))
            else:
                parts.append(Text(f"{e.kind}: {json.dumps(d)[:400]}", "dim"))
        spent = sum(c["cost_usd"] for c in calls)
        if calls:
            parts.append(Text(f"{len(calls)} LLM calls, {sum(c['input_tokens'] for c in calls)} in / "
                              f"{sum(c['output_tokens'] for c in calls)} out tokens, ${spent:.4f}", "dim"))
    return Group(*parts)


def alert_detail(alert: Alert) -> Text:
    """One alert in full: severity, message, evidence, state (enter jumps to its node)."""
    text = Text()
    text.append(f"[{alert.severity}] {alert.kind}", SEVERITY.get(alert.severity, ""))
    text.append(f"  node #{alert.node}" if alert.node is not None else "")
    text.append(f"\n{alert.message}\n")
    for key, value in alert.evidence.items():
        lines = value if isinstance(value, list) else [value]
        text.append(f"{key}: ", "bold")
        text.append("\n  ".join(str(v)[:300] for v in lines[:12]) + "\n", "dim")
    if alert.answer:
        text.append(f"answered: {alert.answer}\n", "green")
    elif alert.acked_at:
        text.append("acknowledged\n", "green")
    elif alert.needs_human:
        text.append("needs a human: press e to answer\n", "bold red")
    return text


def _num(value: Any) -> str:
    return f"{value:.1f}" if isinstance(value, (int, float)) else ""


def pareto_plot(series: dict[str, list[tuple[float, float, int]]], width: int = 56, height: int = 12) -> Text:
    """Throughput (x) against interactivity (y), one marker per sweep point: b baseline, B best."""
    points = [(x, y, label) for label, pts in series.items() for x, y, _ in pts]
    if not points:
        return Text("no sweep yet")
    xmax = max(x for x, _, _ in points) or 1.0
    ymax = max(y for _, y, _ in points) or 1.0
    grid = [[" "] * width for _ in range(height)]
    for x, y, label in points:
        col = min(width - 1, int(x / xmax * (width - 1)))
        row = height - 1 - min(height - 1, int(y / ymax * (height - 1)))
        mark = "B" if label == "best" else "b"
        grid[row][col] = "*" if grid[row][col] not in (" ", mark) else mark
    text = Text(f"interactivity (tok/s/user) up to {ymax:.1f}\n")
    for row in grid:
        text.append("│" + "".join(row) + "\n")
    text.append("└" + "─" * width + "\n")
    text.append(f" output throughput (tok/s) up to {xmax:.1f}    b = baseline, B = best, * = both")
    return text
