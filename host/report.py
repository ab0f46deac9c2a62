"""The campaign report: Markdown, JSON and a Pareto plot (SVG), from the campaign store alone."""

from __future__ import annotations

import json
from typing import Any

from .models import EVALUATED, Status
from .store import StoreReader
from .tree import SearchTree


def pareto_svg(series: dict[str, list[tuple[float, float, int]]]) -> str:
    """Output tok/s per GPU (x) against tok/s per user (y), one polyline per configuration."""
    return line_svg({label: [(x, y, f"c={conc}") for x, y, conc in pts] for label, pts in series.items()},
                    "output tok/s per GPU", "tok/s per user (1000 / TPOT)", sort=True)


def line_svg(series: dict[str, list[tuple[float, float, str | None]]], x_label: str, y_label: str,
             sort: bool = False, markers: bool = True) -> str:
    """A small SVG line plot: one polyline per series, points optionally annotated."""
    width, height, pad = 640, 420, 60
    points = [p for pts in series.values() for p in pts]
    if not points:
        return "<svg xmlns='http://www.w3.org/2000/svg'/>"
    max_x = max(p[0] for p in points) * 1.1 or 1.0
    max_y = max(p[1] for p in points) * 1.1 or 1.0

    def xy(x: float, y: float) -> tuple[float, float]:
        return pad + x / max_x * (width - 2 * pad), height - pad - y / max_y * (height - 2 * pad)

    colours = ["#888888", "#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e"]
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' font-family='sans-serif' "
             "font-size='12'>", f"<rect width='{width}' height='{height}' fill='white'/>",
             f"<line x1='{pad}' y1='{height - pad}' x2='{width - pad}' y2='{height - pad}' stroke='black'/>",
             f"<line x1='{pad}' y1='{pad}' x2='{pad}' y2='{height - pad}' stroke='black'/>",
             f"<text x='{width / 2}' y='{height - 15}' text-anchor='middle'>{x_label}</text>",
             f"<text x='15' y='{height / 2}' transform='rotate(-90 15 {height / 2})' text-anchor='middle'>"
             f"{y_label}</text>"]
    for tick in range(5):
        tx, ty = max_x * tick / 4, max_y * tick / 4
        px, _ = xy(tx, 0)
        _, py = xy(0, ty)
        parts.append(f"<text x='{px}' y='{height - pad + 15}' text-anchor='middle'>{_tick(tx, max_x)}</text>")
        parts.append(f"<text x='{pad - 5}' y='{py + 4}' text-anchor='end'>{_tick(ty, max_y)}</text>")
    for i, (label, pts) in enumerate(series.items()):
        colour = colours[i % len(colours)]
        ordered = sorted(pts) if sort else list(pts)
        coords = [xy(x, y) for x, y, _ in ordered]
        parts.append(f"<polyline fill='none' stroke='{colour}' stroke-width='2' points='"
                     + " ".join(f"{a:.1f},{b:.1f}" for a, b in coords) + "'/>")
        for (a, b), (_, _, note) in zip(coords, ordered, strict=True):
            if markers:
                parts.append(f"<circle cx='{a:.1f}' cy='{b:.1f}' r='4' fill='{colour}'/>")
            if note:
                parts.append(f"<text x='{a + 6:.1f}' y='{b - 6:.1f}' fill='{colour}'>{note}</text>")
        parts.append(f"<text x='{width - pad - 150}' y='{pad + 18 * i}' fill='{colour}'>{label}</text>")
    parts.append("</svg>")
    return "\n".join(parts)


def _tick(value: float, top: float) -> str:
    return f"{value:.0f}" if top >= 10 else f"{value:.2f}"


def build_report(store: StoreReader) -> dict[str, Any]:
    """Everything the report says, as data."""
    spec = store.meta("spec")
    tree = SearchTree(store, spec)
    nodes = store.nodes()
    root = tree.root()
    best = tree.best() if store.meta("best_node") is not None else None
    overall = store.meta("overall_gain")
    summary = {
        "campaign": store.meta("campaign_id"), "spec": spec.name, "state": store.meta("state"),
        "elapsed_s": store.meta("elapsed_s"),
        "actions": sum(1 for n in nodes if n.kind != "baseline" and n.status in EVALUATED),
        "kept": sum(1 for n in nodes if n.kind != "baseline" and n.status == Status.KEPT),
        "reverted": sum(1 for n in nodes if n.status == Status.REVERTED),
        "crashed": sum(1 for n in nodes if n.status == Status.CRASHED),
        "invalid": sum(1 for n in nodes if n.status == Status.INVALID),
    }
    events = store.events()
    stops = [e.data.get("reason") for e in events if e.kind == "stopping"]
    summary["stopped"] = stops[-1] if stops else None
    summary["stop_bound"] = store.meta("stop_bound")
    primary = {}
    for label, node in (("baseline", root), ("best", best)):
        if node:
            primary[label] = {"node": node.id, "config": node.config,
                              "output_throughput": tree.mean_metric(node, "output_throughput"),
                              "median_ttft_ms": tree.mean_metric(node, "median_ttft_ms"),
                              "median_tpot_ms": tree.mean_metric(node, "median_tpot_ms")}
    return {
        "summary": summary, "primary": primary,
        "overall_gain": overall.model_dump() if overall is not None else None,
        "kept_path": [{"node": n.id, "title": n.title, "gain": n.gain, "gain_low": n.gain_low,
                       "gain_high": n.gain_high} for n in (tree.kept_path(best) if best else [])],
        "keeps_undone": [{"node": e.node, "undone": e.data.get("titles", [])} for e in events
                         if e.kind == "keeps_undone"],
        "reverted": [{"node": n.id, "title": n.title, "diagnosis": n.diagnosis, "gain": n.gain}
                     for n in nodes if n.status == Status.REVERTED],
        "crashed": [{"node": n.id, "title": n.title, "diagnosis": n.diagnosis} for n in nodes
                    if n.status == Status.CRASHED],
        "invalid": [{"node": n.id, "title": n.title, "diagnosis": n.diagnosis} for n in nodes
                    if n.status == Status.INVALID],
        "constraints": [c.model_dump() for c in store.constraints()],
        "alerts": [a.model_dump() for a in store.alerts()],
        "sweep": {"baseline": tree.sweep_series(root) if root else [],
                  "best": tree.sweep_series(best) if best else []},
        "launch_command": store.meta("launch_command"),
        "agents": {"backend": spec.agent.backend, "ablation": store.meta("ablation").model_dump(),
                   "llm_stopped": store.meta("llm_stopped"), "by_role": store.llm_totals(),
                   "proposed_by": {p: sum(1 for n in nodes if n.proposer == p) for p in sorted({n.proposer.value
                                                                                                for n in nodes})}},
    }


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1%}"


def _num(value: float | None, fmt: str = ".1f") -> str:
    return "-" if value is None else format(value, fmt)


def render_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown."""
    s, p, g = report["summary"], report["primary"], report["overall_gain"]
    lines = [f"# Campaign {s['campaign']} ({s['spec']})", "",
             f"{s['actions']} actions in {s['elapsed_s'] or 0:.0f} s: {s['kept']} kept, {s['reverted']} reverted, "
             f"{s['crashed']} crashed, {s['invalid']} invalid."
             + (f" Stopped: {s['stopped']}." if s.get("stopped") else ""), "", "## Primary operating point", "",
             "| | output tok/s | TTFT p50 ms | TPOT p50 ms |", "|---|---|---|---|"]
    for label in ("baseline", "best"):
        if label in p:
            row = p[label]
            lines.append(f"| {label} (node {row['node']}) | {_num(row['output_throughput'])} | "
                         f"{_num(row['median_ttft_ms'], '.0f')} | {_num(row['median_tpot_ms'])} |")
    if g:
        lines += ["", f"Gain of the best configuration over the defaults: **{_pct(g['rel_change'])}** "
                      f"({g['confidence']:.0%} interval {_pct(g['ci_low'])} to {_pct(g['ci_high'])}, "
                      f"{g['n_baseline']} + {g['n_candidate']} repeats)."]
    lines += ["", "## Across the sweep", "", "![Pareto frontier](pareto.svg)", "",
              "| concurrency | baseline tok/s | best tok/s |", "|---|---|---|"]
    base_pts = {c: x for x, _, c in report["sweep"]["baseline"]}
    best_pts = {c: x for x, _, c in report["sweep"]["best"]}
    for conc in sorted(set(base_pts) | set(best_pts)):
        lines.append(f"| {conc} | {_num(base_pts.get(conc))} | {_num(best_pts.get(conc))} |")
    lines += ["", "## Kept path", ""]
    for step in report["kept_path"]:
        lines.append(f"- node {step['node']}: {step['title']} {_pct(step['gain'])} "
                     f"[{_pct(step['gain_low'])}, {_pct(step['gain_high'])}]")
    if report["keeps_undone"]:
        lines += ["", "## Keeps undone", "", "A branch without them measured higher:", ""]
        lines += [f"- node {u['node']} undid {', '.join(u['undone'])}" for u in report["keeps_undone"]]
    for title, key in (("Reverted", "reverted"), ("Crashed", "crashed"), ("Invalid measurements", "invalid")):
        if report[key]:
            lines += ["", f"## {title}", ""]
            lines += [f"- node {n['node']}: {n['title']}: {n['diagnosis']}" for n in report[key]]
    if report["alerts"]:
        lines += ["", "## Critic alerts", ""]
        lines += [f"- [{a['severity']}] {a['kind']}: {a['message']}" for a in report["alerts"]]
    agents = report["agents"]
    if agents["by_role"] or agents["backend"] != "offline":
        lines += ["", "## Agents", "", f"Backend {agents['backend']}; proposals by "
                  + ", ".join(f"{k} {v}" for k, v in agents["proposed_by"].items())
                  + (f". LLM work stopped: {agents['llm_stopped']}" if agents["llm_stopped"] else "") + ".", "",
                  "| role | calls | input | output | cache read | cache write | USD |", "|---|---|---|---|---|---|---|"]
        lines += [f"| {role} | {t['calls']} | {t['input_tokens']} | {t['output_tokens']} | {t['cache_read_tokens']} | "
                  f"{t['cache_write_tokens']} | {t['cost_usd']:.4f} |" for role, t in agents["by_role"].items()]
    if report["launch_command"]:
        lines += ["", "## Best configuration", "", "```sh", report["launch_command"], "```"]
    return "\n".join(lines) + "\n"


def write_report(store: StoreReader) -> dict[str, Any]:
    """Write report.md, report.json and pareto.svg into the run folder; return the report data."""
    report = build_report(store)
    run_dir = store.run_dir
    (run_dir / "report.json").write_text(json.dumps(report, indent=2, default=str))
    (run_dir / "report.md").write_text(render_markdown(report))
    series = {"baseline (defaults)": report["sweep"]["baseline"], "best": report["sweep"]["best"]}
    (run_dir / "pareto.svg").write_text(pareto_svg(series))
    return report
