"""Failure classification from real-format log lines and exit statuses."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from arbor.tools.serving.failures import classify, signal_name

LOGS = Path(__file__).parent.parent / "fixtures" / "logs"


@pytest.mark.parametrize(("log", "kind", "needle"), [
    ("rocm_memory_fault.log", "gpu_memory_fault", "Memory access fault by GPU node-2"),
    ("nvidia_xid.log", "gpu_xid", "NVRM: Xid (PCI:0000:3b:00): 79"),
    ("vllm_oom.log", "oom", "CUDA out of memory"),
    ("vllm_engine_dead.log", "engine_dead", "EngineDeadError"),
    ("vllm_hang.log", "hang", "No available shared memory broadcast block"),
    ("nccl_error.log", "nccl", "NCCL error"),
    ("vllm_unrecognized.log", "unknown_flag", "unrecognized arguments: --max-num-seq"),
    ("sglang_sigquit.log", "oom", "Not enough memory"),
    ("hf_missing.log", "model_not_found", "not a valid model identifier"),
    ("ggml_assert.log", "abort", "GGML_ASSERT"),
])
def test_log_signatures_name_the_failure_and_cite_lines(log: str, kind: str, needle: str) -> None:
    failure = classify(LOGS / log, 1, "launch")
    assert failure.kind == kind
    assert any(needle in e.text for e in failure.evidence)
    lines = (LOGS / log).read_text().split("\n")
    for evidence in failure.evidence:
        assert lines[evidence.line - 1].strip()[:500] == evidence.text


def test_sglang_log_lists_every_kind_it_matched() -> None:
    failure = classify(LOGS / "sglang_sigquit.log", 1, "running")
    assert failure.kind == "oom"
    assert "engine_dead" in failure.also_matched


@pytest.mark.parametrize(("code", "kind", "name"), [
    (-signal.SIGSEGV, "segfault", "SIGSEGV"),
    (-signal.SIGABRT, "abort", "SIGABRT"),
    (-signal.SIGKILL, "killed", "SIGKILL"),
])
def test_signal_deaths_without_signature(code: int, kind: str, name: str) -> None:
    failure = classify(LOGS / "plain.log", code, "running")
    assert (failure.kind, failure.signal, failure.exit_code) == (kind, name, None)
    assert [e.text for e in failure.evidence] == ["starting", "doing fine"]


def test_plain_exit_and_fallback() -> None:
    assert classify(LOGS / "plain.log", 3, "launch").summary == "exited with code 3"
    hang = classify(LOGS / "plain.log", None, "ready", fallback="hang", detail="no output for 5s")
    assert hang.kind == "hang" and hang.summary == "hang: no output for 5s"
    assert classify(None, None, "running").kind == "unknown"


def test_line_numbers_survive_a_truncated_tail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from arbor.tools.serving import failures

    monkeypatch.setattr(failures, "TAIL_BYTES", 100)
    log = tmp_path / "big.log"
    log.write_text("".join(f"line {i}\n" for i in range(1, 200)) + "Segmentation fault (core dumped)\n")
    failure = classify(log, -11, "running")
    assert failure.kind == "segfault"
    assert failure.evidence[0].line == 200


def test_carriage_returns_do_not_shift_line_numbers(tmp_path: Path) -> None:
    log = tmp_path / "tqdm.log"
    log.write_bytes(b"Loading 10%\rLoading 50%\rLoading 100%\nready\nSegmentation fault\n")
    failure = classify(log, -11, "running")
    assert failure.evidence[0].line == 3


def test_signal_name() -> None:
    assert signal_name(-9) == "SIGKILL" and signal_name(0) is None and signal_name(None) is None
