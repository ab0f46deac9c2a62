"""The built wheel carries every data file the code reads (a non-editable install must work too)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NEEDED = [
    "arbor/host/campaigns/demo.toml", "arbor/host/migrations/0001_campaign.sql", "arbor/host/prerequisites.toml",
    "arbor/kb/seeds.jsonl", "arbor/kb/migrations/0004_covering_indexes.sql", "arbor/tools/watchdog.py",
    "arbor/tools/serving/signatures.toml", "arbor/tools/serving/knobs/vllm.toml",
    "arbor/tools/serving/enginedefs/data/vllm.json", "arbor/tools/serving/enginedefs/data/sglang.json",
    "arbor/tools/serving/enginedefs/data/llamacpp.json",
    "arbor/tools/profiling/categories.toml", "arbor/tools/bench/parity_prompts.txt",
    "arbor/tools/kernels/examples/rmsnorm/task.toml", "arbor/tools/kernels/examples/rmsnorm/rmsnorm_fast.c",
    "arbor/host/agents/pricing.toml", "arbor/host/agents/prompts/orchestrator.tmpl",
    "arbor/host/agents/prompts/critic_keep.tmpl", "arbor/host/migrations/0002_node_revisions.sql",
    "arbor/host/migrations/0003_reference_measurements.sql",
    "arbor/tui/arbor.tcss", "arbor/tools/sim/scenarios.toml",
]


def test_wheel_contains_the_data_files(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                           "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("arbor-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert [n for n in NEEDED if n not in names] == []
    assert not [n for n in names if n.startswith(("tests/", "arbor/tests"))], "tests do not ship"
