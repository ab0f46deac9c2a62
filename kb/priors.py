"""Priors for a candidate action: Beta-smoothed rates that back off from the exact change to the global default."""

from __future__ import annotations

from dataclasses import dataclass

import sqlite_utils

from .models import Change, Context, Prior, canonical
from .staleness import is_stale

# What the KB says with no history at all: modest, so measurement decides.
GLOBAL = {"speedup": 0.05, "p_crash": 0.10, "p_regress": 0.50}
STRENGTH = 2.0  # pseudo-outcomes lent by the parent level: one sample never dominates
# A failure recorded for this exact knob value all but prunes it; one for the knob or category in general
# only warns. Seed techniques (no local evidence) nudge; validated ones count more.
EFFECTS = {"technique_validated": 1.25, "technique_seed": 1.10, "failure_mode_exact": 0.2, "failure_mode": 0.5,
           "parameter_best": 1.15}


@dataclass
class Counts:
    n: int = 0
    crashed: int = 0
    regressed: int = 0
    kept: int = 0
    kept_gain_sum: float = 0.0
    kept_with_gain: int = 0


def _counts(db: sqlite_utils.Database, where: str, args: list) -> Counts:
    # Invalid measurements say nothing about the change itself.
    row = db.execute(
        "SELECT COUNT(*), SUM(result = 'crashed'), SUM(result = 'reverted'), SUM(result = 'kept'), "
        "SUM(CASE WHEN result = 'kept' AND gain IS NOT NULL THEN gain ELSE 0 END), "
        f"SUM(result = 'kept' AND gain IS NOT NULL) FROM outcomes WHERE result != 'invalid' AND {where}", args,
    ).fetchone()
    return Counts(*(int(v or 0) if i != 4 else float(v or 0.0) for i, v in enumerate(row)))


def _smooth(successes: float, n: float, parent: float) -> float:
    return (successes + STRENGTH * parent) / (n + STRENGTH)


def _level_estimate(counts: Counts, parent: dict[str, float]) -> dict[str, float]:
    return {
        "p_crash": _smooth(counts.crashed, counts.n, parent["p_crash"]),
        "p_regress": _smooth(counts.regressed, counts.n - counts.crashed, parent["p_regress"]),
        "speedup": _smooth(counts.kept_gain_sum, counts.kept_with_gain, parent["speedup"]),
    }


def _minus(broad: Counts, narrow: Counts) -> Counts:
    return Counts(broad.n - narrow.n, broad.crashed - narrow.crashed, broad.regressed - narrow.regressed,
                  broad.kept - narrow.kept, broad.kept_gain_sum - narrow.kept_gain_sum,
                  broad.kept_with_gain - narrow.kept_with_gain)


def _multiplier(db: sqlite_utils.Database, context: Context, change: Change) -> tuple[float, list[str], list[str]]:
    value = canonical(change.value)
    rows = db.execute(
        "SELECT id, kind, value, framework_version, driver_version, stats, outcome_ids FROM entries "
        "WHERE kind IN ('technique', 'failure_mode', 'parameter') "
        "AND (hardware IS NULL OR hardware = ?) AND (stack IS NULL OR stack = ?) "
        "AND ((knob IS NOT NULL AND knob = ?) OR (knob IS NULL AND category = ?))",
        [context.hardware, context.stack, change.knob, change.category]).fetchall()
    multiplier, used, stale = 1.0, [], []
    for entry_id, kind, entry_value, framework, driver, _stats, outcome_ids in rows:
        if entry_value is not None and kind != "parameter" and entry_value != value:
            continue
        if kind == "technique":
            effect = EFFECTS["technique_validated" if outcome_ids not in (None, "[]") else "technique_seed"]
        elif kind == "failure_mode":
            effect = EFFECTS["failure_mode_exact" if entry_value is not None else "failure_mode"]
        elif entry_value is not None and entry_value == value:
            effect = EFFECTS["parameter_best"]
        else:
            continue
        if is_stale(framework, driver, context):
            effect = 1 + (effect - 1) / 2  # an old version's lesson counts half until re-tested
            stale.append(entry_id)
        multiplier *= effect
        used.append(entry_id)
    return min(3.0, max(0.1, multiplier)), used, stale


def priors(db: sqlite_utils.Database, context: Context, change: Change) -> Prior:
    """Speedup, p_crash, p_regress and the entry multiplier for `change` in `context`, with the level that answered."""
    levels: list[tuple[str, str, list]] = [
        ("category", "category = ?", [change.category]),
        ("category_hardware", "category = ? AND hardware = ? AND stack = ?",
         [change.category, context.hardware, context.stack]),
    ]
    if change.knob is not None:
        levels.append(("knob_hardware", "knob = ? AND hardware = ? AND stack = ?",
                       [change.knob, context.hardware, context.stack]))
        levels.append(("exact", "knob = ? AND value IS ? AND hardware = ? AND model_family IS ? AND stack = ?",
                       [change.knob, canonical(change.value), context.hardware, context.model_family, context.stack]))
    counted = [(name, _counts(db, where, args)) for name, where, args in levels]
    answering = [(name, c) for name, c in counted if c.n > 0]
    estimate, level, n = dict(GLOBAL), "global", 0
    if answering:
        level, counts = answering[-1]
        n = counts.n
        # Smooth toward the broader level's *other* outcomes (then toward the global default), so one
        # outcome is never counted at two levels and one crash cannot push p_crash toward 1.
        index = [name for name, _ in counted].index(level)
        parent = dict(GLOBAL)
        if index > 0 and counted[index - 1][1].n > counts.n:
            parent = _level_estimate(_minus(counted[index - 1][1], counts), GLOBAL)
        estimate = _level_estimate(counts, parent)
    multiplier, used, stale = _multiplier(db, context, change)
    return Prior(speedup=estimate["speedup"], p_crash=estimate["p_crash"], p_regress=estimate["p_regress"],
                 multiplier=multiplier, level=level, n=n, entries=used, stale_entries=stale)  # type: ignore[arg-type]
