"""Knobs: what can be turned on a serving stack, how each is applied, and value validation."""

from __future__ import annotations

import json
import tomllib
from functools import cache
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..errors import InputError

KnobType = Literal["int", "float", "bool", "choice", "str", "json"]
Category = Literal["config", "dispatch", "kernel", "compiler", "communication", "framework"]
BoolStyle = Literal["switch", "pair", "onoff", "value"]


class Knob(BaseModel):
    """One tunable: a CLI flag or an environment variable, its type, domain and default."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_.-]*$")
    flag: str | None = Field(None, pattern=r"^-{1,2}[A-Za-z0-9][A-Za-z0-9_.-]*$")
    env: str | None = Field(None, pattern=r"^[A-Z_][A-Z0-9_]*$")
    type: KnobType
    choices: list[str] | None = None
    min: float | None = None
    max: float | None = None
    default: Any = None
    category: Category = "config"
    layer: str = "serving"
    bool_style: BoolStyle = Field("switch", description="switch: flag when true; pair: flag / false_flag;"
                                  " onoff: flag on|off; value: flag true|false")
    false_flag: str | None = Field(None, pattern=r"^-{1,2}[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""

    @model_validator(mode="after")
    def _applied_one_way(self) -> Knob:
        if (self.flag is None) == (self.env is None):
            raise ValueError(f"knob {self.name!r}: give exactly one of flag or env")
        if self.type == "choice" and not self.choices:
            raise ValueError(f"knob {self.name!r}: a choice knob needs choices")
        if self.bool_style == "pair" and self.type == "bool" and self.flag and not self.false_flag:
            raise ValueError(f"knob {self.name!r}: bool_style 'pair' needs false_flag")
        if self.default is not None:
            self.validate_value(self.default)
        return self

    def validate_value(self, value: Any) -> Any:
        """Return `value` coerced to this knob's type, or raise InputError naming the knob."""
        where = f"knob {self.name!r}"
        if self.type == "bool":
            if not isinstance(value, bool):
                raise InputError(f"{where} takes true or false, got {value!r}")
            return value
        if self.type == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                else:
                    raise InputError(f"{where} takes an integer, got {value!r}")
        elif self.type == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InputError(f"{where} takes a number, got {value!r}")
            value = float(value)
        elif self.type == "choice":
            if str(value) not in (self.choices or []):
                raise InputError(f"{where} takes one of {self.choices}, got {value!r}")
            return str(value)
        elif self.type == "str":
            if not isinstance(value, str) or not value or "\x00" in value or "\n" in value:
                raise InputError(f"{where} takes a non-empty one-line string, got {value!r}")
            return value
        elif self.type == "json":
            if isinstance(value, str):
                try:
                    value = json.loads(value)
                except ValueError as exc:
                    raise InputError(f"{where} takes JSON: {exc}") from exc
            if not isinstance(value, dict):
                raise InputError(f"{where} takes a JSON object, got {value!r}")
            return value
        if self.min is not None and value < self.min:
            raise InputError(f"{where} must be >= {self.min:g}, got {value!r}")
        if self.max is not None and value > self.max:
            raise InputError(f"{where} must be <= {self.max:g}, got {value!r}")
        return value

    def render(self, value: Any) -> tuple[list[str], dict[str, str]]:
        """The argv items and environment entries that apply `value`."""
        value = self.validate_value(value)
        if self.env is not None:
            if self.type == "bool":
                return [], {self.env: "1" if value else "0"}
            return [], {self.env: json.dumps(value) if self.type == "json" else str(value)}
        assert self.flag is not None
        if self.type == "bool":
            if self.bool_style == "switch":
                return ([self.flag] if value else []), {}
            if self.bool_style == "pair":
                return [self.flag if value else str(self.false_flag)], {}
            if self.bool_style == "onoff":
                return [self.flag, "on" if value else "off"], {}
            return [self.flag, "true" if value else "false"], {}
        if self.type == "json":
            return [self.flag, json.dumps(value, separators=(",", ":"))], {}
        return [self.flag, str(value)], {}


class Catalogue(BaseModel):
    """A built-in catalogue: the engine release its flags were checked against, and its knobs."""

    model_config = ConfigDict(extra="forbid")

    engine: str = Field(pattern=r"^[a-z]+$")
    engine_version: str = Field(min_length=1, max_length=64, description="the release in enginedefs/data/<engine>.json "
                                "the flags were checked against")
    knob: list[Knob] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> Catalogue:
        names = [k.name for k in self.knob]
        if len(set(names)) != len(names):
            raise ValueError(f"knob names repeat: {sorted(n for n in set(names) if names.count(n) > 1)}")
        return self


@cache
def catalogue_file(stack: str) -> Catalogue | None:
    """The built-in catalogue of a stack (knobs/<stack>.toml), validated; None for a stack without one."""
    try:
        text = resources.files(__package__).joinpath("knobs", f"{stack}.toml").read_text()
    except FileNotFoundError:
        return None
    try:
        parsed = Catalogue.model_validate(tomllib.loads(text))
    except (tomllib.TOMLDecodeError, ValidationError) as exc:
        raise InputError(f"knobs/{stack}.toml: {exc}") from exc
    if parsed.engine != stack:
        raise InputError(f"knobs/{stack}.toml: engine is {parsed.engine!r}, not {stack!r}")
    return parsed


def catalogue(stack: str) -> dict[str, Knob]:
    """The built-in knob catalogue of a stack, from its data file (knobs/<stack>.toml)."""
    parsed = catalogue_file(stack)
    return {k.name: k for k in parsed.knob} if parsed else {}


def resolve(knobs: dict[str, Knob], values: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    """Validate every value against its knob and render all of them; nothing partial on error."""
    unknown = sorted(set(values) - set(knobs))
    if unknown:
        raise InputError(f"unknown knob(s) {unknown}; known: {sorted(knobs)}")
    argv: list[str] = []
    env: dict[str, str] = {}
    for name in sorted(values):
        args, extra_env = knobs[name].render(values[name])
        argv += args
        env |= extra_env
    return argv, env
