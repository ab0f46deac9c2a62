"""Parsers for profiler output files: rocprofv3, legacy rocprof, nsys stats, ncu raw CSV, PyTorch profiler.

Columns are found by name, never by position; a file that does not fit gets a
ProfileError naming the file and line.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator
from pathlib import Path

from .build import ProfileError, Raw, build_profile
from .models import Profile


def _rows(path: Path, text: str, header_at: int = 0) -> Iterator[tuple[int, dict[str, str]]]:
    """CSV rows as dicts with their 1-based line numbers; `header_at` is the 0-based header line."""
    lines = text.splitlines()
    reader = csv.DictReader(io.StringIO("\n".join(lines[header_at:])))
    for offset, row in enumerate(reader, start=header_at + 2):
        if None in row or any(v is None for v in row.values()):
            raise ProfileError(f"{path}:{offset}: row has {'more' if None in row else 'fewer'} cells than the header")
        yield offset, row


def _need(path: Path, fields: list[str] | None, wanted: list[str], line: int) -> None:
    missing = [w for w in wanted if w not in (fields or [])]
    if missing:
        raise ProfileError(f"{path}:{line}: missing column(s) {missing}; found {fields}")


def _number(path: Path, line: int, column: str, value: str) -> float:
    try:
        return float(value.replace(",", "")) if value.strip() else 0.0
    except ValueError:
        raise ProfileError(f"{path}:{line}: column {column!r} is not a number: {value!r}") from None


def _header(path: Path, text: str) -> list[str]:
    first = text.splitlines()[0] if text else ""
    return next(csv.reader([first]), [])


def parse_rocprof_stats(paths: list[Path], tool: str = "rocprofv3") -> Profile:
    """`*_kernel_stats.csv` (rocprofv3) or `results.stats.csv` (rocprof): one file per process, merged."""
    rows: list[Raw] = []
    for path in paths:
        text = path.read_text()
        _need(path, _header(path, text), ["Name", "Calls", "TotalDurationNs"], 1)
        for line, row in _rows(path, text):
            rows.append(Raw(row["Name"], _number(path, line, "TotalDurationNs", row["TotalDurationNs"]),
                            int(_number(path, line, "Calls", row["Calls"]))))
    return build_profile(rows, tool, source=[str(p) for p in paths])


def parse_rocprof_trace(paths: list[Path]) -> Profile:
    """`*_kernel_trace.csv` (rocprofv3): one row per dispatch, aggregated by kernel name."""
    rows: list[Raw] = []
    for path in paths:
        text = path.read_text()
        _need(path, _header(path, text), ["Kernel_Name", "Start_Timestamp", "End_Timestamp"], 1)
        for line, row in _rows(path, text):
            start = _number(path, line, "Start_Timestamp", row["Start_Timestamp"])
            end = _number(path, line, "End_Timestamp", row["End_Timestamp"])
            if end < start:
                raise ProfileError(f"{path}:{line}: End_Timestamp before Start_Timestamp")
            rows.append(Raw(row["Kernel_Name"], end - start, 1))
    return build_profile(rows, "rocprofv3", source=[str(p) for p in paths])


def parse_nsys_kern_sum(path: Path) -> Profile:
    """`nsys stats --report cuda_gpu_kern_sum --format csv` output, non-CSV lines before the header allowed."""
    text = path.read_text()
    lines = text.splitlines()
    header_at = next((i for i, line in enumerate(lines) if "Total Time (ns)" in line and "Name" in line), None)
    if header_at is None:
        raise ProfileError(f"{path}: no cuda_gpu_kern_sum header (a line with 'Total Time (ns)' and 'Name')")
    fields = next(csv.reader([lines[header_at]]))
    _need(path, fields, ["Total Time (ns)", "Instances", "Name"], header_at + 1)
    rows = [Raw(row["Name"], _number(path, line, "Total Time (ns)", row["Total Time (ns)"]),
                int(_number(path, line, "Instances", row["Instances"])))
            for line, row in _rows(path, text, header_at)]
    return build_profile(rows, "nsys", source=[str(path)])


def parse_ncu_raw(path: Path) -> Profile:
    """`ncu --csv --page raw`: skip `==PROF==` lines and the units row; sum gpu__time_duration.sum per kernel."""
    lines = [line for line in path.read_text().splitlines() if not line.startswith("==")]
    text = "\n".join(lines)
    fields = _header(path, text)
    name_col = "Kernel Name" if "Kernel Name" in fields else "Function Name"
    _need(path, fields, [name_col, "gpu__time_duration.sum"], 1)
    rows = []
    unit_scale = 1.0
    for line, row in _rows(path, text):
        if line == 2 and not row[name_col].strip():
            unit = row["gpu__time_duration.sum"].strip().lower()  # the units row: nsecond, usecond, msecond
            unit_scale = {"ns": 1.0, "nsecond": 1.0, "us": 1e3, "usecond": 1e3, "ms": 1e6, "msecond": 1e6,
                          "s": 1e9, "second": 1e9}.get(unit, 1.0)
            continue
        rows.append(Raw(row[name_col], unit_scale * _number(path, line, "gpu__time_duration.sum",
                                                            row["gpu__time_duration.sum"]), 1))
    return build_profile(rows, "ncu", source=[str(path)])


def parse_torch_key_averages(path: Path) -> Profile:
    """A JSON list of `prof.key_averages()` rows (key, count, self_device_time_total or self_cpu_time_total, us)."""
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise ProfileError(f"{path}:{getattr(exc, 'lineno', 1)}: not JSON: {exc}") from exc
    if not isinstance(data, list):
        raise ProfileError(f"{path}:1: expected a JSON list of key_averages rows")
    device = any(float(r.get("self_device_time_total") or 0) > 0 for r in data if isinstance(r, dict))
    field = "self_device_time_total" if device else "self_cpu_time_total"
    rows = []
    for i, row in enumerate(data):
        if not isinstance(row, dict) or "key" not in row or field not in row:
            raise ProfileError(f"{path}: entry {i} lacks 'key' or {field!r}")
        rows.append(Raw(str(row["key"]), float(row[field]) * 1e3, int(row.get("count") or 0) or None))
    return build_profile(rows, "torch.profiler", source=[str(path)])


def _read_text(path: Path) -> str:
    if path.suffix == ".gz":
        with gzip.open(path, "rt") as handle:
            return handle.read()
    return path.read_text()


def parse_chrome_trace(paths: Path | list[Path]) -> Profile:
    """Chrome traces (PyTorch `export_chrome_trace`; vLLM's *.pt.trace.json.gz and SGLang's *.trace.json.gz per
    rank): GPU kernel events, else CPU ops, summed by name across files."""
    paths = [paths] if isinstance(paths, Path) else paths
    read: list[tuple[Path, list[dict], list[dict]]] = []
    for path in paths:
        try:
            data = json.loads(_read_text(path))
        except (ValueError, OSError) as exc:
            raise ProfileError(f"{path}:{getattr(exc, 'lineno', 1)}: not a JSON trace: {exc}") from exc
        events = data.get("traceEvents") if isinstance(data, dict) else data
        if not isinstance(events, list):
            raise ProfileError(f"{path}:1: no traceEvents list")
        complete = [e for e in events if isinstance(e, dict) and e.get("ph") == "X" and "dur" in e]
        kernels = [e for e in complete if str(e.get("cat", "")).lower() in ("kernel", "gpu_memcpy", "gpu_memset")]
        read.append((path, complete, kernels))
    # vLLM writes its API server's CPU-only trace beside the workers' traces: once any file holds kernels, the
    # time is the device's, and a host process's Python ops are not added to it.
    on_device = any(kernels for _, _, kernels in read)
    rows: list[Raw] = []
    used: list[str] = []
    for path, complete, kernels in read:
        if on_device and not kernels:
            continue
        chosen = kernels or [e for e in complete if str(e.get("cat", "")).lower() in ("cpu_op", "operator")]
        if not chosen:
            raise ProfileError(f"{path}: no complete ('X') kernel or cpu_op events")
        rows += [Raw(str(e.get("name", "?")), float(e["dur"]) * 1e3, 1) for e in chosen]
        used.append(str(path))
        if kernels:
            idle = _device_idle_ns(kernels)
            if idle > 0:
                rows.append(Raw(IDLE, idle, None))
    return build_profile(rows, "torch.profiler", source=used)


IDLE = "GPU idle between kernels"


def _device_idle_ns(kernels: list[dict]) -> float:
    """Time each device sat idle between its first and last kernel: launch gaps and host work it waited on.

    A decode step bound by the host (Python, scheduling, kernel launches) shows as gaps on the GPU
    timeline, not as any kernel; graph capture and batching act on exactly this time.
    """
    by_device: dict[object, list[tuple[float, float]]] = {}
    for e in kernels:
        start = float(e.get("ts", 0.0))
        by_device.setdefault(e.get("pid"), []).append((start, start + float(e["dur"])))
    idle = 0.0
    for spans in by_device.values():
        spans.sort()
        end = spans[0][1]
        for start, stop in spans[1:]:
            if start > end:
                idle += start - end  # overlapping streams leave no gap
            end = max(end, stop)
    return idle * 1e3


def detect_and_parse(path: Path) -> Profile:
    """Parse a profile file or a folder of them, recognising the format from names and headers."""
    path = Path(path)
    if path.is_dir():
        stats = sorted(path.rglob("*kernel_stats.csv"))
        if stats:
            return parse_rocprof_stats(stats)
        traces = sorted(path.rglob("*kernel_trace.csv"))
        if traces:
            return parse_rocprof_trace(traces)
        legacy = sorted(path.rglob("results.stats.csv"))
        if legacy:
            return parse_rocprof_stats(legacy, tool="rocprof")
        traces = sorted(p for p in path.rglob("*.trace.json*") if p.name.endswith((".trace.json", ".trace.json.gz")))
        if traces:
            return parse_chrome_trace(traces)
        raise ProfileError(f"{path}: no rocprof kernel_stats/kernel_trace/results.stats CSV or PyTorch trace inside")
    if not path.is_file():
        raise ProfileError(f"{path}: no such file")
    name = path.name
    head = "" if name.endswith(".gz") else path.read_text(errors="replace")[:4096]
    if name.endswith("kernel_stats.csv"):
        return parse_rocprof_stats([path])
    if name.endswith("kernel_trace.csv"):
        return parse_rocprof_trace([path])
    if name == "results.stats.csv" or head.startswith('"Name","Calls","TotalDurationNs"'):
        return parse_rocprof_stats([path], tool="rocprof")
    if "Total Time (ns)" in head:
        return parse_nsys_kern_sum(path)
    if "gpu__time_duration" in head or "==PROF==" in head:
        return parse_ncu_raw(path)
    if name.endswith(".json.gz") or (head.lstrip().startswith("{") and "traceEvents" in head):
        return parse_chrome_trace(path)
    if head.lstrip().startswith("["):
        return parse_torch_key_averages(path)
    if name.endswith(".data") or head.startswith("PERFILE"):
        from .perf import report

        return report(path)
    raise ProfileError(f"{path}: unrecognised profile format")
