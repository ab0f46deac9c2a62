"""Check a stack's knobs and fixed arguments against what its engine accepts, before any server starts.

The definitions come from the engine itself where it is on hand: llama-server's `--help`; vLLM's or SGLang's
installed source, read without importing it (importing costs tens of seconds and may touch the GPUs). Otherwise
the stored definitions of the pinned release (enginedefs/data) stand in.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path
from typing import NamedTuple

from ..errors import InputError
from .enginedefs import ENGINES, ENV_PREFIXES, EngineDefs, stored
from .enginedefs.llamacpp import help_defs
from .enginedefs.sglang import read_sglang
from .enginedefs.source import SourceTree
from .enginedefs.vllm import read_vllm
from .knobs import Knob
from .stack import StackSpec

# The file that marks an installed package, and the reader of it.
_PACKAGES = {"vllm": ("vllm/engine/arg_utils.py", read_vllm), "sglang": ("sglang/srt/server_args.py", read_sglang)}
_LIBRARIES = ("lib/python3*/site-packages", "lib/python3*/dist-packages", "local/lib/python3*/dist-packages")
_DEFAULT_BINARY = {"llamacpp": "llama-server", "vllm": "vllm", "sglang": "python3"}


class Finding(NamedTuple):
    """One disagreement with the engine: where (a knob, base_args, env), what, and whether it stops the campaign."""

    where: str
    problem: str
    fatal: bool


def definitions_for(kind: str, binary: str | None) -> EngineDefs | None:
    """The engine's own definitions for a stack: --help, installed source, else stored; None for generic and sim."""
    if kind not in ENGINES:
        return None
    if kind == "llamacpp":
        path = shutil.which(binary or _DEFAULT_BINARY[kind])
        if path:
            try:
                return help_defs(path)
            except InputError:
                pass  # a stub or wrapper that does not print llama-server's help
        return stored(kind)
    marker, reader = _PACKAGES[kind]
    for root in _site_packages(binary or _DEFAULT_BINARY[kind], marker.split("/")[0]):
        if (root / marker).is_file():
            tree = SourceTree.open(root)
            try:
                return reader(tree, f"installed {marker.split('/')[0]} in {root}")
            except Exception:  # no dist-info beside it, or a layout this reader does not know: the stored release
                continue
            finally:
                tree.close()
    return stored(kind)


def _site_packages(binary: str, package: str) -> list[Path]:
    """Where `package` may be installed for `binary` (its venv, its script's interpreter), then for this Python."""
    roots: list[Path] = []
    found = shutil.which(binary)
    if found:
        executables = [Path(found).absolute()]
        interpreter = _shebang(executables[0])
        if interpreter:
            executables.append(interpreter)
        for exe in executables:
            prefix = exe.parent.parent  # <prefix>/bin/<exe> -> <prefix>/lib/python3.X/site-packages
            for pattern in _LIBRARIES:
                roots += sorted(prefix.glob(pattern))
    spec = importlib.util.find_spec(package) if package.isidentifier() else None
    if spec is not None and spec.origin:
        roots.append(Path(spec.origin).parent.parent)
    return list(dict.fromkeys(roots))


def _shebang(path: Path) -> Path | None:
    try:
        with open(path, "rb") as handle:
            first = handle.readline(512)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    words = first[2:].decode(errors="replace").split()
    return Path(words[0]) if words and os.path.isabs(words[0]) else None


def findings(knobs: list[Knob], base_args: list[str], env: dict[str, str], defs: EngineDefs) -> list[Finding]:
    """Every flag, variable or choice the engine does not take as written, and every deprecated one."""
    out: list[Finding] = []
    for knob in knobs:
        where = f"knob {knob.name!r}"
        if knob.env is not None:
            out += _env_findings(where, knob.env, defs, fatal=True)
            continue
        assert knob.flag is not None
        out += _flag_findings(where, knob, defs)
    for arg in base_args:
        if not (arg.startswith("-") and len(arg) > 1 and not arg[1].isdigit()):
            continue  # a value, a negative number
        spelling = arg.split("=", 1)[0]
        option = defs.flag(spelling)
        if option is None:
            out.append(Finding("base_args", _unknown(spelling, defs.nearest_flag(spelling), "option"), True))
        elif option.deprecated is not None:
            out.append(Finding("base_args", _deprecated(spelling, option.deprecated), False))
    for name in sorted(env):
        out += _env_findings("target.env", name, defs, fatal=False)
    return out


def _flag_findings(where: str, knob: Knob, defs: EngineDefs) -> list[Finding]:
    assert knob.flag is not None
    option = defs.flag(knob.flag)
    if option is None:
        return [Finding(where, _unknown(knob.flag, defs.nearest_flag(knob.flag), "option"), True)]
    out = []
    if option.deprecated is not None:
        out.append(Finding(where, _deprecated(knob.flag, option.deprecated), False))
    bare = knob.type == "bool" and knob.bool_style in ("switch", "pair")
    if bare and option.type not in ("bool", "optional"):
        out.append(Finding(where, f"{knob.flag} takes a value; the knob passes it bare", True))
    if not bare and option.type == "bool":
        out.append(Finding(where, f"{knob.flag} takes no value; the knob passes one", True))
    if knob.bool_style == "pair" and knob.type == "bool" and knob.false_flag:
        other = defs.flag(knob.false_flag)
        if other is None:
            out.append(Finding(where, _unknown(knob.false_flag, defs.nearest_flag(knob.false_flag), "option"), True))
        elif other.name != option.name:
            out.append(Finding(where, f"false_flag {knob.false_flag} sets {other.name}, not {option.name}", True))
    if knob.type == "choice" and knob.choices:
        if option.choices is not None:
            wrong = [c for c in knob.choices if c not in option.choices]
            if wrong:
                out.append(Finding(where, f"{knob.flag} takes none of {wrong}; it takes {option.choices}", True))
        elif option.suggested is not None:
            unnamed = [c for c in knob.choices if c not in option.suggested]
            if unnamed:
                out.append(Finding(where, f"{knob.flag}: {unnamed} not among the values the engine names "
                                          f"({option.suggested})", False))
    return out


def _env_findings(where: str, name: str, defs: EngineDefs, fatal: bool) -> list[Finding]:
    known = defs.env_var(name)
    if known is None:
        if not name.startswith(ENV_PREFIXES[defs.engine]):
            return []  # another runtime's variable (OMP_*, NCCL_*): not the engine's to define
        return [Finding(where, _unknown(name, defs.nearest_env(name), "environment variable"), fatal)]
    if known.deprecated is not None:
        return [Finding(where, _deprecated(name, known.deprecated), False)]
    return []


def _unknown(spelling: str, nearest: str | None, kind: str) -> str:
    hint = f"; nearest real spelling: {nearest}" if nearest else ""
    return f"{spelling} is not one of its {kind}s{hint}"


def _deprecated(spelling: str, note: str | None) -> str:
    return f"{spelling} is deprecated" + (f": {note}" if note else "")


def check_stack(stack: StackSpec, defs: EngineDefs | None = None) -> list[str]:
    """Check a stack's knobs, base_args and env; InputError naming every fatal finding, else the notes to show."""
    defs = defs or definitions_for(stack.kind, stack.binary)
    if defs is None:
        return []
    found = findings(list(stack.knob_space().values()), stack.base_args, stack.env, defs)
    fatal = [f"{f.where}: {f.problem}" for f in found if f.fatal]
    release = f"{defs.engine} {defs.version} ({defs.source})"
    if fatal:
        raise InputError(f"{release} does not take what the target asks: " + "; ".join(fatal))
    return [f"flags checked against {release}", *(f"{f.where}: {f.problem}" for f in found)]
