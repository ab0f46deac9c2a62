"""`arbor-host` through Typer's CliRunner: the demo baseline for real, and clean errors on bad flags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from arbor.host.cli import app
from tests.conftest import our_processes

runner = CliRunner()


@pytest.mark.llama
def test_run_measures_the_baseline_and_writes_the_run_folder(tmp_path: Path, target) -> None:
    before = our_processes(target.server_binary)
    result = runner.invoke(app, ["run", "--runs-dir", str(tmp_path), "--concurrencies", "1,4",
                                 "--input-len", "32", "--output-len", "16", "--min-prompts", "4"])
    assert result.exit_code == 0, result.output
    assert "out tok/s" in result.stdout and "frontier" in result.stdout
    (run_dir,) = tmp_path.iterdir()
    summary = json.loads((run_dir / "run.json").read_text())
    assert summary["server"]["state"] == "stopped"
    assert len(summary["results"]) == 2 and all(Path(p).is_file() for p in summary["results"])
    for path in summary["results"]:
        data = json.loads(Path(path).read_text())
        assert data["failed"] == 0 and data["lengths_ok"] is True
    assert (run_dir / "logs" / "baseline.log").stat().st_size > 0
    assert (run_dir / "parity" / "baseline.json").is_file()
    assert (run_dir / "table.txt").read_text() == summary["table"] + "\n"
    assert summary["server_metrics"]["llamacpp:tokens_predicted_total"] > 0
    assert our_processes(target.server_binary) == before


@pytest.mark.parametrize(("args", "message"), [
    (["run", "--concurrencies", "1,x"], "--concurrencies must be comma-separated integers"),
    (["run", "--concurrencies", "0"], "concurrencies must be between 1 and 1024"),
    (["run", "--input-len", "0"], "input_len"),
    (["run", "campaign.toml"], "campaign files are not supported yet"),
])
def test_bad_flags_give_a_clear_error_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, [*args, "--runs-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_mcp_config_prints_claude_desktop_block() -> None:
    result = runner.invoke(app, ["mcp-config"])
    assert result.exit_code == 0
    config = json.loads(result.stdout)["mcpServers"]
    assert set(config) == {"arbor-serving", "arbor-bench", "arbor-profiler", "arbor-kernels", "arbor-kb"}
    for entry in config.values():
        assert Path(entry["command"]).is_absolute() and Path(entry["command"]).exists()
        assert entry["args"][0] in ("--runs-root", "--tasks-root", "--kb") and Path(entry["args"][1]).is_absolute()


def test_setup_reports_paths(target) -> None:
    result = runner.invoke(app, ["setup"])
    assert result.exit_code == 0
    assert str(target.model_path) in result.stdout
