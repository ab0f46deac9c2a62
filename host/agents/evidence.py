"""Evidence ids an agent cites (log:LINE, node:ID, measurement:ID, event:SEQ, alert:ID), checked to exist."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..errors import ProposalError
from ..store import StoreReader

ID = re.compile(r"^(log|node|measurement|event|alert):(\d{1,9})$")


def log_lines(path: str | None) -> list[str]:
    """A server log's lines (empty when there is none)."""
    if not path or not Path(path).is_file():
        return []
    return Path(path).read_text(errors="replace").splitlines()


def check(store: StoreReader, ids: list[str], log_path: str | None = None) -> dict[str, Any]:
    """The cited evidence resolved (log lines quoted), or ProposalError naming what does not exist."""
    if not ids:
        raise ProposalError("cite at least one evidence id (log:LINE, node:ID, measurement:ID, event:SEQ, alert:ID)")
    lines = None
    resolved: dict[str, Any] = {"ids": list(ids), "lines": []}
    for raw in ids:
        match = ID.match(raw.strip())
        if match is None:
            raise ProposalError(f"{raw!r} is not an evidence id (log:LINE, node:ID, measurement:ID, event:SEQ, "
                                "alert:ID)")
        kind, number = match.group(1), int(match.group(2))
        if kind == "log":
            lines = log_lines(log_path) if lines is None else lines
            if not 1 <= number <= len(lines):
                raise ProposalError(f"{raw}: the log has {len(lines)} lines")
            resolved["lines"].append(f"line {number}: {lines[number - 1][:500]}")
            resolved["log"] = log_path
            continue
        if not store.cited(kind, number):
            raise ProposalError(f"{raw}: no such {kind} in this campaign")
    return resolved
