"""Distillation at campaign close: outcomes grouped into techniques, failure modes, parameter findings, a summary."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from statistics import fmean

import sqlite_utils

from .models import Entry, EntryIn, Outcome
from .records import outcomes, upsert_entry

Narrate = Callable[[EntryIn, list[Outcome]], str]


def _load(value: str | None) -> object:
    """A stored value; None is a knob set back to the server's default."""
    return None if value is None else json.loads(value)


def _value(outcome: Outcome) -> object:
    return _load(outcome.value)


def _change(outcome: Outcome) -> str:
    if outcome.knob:
        return f"{outcome.knob}={_value(outcome)}"
    return outcome.patch_summary or outcome.category


def _where(o: Outcome) -> str:
    family = f", {o.model_family}" if o.model_family else ""
    return f"{o.stack} on {o.hardware}{family}"


def _gain_stats(group: list[Outcome]) -> dict[str, object]:
    kept = [o for o in group if o.result == "kept"]
    gains = [o.gain for o in kept if o.gain is not None]
    return {
        "n": len(group), "kept": len(kept), "reverted": sum(o.result == "reverted" for o in group),
        "crashed": sum(o.result == "crashed" for o in group), "invalid": sum(o.result == "invalid" for o in group),
        "mean_gain": fmean(gains) if gains else None, "best_gain": max(gains) if gains else None,
        "gain_low": min((o.gain_low for o in kept if o.gain_low is not None), default=None),
    }


def _common(o: Outcome) -> dict[str, object]:
    return {"stack": o.stack, "model_family": o.model_family, "hardware": o.hardware,
            "framework_version": o.framework_version, "driver_version": o.driver_version, "category": o.category,
            "layer": o.layer, "knob": o.knob}


def _drafts(campaign: str, rows: list[Outcome]) -> list[tuple[EntryIn, list[Outcome]]]:
    groups: dict[tuple, list[Outcome]] = defaultdict(list)
    for o in rows:
        groups[(o.stack, o.hardware, o.model_family, o.category, o.knob, o.value, o.patch_summary)].append(o)
    drafts: list[tuple[EntryIn, list[Outcome]]] = []
    for group in groups.values():
        first, stats = group[0], _gain_stats(group)
        ids = [o.id for o in group]
        value = _value(first)
        if stats["kept"] and (stats["mean_gain"] or 0) > 0:
            body = (f"Changing {_change(first)} was kept {stats['kept']} of {stats['n']} time(s) on {_where(first)}; "
                    f"mean gain {stats['mean_gain']:+.1%} (best {stats['best_gain']:+.1%}).")
            drafts.append((EntryIn(kind="technique", title=f"{_change(first)} helps {_where(first)}", body=body,
                                   value=value, stats=stats, outcome_ids=ids, source=campaign, **_common(first)),
                           group))
        crashes = [o for o in group if o.result == "crashed"]
        if crashes:
            why = "; ".join(sorted({o.diagnosis for o in crashes if o.diagnosis})) or "no diagnosis recorded"
            constraint = f"do not set {_change(first)} for {_where(first)}"
            drafts.append((EntryIn(kind="failure_mode", title=f"{_change(first)} crashes {_where(first)}",
                                   body=f"{len(crashes)} of {stats['n']} attempt(s) crashed: {why}.", value=value,
                                   constraint_text=constraint, stats=stats, outcome_ids=[o.id for o in crashes],
                                   source=campaign, **_common(first)), crashes))
    by_knob: dict[tuple, list[Outcome]] = defaultdict(list)
    for o in rows:
        if o.knob and o.result in ("kept", "reverted") and o.gain is not None:
            by_knob[(o.stack, o.hardware, o.model_family, o.knob)].append(o)
    for group in by_knob.values():
        values = {o.value for o in group}
        if len(values) < 2:
            continue
        best = max(values, key=lambda v: fmean(o.gain for o in group if o.value == v))
        best_gain = fmean(o.gain for o in group if o.value == best)
        first = group[0]
        tried = ", ".join(sorted(f"{_load(v)}" for v in values))
        drafts.append((EntryIn(kind="parameter", title=f"best {first.knob} for {_where(first)}: {_load(best)}",
                               body=f"Values tried: {tried}. {_load(best)} gave the highest mean gain "
                                    f"({best_gain:+.1%}).", value=_load(best),
                               stats={"values": len(values), "n": len(group), "best_gain": best_gain},
                               outcome_ids=[o.id for o in group], source=campaign, **_common(first)), group))
    if rows:
        kept = [o for o in rows if o.result == "kept"]
        lines = [f"{_change(o)}: {o.gain:+.1%}" for o in sorted(kept, key=lambda o: -(o.gain or 0)) if o.gain]
        first = rows[0]
        drafts.append((EntryIn(kind="campaign_summary", title=f"campaign {campaign}: {len(kept)} kept of {len(rows)}",
                               body=f"{_where(first)}. Kept: {'; '.join(lines) or 'none'}.", stats=_gain_stats(rows),
                               outcome_ids=[o.id for o in rows], source=campaign, stack=first.stack,
                               hardware=first.hardware, model_family=first.model_family,
                               framework_version=first.framework_version, driver_version=first.driver_version),
                       rows))
    return drafts


def distill(db: sqlite_utils.Database, campaign: str, narrate: Narrate | None = None) -> list[Entry]:
    """Aggregate a campaign's outcomes into entries (merged with earlier ones); `narrate` adds prose if given."""
    rows = outcomes(db, campaign=campaign, limit=1_000_000)
    stored = []
    for draft, group in _drafts(campaign, rows):
        if narrate is not None:
            draft.body = f"{draft.body}\n\n{narrate(draft, group)}"
        stored.append(upsert_entry(db, draft))
    return stored
