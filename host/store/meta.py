"""What a run's store knows about the run itself: one typed model, whose field names are the meta table's keys."""

from __future__ import annotations

from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, Field, TypeAdapter

from arbor.tools.bench.models import Comparison

from ..models import Ablation
from ..spec import CampaignSpec

RunState = Literal["created", "running", "finished"]


class RunMeta(BaseModel):
    """The run: its spec and target, where it stands, and the campaign's running figures."""

    spec: CampaignSpec | None = None
    campaign_id: str = Field("", description="the id the knowledge base files this campaign's outcomes under")
    binary: str | None = Field(None, description="the serving binary, resolved")
    model: str = Field("", description="the model path or id, resolved")
    kb_path: str = ""
    context: dict[str, Any] = Field(default_factory=dict, description="the KB context: stack, hardware, model, …")
    ablation: Ablation = Field(default_factory=Ablation)
    state: RunState = "created"
    elapsed_s: float = Field(0.0, description="campaign wall clock over all sessions, saved once per step")
    clock_saved_at: float | None = Field(None, description="when elapsed_s was saved (a watcher ticks from it)")
    root_node: int | None = Field(None, description="the baseline: the server's defaults")
    best_node: int | None = Field(None, description="the current best (known-good) configuration's node")
    evaluated_configs: list[str] = Field(default_factory=list, description="keys of every configuration measured")
    parity_reference: str | None = Field(None, description="the baseline's greedy outputs, for the accuracy gate")
    paused: bool = False
    stop_requested: bool = False
    reviewed_at_actions: int = Field(0, description="actions done at the LLM Critic's last stability review")
    llm_stopped: str | None = Field(None, description="why LLM work stopped for this campaign, if it did")
    tool_seconds: dict[str, float] = Field(default_factory=dict, description="time in the tools, by kind")
    session_wall_s: float | None = None
    overall_gain: Comparison | None = Field(None, description="the best configuration against the defaults")
    launch_command: str | None = Field(None, description="the best configuration as a shell line")
    stop_bound: float | None = Field(None, description="the most any candidate could gain over the best when the "
                                                       "search stopped with nothing worth its budget")


MetaName = Literal["spec", "campaign_id", "binary", "model", "kb_path", "context", "ablation", "state", "elapsed_s",
                   "clock_saved_at", "root_node", "best_node", "evaluated_configs", "parity_reference", "paused",
                   "stop_requested", "reviewed_at_actions", "llm_stopped", "tool_seconds", "session_wall_s",
                   "overall_gain", "launch_command", "stop_bound"]


@cache
def adapter(name: str) -> TypeAdapter[Any]:
    """The validator of one field (KeyError for a name the model does not have)."""
    return TypeAdapter(RunMeta.model_fields[name].annotation)


def default(name: str) -> Any:
    """A field's default when the store has no row for it."""
    return RunMeta.model_fields[name].get_default(call_default_factory=True)
