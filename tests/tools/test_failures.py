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


# Real log lines and where they were posted (github.com issues).
NCCL_RAS_WARN = ("[2025-06-05 10:45:19] paula09:2528103:2528103 [0] ras/client_support.cc:160 "
                 "NCCL WARN Call to bind failed: Address already in use")  # vllm-project/vllm#19204, NCCL went on
NCCL_RAS_INFO = ("paula09:2528103:2528103 [0] NCCL INFO RAS failed to establish a client listening socket "
                 "at localhost:28028")
NCCL_SHM_WARN = ("NCCL WARN Error while attaching to shared memory segment /dev/shm/nccl- (size 192814336), "
                 "error: No such file or directory (2)")  # vllm-project/vllm#18831
ENGINE_CORE_FAILED = ("RuntimeError: Engine core initialization failed. See root cause above. "
                      "Failed core proc(s): {}")  # vllm-project/vllm#29566


def write_log(tmp_path: Path, *lines: str) -> Path:
    log = tmp_path / "server.log"
    log.write_text("".join(f"{line}\n" for line in lines))
    return log


def test_whole_vllm_log_names_the_free_memory_check_over_nccl_warnings_and_wrappers() -> None:
    # A TP=2 vLLM start assembled from real lines: vllm-project/vllm#20226 (startup), #26898 and #6732
    # (NCCL INFO), #19204 (the RAS WARN NCCL survives), #33297 (the cause), #20305 and #29566 (wrappers).
    log = LOGS / "vllm_tp2_nccl_warn_free_memory.log"
    failure = classify(log, 1, "launch")
    assert failure.kind == "oom"
    assert failure.summary == "not enough free GPU memory at startup for --gpu-memory-utilization"
    assert [e.line for e in failure.evidence] == [16]
    assert "Free memory on device cuda:0 (1.53/22.05 GiB)" in failure.evidence[0].text
    assert failure.also_matched == ["engine_dead", "nccl_warning"]


@pytest.mark.parametrize(("cause", "kind"), [
    ("OSError: [Errno 98] Address already in use", "port_in_use"),  # vllm-project/vllm#9763
    ("RuntimeError: The server socket has failed to listen on any local network address. useIpv6: 0, code: -98, "
     "name: EADDRINUSE, message: address already in use", "port_in_use"),  # vllm-project/vllm#11617
    ("vllm: error: unrecognized arguments: --config", "unknown_flag"),  # vllm-project/vllm#8273
    ("api_server.py: error: unrecognized arguments: /root/models/Qwen3-8B", "unknown_flag"),  # vllm#27389
    ("vllm serve: error: the following arguments are required: model_tag", "unknown_flag"),  # vllm#13150
    ("ValueError: Invalid repository ID or local directory specified: "
     "'neuralmagic/Meta-Llama-3-8B-Instruct-FP8-dynamic'.", "model_not_found"),  # vllm-project/vllm#13510
    ("ValueError: No supported config format found in Benasd/Qwen2.5-VL-72B-Instruct-Pointer-AWQ",
     "model_not_found"),  # vllm-project/vllm#13150
    ("OSError: Can't load the configuration of '/data/0wen/0wen3-0.6B'", "model_not_found"),  # vllm-ascend#9999
    ("FileNotFoundError: [Errno 2] No such file or directory: 'THUDM/visualglm-6b/model_config.json'",
     "model_not_found"),  # WangRongsheng/XrayGLM#89
])
def test_a_benign_nccl_warn_never_outranks_the_real_error(tmp_path: Path, cause: str, kind: str) -> None:
    log = write_log(tmp_path, NCCL_SHM_WARN, NCCL_RAS_WARN, NCCL_RAS_INFO, cause, ENGINE_CORE_FAILED)
    failure = classify(log, 1, "launch")
    assert failure.kind == kind
    assert [e.text for e in failure.evidence] == [cause]
    assert failure.also_matched == ["engine_dead", "nccl_warning"]


def test_nccl_warn_lines_alone_are_a_warning_not_a_port_or_file_error(tmp_path: Path) -> None:
    log = write_log(tmp_path, NCCL_RAS_WARN, NCCL_RAS_INFO, NCCL_SHM_WARN)
    failure = classify(log, 1, "launch")
    assert (failure.kind, failure.summary, failure.also_matched) == ("nccl_warning", "NCCL/RCCL warning", [])
    assert [e.line for e in failure.evidence] == [1, 3]


def test_a_signal_or_the_callers_finding_outranks_an_nccl_warning(tmp_path: Path) -> None:
    log = write_log(tmp_path, NCCL_RAS_WARN, NCCL_RAS_INFO)
    crashed = classify(log, -signal.SIGSEGV, "running")
    assert (crashed.kind, crashed.also_matched) == ("segfault", ["nccl_warning"])
    hung = classify(log, None, "ready", fallback="hang")
    assert (hung.kind, hung.also_matched) == ("hang", ["nccl_warning"])


def test_nccl_errors_still_name_an_nccl_failure_over_its_warnings(tmp_path: Path) -> None:
    error = "RuntimeError: NCCL error: unhandled system error (run with NCCL_DEBUG=INFO for details)"  # gpustack#835
    failure = classify(write_log(tmp_path, NCCL_RAS_WARN, error), 1, "launch")
    assert (failure.kind, [e.text for e in failure.evidence]) == ("nccl", [error])


@pytest.mark.parametrize("line", [
    "(EngineCore_DP0 pid=972) ERROR 01-28 15:59:42 [core.py:935] ValueError: Free memory on device cuda:0 "
    "(1.53/22.05 GiB) on startup is less than desired GPU memory utilization (0.9, 19.84 GiB). Decrease GPU memory "
    "utilization or reduce GPU memory used by other processes.",  # vllm-project/vllm#33297
    "[multiproc_executor.py:492] ValueError: Free memory on device (31.44/47.38 GiB) on startup is less than desired "
    "GPU memory utilization (0.95, 45.01 GiB). Decrease GPU memory utilization or reduce GPU memory used by other "
    "processes.",  # vllm-project/vllm#20305, before vLLM named the device
])
def test_vllm_free_memory_check_is_a_startup_oom(tmp_path: Path, line: str) -> None:
    failure = classify(write_log(tmp_path, line), 1, "launch")
    assert failure.kind == "oom" and failure.summary.startswith("not enough free GPU memory at startup")


def test_engine_core_initialization_failed_names_the_failure_only_when_nothing_below_it_does(tmp_path: Path) -> None:
    alone = classify(write_log(tmp_path, ENGINE_CORE_FAILED), 1, "launch")
    assert (alone.kind, alone.summary) == ("engine_dead", "inference engine failed to start")
    wrapped = classify(write_log(tmp_path, "Segmentation fault (core dumped)", ENGINE_CORE_FAILED), 1, "launch")
    assert (wrapped.kind, wrapped.also_matched) == ("segfault", ["engine_dead"])


def test_both_engine_dead_signatures_share_one_rank_and_cite_both_lines(tmp_path: Path) -> None:
    dead = ("ERROR 11-20 10:05:09 [async_llm.py:400] vllm.v1.engine.exceptions.EngineDeadError: EngineCore "
            "encountered an issue. See stack trace (above) for the root cause.")
    failure = classify(write_log(tmp_path, dead, "Segmentation fault", ENGINE_CORE_FAILED), 1, "running")
    assert (failure.kind, failure.summary) == ("engine_dead", "inference engine died")
    assert [e.line for e in failure.evidence] == [1, 3] and failure.also_matched == ["segfault"]
