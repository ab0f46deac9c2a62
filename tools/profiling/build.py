"""Assemble a Profile from raw per-name totals: shares, averages, categories, unknown names."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..errors import ArborError
from .categorize import UNKNOWN, categorize
from .models import KernelStat, Profile


class ProfileError(ArborError):
    """A profile could not be recorded or read; the message names the file and line."""


@dataclass
class Raw:
    """Totals for one name before shares are known."""

    name: str
    total_ns: float
    calls: int | None = None
    module: str | None = None


def merge(rows: Iterable[Raw]) -> list[Raw]:
    """Sum rows with the same name and module (several processes, ranks or files)."""
    merged: dict[tuple[str, str | None], Raw] = {}
    for row in rows:
        key = (row.name, row.module)
        if key not in merged:
            merged[key] = Raw(row.name, 0.0, 0 if row.calls is not None else None, row.module)
        target = merged[key]
        target.total_ns += row.total_ns
        if row.calls is not None:
            target.calls = (target.calls or 0) + row.calls
    return list(merged.values())


Classify = Callable[[str, str | None], str]


def by_name(name: str, module: str | None) -> str:
    """The category from the name patterns, with the shared object's name where the tool reports one."""
    return categorize(name if module is None else f"{name} {module}")


def build_profile(rows: Iterable[Raw], tool: str, classify: Classify = by_name, **meta: object) -> Profile:
    """A Profile with shares of the total, per-category shares and the names no pattern knew."""
    merged = merge(rows)
    total = sum(r.total_ns for r in merged)
    kernels = []
    categories: dict[str, float] = {}
    for row in sorted(merged, key=lambda r: r.total_ns, reverse=True):
        share = row.total_ns / total if total > 0 else 0.0
        category = classify(row.name, row.module)
        avg = row.total_ns / row.calls if row.calls else None
        kernels.append(KernelStat(name=row.name, calls=row.calls, total_ns=row.total_ns, avg_ns=avg, share=share,
                                  category=category, module=row.module))
        categories[category] = categories.get(category, 0.0) + share
    unknown = [k.name for k in kernels if k.category == UNKNOWN]
    return Profile(tool=tool, total_ns=total, kernels=kernels, categories=dict(sorted(
        categories.items(), key=lambda kv: kv[1], reverse=True)), unknown=unknown, **meta)  # type: ignore[arg-type]
