"""Snapshots of the main screens on a fixed store (`pytest --snapshot-update` refreshes them after a change)."""

from __future__ import annotations

from pathlib import Path

import pytest

from arbor.tui.app import ArborApp

from .stores import fixed_campaign


@pytest.fixture
def app(tmp_path: Path) -> ArborApp:
    return ArborApp(fixed_campaign(tmp_path), poll_s=60)


@pytest.mark.parametrize("size", [(80, 24), (140, 40)])
def test_main_screen(snap_compare, app: ArborApp, size: tuple[int, int]) -> None:
    assert snap_compare(app, terminal_size=size)


def test_crashed_node_detail(snap_compare, app: ArborApp) -> None:
    assert snap_compare(app, terminal_size=(120, 40), press=["down", "down", "down", "down"])


def test_alerts_tab(snap_compare, app: ArborApp) -> None:
    assert snap_compare(app, terminal_size=(120, 30), press=["2"])


def test_charts_tab(snap_compare, app: ArborApp) -> None:
    assert snap_compare(app, terminal_size=(120, 34), press=["3"])


def test_help(snap_compare, app: ArborApp) -> None:
    assert snap_compare(app, terminal_size=(100, 30), press=["question_mark"])
