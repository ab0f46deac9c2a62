"""Records of the knowledge base: the context of a measurement, outcomes, entries, priors, hits."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Result = Literal["kept", "reverted", "crashed", "invalid"]
EntryKind = Literal["technique", "failure_mode", "parameter", "campaign_summary"]
Strict = ConfigDict(extra="forbid")
NAME = r"^[A-Za-z0-9][A-Za-z0-9_.:+/ -]{0,127}$"


def canonical(value: Any) -> str | None:
    """A knob value as stored and compared: canonical JSON (16 and "16" stay different)."""
    return None if value is None else json.dumps(value, sort_keys=True, separators=(",", ":"))


class Context(BaseModel):
    """Where a measurement was made: stack, model, hardware and versions."""

    model_config = Strict

    stack: str = Field(pattern=NAME, description="llamacpp, vllm, sglang, ...")
    hardware: str = Field(pattern=NAME, description="e.g. 'cpu:amd-epyc-2c', 'MI300X', 'H100-SXM'")
    model: str | None = Field(None, max_length=300)
    model_family: str | None = Field(None, pattern=NAME, description="e.g. llama3, qwen2, smollm2")
    framework_version: str | None = Field(None, max_length=100)
    driver_version: str | None = Field(None, max_length=100, description="ROCm/CUDA/driver version")


class Change(BaseModel):
    """What an action changed: a knob and value, or a patch."""

    model_config = Strict

    category: str = Field(pattern=r"^[a-z_]{1,40}$")
    layer: str | None = Field(None, max_length=60)
    knob: str | None = Field(None, pattern=r"^[A-Za-z0-9_.:-]{1,100}$")
    value: Any = None
    patch_summary: str | None = Field(None, max_length=2000)


class OutcomeIn(BaseModel):
    """One evaluated action to record."""

    model_config = Strict

    campaign: str = Field(pattern=NAME)
    context: Context
    change: Change
    result: Result
    gain: float | None = Field(None, ge=-1.0, le=100.0, description="relative throughput change, 0.12 = +12%")
    gain_low: float | None = Field(None, ge=-1.0, le=100.0)
    gain_high: float | None = Field(None, ge=-1.0, le=100.0)
    cost_s: float | None = Field(None, ge=0)
    diagnosis: str | None = Field(None, max_length=4000)
    id: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,100}$", description="stable id; generated if absent")

    @field_validator("gain_high")
    @classmethod
    def _ordered(cls, high: float | None, info: Any) -> float | None:
        low = info.data.get("gain_low")
        if high is not None and low is not None and high < low:
            raise ValueError("gain_high is below gain_low")
        return high


class Outcome(BaseModel):
    """A stored outcome, flat as in the table."""

    id: str
    campaign: str
    stack: str
    model: str | None
    model_family: str | None
    hardware: str
    framework_version: str | None
    driver_version: str | None
    category: str
    layer: str | None
    knob: str | None
    value: str | None
    patch_summary: str | None
    result: Result
    gain: float | None
    gain_low: float | None
    gain_high: float | None
    cost_s: float | None
    diagnosis: str | None
    created_at: float


class EntryIn(BaseModel):
    """A distilled or seeded piece of knowledge to store."""

    model_config = Strict

    kind: EntryKind
    title: str = Field(min_length=3, max_length=300)
    body: str = Field(min_length=3, max_length=20_000)
    stack: str | None = None
    model_family: str | None = None
    hardware: str | None = None
    framework_version: str | None = None
    driver_version: str | None = None
    category: str | None = None
    layer: str | None = None
    knob: str | None = None
    value: Any = None
    constraint_text: str | None = None
    stats: dict[str, Any] = Field(default_factory=dict)
    outcome_ids: list[str] = Field(default_factory=list)
    source: str = Field(min_length=1, max_length=500, description="campaign id, or the public document cited")
    key: str | None = Field(None, description="natural key for merging; derived from kind and context if absent")

    def natural_key(self) -> str:
        """Entries about the same thing in the same context share this key, so they merge instead of repeating."""
        if self.key:
            return self.key
        parts = [self.kind, self.stack, self.hardware, self.model_family, self.category, self.knob,
                 canonical(self.value)]
        if self.kind == "campaign_summary":
            parts.append(self.source)
        return "|".join("" if p is None else str(p) for p in parts)


class Entry(BaseModel):
    """A stored entry."""

    id: str
    key: str
    kind: EntryKind
    title: str
    body: str
    stack: str | None
    model_family: str | None
    hardware: str | None
    framework_version: str | None
    driver_version: str | None
    category: str | None
    layer: str | None
    knob: str | None
    value: str | None
    constraint_text: str | None
    stats: dict[str, Any]
    outcome_ids: list[str]
    source: str
    created_at: float
    updated_at: float


class Hit(BaseModel):
    """An entry returned by retrieval, with why it matched."""

    entry: Entry
    score: float
    reasons: list[str]
    stale: bool = Field(False, description="learned on another framework/driver version: re-test before trusting")


class Prior(BaseModel):
    """What the knowledge base expects of an action in a context."""

    speedup: float = Field(description="expected relative gain if it works, 0.05 = +5%")
    p_crash: float
    p_regress: float
    multiplier: float = Field(description=">1 for validated techniques, <1 for recorded failure modes")
    level: Literal["exact", "knob_hardware", "category_hardware", "category", "global"]
    n: int = Field(description="outcomes behind the answering level")
    entries: list[str] = Field(default_factory=list, description="ids of the entries behind the multiplier")
    stale_entries: list[str] = Field(default_factory=list)

    def expected_gain(self, time_share: float = 1.0) -> float:
        """time_share × speedup × multiplier × (1 − p_crash) × (1 − p_regress): the KB's part of the score."""
        return time_share * self.speedup * self.multiplier * (1 - self.p_crash) * (1 - self.p_regress)
