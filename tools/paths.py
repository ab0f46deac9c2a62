"""Where Arbor keeps caches, data and runs, and the containment check for paths."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from .errors import InputError


def cache_dir() -> Path:
    """The user cache directory (ARBOR_CACHE_DIR overrides)."""
    return Path(os.environ.get("ARBOR_CACHE_DIR") or platformdirs.user_cache_dir("arbor"))


def data_dir() -> Path:
    """The user data directory (ARBOR_DATA_DIR overrides)."""
    return Path(os.environ.get("ARBOR_DATA_DIR") or platformdirs.user_data_dir("arbor"))


def runs_root() -> Path:
    """Where run folders go by default (ARBOR_RUNS_DIR overrides; else ./runs)."""
    return Path(os.environ.get("ARBOR_RUNS_DIR") or Path.cwd() / "runs").absolute()


def contained(root: Path, path: str | Path, what: str = "run folder") -> Path:
    """Resolve `path` (relative paths are taken under `root`) and refuse anything outside `root`."""
    root_real = Path(root).resolve()
    candidate = Path(path)
    if not candidate.is_absolute():
        candidate = root_real / candidate
    # resolve() follows symlinks, so a link pointing out of the root is caught too
    real = candidate.resolve()
    if real != root_real and root_real not in real.parents:
        raise InputError(f"path {str(path)!r} is outside the {what} {str(root_real)!r}")
    return real
