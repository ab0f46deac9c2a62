"""Stack specs and the argv that starts each kind of server (argv lists only, never a shell)."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..errors import InputError
from ..sim.stack import scenario, sim_argv, sim_knobs
from .knobs import Knob, catalogue, resolve
from .secrets import redact_argv, redact_env

StackKind = Literal["llamacpp", "vllm", "sglang", "generic", "sim"]
PLACEHOLDERS = {"model", "host", "port", "served_model_name"}
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
STACK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DEFAULT_PORT = 8080
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Flags Arbor sets itself: a knob or fixed argument must not move the model, address or metrics.
RESERVED_FLAGS = {
    "llamacpp": {"-m", "--model", "--host", "--port", "--metrics", "--alias", "-a"},
    "vllm": {"--model", "--host", "--port", "--served-model-name"},
    "sglang": {"--model-path", "--model", "--host", "--port", "--served-model-name", "--enable-metrics"},
    "sim": {"--scenario", "--host", "--port", "--served-model-name"},
}


class StackSpec(BaseModel):
    """How to start one inference server: kind, binary, model, fixed flags, env, and its knobs."""

    model_config = ConfigDict(extra="forbid")

    kind: StackKind
    model: str = Field(min_length=1, description="model path or hub id; sim: the scenario name")
    binary: str | None = Field(None, description="llama-server path, vllm executable, or python for sglang and sim")
    served_model_name: str | None = None
    host: str = "127.0.0.1"
    port: int | None = Field(None, ge=1, le=65535, description="None picks a free port")
    base_args: list[str] = Field(default_factory=list, description="fixed flags before the knobs")
    env: dict[str, str] = Field(default_factory=dict)
    command: list[str] | None = Field(None, description="generic kind: argv template with {model} {host} {port}")
    health_path: str = Field("/health", pattern=r"^/[A-Za-z0-9_./-]*$")
    knobs: list[Knob] | None = Field(None, description="knob space; None = the built-in catalogue for the kind")
    ready_timeout_s: float = Field(600.0, gt=0, le=86_400)
    stall_timeout_s: float = Field(180.0, gt=0, le=86_400,
                                   description="no new log output and no health for this long = hang")

    @model_validator(mode="after")
    def _check(self) -> StackSpec:
        if self.kind == "generic":
            if not self.command:
                raise ValueError("a generic stack needs command (an argv template)")
            for item in self.command:
                for name in _PLACEHOLDER.findall(item):
                    if name not in PLACEHOLDERS:
                        raise ValueError(f"unknown placeholder {{{name}}} in command; use {sorted(PLACEHOLDERS)}")
        elif self.command:
            raise ValueError(f"command is only for the generic kind, not {self.kind}")
        if self.kind == "sim":
            scenario(self.model)
        for arg in [*self.base_args, *(self.command or [])]:
            if "\x00" in arg or "\n" in arg:
                raise ValueError("arguments must be single-line strings")
        return self

    def knob_space(self) -> dict[str, Knob]:
        """The knobs this stack accepts."""
        if self.knobs is not None:
            return {k.name: k for k in self.knobs}
        return sim_knobs(self.model) if self.kind == "sim" else catalogue(self.kind)

    @property
    def model_name(self) -> str:
        """The name clients send in the `model` field."""
        return self.served_model_name or self.model


def build_command(spec: StackSpec, knob_values: dict[str, Any], port: int) -> tuple[list[str], dict[str, str]]:
    """Validate knob values and return (argv, extra env) to start the server on `port`."""
    knob_args, knob_env = resolve(spec.knob_space(), knob_values)
    host, model = spec.host, spec.model
    if spec.kind == "llamacpp":
        argv = [spec.binary or "llama-server", "-m", model, "--host", host, "--port", str(port), "--metrics"]
        if spec.served_model_name:
            argv += ["--alias", spec.served_model_name]
    elif spec.kind == "vllm":
        argv = [spec.binary or "vllm", "serve", model, "--host", host, "--port", str(port)]
        if spec.served_model_name:
            argv += ["--served-model-name", spec.served_model_name]
    elif spec.kind == "sglang":
        argv = [spec.binary or "python3", "-m", "sglang.launch_server", "--model-path", model,
                "--host", host, "--port", str(port), "--enable-metrics"]
        if spec.served_model_name:
            argv += ["--served-model-name", spec.served_model_name]
    elif spec.kind == "sim":
        argv = sim_argv(spec.binary, model, host, port, spec.model_name)
    else:
        values = {"model": model, "host": host, "port": str(port), "served_model_name": spec.model_name}
        argv = [_PLACEHOLDER.sub(lambda m: values[m.group(1)], item) for item in spec.command or []]
    knob_flags, base_flags = _flags(knob_args), _flags(spec.base_args)
    clash = sorted(knob_flags & base_flags)
    if clash:
        raise InputError(f"flag(s) {clash} set both in base_args and by knobs")
    reserved = sorted((knob_flags | base_flags) & RESERVED_FLAGS.get(spec.kind, set()))
    if reserved:
        raise InputError(f"flag(s) {reserved} are set by Arbor itself for {spec.kind} (model, address, metrics)")
    return argv + list(spec.base_args) + knob_args, dict(spec.env) | knob_env


class LaunchCommand(BaseModel):
    """How to start a stack by hand with given knob values; credentials masked."""

    argv: list[str] = Field(description="the argv, secret flag values masked")
    env: dict[str, str] = Field(description="environment the stack sets (its own entries and env knobs), "
                                            "secret values masked")
    command: str = Field(description="one shell line, `K=V ... argv`, shell-quoted")


def launch_command(spec: StackSpec, knob_values: dict[str, Any], port: int | None = None) -> LaunchCommand:
    """The command that starts `spec` with `knob_values`, validated as a launch is; port: the stack's, else 8080."""
    argv, env = build_command(spec, knob_values, port or spec.port or DEFAULT_PORT)
    odd = sorted(k for k in env if not _ENV_NAME.match(k))
    if odd:
        raise InputError(f"environment name(s) {odd} cannot be written as a shell assignment")
    argv, env = redact_argv(argv), redact_env(env)
    prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    return LaunchCommand(argv=argv, env=env, command=(prefix + " " if prefix else "") + shlex.join(argv))


def _flags(args: list[str]) -> set[str]:
    # `--port=9` names the same flag as `--port 9`.
    return {a.split("=", 1)[0] for a in args if a.startswith("-") and len(a) > 1 and not a[1].isdigit()}


def load_stacks(path: Path) -> dict[str, StackSpec]:
    """Named stacks from an operator's TOML file: one `[stack.NAME]` table each."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise InputError(f"cannot read stacks file {path}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML: {exc}") from exc
    extra = sorted(set(data) - {"stack"})
    if extra:
        raise InputError(f"{path}: unknown top-level key(s) {extra}; expected [stack.NAME] tables")
    stacks = {}
    for name, table in (data.get("stack") or {}).items():
        if not STACK_NAME.match(name) or not isinstance(table, dict):
            raise InputError(f"{path}: [stack.{name}] must be a table with a plain name")
        try:
            stacks[name] = StackSpec.model_validate(table)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise InputError(f"{path}: stack {name!r}: {where}: {first['msg']}") from exc
    return stacks
