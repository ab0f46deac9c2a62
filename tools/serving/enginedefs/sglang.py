"""SGLang's definitions from its source, never imported: `sglang.launch_server` options, environment, metrics.

ServerArgs (srt/server_args.py) assembles its fields from namespace classes in srt/arg_groups/fields/; each field
annotated `A[T, "help"]` or `A[T, Arg(...)]` becomes an option by add_cli_args_from_dataclass
(srt/arg_groups/arg_utils.py), and add_cli_args registers the rest by hand, deprecated spellings among them.
"""

from __future__ import annotations

import ast

from ...errors import InputError
from . import EngineDefs, EnvDef, FlagDef
from .pyargs import Kwargs, apply_kwarg, flag_def, hints
from .registrations import Registrations
from .source import SourceTree, call_name, constant_string, definition, metric_names

SERVER_ARGS = "sglang.srt.server_args"
FIELDS = "sglang.srt.arg_groups.fields"
ENVIRON = "sglang.srt.environ"
_ENV_TYPES = {"EnvBool": "bool", "EnvInt": "int", "EnvFloat": "float", "EnvStr": "str", "EnvJSON": "json",
              "EnvTuple": "list"}


def read_sglang(tree: SourceTree, source: str, version: str | None = None) -> EngineDefs:
    """SGLang's definitions from a wheel or site-packages tree; InputError when it holds no SGLang."""
    module = tree.module(SERVER_ARGS)
    if module is None:
        raise InputError(f"{source}: no sglang/srt/server_args.py")
    version = version or tree.version(("sglang",))
    if not version:
        raise InputError(f"{source}: no sglang dist-info to read the version from")
    flags: dict[str, FlagDef] = {}
    for where, cls in _namespaces(tree, module):
        for node in cls.body:
            flag = _field_flag(tree, where, node)
            if flag is not None:
                flags[flag.name] = flag
    # The class, not the name: ServerArgs is rebuilt from the namespaces after the class statement.
    cls = next((n for n in module.body if isinstance(n, ast.ClassDef) and n.name == "ServerArgs"), None)
    if cls is not None:
        method = next((n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "add_cli_args"), None)
        if method is not None:
            registrations = Registrations(tree, enable_disable=False)
            registrations.run(SERVER_ARGS, method.body, {})
            flags |= registrations.flags
    return EngineDefs(engine="sglang", version=version, source=source, flags=sorted(flags.values(),
                      key=lambda f: f.name), env=read_env(tree), metrics=metric_names(tree, "sglang", ["sglang/srt/"]))


def _namespaces(tree: SourceTree, module: ast.Module) -> list[tuple[str, ast.ClassDef]]:
    """The field classes server_args.py imports from arg_groups/fields: the namespaces ServerArgs collects."""
    out = []
    for node in module.body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(FIELDS + "."):
            for alias in node.names:
                found = definition(tree, node.module or "", alias.name)
                if found is not None and isinstance(found[1], ast.ClassDef):
                    out.append((found[0], found[1]))
    return out


def _field_flag(tree: SourceTree, module: str, node: ast.stmt) -> FlagDef | None:
    """The option add_cli_args_from_dataclass makes of one `name: A[T, meta] = default`, or None."""
    if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
        return None
    annotation = node.annotation
    if not (isinstance(annotation, ast.Subscript) and ast.unparse(annotation.value) in ("A", "Annotated")
            and isinstance(annotation.slice, ast.Tuple)):
        return None
    inner, *metas = annotation.slice.elts
    arg: dict[str, ast.AST] = {}
    for meta in metas:
        if isinstance(meta, ast.Constant) and isinstance(meta.value, str):
            arg = {"help": meta}
            break
        if isinstance(meta, ast.Call) and call_name(meta) == "Arg":
            arg = {k.arg: k.value for k in meta.keywords if k.arg}
            break
    else:
        return None  # no Arg: registered by hand, if at all
    if _true(arg.get("no_cli")):
        return None
    cli_name = constant_string(tree, module, arg.get("cli_name")) or "--" + node.target.id.replace("_", "-")
    aliases = [a.value for a in getattr(arg.get("aliases"), "elts", []) if isinstance(a, ast.Constant)]
    kw: Kwargs = {}
    if "action" in arg:
        apply_kwarg(tree, module, kw, "action", arg["action"])
        extra = arg.get("action_kwargs")
        if isinstance(extra, ast.Dict):
            for key, value in zip(extra.keys, extra.values, strict=True):
                if isinstance(key, ast.Constant) and isinstance(key.value, str):
                    apply_kwarg(tree, module, kw, key.value, value)
    else:
        kw = _typed(tree, module, inner, arg)
    if "help" in arg:
        apply_kwarg(tree, module, kw, "help", arg["help"])
    return flag_def([cli_name, *aliases], kw)


def _typed(tree: SourceTree, module: str, inner: ast.AST, arg: dict[str, ast.AST]) -> Kwargs:
    atoms = [a for a in hints(tree, module, inner) if a != "none"]
    literal = next((a[1] for a in atoms if isinstance(a, tuple) and a[0] == "literal"), None)
    kw: Kwargs
    if literal is not None:
        kw = {"type": "int" if literal and isinstance(literal[0], int) else "str",
              "choices": [str(v) for v in literal]}
    elif "list" in atoms and "type_parser" not in arg:
        kw = {"type": "list"}
    elif atoms == ["bool"]:
        kw = {"type": "bool", "action": "store_true"}
    else:
        kw = {"type": next((a for a in atoms if a in ("int", "float", "str")), "value")}
    if "type_parser" in arg:
        apply_kwarg(tree, module, kw, "type", arg["type_parser"])
    if "choices" in arg:
        apply_kwarg(tree, module, kw, "choices", arg["choices"])
    if "nargs" in arg:
        apply_kwarg(tree, module, kw, "nargs", arg["nargs"])
    return kw


def _true(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def read_env(tree: SourceTree) -> list[EnvDef]:
    """The variables of srt/environ.py's Envs registry; aliases and _DEPRECATED_ENVS entries as deprecated."""
    module = tree.module(ENVIRON)
    if module is None:
        return []
    out: dict[str, EnvDef] = {}
    for node in module.body:
        if isinstance(node, ast.ClassDef) and node.name == "Envs":
            for item in node.body:
                if not (isinstance(item, ast.Assign) and isinstance(item.targets[0], ast.Name)
                        and isinstance(item.value, ast.Call)):
                    continue
                kind = call_name(item.value)
                name = item.targets[0].id
                out[name] = EnvDef(name=name, type=_ENV_TYPES.get(kind.replace("WithAlias", ""), "str"))
                old = next((k.value for k in item.value.keywords if k.arg == "deprecated_name"), None)
                old_name = constant_string(tree, ENVIRON, old)
                if old_name:
                    out[old_name] = EnvDef(name=old_name, type=out[name].type, deprecated=f"use {name}")
        target = node.target if isinstance(node, ast.AnnAssign) else \
            node.targets[0] if isinstance(node, ast.Assign) else None
        if isinstance(target, ast.Name) and target.id == "_DEPRECATED_ENVS" and isinstance(node.value, ast.Dict):
            for key, value in zip(node.value.keys, node.value.values, strict=True):
                name = constant_string(tree, ENVIRON, key)
                if name:
                    out[name] = EnvDef(name=name, deprecated=_deprecation_note(tree, value))
    return sorted(out.values(), key=lambda e: e.name)


def _deprecation_note(tree: SourceTree, call: ast.AST | None) -> str:
    if not isinstance(call, ast.Call):
        return ""
    words = {k.arg: constant_string(tree, ENVIRON, k.value) for k in call.keywords}
    replacement = words.get("replacement") or constant_string(tree, ENVIRON, call.args[0] if call.args else None)
    return " ".join(filter(None, [f"use {replacement}" if replacement else None, words.get("note")]))
