"""The four-step kernel gate on small C kernels, run for real with gcc and ctypes in child processes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from arbor.tools.errors import InputError
from arbor.tools.kernels.gate import run_gate
from arbor.tools.kernels.spec import load_task

EXAMPLE = Path(__file__).resolve().parents[2] / "tools" / "kernels" / "examples" / "rmsnorm"
FAST = (EXAMPLE / "rmsnorm_fast.c").read_text()

SLOWER = """#include <math.h>
void rmsnorm(float *out, const float *x, const float *w, int rows, int cols, float eps) {
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (long)r * cols;
        volatile double sum = 0.0;                 /* volatile: every add goes through memory */
        for (int rep = 0; rep < 3; rep++) { sum = 0.0; for (int c = 0; c < cols; c++) sum += (double)xr[c] * xr[c]; }
        double rms = sqrt(sum / cols + eps);
        for (int c = 0; c < cols; c++) out[(long)r * cols + c] = (float)(xr[c] / rms * w[c]);
    }
}
"""
WRONG = FAST.replace("sum / cols + eps", "sum + eps")  # forgets the mean
# "Repairs" a NaN sum to zero: as fast as FAST, but a row with one NaN comes out finite where
# the reference (and every correct kernel) propagates NaN across the row.
NAN_SKIPPING = FAST.replace("float inv =", "if (sum != sum) sum = 0.0f;\n        float inv =")
CRASHING = FAST.replace("float inv =", "if (rows > 2) *(volatile int *)0 = 1;\n        float inv =")
LOOPING = FAST.replace("float inv =", "for (volatile int spin = 1; spin; ) {}\n        float inv =")
BROKEN = FAST.replace("float inv = 1.0f", "float inv = 1.0f +")


def variant(tmp_path: Path, source: str, **limits: float) -> Path:
    folder = tmp_path / "task"
    shutil.copytree(EXAMPLE, folder)
    (folder / "rmsnorm_fast.c").write_text(source)
    if limits:
        text = (folder / "task.toml").read_text().replace("run_s = 60", f"run_s = {limits['run_s']}")
        (folder / "task.toml").write_text(text)
    return folder


def gate(folder: Path, tmp_path: Path):
    return run_gate(load_task(folder), tmp_path / "build")


def test_correct_faster_kernel_passes_with_a_speedup(tmp_path: Path) -> None:
    report = gate(EXAMPLE, tmp_path)
    assert report.passed, [s.summary for s in report.steps]
    assert [s.step for s in report.steps] == ["compile", "correctness", "benchmark", "adversarial"]
    assert report.speedup > 1 and report.speedup_ci[0] > 1.0
    adversarial = report.steps[-1].details["cases"]
    assert {c["case"] for c in adversarial} == {"nan", "inf", "zeros", "denormal", "size1", "odd", "unaligned",
                                                "large"}


def test_compile_error_is_explained(tmp_path: Path) -> None:
    report = gate(variant(tmp_path, BROKEN), tmp_path)
    step = report.steps[0]
    assert not report.passed and report.failed_step == "compile"
    errors = [d for d in step.diagnostics if d.level == "error"]
    assert errors and errors[0].file == "rmsnorm_fast.c" and errors[0].line == 16
    assert "rmsnorm_fast.c:16" in step.summary


def test_wrong_result_fails_correctness(tmp_path: Path) -> None:
    report = gate(variant(tmp_path, WRONG), tmp_path)
    assert report.failed_step == "correctness"
    assert "wrong results" in report.steps[-1].summary and "first at" in report.steps[-1].summary


def test_slower_kernel_fails_the_benchmark(tmp_path: Path) -> None:
    report = gate(variant(tmp_path, SLOWER), tmp_path)
    assert report.failed_step == "benchmark"
    assert report.speedup < 1.0
    assert report.steps[-1].summary.startswith("not faster")


def test_nan_mishandling_fails_adversarial(tmp_path: Path) -> None:
    report = gate(variant(tmp_path, NAN_SKIPPING), tmp_path)
    assert [s.passed for s in report.steps] == [True, True, True, False], [s.summary for s in report.steps]
    summary = report.steps[-1].summary
    assert summary.startswith("mishandles nan") and "NaN" in summary


def test_segfault_fails_and_names_the_case(tmp_path: Path) -> None:
    report = gate(variant(tmp_path, CRASHING), tmp_path)
    assert report.failed_step == "correctness"
    assert "segmentation fault" in report.steps[-1].summary and "rows': 4" in report.steps[-1].summary


def test_kernel_that_never_returns_times_out(tmp_path: Path) -> None:
    report = gate(variant(tmp_path, LOOPING, run_s=3), tmp_path)
    assert report.failed_step == "correctness"
    assert "no result within 3s" in report.steps[-1].summary
    # and the machine is still usable: the good kernel passes right after
    assert gate(EXAMPLE, tmp_path).passed


@pytest.mark.parametrize(("edit", "message"), [
    (lambda t: t.replace('sources = ["rmsnorm_fast.c"]', 'sources = ["missing.c"]'), "'missing.c' does not exist"),
    (lambda t: t.replace('sources = ["rmsnorm_fast.c"]', 'sources = ["../../etc/passwd"]'), "outside the task folder"),
    (lambda t: t.replace('language = "c"', 'language = "fortran"'), "language"),
    (lambda t: t.replace('kind = "dim"', 'kind = "dimension"', 1), "kind"),
    (lambda t: t.replace("{ rows = 1, cols = 8 }", "{ rows = 1 }"), "lacks dimension"),
])
def test_bad_task_specs_are_clear_errors(tmp_path: Path, edit, message: str) -> None:
    folder = variant(tmp_path, FAST)
    (folder / "task.toml").write_text(edit((folder / "task.toml").read_text()))
    with pytest.raises(InputError, match=message):
        load_task(folder)


def test_cuda_task_says_what_is_missing(tmp_path: Path) -> None:
    folder = variant(tmp_path, FAST)
    (folder / "kernel.cu").write_text('extern "C" void rmsnorm(float *o, const float *x, const float *w, int r, '
                                      'int c, float e) {}\n')
    text = (folder / "task.toml").read_text().replace('language = "c"', 'language = "cuda"')
    text = text.replace('sources = ["rmsnorm_fast.c"]', 'sources = ["kernel.cu"]')
    (folder / "task.toml").write_text(text)
    report = gate(folder, tmp_path)
    assert not report.passed
    final = report.steps[-1].summary
    # Either nvcc is absent, or it built and there is no GPU to run on: both said plainly.
    assert ("no cuda compiler" in final) or ("no device to run cuda kernels" in final), final


def test_memory_cap_holds_a_greedy_kernel(tmp_path: Path) -> None:
    # 4 GiB is below this machine's memory but above the task's 2 GiB cap: under the cap malloc
    # fails and the kernel dies on the NULL write; without a cap it would run and "pass".
    greedy = "#include <stdlib.h>\n#include <string.h>\n" + FAST.replace(
        "float inv =", "{ char *p = malloc(4UL << 30); if (!p) *(volatile int *)0 = 1; memset(p, 1, 4UL << 30); "
        "free(p); }\n        float inv =")
    report = gate(variant(tmp_path, greedy), tmp_path)
    assert report.failed_step == "correctness"
    assert "segmentation fault" in report.steps[-1].summary
