"""The TUI under a Pilot, on a store written by a real short campaign: navigation, detail, filters, steering."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from rich.console import Console
from textual.widgets import DataTable, Input, Select, Static, TabbedContent, Tree

from arbor.host.engine import Campaign
from arbor.host.services import Services
from arbor.host.store import CampaignStore
from arbor.tui.app import ArborApp
from arbor.tui.screens import InjectScreen, RunPicker

from .stores import real_campaign

pytestmark = pytest.mark.anyio
SIZE = (110, 36)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return real_campaign(tmp_path_factory.mktemp("tui-runs"))


@pytest.fixture
def run(finished_run: Path, tmp_path: Path) -> Path:
    """A private copy: steering writes into it."""
    copy = tmp_path / finished_run.name
    shutil.copytree(finished_run, copy)
    return copy


def text_of(app: ArborApp, selector: str) -> str:
    """What a Static shows, as plain text."""
    console = Console(width=200, file=io.StringIO(), record=True)
    console.print(app.query_one(selector, Static).content)
    return console.export_text()


def tree_ids(app: ArborApp) -> list[int]:
    tree = app.query_one("#tree", Tree)
    out, stack = [], list(reversed(tree.root.children))
    while stack:
        item = stack.pop()
        out.append(item.data)
        stack += list(reversed(item.children))
    return out


async def test_tree_detail_alerts_and_charts(run: Path) -> None:
    store = CampaignStore(run)
    nodes = store.nodes()
    alerts = store.alerts()
    best = store.meta("best_node")
    store.close()
    app = ArborApp(run, poll_s=0.2)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert sorted(tree_ids(app)) == [n.id for n in nodes], "every node of the campaign is in the tree"
        tree = app.query_one("#tree", Tree)
        assert tree.cursor_node.data == best, "the cursor starts on the current best configuration"
        assert f"#{best}" in text_of(app, "#detail") and "Score" in text_of(app, "#detail")
        crashed = next(n for n in nodes if n.status == "crashed")
        tree.move_cursor(app.tree_nodes[crashed.id])
        await pilot.pause()
        detail = text_of(app, "#detail")
        assert "crashed" in detail and "CUDA out of memory" in detail, "the log excerpt of a crash is shown"
        status = text_of(app, "#status")
        done = sum(1 for n in nodes if n.kind != "baseline" and n.status in ("kept", "reverted", "crashed"))
        assert "FINISHED" in status and f"actions {done}/4" in status
        await pilot.press("2")
        assert app.query_one(TabbedContent).active == "alerts"
        table = app.query_one("#alert-table", DataTable)
        assert table.row_count == len(alerts)
        await pilot.press("3")
        assert "evaluations" in text_of(app, "#spark-range") and "B" in text_of(app, "#pareto")
        await pilot.press("question_mark")
        await pilot.pause()
        assert "prune the selected proposed node" in str(app.screen.query_one("#help", Static).content)
        await pilot.press("escape")
        await pilot.press("2")
        table.focus()
        await pilot.press("enter")
        await pilot.pause()
        assert app.query_one(TabbedContent).active == "node", "enter on an alert jumps to its node"
        assert tree.cursor_node.data == alerts[-1].node


async def test_filters(run: Path) -> None:
    app = ArborApp(run, poll_s=0.2)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        everything = tree_ids(app)
        await pilot.press("slash")
        await pilot.press(*"status:crashed")
        await pilot.press("enter")
        await pilot.pause()
        shown = [app.nodes[i] for i in tree_ids(app)]
        assert {n.status for n in shown} == {"crashed", "kept"}, "the crashed node with its kept ancestors"
        assert "filter: status:crashed" in str(app.query_one("#filter-label", Static).content)
        await pilot.press("slash", "escape")
        await pilot.pause()
        assert tree_ids(app) == everything
        await pilot.press("slash", *"garble", "enter")
        await pilot.pause()
        assert any("garble" in app.nodes[i].title for i in tree_ids(app)) and len(tree_ids(app)) < len(everything)
        await pilot.press("f")  # the status cycle replaces the text filter
        await pilot.pause()
        assert {app.nodes[i].status for i in tree_ids(app)} <= {"proposed", "kept"}


async def test_every_steering_command_reaches_the_store_and_the_host_applies_it(run: Path) -> None:
    store = CampaignStore(run)
    store.set_meta("state", "running")  # as while a campaign runs in another process
    base = store.node(int(store.meta("best_node")))
    cfg = dict(base.config)
    a = store.add_node(parent=base.id, depth=base.depth + 1, status="proposed", title="a", category="config",
                       kind="config", change={"itl_ms": 5.0}, config=cfg | {"itl_ms": 5.0}, proposer="offline")
    b = store.add_node(parent=base.id, depth=base.depth + 1, status="proposed", title="b", category="config",
                       kind="config", change={"itl_ms": 6.0}, config=cfg | {"itl_ms": 6.0}, proposer="offline")
    c = store.add_node(parent=b.id, depth=base.depth + 2, status="proposed", title="c", category="config",
                       kind="config", change={"itl_ms": 7.0}, config=cfg | {"itl_ms": 7.0}, proposer="offline")
    d = store.add_node(parent=base.id, depth=base.depth + 1, status="proposed", title="d", category="config",
                       kind="config", change={"itl_ms": 8.0}, config=cfg | {"itl_ms": 8.0}, proposer="offline")
    escalation = store.add_alert("critical", "escalation", "the GPU node stopped answering", {}, None, True)
    store.close()
    app = ArborApp(run, poll_s=0.2)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert "ESCALATION" in text_of(app, "#banner") and app.query_one("#banner").has_class("visible")
        tree = app.query_one("#tree", Tree)

        async def on(node_id: int, *keys: str) -> None:
            tree.move_cursor(app.tree_nodes[node_id])
            tree.focus()
            await pilot.pause()
            await pilot.press(*keys)
            await pilot.pause()

        await pilot.press("p")                 # pause
        await on(a.id, "i")                    # pin
        await on(d.id, "v")                    # veto
        await on(b.id, "X")                    # prune the subtree under b
        await on(base.id, "x")                 # refused in the TUI: not proposed
        await pilot.press("n")                 # inject: first a bad value, then a good one
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, InjectScreen)
        screen.query_one("#knob", Select).value = "itl_ms"
        screen.query_one("#value", Input).value = "500"
        screen.query_one("#value", Input).focus()
        await pilot.press("enter")
        await pilot.pause()
        assert "itl_ms" in str(screen.query_one("#error", Static).content), "out of the knob's domain"
        assert app.screen is screen, "the form stays open with the error"
        screen.query_one("#value", Input).value = "3"
        screen.query_one("#rationale", Input).value = "a middle step"
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is not screen
        await pilot.press("e")                 # answer the escalation
        await pilot.pause()
        await pilot.press(*"restarted the node", "enter")
        await pilot.pause()
        await on(d.id, "i")                    # pin: d still shows proposed, but its veto is applied first
        await pilot.press("S", "y")            # stop
        await pilot.pause()

        store = CampaignStore(run)
        sent = [(cmd.kind, cmd.payload) for cmd in store.commands(pending=True)]
        assert sent == [("pause", {}), ("pin", {"node": a.id}), ("veto", {"node": d.id}),
                        ("prune", {"node": b.id, "subtree": True}),
                        ("inject", {"change": {"itl_ms": 3}, "rationale": "a middle step"}),
                        ("answer", {"alert": escalation, "answer": "restarted the node"}), ("pin", {"node": d.id}),
                        ("stop", {})]
        # The host applies them between steps, logs each, and the TUI shows each answer, a refusal included.
        spec = store.meta("spec")
        async with Services(run.parent, run.name, spec.stack_spec(store.meta("binary"), store.meta("model")),
                            Path(store.meta("kb_path"))) as svc:
            Campaign(spec, run, store, svc, lambda _: None).apply_commands()
        await pilot.pause(0.5)
        assert app.sent == {}, "every answer came back"
        assert f"pin #{d.id}: refused: node {d.id} is pruned, only proposed nodes can be pinned" in app.answers
        assert sum(answer.endswith(": applied") for answer in app.answers) == 7
    assert store.commands(pending=True) == []
    assert store.meta("paused") and store.meta("stop_requested")
    assert store.node(a.id).pinned and store.node(d.id).status == "pruned"
    assert store.node(b.id).status == store.node(c.id).status == "pruned"
    (injected,) = [n for n in store.nodes() if n.proposer == "operator"]
    assert injected.change == {"itl_ms": 3.0} and injected.pinned and injected.status == "proposed"
    (answered,) = [x for x in store.alerts() if x.id == escalation]
    assert answered.answer == "restarted the node" and answered.acked_at
    assert len([e for e in store.events() if e.kind == "command"]) == 8


async def test_new_nodes_appear_while_watching(run: Path) -> None:
    app = ArborApp(run, poll_s=0.1)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        before = len(tree_ids(app))
        writer = CampaignStore(run)
        base = int(writer.meta("best_node"))
        for i in range(5):
            writer.add_node(parent=base, depth=2, status="proposed", title=f"new {i}", category="config",
                            kind="config", change={"itl_ms": 10.0 + i}, config={"itl_ms": 10.0 + i},
                            proposer="offline")
        writer.update_node(base, diagnosis="re-read")
        writer.close()
        await pilot.pause(0.5)
        assert len(tree_ids(app)) == before + 5


async def test_no_argument_picks_from_recent_runs(run: Path) -> None:
    app = ArborApp(None, runs_root=run.parent, poll_s=0.2)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, RunPicker)
        await pilot.press("enter")
        await pilot.pause()
        assert app.src is not None and app.src.run_dir == run
        assert len(tree_ids(app)) > 1


async def test_folded_branches_are_built_when_unfolded_and_found_by_filters(run: Path) -> None:
    writer = CampaignStore(run)
    reverted = next(n for n in writer.nodes() if n.status == "reverted")
    child = writer.add_node(parent=reverted.id, depth=reverted.depth + 1, status="proposed", title="refined step",
                            category="config", kind="config", change={"itl_ms": 1.5}, config={"itl_ms": 1.5},
                            proposer="critic")
    writer.close()
    app = ArborApp(run, poll_s=0.2)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        folded = app.tree_nodes[reverted.id]
        assert child.id not in app.tree_nodes and folded.allow_expand and not folded.is_expanded
        folded.expand()
        await pilot.pause()
        assert child.id in app.tree_nodes, "built when unfolded"
        folded.collapse()
        await pilot.press("slash", *"refined", "enter")
        await pilot.pause()
        chain, current = set(), app.nodes[child.id]
        while current is not None:
            chain.add(current.id)
            current = app.nodes.get(current.parent)
        assert set(tree_ids(app)) == chain and len(chain) >= 3, "the match and its ancestors, unfolded"
