"""Which hosts Arbor talks to: loopback by default, others only when the operator allows them."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from .errors import InputError

LOOPBACK_NAMES = {"localhost"}


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_target(url: str, allowed_hosts: frozenset[str] = frozenset()) -> str:
    """Return `url` if it is http(s) on loopback or an allowed host, else InputError saying how to allow it."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"target {url!r} is not an http(s) URL")
    if not is_loopback(parts.hostname) and parts.hostname.lower() not in allowed_hosts:
        raise InputError(f"target host {parts.hostname!r} is not allowed; the operator can allow it "
                         "(arbor-mcp-bench --allow-host HOST)")
    return url
