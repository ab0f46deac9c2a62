"""The agent team of one campaign: backend, ledger, tool clients, ablation switches, and the offline fallback."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from mcp import Client

from arbor.servers.kb import Hits

from ..errors import HostError, SpecError
from ..mcp_calls import call_as
from ..models import Ablation
from ..spec import Agent
from ..store import CampaignStore
from .backend import Backend, BackendError, Role
from .bridge import Bridge
from .ledger import BudgetExhausted, Ledger
from .loop import AgentRun, run_agent
from .pool import Pool

DEFAULT_MODELS: dict[str, dict[str, str]] = {
    "anthropic": {"orchestrator": "claude-opus-5-5", "critic": "claude-opus-5-5", "specialist": "claude-sonnet-5-5"},
    "openai": {"orchestrator": "default", "critic": "default", "specialist": "default"},
}
MAX_BACKEND_FAILURES = 3


def key_env(agent: Agent) -> str:
    """The environment variable holding the API key."""
    return agent.api_key_env or ("ANTHROPIC_API_KEY" if agent.backend == "anthropic" else "OPENAI_API_KEY")


def check_agent(agent: Agent) -> None:
    """Refuse a campaign whose backend cannot run here (before anything is created)."""
    if agent.backend == "anthropic" and not os.environ.get(key_env(agent)):
        raise SpecError(f"agent.backend = \"anthropic\" needs the API key in ${key_env(agent)}")


def make_backend(agent: Agent) -> Backend | None:
    """The backend the spec names; None for the offline policy."""
    if agent.backend == "offline":
        return None
    key = os.environ.get(key_env(agent))
    if agent.backend == "anthropic":
        from .anthropic_backend import AnthropicBackend

        return AnthropicBackend(key, agent.base_url, agent.timeout_s, agent.max_retries)
    from .openai_backend import OpenAIBackend

    return OpenAIBackend(agent.base_url or "", key, agent.timeout_s, agent.max_retries)


class Team:
    """Runs agents for the engine; any failure to reach the model falls back to the offline policy."""

    def __init__(self, agent: Agent, budget_usd: float, store: CampaignStore, clients: dict[str, Client],
                 backend: Backend, ablation: Ablation, say: Callable[[str], None],
                 context: dict[str, Any] | None = None) -> None:
        self.agent, self.store, self.clients, self.backend, self.ablation, self.say = (
            agent, store, clients, backend, ablation, say)
        self.context = context or {}  # where the campaign runs, for the knowledge base
        self.ledger = Ledger(store, budget_usd, agent.pricing, key_env(agent))
        self.pool = Pool(agent.specialists, agent.devices, agent.specialist_timeout_s)
        self.failures = 0
        self.offline_reason: str | None = store.meta("llm_stopped")

    def model(self, role: Role) -> str:
        return self.agent.models.get(role) or DEFAULT_MODELS[self.agent.backend][role]

    def available(self) -> bool:
        """Whether new LLM work may start."""
        return self.offline_reason is None

    def go_offline(self, why: str) -> None:
        """No more LLM work this campaign: the offline policy and the rule-based Critic carry on."""
        if self.offline_reason is None:
            self.offline_reason = why
            self.store.set_meta("llm_stopped", why)
            self.store.add_alert("warning", "llm_stopped", f"LLM work stopped: {why}; the offline policy and the "
                                 "rule-based Critic carry on", {"spent_usd": round(self.ledger.spent(), 6)})
            self.say(f"  LLM work stopped: {why}")

    async def run(self, role: Role, system: str, prompt: str, bridge: Bridge, node: int | None,
                  done: Callable[[], bool] | None = None) -> AgentRun | None:
        """One agent task; None when the model could not be asked (budget spent, backend failing)."""
        if not self.available():
            return None
        try:
            run = await run_agent(self.backend, self.ledger, role, self.model(role), system, prompt, bridge, node,
                                  self.agent.max_turns, self.agent.max_tokens, done)
        except BudgetExhausted as exc:
            self.go_offline(str(exc))
            return None
        except BackendError as exc:
            self.failures += 1
            self.store.add_alert("warning", "llm_error", str(exc), {"role": role, "failures": self.failures}, node)
            if self.failures >= MAX_BACKEND_FAILURES:
                self.go_offline(f"{self.failures} failed calls in a row, the last: {exc}")
            return None
        self.failures = 0
        self.store.event("agent_run", node, role=role, model=self.model(role), turns=run.turns, stopped=run.stopped,
                         llm_seconds=[round(x, 6) for x in run.llm_seconds],
                         text=run.text[:2000], calls=[{k: v for k, v in c.items() if k != "result"} | {
                             "result": c["result"][:300]} for c in run.calls])
        return run

    async def kb_entries(self, query: str, limit: int = 5) -> str:
        """Knowledge-base entries for a prompt, one line each."""
        try:
            hits = await call_as(self.clients["kb"], "query", {"query": query, "context": self.context,
                                                               "limit": limit}, Hits)
        except HostError:
            return "(the knowledge base did not answer)"
        lines = [f"- [{h.entry.kind}] {h.entry.title}: {h.entry.body[:300]}" + (" (stale: re-test)" if h.stale else "")
                 for h in hits.hits]
        return "\n".join(lines) or "(no matching entries)"
