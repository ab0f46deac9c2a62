"""Telemetry: CPU and memory of a process group from /proc always; GPUs via nvidia-smi, amd-smi or rocm-smi."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ..procs import group_members

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
NVIDIA_QUERY = "index,name,temperature.gpu,utilization.gpu,memory.total,memory.used,power.draw"


class ProcessUsage(BaseModel):
    """CPU time and resident memory summed over a process group."""

    pids: list[int]
    cpu_seconds: float
    rss_bytes: int
    threads: int


class HostUsage(BaseModel):
    """Whole-machine load and memory."""

    cpus: int
    load_1m: float
    mem_total_bytes: int
    mem_available_bytes: int


class GpuUsage(BaseModel):
    """One GPU's state; fields a tool did not report stay None."""

    vendor: str
    index: int
    name: str | None = None
    temperature_c: float | None = None
    utilization_pct: float | None = None
    memory_total_mib: float | None = None
    memory_used_mib: float | None = None
    power_w: float | None = None


class Telemetry(BaseModel):
    """A snapshot of host, process group and GPUs."""

    host: HostUsage
    process: ProcessUsage | None = None
    gpus: list[GpuUsage] = []
    gpu_tool: str | None = None


def process_usage(pgid: int) -> ProcessUsage:
    """Sum utime+stime, RSS and threads over the live members of a process group."""
    cpu, rss, threads, pids = 0.0, 0, 0, []
    for pid in group_members(pgid):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        cpu += (int(fields[11]) + int(fields[12])) / CLK_TCK
        threads += int(fields[17])
        rss += int(fields[21]) * PAGE
        pids.append(pid)
    return ProcessUsage(pids=pids, cpu_seconds=cpu, rss_bytes=rss, threads=threads)


def host_usage() -> HostUsage:
    """Load average and memory from /proc."""
    meminfo = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, _, rest = line.partition(":")
        meminfo[key] = int(rest.split()[0]) * 1024
    load = float(Path("/proc/loadavg").read_text().split()[0])
    return HostUsage(cpus=os.cpu_count() or 1, load_1m=load, mem_total_bytes=meminfo["MemTotal"],
                     mem_available_bytes=meminfo.get("MemAvailable", meminfo.get("MemFree", 0)))


def _number(value: Any) -> float | None:
    """A float from '71', '250.5 W', {'value': 71, 'unit': 'C'}, or None for N/A."""
    if isinstance(value, dict):
        value = value.get("value")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        head = value.strip().split(" ")[0].rstrip("%")
        try:
            return float(head)
        except ValueError:
            return None
    return None


def parse_nvidia_smi(text: str) -> list[GpuUsage]:
    """Rows of `nvidia-smi --query-gpu=<NVIDIA_QUERY> --format=csv,noheader,nounits`."""
    gpus = []
    for row in csv.reader(io.StringIO(text)):
        if len(row) < 7:
            continue
        cells = [c.strip() for c in row]
        gpus.append(GpuUsage(vendor="nvidia", index=int(cells[0]), name=cells[1],
                             temperature_c=_number(cells[2]), utilization_pct=_number(cells[3]),
                             memory_total_mib=_number(cells[4]), memory_used_mib=_number(cells[5]),
                             power_w=_number(cells[6])))
    return gpus


def _find(entry: dict, *paths: tuple[str, ...]) -> Any:
    for path in paths:
        node: Any = entry
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if node is not None:
            return node
    return None


def _mib(value: Any) -> float | None:
    if isinstance(value, dict):
        number, unit = _number(value.get("value")), str(value.get("unit", "MB")).upper()
        if number is None:
            return None
        return number * 1024 if unit.startswith("G") else number
    return _number(value)


def parse_amd_smi_metric(text: str) -> list[GpuUsage]:
    """`amd-smi metric --json`; its layout changed across releases, so look in each known place."""
    data = json.loads(text)
    if isinstance(data, dict):
        data = data.get("gpu_data") or data.get("gpus") or [data]
    gpus = []
    for i, entry in enumerate(data if isinstance(data, list) else []):
        if not isinstance(entry, dict):
            continue
        gpus.append(GpuUsage(
            vendor="amd",
            index=int(_number(entry.get("gpu")) or i),
            temperature_c=_number(_find(entry, ("temperature", "hotspot"), ("temperature", "edge"))),
            utilization_pct=_number(_find(entry, ("usage", "gfx_activity"), ("usage", "gfx_usage"))),
            memory_total_mib=_mib(_find(entry, ("mem_usage", "total_vram"), ("vram", "total"))),
            memory_used_mib=_mib(_find(entry, ("mem_usage", "used_vram"), ("vram", "used"))),
            power_w=_number(_find(entry, ("power", "socket_power"), ("power", "current_socket_power"),
                                  ("power", "average_socket_power"))),
        ))
    return gpus


def parse_rocm_smi(text: str) -> list[GpuUsage]:
    """`rocm-smi --showuse --showmemuse --showpower --showtemp --json`: {"card0": {...}}."""
    data = json.loads(text)
    gpus = []
    for key, entry in sorted(data.items()):
        if not key.startswith("card") or not isinstance(entry, dict):
            continue

        def pick(*fragments: str, entry: dict = entry) -> float | None:
            for name, value in entry.items():
                if all(f in name.lower() for f in fragments):
                    return _number(value)
            return None

        gpus.append(GpuUsage(vendor="amd", index=int(key[4:]), temperature_c=pick("temperature"),
                             utilization_pct=pick("gpu use"), power_w=pick("power")))
    return gpus


def _run(argv: list[str]) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def gpu_usage() -> tuple[list[GpuUsage], str | None]:
    """GPUs from whichever vendor tool is installed; ([], None) on a CPU-only machine."""
    if shutil.which("nvidia-smi"):
        out = _run(["nvidia-smi", f"--query-gpu={NVIDIA_QUERY}", "--format=csv,noheader,nounits"])
        if out is not None:
            return parse_nvidia_smi(out), "nvidia-smi"
    if shutil.which("amd-smi"):
        out = _run(["amd-smi", "metric", "--json"])
        if out is not None:
            try:
                return parse_amd_smi_metric(out), "amd-smi"
            except ValueError:
                pass
    if shutil.which("rocm-smi"):
        out = _run(["rocm-smi", "--showuse", "--showmemuse", "--showpower", "--showtemp", "--json"])
        if out is not None:
            try:
                return parse_rocm_smi(out), "rocm-smi"
            except ValueError:
                pass
    return [], None


def snapshot(pgid: int | None = None) -> Telemetry:
    """Host, optional process group, and GPUs right now."""
    gpus, tool = gpu_usage()
    return Telemetry(host=host_usage(), process=process_usage(pgid) if pgid else None, gpus=gpus, gpu_tool=tool)
