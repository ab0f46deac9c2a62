"""Map kernel and symbol names to categories, from the rules in categories.toml."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources

UNKNOWN = "unknown"

# A word starts at an upper-case letter after a lower-case letter or digit (MoeGemm, Rmsnorm2dFwd),
# or at the last capital of an acronym run (RMSNorm -> RMS Norm, KVCache -> KV Cache).
_WORD_START = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


@dataclass(frozen=True)
class Rules:
    """The categories in display order and the (category, pattern) rules in matching order."""

    categories: list[str]
    rules: list[tuple[str, re.Pattern[str]]]


def words(name: str) -> str:
    """`name` split into lower-case words joined by "_": FusedMoeGemmKernel -> fused_moe_gemm_kernel."""
    return _WORD_START.sub("_", name).lower()


def parse_rules(text: str, source: str = "categories.toml") -> Rules:
    """Rules from the TOML text of a categories file; a malformed file raises ValueError naming the rule."""
    data = tomllib.loads(text)
    names = data.get("categories")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{source}: `categories` must be a non-empty list of category names")
    if len(set(names)) != len(names):
        raise ValueError(f"{source}: `categories` lists a name twice: {names}")
    rules = []
    for number, rule in enumerate(data.get("rule", []), start=1):
        category, patterns = rule.get("category"), rule.get("patterns")
        if category not in names:
            raise ValueError(f"{source}: rule {number} has category {category!r}, not one of {names}")
        if not isinstance(patterns, list) or not patterns:
            raise ValueError(f"{source}: rule {number} ({category}) needs a non-empty list of patterns")
        try:
            combined = re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)
        except re.error as exc:
            raise ValueError(f"{source}: rule {number} ({category}) has a bad pattern: {exc}") from exc
        rules.append((category, combined))
    if not rules:
        raise ValueError(f"{source}: no [[rule]] tables")
    return Rules(categories=list(names), rules=rules)


@cache
def _rules() -> Rules:
    return parse_rules(resources.files(__package__).joinpath("categories.toml").read_text())


def categories() -> list[str]:
    """Every category name, in display order."""
    return list(_rules().categories)


def categorize(name: str) -> str:
    """The category of a kernel or symbol name, or "unknown"."""
    split = words(name)
    for category, pattern in _rules().rules:
        if pattern.search(name) or pattern.search(split):
            return category
    return UNKNOWN
