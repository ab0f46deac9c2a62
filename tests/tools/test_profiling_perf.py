"""perf report text to a Profile: OpenMP spin-wait filed as its own category by shared object and symbol."""

from __future__ import annotations

from pathlib import Path

import pytest

from arbor.tools.profiling import perf
from arbor.tools.profiling.build import ProfileError, by_name

FIX = Path(__file__).parent.parent / "fixtures" / "profiles"


def load(name: str):
    return perf.from_report((FIX / name).read_text(), name)


def test_captured_llamacpp_profile_files_libgomp_time_as_omp_spin() -> None:
    # A live capture of the pinned llama-server under load: libgomp has no symbols here, only addresses.
    profile = load("perf_report_llamacpp.txt")
    assert profile.samples == 2040
    gomp = [k for k in profile.kernels if k.module == "libgomp.so.1.0.0"]
    assert len(gomp) == 9 and all(k.name.startswith("0x") for k in gomp)
    assert {k.category for k in gomp} == {perf.OMP_SPIN}
    assert profile.categories[perf.OMP_SPIN] == pytest.approx(695 / 2040)
    assert profile.categories["gemm"] > profile.categories[perf.OMP_SPIN], "the matmuls still lead"
    assert not any(k.name.startswith("0x") for k in profile.kernels if k.category == "host_idle")
    assert sum(profile.categories.values()) == pytest.approx(1.0)


def test_spin_at_gomp_barriers_is_a_lever_not_host_idle() -> None:
    profile = load("perf_report_gomp_symbols.txt")
    assert next(iter(profile.categories)) == perf.OMP_SPIN
    assert profile.categories[perf.OMP_SPIN] == pytest.approx(0.89)
    by = {(k.name, k.module): k.category for k in profile.kernels}
    for symbol in ("gomp_barrier_wait_end", "gomp_team_barrier_wait_end", "do_spin", "do_wait"):
        assert by[(symbol, "libgomp.so.1.0.0")] == perf.OMP_SPIN
    # The kernel's do_wait is wait4(2), and the outlined parallel body is ggml's own work: neither is a spin.
    assert by[("do_wait", "[kernel.kallsyms]")] == by_name("do_wait", "[kernel.kallsyms]") != perf.OMP_SPIN
    assert by[("ggml_graph_compute._omp_fn.0", "llama-server")] != perf.OMP_SPIN
    assert profile.categories.get("host_idle", 0.0) < 0.05
    assert profile.unknown == [k.name for k in profile.kernels if k.category == "unknown"]


def test_llvm_and_intel_runtimes_by_library_or_symbol() -> None:
    profile = load("perf_report_kmp.txt")
    by = {(k.name, k.module): k.category for k in profile.kernels}
    assert by[("__kmp_wait_template<kmp_flag_64<false, true>, true, false, true>", "libomp.so.5")] == perf.OMP_SPIN
    assert by[("0x0000000000094c31", "libiomp5.so")] == perf.OMP_SPIN
    assert by[("__kmp_hyper_barrier_release", "static-server")] == perf.OMP_SPIN, "a runtime linked in"
    assert by[("gemm_kernel_f32", "static-server")] == "gemm"
    assert profile.categories[perf.OMP_SPIN] == pytest.approx(0.8)


@pytest.mark.parametrize(("symbol", "dso", "spin"), [
    ("0x000000000001f7da", "libgomp.so.1", True),
    ("gomp_team_barrier_wait_end", "libgomp-a34b3233.so.1.0.0", True),  # vendored by a wheel
    ("0x000000000001f7da", "/usr/lib/x86_64-linux-gnu/libgomp.so.1", True),
    ("GOMP_barrier", "llama-server", True),
    ("gomp_barrier_wait_end", "[kernel.kallsyms]", False),
    ("do_spin", "llama-server", False),
    ("ggml_graph_compute._omp_fn.0", "llama-server", False),
    ("omp_get_thread_num", None, False),
    ("0x1234", "libompd.so", False),
    ("0x1234", "libgompx.so.1", False),
])
def test_openmp_wait_by_shared_object_then_symbol(symbol: str, dso: str | None, spin: bool) -> None:
    assert perf.is_openmp_wait(symbol, dso) is spin


def test_bad_report_lines_name_the_line() -> None:
    good = (FIX / "perf_report_gomp_symbols.txt").read_text()
    with pytest.raises(ProfileError, match=r"x\.txt:19: expected 5 fields"):
        perf.from_report(good + " 1.00%\x1f 20\x1f [.] lost_columns\n", "x.txt")
    with pytest.raises(ProfileError, match="no samples"):
        perf.from_report("# only comments\n#\n", "empty.txt")
