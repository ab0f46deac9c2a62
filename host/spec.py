"""The campaign spec: target, knob space, workload, gates, target throughput, budget, search constants, agent.

Loaded from TOML and validated strictly; every error names the key it is about.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from arbor.tools.serving.knobs import Knob
from arbor.tools.serving.stack import StackKind, StackSpec
from arbor.tools.sim.stack import scenario, sim_knobs

from .errors import SpecError

Strict = ConfigDict(extra="forbid")
DEFAULT = "default"  # binary/model value meaning "the built-in demo target"


class SearchKnob(Knob):
    """A knob with the values the search may try (its domain)."""

    values: list[bool | int | float | str] = Field(min_length=1, description="the values the search may try")

    @model_validator(mode="after")
    def _domain_fits(self) -> SearchKnob:
        self.values = [self.validate_value(v) for v in self.values]
        return self


class Target(BaseModel):
    """What to optimize: the stack and its fixed arguments."""

    model_config = Strict

    stack: StackKind
    binary: str | None = Field(None, description='path, or "default" for the built-in llama-server build')
    model: str = Field(min_length=1, description='model path or id, or "default" for the demo SmolLM2 model')
    served_model_name: str | None = None
    base_args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    command: list[str] | None = None
    health_path: str = "/health"
    ready_timeout_s: float = Field(300.0, gt=0, le=86_400)
    stall_timeout_s: float = Field(120.0, gt=0, le=86_400)
    hardware: str = Field("auto", description='hardware label for the knowledge base; "auto" reads /proc/cpuinfo')
    model_family: str | None = None
    framework_version: str | None = Field(None, description='"auto" asks the binary; None leaves it unknown')


class Workload(BaseModel):
    """The primary operating point and the sweep."""

    model_config = Strict

    input_len: int = Field(128, ge=1, le=1_000_000)
    output_len: int = Field(64, ge=1, le=1_000_000)
    concurrency: int = Field(16, ge=1, le=100_000)
    num_prompts: int = Field(32, ge=1, le=1_000_000)
    sweep: list[int] = Field(default_factory=lambda: [1, 4, 16, 32], min_length=1)
    sweep_prompts_per_concurrency: int = Field(2, ge=1, le=1000)
    sweep_min_prompts: int = Field(8, ge=1, le=100_000)
    seed: int = Field(0, ge=0)
    warmup: int = Field(1, ge=0, le=1000)
    endpoint: Literal["completions", "chat"] = "completions"
    tokenizer: str | None = Field(None, description="the model's tokenizer.json (or its folder), to cut prompts "
                                                    "when the server has no /tokenize and /detokenize")

    def bench(self, model: str) -> dict[str, Any]:
        """The benchmark tools' workload at the primary point, sent to `model`."""
        local = {"tokenizer": self.tokenizer} if self.tokenizer else {}
        return {"model": model, "endpoint": self.endpoint, "input_len": self.input_len, "output_len": self.output_len,
                "max_concurrency": self.concurrency, "num_prompts": self.num_prompts, "seed": self.seed,
                "warmup": self.warmup} | local

    @model_validator(mode="after")
    def _positive(self) -> Workload:
        if any(c < 1 for c in self.sweep):
            raise ValueError("sweep concurrencies must be >= 1")
        return self


class Gates(BaseModel):
    """What a candidate must pass before its throughput counts."""

    model_config = Strict

    accuracy: Literal["parity", "gsm8k", "none"] = "parity"
    min_agreement: float = Field(0.5, ge=0, le=1, description="parity: share of prompts with identical greedy output")
    task_accuracy_floor: float | None = Field(None, ge=0, le=1, description="gsm8k: relative to the baseline's score")
    gsm8k_limit: int = Field(100, ge=1)
    ttft_p50_max_ms: float | None = Field(None, gt=0)
    tpot_p50_max_ms: float | None = Field(None, gt=0)
    min_completion_rate: float = Field(1.0, ge=0, le=1)
    pareto_tolerance: float = Field(0.05, ge=0, le=1, description="largest throughput loss allowed at a sweep point")


class Budget(BaseModel):
    """When to stop."""

    model_config = Strict

    wall_clock_s: float = Field(600.0, gt=0, le=30 * 86_400)
    max_actions: int = Field(50, ge=1, le=1_000_000)
    llm_usd: float = Field(0.0, ge=0)


class Search(BaseModel):
    """Constants of the score and the keep decision (see the design's score formula)."""

    model_config = Strict

    exploration: float = Field(0.02, ge=0, description="c in c*sqrt(ln N / n[k])")
    min_gain: float = Field(0.02, ge=0, description="keep only if the lower confidence bound exceeds this")
    confidence: float = Field(0.95, gt=0.5, lt=1)
    min_repeats: int = Field(2, ge=2, le=100)
    baseline_repeats: int = Field(3, ge=2, le=100, description="repeats of the reference every change is "
                                  "compared to: the defaults, then each keep afresh")
    max_repeats: int = Field(4, ge=2, le=100)
    max_cv: float = Field(0.05, gt=0, description="coefficient of variation above this asks for more repeats")
    too_good: float = Field(0.5, gt=0, description="a gain above this from a low-prior action is re-measured")
    score_threshold: float = Field(1e-4, ge=0, description="stop when no candidate scores above this")
    urgency_max: float = Field(2.0, ge=1.0)
    restart_cost_s: float = Field(5.0, ge=0)
    profile_seconds: float = Field(4.0, gt=0, le=600)
    max_depth: int = Field(8, ge=1, le=100)
    branches: int = Field(2, ge=0, le=20, description="measured configurations besides the best expanded each step "
                          "(0: only the best, a hill-climb)")
    branch_exploration: float = Field(0.1, ge=0, description="c_b in a branch's value/best + c_b*sqrt(ln N / n[b])")

    @model_validator(mode="after")
    def _repeats(self) -> Search:
        if self.max_repeats < self.min_repeats:
            raise ValueError("max_repeats must be >= min_repeats")
        return self


AgentRole = Literal["orchestrator", "specialist", "critic"]


class KernelTask(BaseModel):
    """A kernel a Domain Specialist may rewrite: a task folder (task.toml) the four-step gate understands."""

    model_config = Strict

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    path: str = Field(min_length=1, description='the task folder, or "example:NAME" for a shipped example')
    category: str = "kernel"
    layer: str = "kernels"
    description: str = ""
    device: bool = Field(False, description="true when the gate needs a GPU (waits for a free one)")


class Price(BaseModel):
    """USD per million tokens."""

    model_config = Strict

    input: float = Field(0.0, ge=0)
    output: float = Field(0.0, ge=0)
    cache_write: float = Field(0.0, ge=0)
    cache_read: float = Field(0.0, ge=0)


class Agent(BaseModel):
    """Who proposes, implements and criticises actions: the offline policy, Claude, or an OpenAI-compatible model."""

    model_config = Strict

    backend: Literal["offline", "anthropic", "openai"] = "offline"
    models: dict[AgentRole, str] = Field(default_factory=dict, description="model id per role")
    base_url: str | None = Field(None, pattern=r"^https?://", description="openai: the server; anthropic: a proxy")
    api_key_env: str | None = Field(None, pattern=r"^[A-Z_][A-Z0-9_]*$",
                                    description="variable holding the API key (default ANTHROPIC_/OPENAI_API_KEY)")
    max_turns: int = Field(8, ge=1, le=100, description="model turns per agent task")
    max_tokens: int = Field(4096, ge=64, le=200_000)
    timeout_s: float = Field(600.0, gt=0, le=3600)
    max_retries: int = Field(4, ge=0, le=20)
    specialists: int = Field(2, ge=1, le=64, description="Domain Specialists working at once")
    devices: int = Field(1, ge=0, le=1024, description="GPUs (or remote nodes) specialists' gates may hold at once")
    specialist_timeout_s: float = Field(1800.0, gt=0, le=86_400)
    review_every: int = Field(5, ge=0, le=10_000, description="evaluations between the Critic's stability reviews "
                                                             "(0: none)")
    kernel_tasks: list[KernelTask] = Field(default_factory=list)
    pricing: dict[str, Price] = Field(default_factory=dict, description="USD per MTok, overrides the shipped table")

    @model_validator(mode="after")
    def _backend_needs(self) -> Agent:
        if self.backend == "openai" and not self.base_url:
            raise ValueError("the openai backend needs base_url (the server's address)")
        names = [t.name for t in self.kernel_tasks]
        if len(set(names)) != len(names):
            raise ValueError("kernel task names repeat")
        return self


class Servers(BaseModel):
    """Remote MCP endpoints (streamable HTTP URLs, e.g. on a GPU node); unset ones run in-process."""

    model_config = Strict

    serving: str | None = Field(None, pattern=r"^https?://")
    bench: str | None = Field(None, pattern=r"^https?://")
    profiler: str | None = Field(None, pattern=r"^https?://")
    kb: str | None = Field(None, pattern=r"^https?://")
    kernels: str | None = Field(None, pattern=r"^https?://")
    token_env: str = Field("ARBOR_MCP_TOKEN", pattern=r"^[A-Z_][A-Z0-9_]*$",
                           description="environment variable holding the bearer token for these endpoints")

    def endpoints(self) -> dict[str, str]:
        return {k: v for k, v in self.model_dump(exclude={"token_env"}).items() if v}


class CampaignSpec(BaseModel):
    """A whole campaign."""

    model_config = Strict

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    target: Target
    knobs: list[SearchKnob] = Field(default_factory=list, description="the knob space; a sim target defaults to "
                                                                       "its scenario's")
    workload: Workload = Field(default_factory=Workload)
    gates: Gates = Field(default_factory=Gates)
    throughput_target: float | None = Field(None, gt=0, description="output tok/s at the primary point")
    budget: Budget = Field(default_factory=Budget)
    search: Search = Field(default_factory=Search)
    agent: Agent = Field(default_factory=Agent)
    servers: Servers = Field(default_factory=Servers)

    @model_validator(mode="before")
    @classmethod
    def _sim_knobs(cls, data: Any) -> Any:
        target = data.get("target") if isinstance(data, dict) else None
        if isinstance(target, dict) and target.get("stack") == "sim" and not data.get("knobs"):
            knobs = sim_knobs(str(target.get("model")))  # an unknown scenario raises a ValueError naming it
            domains = {k.name: k.domain() for k in scenario(str(target.get("model"))).knob}
            data = dict(data, knobs=[k.model_dump(exclude_none=True) | {
                "values": [v for v in domains[k.name] if v != k.default]} for k in knobs.values()])
        return data

    @model_validator(mode="after")
    def _unique_knobs(self) -> CampaignSpec:
        if not self.knobs:
            raise ValueError("knobs: give at least one knob to search")
        names = [k.name for k in self.knobs]
        if len(set(names)) != len(names):
            raise ValueError(f"knob names repeat: {sorted(n for n in set(names) if names.count(n) > 1)}")
        return self

    @model_validator(mode="after")
    def _llm_budget(self) -> CampaignSpec:
        if self.agent.backend == "anthropic" and self.budget.llm_usd <= 0:
            raise ValueError("the anthropic backend needs budget.llm_usd > 0 (the spend cap)")
        return self

    def stack_spec(self, binary: str | None, model: str) -> StackSpec:
        """The serving stack for this campaign (binary and model resolved)."""
        t = self.target
        return StackSpec(kind=t.stack, model=model, binary=binary, served_model_name=t.served_model_name,
                         base_args=t.base_args, env=t.env, command=t.command, health_path=t.health_path,
                         knobs=[Knob(**k.model_dump(exclude={"values"})) for k in self.knobs],
                         ready_timeout_s=t.ready_timeout_s, stall_timeout_s=t.stall_timeout_s)


def _describe(exc: ValidationError, source: str) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"{source}: {where}: {first['msg']}{more}"


def parse_spec(text: str, source: str) -> CampaignSpec:
    """Validate a campaign spec from TOML text; SpecError naming the key on any problem."""
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{source}: not valid TOML: {exc}") from exc
    try:
        return CampaignSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_describe(exc, source)) from exc


def load_spec(path: Path | None) -> CampaignSpec:
    """The campaign at `path`, or the built-in demo when None."""
    if path is None:
        return parse_spec(resources.files(__package__).joinpath("campaigns", "demo.toml").read_text(),
                          "built-in demo campaign")
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise SpecError(f"cannot read campaign {path}: {exc.strerror or exc}") from exc
    return parse_spec(text, str(path))
