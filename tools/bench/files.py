"""Benchmark results on disk, as JSON."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from ..errors import BenchError
from .models import BenchResult


def save(result: BenchResult, path: Path) -> Path:
    """Write one result atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(result.model_dump_json(indent=2))
    tmp.replace(path)
    return path


def load(path: Path) -> BenchResult:
    """Read one result, with a clear error if it is not one."""
    try:
        return BenchResult.model_validate(json.loads(path.read_text()))
    except FileNotFoundError as exc:
        raise BenchError(f"no result file {path}") from exc
    except (ValueError, ValidationError) as exc:
        raise BenchError(f"{path} is not a benchmark result: {str(exc)[:300]}") from exc
