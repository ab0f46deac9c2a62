"""Keep credentials out of what Arbor reports and out of children that do not need them."""

from __future__ import annotations

import re

SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.IGNORECASE)
SECRET_FLAG = re.compile(r"^--?(api[-_]?key|hf[-_]?token|hft|token|secret|password)$", re.IGNORECASE)
# The host's own credentials: an inference server never needs them.
HOST_ONLY = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "ARBOR_MCP_TOKEN")
MASK = "***"


def redact_env(env: dict[str, str]) -> dict[str, str]:
    """The same mapping with secret-looking values masked."""
    return {k: (MASK if SECRET_NAME.search(k) else v) for k, v in env.items()}


def redact_argv(argv: list[str]) -> list[str]:
    """argv with the values of secret flags masked (`--api-key X` and `--api-key=X`)."""
    out: list[str] = []
    mask_next = False
    for arg in argv:
        if mask_next:
            out.append(MASK)
            mask_next = False
            continue
        flag, eq, _ = arg.partition("=")
        if SECRET_FLAG.match(flag):
            if eq:
                out.append(f"{flag}={MASK}")
            else:
                out.append(arg)
                mask_next = True
            continue
        out.append(arg)
    return out


def child_env(inherited: dict[str, str], extra: dict[str, str]) -> dict[str, str]:
    """Environment for a server: ours without the host's credentials, plus the stack's own entries."""
    return {k: v for k, v in inherited.items() if k not in HOST_ONLY} | extra
