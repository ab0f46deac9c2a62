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
