"""Classify why a server failed, from its log and exit status, citing the log lines that show it."""

from __future__ import annotations

import re
import signal as signals
import tomllib
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal, NamedTuple, get_args

from pydantic import BaseModel

FailureKind = Literal[
    "gpu_memory_fault", "gpu_xid", "oom", "nccl", "port_in_use", "unknown_flag", "model_not_found",
    "engine_dead", "hang", "segfault", "abort", "nccl_warning", "killed", "exited", "timeout", "unknown",
]
Phase = Literal["launch", "ready", "running"]

SIGNAL_KINDS: dict[int, FailureKind] = {
    signals.SIGSEGV: "segfault",
    signals.SIGBUS: "segfault",
    signals.SIGABRT: "abort",
    signals.SIGKILL: "killed",
}
MAX_EVIDENCE = 5
TAIL_BYTES = 4 << 20


class LogLine(BaseModel):
    """A line of the server log, numbered from 1."""

    line: int
    text: str


class Failure(BaseModel):
    """Why a server is not serving: kind, a one-line summary, exit status and the evidence."""

    kind: FailureKind
    summary: str
    phase: Phase
    exit_code: int | None = None
    signal: str | None = None
    evidence: list[LogLine] = []
    also_matched: list[FailureKind] = []
    log_path: str | None = None


class Signature(NamedTuple):
    """One table of signatures.toml: the lines that show a failure kind, and those that never do."""

    kind: FailureKind
    summary: str
    patterns: list[re.Pattern[str]]
    exclude: list[re.Pattern[str]]
    weak: bool


class Match(NamedTuple):
    """A failure kind found in a log, with its summary and the lines that show it."""

    kind: FailureKind
    summary: str
    evidence: list[LogLine]
    weak: bool


@cache
def _signatures() -> list[Signature]:
    text = resources.files(__package__).joinpath("signatures.toml").read_text()
    tables = tomllib.loads(text)["signature"]
    for table in tables:
        if table["kind"] not in get_args(FailureKind):
            raise ValueError(f"signatures.toml: kind {table['kind']!r} is not one of {get_args(FailureKind)}")
    return [Signature(s["kind"], s["summary"], [re.compile(p) for p in s["patterns"]],
                      [re.compile(p) for p in s.get("exclude", [])], bool(s.get("weak", False)))
            for s in tables]


def read_log_tail(path: Path | None) -> tuple[int, list[str]]:
    """(number of the first returned line, lines) of the last few MB of a log.

    Lines are split on "\n" only, as editors and `grep -n` count them: progress bars
    write "\r" inside a line and must not shift the numbers of the lines after them.
    """
    if path is None or not path.is_file():
        return 1, []
    with open(path, "rb") as handle:
        size = handle.seek(0, 2)
        start = max(0, size - TAIL_BYTES)
        handle.seek(0)
        newlines = 0
        last = b"\n"
        remaining = start
        while remaining:  # count the skipped lines in chunks, never holding the skipped part
            chunk = handle.read(min(remaining, 1 << 20))
            if not chunk:
                break
            newlines += chunk.count(b"\n")
            last = chunk[-1:]
            remaining -= len(chunk)
        data = handle.read()
    first = newlines + 1
    if last != b"\n":  # the cut landed inside a line: drop its tail
        _, _, data = data.partition(b"\n")
        first += 1
    text = data.decode(errors="replace")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return first, lines


def match_signatures(lines: list[str], first: int = 1) -> list[Match]:
    """Every signature kind found in `lines`, in priority order, with the lines that matched."""
    found: dict[FailureKind, Match] = {}
    for sig in _signatures():
        hits = [LogLine(line=first + i, text=line.strip()[:500]) for i, line in enumerate(lines)
                if any(p.search(line) for p in sig.patterns) and not any(p.search(line) for p in sig.exclude)]
        if not hits:
            continue
        if sig.kind in found:  # a later table of a kind already found adds its lines, not a rank
            earlier = found[sig.kind]
            merged = sorted({h.line: h for h in earlier.evidence + hits}.values(), key=lambda h: h.line)
            found[sig.kind] = earlier._replace(evidence=merged[:MAX_EVIDENCE])
        else:
            found[sig.kind] = Match(sig.kind, sig.summary, hits[:MAX_EVIDENCE], sig.weak)
    return list(found.values())


def signal_name(code: int | None) -> str | None:
    """SIGSEGV for -11, as subprocess reports deaths by signal."""
    if code is None or code >= 0:
        return None
    try:
        return signals.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def classify(log_path: Path | None, returncode: int | None, phase: Phase,
             fallback: FailureKind | None = None, detail: str = "") -> Failure:
    """Name the failure: a log signature first, else the exit signal, else `fallback`, a weak signature or the exit."""
    first, lines = read_log_tail(log_path)
    matches = match_signatures(lines, first)
    sig = signal_name(returncode)
    exit_code = returncode if returncode is not None and returncode >= 0 else None
    signal_kind = SIGNAL_KINDS.get(-returncode) if returncode is not None and returncode < 0 else None
    strong = [m for m in matches if not m.weak]
    named: Match | None = strong[0] if strong else None
    if named is None and matches and signal_kind is None and fallback is None:
        named = matches[0]  # a weak match (an NCCL WARN) says less than a death by signal or the caller's finding
    if named is not None:
        kind, summary, evidence = named.kind, named.summary, named.evidence
        also = [m.kind for m in matches if m is not named]
    else:
        evidence = [LogLine(line=first + i, text=t.strip()[:500])
                    for i, t in list(enumerate(lines))[-MAX_EVIDENCE:] if t.strip()]
        also = [m.kind for m in matches]
        if signal_kind is not None:
            kind = signal_kind
            summary = f"killed by {sig}" if kind == "killed" else f"{kind} ({sig})"
        elif fallback is not None:
            kind, summary = fallback, fallback
        elif returncode is not None:
            kind, summary = "exited", f"exited with {sig or f'code {returncode}'}"
        else:
            kind, summary = "unknown", "unknown failure"
    if detail:
        summary = f"{summary}: {detail}"
    return Failure(kind=kind, summary=summary, phase=phase, exit_code=exit_code, signal=sig,
                   evidence=evidence, also_matched=also, log_path=str(log_path) if log_path else None)
