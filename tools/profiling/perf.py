"""Linux `perf` as the CPU profiler: record a process for a window, report self time per symbol."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

from .build import ProfileError, Raw, build_profile
from .models import Profile

SEP = "\x1f"  # never in a symbol name, unlike "|" (C++ operator|)
FREQ_HZ = 999


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


def report(data: Path, window_s: float | None = None) -> Profile:
    """Self time per (symbol, shared object) from a perf.data file."""
    if shutil.which("perf") is None:
        raise ProfileError("perf is not installed (Debian: apt install linux-perf)")
    argv = ["perf", "report", "-i", str(data), "--stdio", "--no-children", "--sort", "sym,dso",
            "-F", "overhead,sample,period,sym,dso", f"--field-separator={SEP}"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise ProfileError(f"perf report failed on {data}: {done.stderr.strip()[-300:]}")
    rows = parse_report(done.stdout, str(data))
    if not rows:
        raise ProfileError(f"{data}: no samples (was the process busy during the window?)")
    header = _header(data)
    if window_s is None and "sample duration" in header:
        window_s = float(header["sample duration"].split()[0]) / 1000.0
    profile = build_profile(rows, "perf", tool_version=header.get("perf version"), window_s=window_s,
                            source=[str(data)], samples=sum(r.calls or 0 for r in rows))
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
