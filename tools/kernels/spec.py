"""The kernel task spec (task.toml): what to build, how to call it, what it must compute."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import InputError
from ..paths import contained

Language = Literal["c", "cpp", "hip", "cuda", "triton"]
Dtype = Literal["float32", "float64", "float16", "int32", "int64", "uint8"]
ArgKind = Literal["in", "out", "inout", "dim", "scalar"]
Adversarial = Literal["nan", "inf", "zeros", "denormal", "size1", "odd", "unaligned", "large"]
Strict = ConfigDict(extra="forbid")


class Arg(BaseModel):
    """One argument of the entry point, in order: an array, a dimension from the shape, or a scalar."""

    model_config = Strict

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    kind: ArgKind
    dtype: Dtype | None = None
    shape: list[str | int] | None = Field(None, description="array dims: names from the shape dict or integers")
    value: float | int | None = Field(None, description="a scalar's value")

    @model_validator(mode="after")
    def _complete(self) -> Arg:
        if self.kind in ("in", "out", "inout"):
            if self.dtype is None or not self.shape:
                raise ValueError(f"array argument {self.name!r} needs dtype and shape")
        elif self.kind == "scalar":
            if self.dtype is None or self.value is None:
                raise ValueError(f"scalar argument {self.name!r} needs dtype and value")
        elif self.shape is not None or self.dtype not in (None, "int32", "int64"):
            raise ValueError(f"dim argument {self.name!r} takes its value from the shape: no shape, dtype int32/int64")
        return self


class Reference(BaseModel):
    """The NumPy implementation: `function(**inputs)` returns the output array (or a dict of them)."""

    model_config = Strict

    file: str
    function: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


class Tolerance(BaseModel):
    model_config = Strict

    rtol: float = Field(1e-5, ge=0)
    atol: float = Field(1e-6, ge=0)


class Bench(BaseModel):
    model_config = Strict

    shapes: list[dict[str, int]] = Field(min_length=1)
    warmup: int = Field(3, ge=0, le=1000)
    repeats: int = Field(21, ge=5, le=1000)
    min_speedup: float = Field(1.0, gt=0, description="the candidate must beat the baseline by this factor")
    target_ms: float = Field(5.0, gt=0, le=1000, description="calls are batched so one repeat lasts this long")


class AdversarialSpec(BaseModel):
    model_config = Strict

    cases: list[Adversarial] = Field(default_factory=lambda: ["nan", "inf", "zeros", "denormal", "size1", "odd",
                                                               "unaligned", "large"])
    odd_shape: dict[str, int] | None = None
    large_shape: dict[str, int] | None = None


class Limits(BaseModel):
    model_config = Strict

    compile_s: float = Field(120.0, gt=0, le=3600)
    run_s: float = Field(60.0, gt=0, le=3600)
    memory_mb: int = Field(2048, ge=256, le=262_144)


class KernelTask(BaseModel):
    """A kernel task: candidate sources, an optional baseline, the calling convention and the checks."""

    model_config = Strict

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    language: Language
    sources: list[str] = Field(min_length=1)
    baseline: list[str] = Field(default_factory=list, description="baseline kernel sources (same entry point)")
    build: list[str] | None = Field(None, description="argv template: {cc} {output} {sources} {include}")
    entry: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    returns: Literal["void", "status"] = Field("void", description="status: an int, nonzero means the kernel failed")
    args: list[Arg] = Field(min_length=1)
    reference: Reference
    shapes: list[dict[str, int]] = Field(min_length=1)
    tolerance: Tolerance = Field(default_factory=Tolerance)
    bench: Bench | None = None
    adversarial: AdversarialSpec = Field(default_factory=AdversarialSpec)
    limits: Limits = Field(default_factory=Limits)
    seed: int = 0

    @field_validator("build")
    @classmethod
    def _argv_only(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and (not value or any("\n" in a or "\x00" in a for a in value)):
            raise ValueError("build is a non-empty argv list of single-line strings")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> KernelTask:
        names = [a.name for a in self.args]
        if len(set(names)) != len(names):
            raise ValueError("argument names must be unique")
        if not any(a.kind in ("out", "inout") for a in self.args):
            raise ValueError("at least one argument must be an output (out or inout)")
        dims = {d for a in self.args if a.shape for d in a.shape if isinstance(d, str)}
        dims |= {a.name for a in self.args if a.kind == "dim"}
        for shape in [*self.shapes, *(self.bench.shapes if self.bench else [])]:
            missing = dims - set(shape)
            if missing:
                raise ValueError(f"shape {shape} lacks dimension(s) {sorted(missing)}")
            if any(v < 1 for v in shape.values()):
                raise ValueError(f"shape {shape}: dimensions must be >= 1")
        return self

    def dims(self) -> set[str]:
        """Every named dimension the task uses."""
        names = {d for a in self.args if a.shape for d in a.shape if isinstance(d, str)}
        return names | {a.name for a in self.args if a.kind == "dim"}


class LoadedTask(BaseModel):
    """A validated task with the folder it lives in and its files resolved inside that folder."""

    task: KernelTask
    folder: Path
    sources: list[Path]
    baseline: list[Path]
    reference: Path


def load_task(folder: Path) -> LoadedTask:
    """Read `folder/task.toml`; every file it names must exist inside the folder."""
    folder = Path(folder).resolve()
    spec_path = folder / "task.toml"
    try:
        data = tomllib.loads(spec_path.read_text())
    except FileNotFoundError as exc:
        raise InputError(f"no task.toml in {folder}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{spec_path}: not valid TOML: {exc}") from exc
    try:
        task = KernelTask.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'task'}: {e['msg']}" for e in exc.errors())
        raise InputError(f"{spec_path}: {problems}") from exc

    def resolve(name: str) -> Path:
        path = contained(folder, name, "task folder")  # no path escapes, symlinks included
        if not path.is_file():
            raise InputError(f"{spec_path}: file {name!r} does not exist in the task folder")
        return path

    return LoadedTask(task=task, folder=folder, sources=[resolve(s) for s in task.sources],
                      baseline=[resolve(s) for s in task.baseline], reference=resolve(task.reference.file))
