"""The Textual app: attach to a run, watch the tree grow, read why, and steer."""

from __future__ import annotations

from bisect import insort
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.css.query import NoMatches
from textual.widgets import DataTable, Footer, Input, Label, RichLog, Sparkline, Static, TabbedContent, TabPane, Tree
from textual.widgets.tree import TreeNode

from arbor.host.errors import HostError
from arbor.host.store import NodeRow as Row

from . import render
from .screens import AnswerScreen, ConfirmScreen, HelpScreen, InjectScreen, RunPicker
from .source import Delta, RunSource, recent_runs

STATUS_CYCLE = ["", "status:proposed", "status:kept", "status:reverted", "status:crashed", "status:running"]


class RunTree(Tree[int]):
    """The search tree. Label widths are cached: Textual measures every line on each change, which at
    10,000 nodes costs more than the update itself."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._widths: dict[int, tuple[object, bool, int]] = {}

    def get_label_width(self, node: TreeNode[int]) -> int:
        cached = self._widths.get(node.id)
        if cached is not None and cached[0] is node._label and cached[1] == node.allow_expand:
            return cached[2]
        width = super().get_label_width(node)
        self._widths[node.id] = (node._label, node.allow_expand, width)
        return width


class ArborApp(App[None]):
    """`arbor-host tui [RUN_DIR]`."""

    CSS_PATH = "arbor.tcss"
    TITLE = "Arbor"
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("p", "toggle_pause", "Pause/Resume"),
        Binding("x", "prune", "Prune"),
        Binding("X", "prune_subtree", "Prune subtree", show=False),
        Binding("v", "veto", "Veto", show=False),
        Binding("i", "pin", "Pin"),
        Binding("n", "inject", "Inject"),
        Binding("a", "ack", "Ack", show=False),
        Binding("e", "answer", "Answer"),
        Binding("S", "stop", "Stop", show=False),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("f", "cycle_status", "Status filter", show=False),
        Binding("1", "tab('node')", "Node", show=False),
        Binding("2", "tab('alerts')", "Alerts", show=False),
        Binding("3", "tab('charts')", "Charts", show=False),
        Binding("4", "tab('events')", "Events", show=False),
    ]

    def __init__(self, run_dir: Path | None = None, runs_root: Path | None = None, poll_s: float = 1.0) -> None:
        super().__init__()
        self.run_dir, self.runs_root, self.poll_s = run_dir, runs_root or Path("runs"), poll_s
        self.src: RunSource | None = None
        self.nodes: dict[int, Row] = {}
        self.kids: dict[int | None, list[int]] = {}
        self.shown: set[int] = set()
        self.tree_nodes: dict[int, TreeNode[int]] = {}
        self.on_path: set[int] = set()
        self.filter = render.Filter.parse("")
        self.status_index = 0
        self.escalation: int | None = None
        self.t0: float | None = None
        self.sent: dict[int, str] = {}  # commands waiting for the engine's answer: id -> what was sent
        self.answers: list[str] = []  # the engine's answers to this app's commands, oldest first

    def main(self, selector: Any, kind: Any = None) -> Any:
        """A widget of the main screen, whatever dialog is on top of it."""
        screen = self.screen_stack[0]
        return screen.query_one(selector) if kind is None else screen.query_one(selector, kind)

    # layout -------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static(id="status")
        yield Static(id="banner")
        with Horizontal(id="main"):
            with Vertical(id="left"):
                tree = RunTree("campaign", id="tree")
                tree.show_root = False
                tree.guide_depth = 2
                yield tree
                yield Label("", id="filter-label")
                yield Input(placeholder="status:crashed cat:config words — enter applies, esc clears", id="filter")
            with TabbedContent(id="tabs", initial="node"):
                with TabPane("Node", id="node"), VerticalScroll():
                    yield Static("Pick a node in the tree.", id="detail")
                with TabPane("Alerts", id="alerts"):
                    yield DataTable(id="alert-table", cursor_type="row", zebra_stripes=True)
                    yield Static("", id="alert-detail")
                with TabPane("Charts", id="charts"), VerticalScroll():
                    yield Label("Best output throughput after each evaluation (tok/s)")
                    yield Sparkline([], id="spark")
                    yield Static("", id="spark-range")
                    yield Label("Throughput–interactivity across the sweep: baseline against current best")
                    yield Static("", id="pareto")
                with TabPane("Events", id="events"):
                    yield RichLog(id="log", max_lines=2000, wrap=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.main("#alert-table", DataTable)
        table.add_columns("sev", "id", "kind", "node", "message", "state")
        if self.run_dir is not None:
            self.open_run(self.run_dir)
        else:
            self.push_screen(RunPicker(recent_runs(self.runs_root), self.runs_root), self.open_run)

    def open_run(self, run_dir: Path | None) -> None:
        if run_dir is None:
            return
        self.src = RunSource(run_dir)
        self.sub_title = str(run_dir)
        self.refresh_all()
        tree = self.main("#tree", Tree)
        tree.focus()
        best = self.src.best_node()
        if best in self.tree_nodes:
            # Start on the current best configuration, once the tree has laid out its lines.
            self.call_after_refresh(tree.move_cursor, self.tree_nodes[best])
            self.show_detail(best)
        self.set_interval(self.poll_s, self.poll)

    # updates ------------------------------------------------------------
    def refresh_all(self) -> None:
        """First paint: everything from the store."""
        assert self.src is not None
        self.apply(self.src.poll(), first=True)

    def poll(self) -> None:
        if self.src is None or not self.is_running:
            return
        try:
            self.apply(self.src.poll())
        except NoMatches:
            pass  # the app is closing: its widgets are gone

    def apply(self, delta: Delta, first: bool = False) -> None:
        """Fold what changed into the widgets."""
        assert self.src is not None
        if delta.nodes:
            for row in delta.nodes:
                old = self.nodes.get(row.id)
                if old is not None and old.parent != row.parent:
                    self.kids.get(old.parent, []).remove(row.id)
                if old is None or old.parent != row.parent:
                    insort(self.kids.setdefault(row.parent, []), row.id)
                self.nodes[row.id] = row
            path = self.src.kept_ids()
            moved = path ^ self.on_path
            self.on_path = path
            if self.filter.active() or first:
                self.rebuild_tree()
            else:
                with self.batch_update():
                    for row in delta.nodes:
                        self.place(row)
                    for node_id in moved & set(self.tree_nodes):
                        item = self.tree_nodes[node_id]
                        item.set_label(render.node_label(self.nodes[node_id], node_id in path))
                        if node_id in path:
                            item.expand()
            cursor = self.main("#tree", Tree).cursor_node
            if cursor is not None and cursor.data in {n.id for n in delta.nodes}:
                self.show_detail(cursor.data)
        if delta.alerts_changed or first:
            self.refresh_alerts()
        if delta.events:
            self.log_events(delta)
        if delta.nodes or first:
            self.refresh_charts()
        self.main("#status", Static).update(render.status_line(self.src.status()))

    def place(self, row: Row, unfold: bool = False) -> None:
        """Show a node where it belongs, or update it there.

        Children of a folded node are not built until it is unfolded: a big tree costs only what is
        on screen. `unfold` opens everything placed (a filter's results).
        """
        tree = self.main("#tree", Tree)
        item = self.tree_nodes.get(row.id)
        parent_item = tree.root if row.parent is None else self.tree_nodes.get(row.parent)
        if item is not None and parent_item is not None and item.parent is parent_item:
            item.set_label(render.node_label(row, row.id in self.on_path))
            return
        if item is not None:
            self.forget(item)
            item.remove()
        if parent_item is None:
            return  # under a node that is not built yet (folded higher up)
        if parent_item is not tree.root and not (parent_item.is_expanded or unfold):
            parent_item.allow_expand = True  # built when unfolded
            return
        kids = [k for k in self.kids.get(row.id, []) if unfold is False or k in self.shown]
        item = parent_item.add(render.node_label(row, row.id in self.on_path), data=row.id,
                               expand=unfold or row.id in self.on_path, allow_expand=bool(kids))
        self.tree_nodes[row.id] = item
        if item.is_expanded:
            for child in kids:
                self.place(self.nodes[child], unfold)

    def forget(self, item: TreeNode[int]) -> None:
        """Drop a tree item and everything under it from the index."""
        stack = [item]
        while stack:
            current = stack.pop()
            self.tree_nodes.pop(current.data, None)  # type: ignore[arg-type]
            stack += current.children

    def on_tree_node_expanded(self, event: Tree.NodeExpanded[int]) -> None:
        """Build the children of a node the first time it is unfolded."""
        if event.node.data is None:
            return
        for child in self.kids.get(event.node.data, []):
            if child not in self.tree_nodes and (not self.filter.active() or child in self.shown):
                self.place(self.nodes[child])

    def rebuild_tree(self) -> None:
        tree = self.main("#tree", Tree)
        selected = tree.cursor_node.data if tree.cursor_node is not None else None
        active = self.filter.active()
        self.shown = set(self.nodes)
        if active:
            self.shown = set()
            for row in self.nodes.values():
                if self.filter.match(row):
                    current: Row | None = row
                    while current is not None and current.id not in self.shown:  # ancestors give context
                        self.shown.add(current.id)
                        current = self.nodes.get(current.parent) if current.parent is not None else None
        with self.batch_update():
            tree.clear()
            self.tree_nodes = {}
            for root_id in self.kids.get(None, []):
                if root_id in self.shown:
                    self.place(self.nodes[root_id], unfold=active)
        if selected in self.tree_nodes:
            tree.move_cursor(self.tree_nodes[selected])

    def refresh_alerts(self) -> None:
        assert self.src is not None
        table = self.main("#alert-table", DataTable)
        table.clear()
        escalation = None
        for alert in reversed(self.src.alerts()):
            state = "answered" if alert.answer else "acked" if alert.acked_at else "NEEDS HUMAN" \
                if alert.needs_human else "open"
            if alert.needs_human and alert.acked_at is None and escalation is None:
                escalation = alert
            table.add_row(Text(alert.severity, render.SEVERITY.get(alert.severity, "")), str(alert.id), alert.kind,
                          "" if alert.node is None else f"#{alert.node}", alert.message[:200], state,
                          key=str(alert.id))
        banner = self.main("#banner", Static)
        if escalation is not None:
            if self.escalation != escalation.id:
                self.bell()
                self.notify(escalation.message, title="Escalation: a human is needed", severity="error",
                            timeout=10)
            banner.update(f"⚠ ESCALATION (alert {escalation.id}): {escalation.message} — press e to answer")
            banner.add_class("visible")
        else:
            banner.remove_class("visible")
        self.escalation = escalation.id if escalation is not None else None

    def refresh_charts(self) -> None:
        assert self.src is not None
        history = self.src.throughput_history()
        self.main("#spark", Sparkline).data = history or [0.0]
        if history:
            self.main("#spark-range", Static).update(
                f"{len(history)} evaluations: {history[0]:.1f} → {history[-1]:.1f} tok/s")
        self.main("#pareto", Static).update(render.pareto_plot(self.src.frontier()))

    def log_events(self, delta: Delta) -> None:
        log = self.main("#log", RichLog)
        for event in delta.events:
            if event.kind == "command" and event.data.get("id") in self.sent:
                self.answered(self.sent.pop(event.data["id"]), str(event.data.get("result")))
            if event.kind in ("agent_run",):
                continue
            self.t0 = self.t0 if self.t0 is not None else event.ts
            node = "" if event.node is None else f" #{event.node}"
            log.write(Text(f"+{event.ts - self.t0:7.0f}s {event.kind}{node} {str(event.data)[:160]}"))

    def show_detail(self, node_id: int | None) -> None:
        if self.src is None or node_id is None:
            return
        self.main("#detail", Static).update(render.detail(self.src, self.src.node(node_id)))

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted[int]) -> None:
        self.show_detail(event.node.data)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        """The highlighted alert in full, with its evidence."""
        assert self.src is not None
        alert = next((a for a in self.src.alerts() if str(a.id) == event.row_key.value), None)
        if alert is not None:
            self.main("#alert-detail", Static).update(render.alert_detail(alert))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on an alert jumps to its node."""
        assert self.src is not None
        alert = next((a for a in self.src.alerts() if str(a.id) == event.row_key.value), None)
        if alert is not None and alert.node in self.tree_nodes:
            self.main("#tree", Tree).move_cursor(self.tree_nodes[alert.node])
            self.main(TabbedContent).active = "node"

    # steering -----------------------------------------------------------
    def selected(self) -> Row | None:
        cursor = self.main("#tree", Tree).cursor_node
        return self.nodes.get(cursor.data) if cursor is not None and cursor.data is not None else None

    def send(self, kind: str, payload: dict[str, Any], what: str) -> None:
        """Write a command; the engine's answer (applied, or refused with why) is shown when it comes."""
        assert self.src is not None
        try:
            command = self.src.send(kind, payload)
        except HostError as exc:
            self.notify(f"{what}: {exc}", severity="error")
            return
        if command.result is not None:
            self.answered(what, command.result)
            self.refresh_alerts()
            return
        self.sent[command.id] = what
        running = self.src.status().state == "running"
        self.notify(f"{what}: sent" + ("; the campaign applies it after the current step" if running else
                                       "; the campaign is not running, it applies on resume"))

    def answered(self, what: str, result: str) -> None:
        """The engine's answer to a command this app sent."""
        self.answers.append(f"{what}: {result}")
        self.notify(self.answers[-1], severity="error" if result.startswith("refused") else "information")

    def _node_command(self, kind: str, subtree: bool = False) -> None:
        node = self.selected()
        if node is None:
            self.notify("pick a node first", severity="warning")
            return
        if node.status != "proposed" and not subtree:
            self.notify(f"#{node.id} is {node.status}: only proposed nodes can be {kind}d" if kind != "pin" else
                        f"#{node.id} is {node.status}: only proposed nodes can be pinned", severity="warning")
            return
        payload: dict[str, Any] = {"node": node.id} | ({"subtree": True} if subtree else {})
        self.send(kind, payload, f"{kind} #{node.id}" + (" and what is under it" if subtree else ""))

    def action_prune(self) -> None:
        self._node_command("prune")

    def action_prune_subtree(self) -> None:
        self._node_command("prune", subtree=True)

    def action_veto(self) -> None:
        self._node_command("veto")

    def action_pin(self) -> None:
        self._node_command("pin")

    def action_toggle_pause(self) -> None:
        if self.src is None:
            return
        paused = self.src.status().paused
        self.send("resume" if paused else "pause", {}, "resume" if paused else "pause")

    def action_stop(self) -> None:
        def done(yes: bool | None) -> None:
            if yes:
                self.send("stop", {}, "stop")
        self.push_screen(ConfirmScreen("Stop the campaign after the current step?"), done)

    def action_inject(self) -> None:
        if self.src is None:
            return

        def sent(payload: dict[str, Any] | None) -> None:
            if payload:
                self.send("inject", payload, "inject " + ", ".join(f"{k}={v}" for k, v in payload["change"].items()))
        self.push_screen(InjectScreen(self.src.spec.knobs, self.check_injection), sent)

    def check_injection(self, payload: dict[str, Any]) -> str | None:
        """The same check the engine runs on any proposal: the error text, or None."""
        assert self.src is not None
        return self.src.check_injection(payload)

    def action_ack(self) -> None:
        if self.src is None:
            return
        table = self.main("#alert-table", DataTable)
        if self.main(TabbedContent).active != "alerts" or table.row_count == 0:
            self.notify("pick an alert in the Alerts tab (2) first", severity="warning")
            return
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        self.acknowledge(int(key or 0), None)

    def action_answer(self) -> None:
        if self.src is None or self.escalation is None:
            self.notify("no escalation is waiting for an answer")
            return
        alert = next(a for a in self.src.alerts() if a.id == self.escalation)

        def answered(text: str | None) -> None:
            if text:
                self.acknowledge(alert.id, text)
        self.push_screen(AnswerScreen(alert.message), answered)

    def acknowledge(self, alert_id: int, answer: str | None) -> None:
        """A command: the engine applies it between steps, or at once when no campaign runs."""
        kind = "answer" if answer else "ack"
        payload = {"alert": alert_id} | ({"answer": answer} if answer else {})
        self.send(kind, payload, f"{kind} alert {alert_id}")

    # view ---------------------------------------------------------------
    def action_tab(self, name: str) -> None:
        self.main(TabbedContent).active = name

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_filter(self) -> None:
        box = self.main("#filter", Input)
        box.add_class("visible")
        box.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            self.set_filter(event.value)
            self.main("#tree", Tree).focus()

    def on_key(self, event: Any) -> None:
        box = self.main("#filter", Input)
        if event.key == "escape" and box.has_focus:
            box.value = ""
            box.remove_class("visible")
            self.set_filter("")
            self.main("#tree", Tree).focus()

    def action_cycle_status(self) -> None:
        self.status_index = (self.status_index + 1) % len(STATUS_CYCLE)
        self.set_filter(STATUS_CYCLE[self.status_index])

    def set_filter(self, text: str) -> None:
        self.filter = render.Filter.parse(text)
        label = self.main("#filter-label", Label)
        label.update(f"filter: {text}" if text else "")
        label.set_class(bool(text), "visible")
        self.rebuild_tree()

    def on_unmount(self) -> None:
        if self.src is not None:
            self.src.close()
