"""TUI at scale: a store with 10,000 nodes and 1,000 alerts. Prints one JSON line.

Time to first paint (start to the whole tree shown and the first frame rendered) and time
to fold in an update of 100 new nodes (read from the store, placed in the tree, rendered).
Goal: under 1 s to first paint, under 100 ms per update.
Run: .venv/bin/python tests/perf/tui_scale.py
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from arbor.host.store import CampaignStore  # noqa: E402
from arbor.tools.stats import percentile  # noqa: E402
from arbor.tui.app import ArborApp  # noqa: E402
from tests.tui.stores import fixed_campaign  # noqa: E402

STATUSES = ["kept", "reverted", "crashed", "pruned", "proposed", "invalid"]


def grow(store: CampaignStore, count: int, rng: random.Random, parents: list[int]) -> list[int]:
    """`count` nodes under random nodes of `parents` (which grows with them), in one transaction."""
    ids = []
    with store.tx():
        for i in range(count):
            parent = rng.choice(parents)
            node = store.add_node(parent=parent, depth=1, status=rng.choice(STATUSES), title=f"knob_{i % 60}: "
                                  f"default -> {i}", category=rng.choice(["config", "dispatch", "kernel"]),
                                  kind="config", change={f"knob_{i % 60}": i}, config={f"knob_{i % 60}": i},
                                  proposer="offline", gain=rng.uniform(-0.2, 0.3), score=rng.random())
            ids.append(node.id)
            if len(parents) > 1:
                parents.append(node.id)
    return ids


async def measure(run_dir: Path, updates: int) -> dict[str, float]:
    rng = random.Random(1)
    started = time.perf_counter()
    app = ArborApp(run_dir, poll_s=3600)  # updates are applied by hand below, timed one by one
    async with app.run_test(size=(140, 45)) as pilot:
        await pilot.pause()
        first_paint = time.perf_counter() - started
        loaded, shown = len(app.nodes), len(app.tree_nodes)
        writer = CampaignStore(run_dir)
        best = int(writer.meta("best_node"))
        times = []
        for _ in range(updates):
            # New proposals land under the current best, which is unfolded: every one is drawn.
            grow(writer, 100, rng, [best])
            t0 = time.perf_counter()
            app.poll()
            await pilot.pause()
            times.append(time.perf_counter() - t0)
        writer.close()
        assert len(app.nodes) == loaded + 100 * updates
        assert len(app.tree_nodes) == shown + 100 * updates, "every new node is in the tree"
    return {"nodes": loaded, "tree_items_at_first_paint": shown, "first_paint_s": round(first_paint, 3),
            "update_ms_p50": round(1000 * percentile(times, 50), 1),
            "update_ms_max": round(1000 * max(times), 1)}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = fixed_campaign(Path(tmp))
        store = CampaignStore(run_dir)
        rng = random.Random(0)
        grow(store, 10_000 - len(store.nodes()), rng, [n.id for n in store.nodes()])
        with store.tx():
            for i in range(1000 - len(store.alerts())):
                store.add_alert(rng.choice(["info", "warning", "error"]), "noisy", f"alert {i}", {"n": i},
                                rng.randint(1, 10_000))
        store.close()
        result = asyncio.run(measure(run_dir, updates=10))
    result |= {"alerts": 1000, "goal_first_paint_s": 1.0, "goal_update_ms": 100,
               "met": result["first_paint_s"] < 1.0 and result["update_ms_p50"] < 100}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
