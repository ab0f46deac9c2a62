"""An entry learned on another framework or driver version is stale in this context: re-test, do not trust."""

from __future__ import annotations

from .models import Context


def is_stale(framework_version: str | None, driver_version: str | None, context: Context) -> bool:
    """True when a version is known on both sides and differs."""
    return bool(
        (framework_version and context.framework_version and framework_version != context.framework_version)
        or (driver_version and context.driver_version and driver_version != context.driver_version)
    )


def stale_reason(framework_version: str | None, driver_version: str | None, context: Context) -> str | None:
    """The sentence that says why an entry is stale, or None."""
    parts = []
    if framework_version and context.framework_version and framework_version != context.framework_version:
        parts.append(f"{context.stack} {framework_version}, now {context.framework_version}")
    if driver_version and context.driver_version and driver_version != context.driver_version:
        parts.append(f"driver {driver_version}, now {context.driver_version}")
    return f"learned on {'; '.join(parts)}: re-test before trusting" if parts else None


def retest_candidates(db: object, context: Context, limit: int = 50) -> list[tuple[str, str, str]]:
    """(entry id, title, reason) of entries for this stack and hardware learned on other versions: re-test these."""
    rows = db.execute(  # type: ignore[attr-defined]
        "SELECT id, title, framework_version, driver_version FROM entries WHERE (stack IS NULL OR stack = ?) "
        "AND (hardware IS NULL OR hardware = ?) AND kind IN ('technique', 'failure_mode', 'parameter') "
        "AND (framework_version IS NOT NULL OR driver_version IS NOT NULL)", [context.stack, context.hardware],
    ).fetchall()
    out = []
    for entry_id, title, framework, driver in rows:
        reason = stale_reason(framework, driver, context)
        if reason:
            out.append((entry_id, title, reason))
    return out[:limit]
