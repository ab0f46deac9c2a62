"""The four-step kernel gate: compile, correctness, micro-benchmark, adversarial inputs.

Every step runs in a child process with a timeout (and the runner caps its own
memory): a kernel that fails to build, computes wrong, is slower, mishandles NaN,
crashes or never returns fails its step with the reason, and the caller carries on.
"""

from __future__ import annotations

import json
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from ..procs import run_captured
from .spec import LoadedTask
from .toolchains import BUILD, compiler, device, triton_installed

Step = Literal["compile", "correctness", "benchmark", "adversarial"]
STEPS: tuple[Step, ...] = ("compile", "correctness", "benchmark", "adversarial")
DIAGNOSTIC = re.compile(r"^(?P<file>[^:\s]+):(?P<line>\d+):(?:(?P<col>\d+):)?\s*(?P<level>fatal error|error|warning"
                        r"|note):\s*(?P<message>.*)$")


class Diagnostic(BaseModel):
    """One compiler message."""

    file: str
    line: int
    column: int | None = None
    level: str
    message: str


class StepResult(BaseModel):
    """How one step of the gate went."""

    step: Step
    passed: bool
    summary: str
    seconds: float = 0.0
    diagnostics: list[Diagnostic] = Field(default_factory=list)
    details: dict[str, Any] = Field(default_factory=dict)


class GateReport(BaseModel):
    """The gate's verdict on a kernel task, step by step."""

    task: str
    language: str
    passed: bool
    failed_step: Step | None = None
    steps: list[StepResult]
    speedup: float | None = Field(None, description="median baseline time / candidate time, slowest bench shape")
    speedup_ci: tuple[float, float] | None = None


def diagnostics(text: str) -> list[Diagnostic]:
    """gcc/clang/nvcc/hipcc `file:line:col: error: message` lines."""
    found = []
    for line in text.splitlines():
        match = DIAGNOSTIC.match(line.strip())
        if match:
            found.append(Diagnostic(file=Path(match["file"]).name, line=int(match["line"]),
                                    column=int(match["col"]) if match["col"] else None, level=match["level"],
                                    message=match["message"]))
    return found


def build(loaded: LoadedTask, which: Literal["candidate", "baseline"], out_dir: Path) -> StepResult:
    """Compile the candidate or baseline sources into a shared library in `out_dir`."""
    task = loaded.task
    sources = loaded.sources if which == "candidate" else loaded.baseline
    started = time.monotonic()
    if task.language == "triton":
        if not triton_installed():
            return StepResult(step="compile", passed=False, summary="triton is not installed here (pip install "
                              "triton; it also needs a GPU): cannot build triton kernels")
        done = run_captured([sys.executable, "-m", "py_compile", *map(str, sources)], timeout=task.limits.compile_s)
        ok = done.returncode == 0
        return StepResult(step="compile", passed=ok, summary="sources compile" if ok else "syntax errors",
                          seconds=done.seconds, details={"stderr": done.stderr[-4000:]})
    cc = compiler(task.language)
    if cc is None:
        return StepResult(step="compile", passed=False,
                          summary=f"no {task.language} compiler here ({BUILD[task.language][0]} = "
                                  f"{ {'hip': 'hipcc', 'cuda': 'nvcc'}.get(task.language, 'gcc')} not found)")
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / f"lib{task.name}-{which}.so"
    template = task.build or BUILD[task.language]
    argv: list[str] = []
    for item in template:
        if item == "{sources}":
            argv += [str(s) for s in sources]
        else:
            argv.append(item.replace("{cc}", cc).replace("{output}", str(output))
                        .replace("{include}", str(loaded.folder)))
    done = run_captured(argv, timeout=task.limits.compile_s, cwd=loaded.folder)
    found = diagnostics(done.stderr + "\n" + done.stdout)
    if done.timed_out:
        summary, ok = f"{which} build timed out after {task.limits.compile_s:g}s", False
    elif done.returncode != 0 or not output.is_file():
        errors = [d for d in found if d.level in ("error", "fatal error")]
        first = f": {errors[0].file}:{errors[0].line}: {errors[0].message}" if errors else ""
        summary, ok = f"{which} failed to compile (exit {done.returncode}){first}", False
    else:
        summary, ok = f"{which} built", True
    return StepResult(step="compile", passed=ok, summary=summary, seconds=time.monotonic() - started,
                      diagnostics=found, details={"argv": argv, "library": str(output) if ok else None,
                                                  "log": (done.stderr + done.stdout)[-4000:]})


def _job(loaded: LoadedTask, mode: str, lib: str, baseline_lib: str | None = None) -> dict[str, Any]:
    task = loaded.task
    return {
        "mode": mode, "lib": lib, "baseline_lib": baseline_lib, "entry": task.entry, "returns": task.returns,
        "args": [a.model_dump() for a in task.args],
        "reference": {"file": str(loaded.reference), "function": task.reference.function},
        "shapes": task.shapes, "tolerance": task.tolerance.model_dump(), "seed": task.seed,
        "bench": task.bench.model_dump() if task.bench else None,
        "adversarial": task.adversarial.model_dump(), "memory_mb": task.limits.memory_mb,
    }


def _run(loaded: LoadedTask, step: Step, job: dict[str, Any]) -> tuple[StepResult | None, dict[str, Any]]:
    """Run the runner; a crash, timeout or memory blow-up becomes a failed StepResult naming the case."""
    task = loaded.task
    timeout = task.limits.run_s
    done = run_captured([sys.executable, "-m", "arbor.tools.kernels.runner"], input_text=json.dumps(job),
                        timeout=timeout, cwd=loaded.folder)
    cases = [line[6:] for line in done.stderr.splitlines() if line.startswith("case: ")]
    last = f" (during case {cases[-1]})" if cases else ""
    if done.timed_out:
        return StepResult(step=step, passed=False, seconds=done.seconds,
                          summary=f"no result within {timeout:g}s: the kernel never returned{last}"), {}
    if done.returncode is not None and done.returncode < 0:
        name = signal.Signals(-done.returncode).name
        what = {"SIGSEGV": "crashed with a segmentation fault", "SIGBUS": "crashed with a bus error",
                "SIGFPE": "raised a floating-point exception", "SIGABRT": "aborted",
                "SIGKILL": "was killed (memory?)"}.get(name, f"died by {name}")
        return StepResult(step=step, passed=False, seconds=done.seconds, summary=f"the kernel {what}{last}"), {}
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        memory = " (memory cap reached)" if "MemoryError" in done.stderr else ""
        return StepResult(step=step, passed=False, seconds=done.seconds,
                          summary=f"the test harness failed{memory}{last}: {tail[0][:300]}",
                          details={"stderr": done.stderr[-4000:]}), {}
    try:
        return None, json.loads(done.stdout.strip().splitlines()[-1]) | {"seconds": done.seconds}
    except (ValueError, IndexError):
        return StepResult(step=step, passed=False, seconds=done.seconds,
                          summary=f"the harness printed no result: {done.stdout[-300:]!r}"), {}


def _failures(cases: list[dict[str, Any]]) -> str:
    parts = []
    for case in cases:
        if case["ok"]:
            continue
        if "why" in case and "outputs" not in case:
            parts.append(f"{case['case']}: {case['why']}")
            continue
        for out in case.get("outputs", []):
            if not out["ok"]:
                detail = out.get("why") or (f"{out['mismatches']}/{out['elements']} elements off, max abs err "
                                            f"{out.get('max_abs_err', 0):.3g}")
                at = out.get("first_mismatch")
                where = f"; first at {at['index']}: got {at['got']}, expected {at['expected']}" if at else ""
                parts.append(f"{case['case']}: {out['output']}: {detail}{where}")
    return "; ".join(parts[:4])


def correctness(loaded: LoadedTask, lib: str) -> StepResult:
    """Every shape against the reference, within tolerance."""
    failed, data = _run(loaded, "correctness", _job(loaded, "correctness", lib))
    if failed:
        return failed
    ok = data["ok"]
    summary = f"all {len(data['cases'])} shapes match the reference" if ok else "wrong results: " + _failures(
        data["cases"])
    return StepResult(step="correctness", passed=ok, summary=summary, seconds=data["seconds"],
                      details={"cases": data["cases"]})


def adversarial(loaded: LoadedTask, lib: str) -> StepResult:
    """NaN/Inf propagation, zeros, denormals, size 1, odd, unaligned and large inputs."""
    failed, data = _run(loaded, "adversarial", _job(loaded, "adversarial", lib))
    if failed:
        return failed
    ok = data["ok"]
    names = ", ".join(c["case"] for c in data["cases"])
    summary = f"handles {names}" if ok else "mishandles " + _failures(data["cases"])
    return StepResult(step="adversarial", passed=ok, summary=summary, seconds=data["seconds"],
                      details={"cases": data["cases"]})


def benchmark(loaded: LoadedTask, lib: str, baseline_lib: str | None) -> StepResult:
    """Median time per call with an interval, and the speedup over the baseline kernel."""
    task = loaded.task
    if task.bench is None:
        return StepResult(step="benchmark", passed=True, summary="no [bench] section: not measured")
    failed, data = _run(loaded, "benchmark", _job(loaded, "bench", lib, baseline_lib))
    if failed:
        return failed
    shapes = data["shapes"]
    if baseline_lib is None:
        times = ", ".join(f"{s['shape']}: {s['candidate_ns'][0]:.0f} ns" for s in shapes)
        return StepResult(step="benchmark", passed=True, summary=f"no baseline to compare; median {times}",
                          seconds=data["seconds"], details={"shapes": shapes})
    worst = min(shapes, key=lambda s: s["speedup"][0])
    speedup, low, high = worst["speedup"]
    # "Faster" needs evidence: the interval's low end above 1, not only the median.
    ok = speedup >= task.bench.min_speedup and (low > 1.0 or task.bench.min_speedup < 1.0)
    verdict = "faster" if ok else "not faster"
    summary = (f"{verdict}: {speedup:.2f}x the baseline (95% interval {low:.2f}-{high:.2f}) at {worst['shape']}, "
               f"needs {task.bench.min_speedup:g}x")
    return StepResult(step="benchmark", passed=ok, summary=summary, seconds=data["seconds"],
                      details={"shapes": shapes, "speedup": speedup, "speedup_ci": [low, high]})


def _runnable(loaded: LoadedTask) -> StepResult | None:
    if device(loaded.task.language) is None:
        return StepResult(step="correctness", passed=False,
                          summary=f"no device to run {loaded.task.language} kernels on this machine (built, not run)")
    return None


def run_gate(loaded: LoadedTask, work_dir: Path, steps: tuple[Step, ...] = STEPS) -> GateReport:
    """Run the requested steps in order, stopping at the first failure."""
    task = loaded.task
    results: list[StepResult] = []
    speedup = ci = None

    def report() -> GateReport:
        failed = next((r.step for r in results if not r.passed), None)
        return GateReport(task=task.name, language=task.language, passed=failed is None, failed_step=failed,
                          steps=results, speedup=speedup, speedup_ci=ci)

    built = build(loaded, "candidate", work_dir)
    results.append(built)
    if not built.passed or steps == ("compile",):
        return report()
    baseline_lib = None
    if loaded.baseline and "benchmark" in steps:
        base = build(loaded, "baseline", work_dir)
        if not base.passed:
            base.summary = "baseline: " + base.summary
            results.append(base)
            return report()
        baseline_lib = base.details["library"]
    if (blocked := _runnable(loaded)) is not None:
        results.append(blocked)
        return report()
    lib = built.details["library"]
    for step in steps[1:] if steps[0] == "compile" else steps:
        if step == "correctness":
            result = correctness(loaded, lib)
        elif step == "benchmark":
            result = benchmark(loaded, lib, baseline_lib)
            if "speedup" in result.details:
                speedup, ci = result.details["speedup"], tuple(result.details["speedup_ci"])
        elif step == "adversarial":
            result = adversarial(loaded, lib)
        else:
            continue
        results.append(result)
        if not result.passed:
            break
    return report()
