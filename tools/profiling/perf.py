"""Linux `perf` as the CPU profiler: record a process for a window, report self time per symbol."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

from .build import ProfileError, Raw, build_profile, by_name
from .models import Profile

SEP = "\x1f"  # never in a symbol name, unlike "|" (C++ operator|)
FREQ_HZ = 999

# Threads spinning in the OpenMP runtime's barriers and waits are not idle: OMP_WAIT_POLICY, GOMP_SPINCOUNT
# and the thread count move that time, so it is its own category rather than host_idle. On a llama.cpp
# CPU build (ggml links libgomp) it can be most of the samples.
OMP_SPIN = "omp_spin"
# The runtimes' shared objects as perf names them: GNU libgomp (wheels vendor it as libgomp-<hash>.so.1),
# LLVM libomp, Intel libiomp5. Without their debug symbols perf shows bare addresses in them, so the
# shared object decides; nearly all the time sampled inside one is spent waiting at a barrier.
_OMP_DSO = re.compile(r"^lib(?:gomp|omp|iomp5)(?:-[0-9a-f]+)?\.so(?:\.\d+)*$")
# Their wait loops by symbol, for a runtime linked into the binary itself: libgomp's barrier waits, the
# LLVM/Intel __kmp waits and barriers. libgomp's do_spin/do_wait count only inside its own shared object:
# the kernel has a do_wait (wait4) of its own.
_OMP_WAIT = re.compile(r"^(?:GOMP_barrier|gomp_(?:team_)?barrier_wait|__kmp_(?:wait|yield|hyper_barrier|"
                       r"fork_barrier|join_barrier|barrier|execute_tasks)|__kmpc_barrier|kmp_flag)")


def version() -> str | None:
    """`perf --version`, or None when perf is not installed."""
    if shutil.which("perf") is None:
        return None
    done = subprocess.run(["perf", "--version"], capture_output=True, text=True, timeout=30)
    return done.stdout.strip().removeprefix("perf version ") or None


def record(pid: int, seconds: float, out: Path) -> Path:
    """`perf record -e cpu-clock` on every thread of `pid` for `seconds`; returns the perf.data path."""
    if shutil.which("perf") is None:
        raise ProfileError("perf is not installed (Debian: apt install linux-perf)")
    out.parent.mkdir(parents=True, exist_ok=True)
    # cpu-clock is a software event: hardware cycles are not available on every machine (VMs).
    argv = ["perf", "record", "-e", "cpu-clock", "-F", str(FREQ_HZ), "-p", str(pid), "-o", str(out),
            "--", "sleep", f"{seconds:g}"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    except subprocess.TimeoutExpired as exc:
        raise ProfileError(f"perf record did not finish within {seconds + 60:g}s") from exc
    if done.returncode != 0 or not out.is_file():
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise ProfileError(f"perf record failed (exit {done.returncode}): {' / '.join(tail)}")
    return out


def _header(data: Path) -> dict[str, str]:
    done = subprocess.run(["perf", "report", "-i", str(data), "--header-only"], capture_output=True, text=True,
                          timeout=120)
    info = {}
    for line in done.stdout.splitlines():
        key, sep, value = line.lstrip("# ").partition(" : ")
        if sep:
            info[key.strip()] = value.strip()
    return info


def parse_report(text: str, source: str = "perf report") -> list[Raw]:
    """Rows of `perf report --no-children -F overhead,sample,period,sym,dso` with the SEP field separator."""
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split(SEP)
        if len(parts) < 5:
            raise ProfileError(f"{source}:{number}: expected 5 fields (overhead, samples, period, symbol, dso), "
                               f"got {len(parts)}")
        try:
            samples, period = int(parts[1]), float(parts[2])
        except ValueError:
            raise ProfileError(f"{source}:{number}: samples/period are not numbers: {line[:120]!r}") from None
        symbol = SEP.join(parts[3:-1]).strip()
        symbol = re.sub(r"^\[[.kgu]\]\s+", "", symbol)  # [.] user, [k] kernel
        rows.append(Raw(symbol, period, samples, parts[-1].strip() or None))
    return rows


def is_openmp_wait(symbol: str, dso: str | None) -> bool:
    """Whether a sample is a thread waiting in an OpenMP runtime, by shared object, else by symbol."""
    if dso is None or dso.startswith("["):  # [kernel.kallsyms], [vdso], [unknown]: never the runtime
        return False
    return bool(_OMP_DSO.match(dso.rsplit("/", 1)[-1]) or _OMP_WAIT.match(symbol))


def category(symbol: str, dso: str | None) -> str:
    """The category of one perf row: OpenMP spin-wait first, then the name patterns."""
    return OMP_SPIN if is_openmp_wait(symbol, dso) else by_name(symbol, dso)


def report(data: Path, window_s: float | None = None) -> Profile:
    """Self time per (symbol, shared object) from a perf.data file."""
    if shutil.which("perf") is None:
        raise ProfileError("perf is not installed (Debian: apt install linux-perf)")
    argv = ["perf", "report", "-i", str(data), "--stdio", "--no-children", "--sort", "sym,dso",
            "-F", "overhead,sample,period,sym,dso", f"--field-separator={SEP}"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise ProfileError(f"perf report failed on {data}: {done.stderr.strip()[-300:]}")
    header = _header(data)
    if window_s is None and "sample duration" in header:
        window_s = float(header["sample duration"].split()[0]) / 1000.0
    return from_report(done.stdout, str(data), header.get("perf version"), window_s)


def from_report(text: str, source: str, tool_version: str | None = None, window_s: float | None = None) -> Profile:
    """A Profile from `perf report` text in the form `report` asks for (see `parse_report`)."""
    rows = parse_report(text, source)
    if not rows:
        raise ProfileError(f"{source}: no samples (was the process busy during the window?)")
    profile = build_profile(rows, "perf", category, tool_version=tool_version, window_s=window_s, source=[source],
                            samples=sum(r.calls or 0 for r in rows))
    # Sampling cannot count calls: what we summed were samples, which the schema keeps out of `calls`.
    for kernel in profile.kernels:
        kernel.calls, kernel.avg_ns = None, None
    return profile


def profile_pid(pid: int, seconds: float, out_dir: Path) -> Profile:
    """Record and report one window of a running process."""
    started = time.time()
    data = record(pid, seconds, out_dir / f"perf-{pid}-{int(started)}.data")
    profile = report(data)
    profile.started_at = started
    return profile
