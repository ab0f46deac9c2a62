"""Map kernel and symbol names to categories, from the patterns in categories.toml."""

from __future__ import annotations

import re
import tomllib
from functools import cache
from importlib import resources

UNKNOWN = "unknown"


@cache
def _rules() -> list[tuple[str, re.Pattern[str]]]:
    text = resources.files(__package__).joinpath("categories.toml").read_text()
    rules = []
    for entry in tomllib.loads(text)["category"]:
        combined = "|".join(f"(?:{p})" for p in entry["patterns"])
        rules.append((entry["name"], re.compile(combined, re.IGNORECASE)))
    return rules


def categories() -> list[str]:
    """Every category name, in matching order."""
    return [name for name, _ in _rules()]


def categorize(name: str) -> str:
    """The category of a kernel or symbol name, or "unknown"."""
    for category, pattern in _rules():
        if pattern.search(name):
            return category
    return UNKNOWN
