"""Compare two profiles: which categories gained or lost share, and whether the bottleneck moved."""

from __future__ import annotations

from .models import CategoryShift, Profile, ProfileDiff

NOTABLE = 0.01  # a kernel entering or leaving the profile matters above 1% share


def diff(before: Profile, after: Profile) -> ProfileDiff:
    """Category share shifts (largest first), the top category on each side, kernels that appeared or vanished."""
    names = sorted(set(before.categories) | set(after.categories))
    shifts = [CategoryShift(category=c, before=before.categories.get(c, 0.0), after=after.categories.get(c, 0.0),
                            delta=after.categories.get(c, 0.0) - before.categories.get(c, 0.0)) for c in names]
    shifts.sort(key=lambda s: abs(s.delta), reverse=True)
    top_before = max(before.categories, key=before.categories.__getitem__) if before.categories else None
    top_after = max(after.categories, key=after.categories.__getitem__) if after.categories else None
    old = {k.name for k in before.kernels if k.share >= NOTABLE}
    new = {k.name for k in after.kernels if k.share >= NOTABLE}
    return ProfileDiff(shifts=shifts, top_before=top_before, top_after=top_after,
                       bottleneck_moved=top_before != top_after, kernels_gained=sorted(new - old),
                       kernels_lost=sorted(old - new))
