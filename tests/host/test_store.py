"""The campaign store: typed run fields, the read-only reader, and older runs read under today's names."""

from __future__ import annotations

import sqlite3
import typing
from pathlib import Path

import pytest

from arbor.host.errors import StoreError
from arbor.host.models import Ablation, Status
from arbor.host.store import CampaignStore, MetaName, RunMeta, StoreReader
from arbor.tools.migrations import connect, load


def test_run_fields_are_typed_and_named() -> None:
    assert set(typing.get_args(MetaName)) == set(RunMeta.model_fields), "every field has a name, and only those"


def test_a_wrong_name_or_type_changes_nothing(tmp_path: Path) -> None:
    store = CampaignStore(tmp_path)
    store.set_meta("best_node", 3)
    with pytest.raises(StoreError, match="no field 'baseline_node'"):
        store.set_meta("baseline_node", 4)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        store.set_meta("best_node", "the third")
    assert store.meta("best_node") == 3
    assert store.meta("paused") is False and store.meta("evaluated_configs") == [], "defaults when never set"
    store.set_meta("ablation", {"critic": False})
    assert store.meta("ablation") == Ablation(critic=False)


def test_the_reader_cannot_write_and_sees_the_writer(tmp_path: Path) -> None:
    writer = CampaignStore(tmp_path)
    writer.add_node(parent=None, depth=0, status="kept", title="b", category="config", kind="baseline", change={},
                    config={}, proposer="engine")
    reader = StoreReader.open(tmp_path)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader.conn.execute("UPDATE nodes SET title = 'x'")
    writer.add_node(parent=1, depth=1, status="proposed", title="m", category="config", kind="config",
                    change={"a": 1}, config={"a": 1}, proposer="offline")
    assert [n.status for n in reader.nodes()] == [Status.KEPT, Status.PROPOSED], "a live view of a running campaign"
    with pytest.raises(StoreError, match="holds no campaign"):
        StoreReader.open(tmp_path / "elsewhere")


def test_an_older_run_reads_under_todays_names(tmp_path: Path) -> None:
    conn = connect(tmp_path / "campaign.sqlite", load("arbor.host"), "campaign", upto=3)
    for name, value in (("baseline_node", "2"), ("evaluated", '["{}"]'), ("last_review_at", "5"),
                        ("llm_offline", '"budget spent"'), ("root_node", "1")):
        conn.execute("INSERT INTO meta (name, value) VALUES (?, ?)", [name, value])
    conn.close()
    store = StoreReader.open(tmp_path)
    assert (store.meta("best_node"), store.meta("root_node"), store.meta("evaluated_configs"),
            store.meta("reviewed_at_actions"), store.meta("llm_stopped")) == (2, 1, ["{}"], 5, "budget spent")
