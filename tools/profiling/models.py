"""The one profile schema every backend produces."""

from __future__ import annotations

from pydantic import BaseModel, Field

# omp_spin: threads busy-waiting in the OpenMP runtime (perf only, by shared object and symbol, see perf.py).
CATEGORIES = ("attention", "gemm", "moe", "communication", "norm_elementwise", "memcpy", "sampling", "host_idle",
              "omp_spin", "unknown")


class KernelStat(BaseModel):
    """Time spent in one kernel (GPU) or symbol (CPU)."""

    name: str
    calls: int | None = Field(None, description="launches; None for sampling profilers, which cannot count them")
    total_ns: float
    avg_ns: float | None = None
    share: float = Field(description="fraction of the profile's total time, 0..1")
    category: str
    module: str | None = Field(None, description="shared object or library, where the tool reports one")


class Profile(BaseModel):
    """A profile: where the time went during one window, by kernel and by category."""

    tool: str
    tool_version: str | None = None
    window_s: float | None = Field(None, description="length of the profiled window")
    started_at: float | None = None
    source: list[str] = Field(default_factory=list, description="files the profile was read from")
    total_ns: float
    kernels: list[KernelStat]
    categories: dict[str, float] = Field(description="share of total time per category")
    unknown: list[str] = Field(default_factory=list, description="names no category pattern matched")
    samples: int | None = None


class CategoryShift(BaseModel):
    """How one category's share moved between two profiles."""

    category: str
    before: float
    after: float
    delta: float


class ProfileDiff(BaseModel):
    """Which categories gained or lost share: the signal that the bottleneck moved."""

    shifts: list[CategoryShift]
    top_before: str | None
    top_after: str | None
    bottleneck_moved: bool
    kernels_gained: list[str]
    kernels_lost: list[str]
