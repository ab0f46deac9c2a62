"""`arbor-host` through Typer's CliRunner: the demo baseline for real, and clean errors on bad flags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from arbor.host.cli import app

runner = CliRunner()


GOOD = """
name = "t"
[target]
stack = "llamacpp"
binary = "{binary}"
model = "/m.gguf"
[[knobs]]
name = "parallel"
flag = "--parallel"
type = "int"
min = 1
max = 64
values = [8, 16]
"""


@pytest.mark.parametrize(("edit", "message"), [
    (lambda t: t + "colour = 'blue'\n", "colour: Extra inputs are not permitted"),
    (lambda t: t.replace("values = [8, 16]", "values = ['many']"), "knobs.0: Value error, knob 'parallel' takes an"),
    (lambda t: t.replace("values = [8, 16]\n", ""), "knobs.0.values: Field required"),
    (lambda t: t.replace("values = [8, 16]", "values = [8, 128]"), "must be <= 64"),
    (lambda t: t.replace('stack = "llamacpp"', 'stack = "tgi"'), "target.stack"),
    (lambda t: t.replace('name = "t"', "name = 7"), "name: Input should be a valid string"),
    (lambda t: t + "[budget]\nwall_clock_s = -1\n", "budget.wall_clock_s"),
    (lambda t: t + "[[knobs\n", "not valid TOML"),
])
def test_bad_campaign_files_get_one_clear_line(tmp_path: Path, edit, message: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(edit(GOOD.format(binary="/bin/true")))
    result = runner.invoke(app, ["run", str(path), "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.output
    assert not (tmp_path / "runs").exists()


def test_missing_binary_is_named(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(GOOD.format(binary="/opt/nowhere/llama-server"))
    result = runner.invoke(app, ["run", str(path), "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 1
    assert result.output.strip() == "error: target.binary: /opt/nowhere/llama-server does not exist"
    assert not (tmp_path / "runs").exists()


def test_resume_and_report_need_a_run_folder(tmp_path: Path) -> None:
    for command in ("resume", "report"):
        result = runner.invoke(app, [command, str(tmp_path)])
        assert result.exit_code == 1 and "holds no campaign" in result.output


def test_the_demo_spec_is_valid() -> None:
    from arbor.host.spec import load_spec

    spec = load_spec(None)
    assert spec.workload.concurrency == 16 and spec.workload.sweep == [1, 4, 16, 32]
    assert spec.budget.wall_clock_s == 600
    assert {"parallel", "threads", "flash_attn", "cache_type_k", "cont_batching", "poll"} <= {k.name for k in
                                                                                             spec.knobs}


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


@pytest.mark.parametrize(("flags", "code", "message"), [
    (["--agent", "anthropic"], 2, "the anthropic backend needs budget.llm_usd > 0"),
    (["--agent", "openai"], 2, "the openai backend needs base_url"),
    (["--agent", "gpt"], 2, "agent.backend: Input should be 'offline', 'anthropic' or 'openai'"),
    (["--agent", "openai", "--agent-url", "ftp://x"], 2, "agent.base_url"),
    (["--agent", "anthropic", "--llm-usd", "2"], 1, "needs the API key in $ANTHROPIC_API_KEY"),
])
def test_agent_flags_are_validated_before_anything_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        flags: list[str], code: int, message: str) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    path = tmp_path / "c.toml"
    path.write_text(GOOD.format(binary="/bin/true"))
    result = runner.invoke(app, ["run", str(path), "--runs-dir", str(tmp_path / "runs"), *flags])
    assert result.exit_code == code, result.output
    assert message in result.output, result.output
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
