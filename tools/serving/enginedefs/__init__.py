"""What an engine itself accepts: its flags (choices, deprecation), environment variables and metric names.

Each engine's definitions are read from its own sources or `--help` (see the engine modules beside this one);
`data/<engine>.json` holds those of the pinned release, written by scripts/refresh_catalogue.py.
"""

from __future__ import annotations

import difflib
import json
from functools import cache
from importlib import resources
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ...errors import InputError

Engine = Literal["vllm", "sglang", "llamacpp"]
ENGINES: tuple[Engine, ...] = ("vllm", "sglang", "llamacpp")
# "bool": takes no value; "value": takes one of unknown type; "optional": a value or none (vLLM's bool|str fields).
FlagType = Literal["bool", "int", "float", "str", "json", "list", "value", "optional"]
# The engine's own variables: a variable outside these prefixes (OMP_*, NCCL_*) belongs to another runtime.
ENV_PREFIXES: dict[str, tuple[str, ...]] = {"vllm": ("VLLM_",), "sglang": ("SGLANG_", "SGL_"),
                                            "llamacpp": ("LLAMA_ARG_",)}


class FlagDef(BaseModel):
    """One command-line option: its spellings, what it takes, and whether it is deprecated."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^-{1,2}[A-Za-z0-9]")
    aliases: list[str] = Field(default_factory=list)
    negations: list[str] = Field(default_factory=list, description="spellings that set a boolean false")
    type: FlagType = "value"
    choices: list[str] | None = Field(None, description="the only values the engine takes")
    suggested: list[str] | None = Field(None, description="values the engine names but does not restrict to")
    deprecated: str | None = Field(None, description="the engine's deprecation note (empty: deprecated, no note)")

    def spellings(self) -> list[str]:
        """Every spelling the engine accepts for this option."""
        return [self.name, *self.aliases, *self.negations]


class EnvDef(BaseModel):
    """One environment variable the engine reads."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    type: str = "str"
    choices: list[str] | None = None
    deprecated: str | None = None


class EngineDefs(BaseModel):
    """An engine release's definitions, and where they were read."""

    model_config = ConfigDict(extra="forbid")

    engine: Engine
    version: str = Field(min_length=1)
    source: str = Field(min_length=1, description="what was read: the release file and paths, or the binary")
    flexible: bool = Field(False, description="vLLM's FlexibleArgumentParser: `--a_b` is `--a-b`, `--a.b` sets a "
                           "key of `--a`, `-O3` is `--optimization-level 3`")
    flags: list[FlagDef]
    env: list[EnvDef] = Field(default_factory=list)
    metrics: list[str] = Field(default_factory=list)

    def flag(self, spelling: str) -> FlagDef | None:
        """The option `spelling` names (exactly, as the engine matches it), or None."""
        return _flag_index(self).get(self.normalize(spelling))

    def normalize(self, spelling: str) -> str:
        """The spelling the engine's parser looks up (vLLM rewrites some before parsing)."""
        if self.flexible and spelling.startswith("--"):
            return spelling.split(".", 1)[0].replace("_", "-")
        if self.flexible and spelling.startswith("-O") and len(spelling) > 2:
            return "--optimization-level"
        return spelling

    def env_var(self, name: str) -> EnvDef | None:
        """The environment variable `name`, or None."""
        return next((e for e in self.env if e.name == name), None)

    def nearest_flag(self, spelling: str) -> str | None:
        """The real spelling nearest `spelling`: the shortest it abbreviates (`--tp`: `--tp-size`), else difflib's."""
        spelling = self.normalize(spelling)
        longer = sorted((s for s in _flag_index(self) if s.startswith(spelling + "-")), key=len)
        if longer:
            return longer[0]
        close = difflib.get_close_matches(spelling, list(_flag_index(self)), n=1, cutoff=0.5)
        return close[0] if close else None

    def nearest_env(self, name: str) -> str | None:
        """The real variable closest to `name` (difflib), or None."""
        close = difflib.get_close_matches(name, [e.name for e in self.env], n=1, cutoff=0.5)
        return close[0] if close else None

    def to_json(self) -> str:
        """Stable JSON, one flag, variable or metric a line, so a refresh shows as a readable diff."""
        head = self.model_dump(exclude={"flags", "env", "metrics"})
        lines = ["{"] + [f" {json.dumps(k)}: {json.dumps(v)}," for k, v in head.items()]
        for key, items in (("flags", self.flags), ("env", self.env)):
            rows = [json.dumps(i.model_dump(exclude_defaults=True), sort_keys=True) for i in items]
            lines += [f' "{key}": [', ",\n".join(f"  {r}" for r in rows), " ],"]
        lines += [' "metrics": [', ",\n".join(f"  {json.dumps(m)}" for m in self.metrics), " ]", "}"]
        return "\n".join(line for line in lines if line) + "\n"


def _flag_index(defs: EngineDefs) -> dict[str, FlagDef]:
    return {spelling: f for f in defs.flags for spelling in f.spellings()}


def parse_defs(text: str, source: str) -> EngineDefs:
    """Engine definitions from JSON text; InputError naming `source` when they do not validate."""
    try:
        return EngineDefs.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InputError(f"{source}: {'.'.join(map(str, first['loc']))}: {first['msg']}") from exc


@cache
def stored(engine: str) -> EngineDefs:
    """The stored definitions of the pinned release of `engine` (data/<engine>.json)."""
    if engine not in ENGINES:
        raise InputError(f"no stored definitions for {engine!r}; engines: {list(ENGINES)}")
    path = resources.files(__package__).joinpath("data", f"{engine}.json")
    return parse_defs(path.read_text(), f"stored definitions {engine}.json")
