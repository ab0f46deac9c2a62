"""Every LLM call: tokens and cost per role and node, a redacted transcript in the store, and the budget."""

from __future__ import annotations

import json
import os
import re
import tomllib
from functools import cache
from importlib import resources
from typing import Any

from ..spec import Price
from ..store import CampaignStore
from .backend import Usage

SECRET_PATTERNS = [re.compile(p) for p in (r"sk-ant-[A-Za-z0-9_\-]{8,}", r"\bsk-[A-Za-z0-9_\-]{16,}",
                                            r"(?i)bearer\s+[A-Za-z0-9_\-\.=]{8,}", r"\bhf_[A-Za-z0-9]{16,}")]
SECRET_ENV = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "ARBOR_MCP_TOKEN", "HF_TOKEN")


class BudgetExhausted(Exception):
    """The LLM budget is spent: no new LLM work starts."""


@cache
def default_prices() -> dict[str, Price]:
    """The shipped price table."""
    text = resources.files(__package__).joinpath("pricing.toml").read_text()
    return {name: Price(**row) for name, row in tomllib.loads(text)["models"].items()}


def redact(text: str, extra_env: tuple[str, ...] = ()) -> str:
    """Remove API keys and tokens: the known environment values and anything shaped like one."""
    for name in (*SECRET_ENV, *extra_env):
        value = os.environ.get(name)
        if value and len(value) >= 6:
            text = text.replace(value, f"[{name} redacted]")
    for pattern in SECRET_PATTERNS:
        text = pattern.sub("[secret redacted]", text)
    return text


class Ledger:
    """Records calls in the campaign store and enforces the LLM spend budget."""

    def __init__(self, store: CampaignStore, budget_usd: float, prices: dict[str, Price] | None = None,
                 key_env: str | None = None) -> None:
        self.store, self.budget = store, budget_usd
        self.prices = default_prices() | (prices or {})
        self.key_env = (key_env,) if key_env else ()

    def cost(self, model: str, usage: Usage) -> float:
        price = self.prices.get(model, Price())
        return (usage.input_tokens * price.input + usage.output_tokens * price.output
                + usage.cache_write_tokens * price.cache_write + usage.cache_read_tokens * price.cache_read) / 1e6

    def spent(self) -> float:
        """USD spent so far in this campaign."""
        return self.store.llm_spent()

    def check(self) -> None:
        """Raise BudgetExhausted when no more LLM work may start (a budget of 0 means no cap: unpriced models)."""
        if self.budget > 0 and self.spent() >= self.budget:
            raise BudgetExhausted(f"LLM budget spent: ${self.spent():.4f} of ${self.budget:.2f}")

    def record(self, role: str, node: int | None, model: str, usage: Usage, transcript: dict[str, Any]) -> float:
        """Store one call; returns its cost."""
        cost = self.cost(model, usage)
        tokens = {"input": usage.input_tokens, "output": usage.output_tokens, "cache_read": usage.cache_read_tokens,
                  "cache_write": usage.cache_write_tokens}
        self.store.add_llm_call(role, node, model, tokens, cost, redact(json.dumps(transcript, default=str),
                                                                         self.key_env))
        return cost

    def totals(self) -> dict[str, dict[str, float]]:
        """Tokens and cost per role."""
        return self.store.llm_totals()
