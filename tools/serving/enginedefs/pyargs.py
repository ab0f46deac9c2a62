"""What argparse registrations in Python source mean, read with `ast`: option kwargs from annotations and calls."""

from __future__ import annotations

import ast
from typing import Any

from . import FlagDef
from .source import SourceTree, call_name, constant_string, constant_strings, definition

Kwargs = dict[str, Any]  # our reading of one option's argparse kwargs: type, choices, action, nargs, deprecated
_BUILTIN = {"bool": "bool", "int": "int", "float": "float", "str": "str", "None": "none", "dict": "dict",
            "Dict": "dict", "Mapping": "dict", "list": "list", "List": "list", "Sequence": "list", "tuple": "list",
            "Tuple": "list", "set": "list", "Set": "list", "frozenset": "list"}
_NO_VALUE = {"store_true", "store_false", "store_const", "count", "help", "version"}


def hints(tree: SourceTree, module: str, node: ast.AST | None, depth: int = 0) -> list[Any]:
    """The atoms of a type annotation: "bool", "int", ..., ("literal", values), ("enum", names), "dataclass"."""
    if node is None or depth > 12:
        return ["other"]
    if isinstance(node, ast.Constant):
        if node.value is None:
            return ["none"]
        if isinstance(node.value, str):  # a forward reference
            try:
                return hints(tree, module, ast.parse(node.value, mode="eval").body, depth + 1)
            except SyntaxError:
                return ["other"]
        return ["other"]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return hints(tree, module, node.left, depth + 1) + hints(tree, module, node.right, depth + 1)
    if isinstance(node, ast.Subscript):
        base = _name(node.value)
        items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if base == "Literal":
            values = [v for v in (_literal(tree, module, i) for i in items) if v is not None]
            return [("literal", values)] + (["none"] if len(values) < len(items) else [])
        if base in ("Optional",):
            return hints(tree, module, items[0], depth + 1) + ["none"]
        if base == "Union":
            return [h for i in items for h in hints(tree, module, i, depth + 1)]
        if base == "Annotated":
            return hints(tree, module, items[0], depth + 1)
        return [_BUILTIN.get(base, "other")]
    name = _name(node)
    if name in _BUILTIN:
        return [_BUILTIN[name]]
    if not name:
        return ["other"]
    found = definition(tree, module, name)
    if found is None:
        return ["other"]
    where, value = found
    if isinstance(value, ast.ClassDef):
        return [_class_kind(tree, where, value)]
    if isinstance(value, ast.FunctionDef):
        return ["other"]
    if isinstance(value, ast.Call) and call_name(value) == "TypeAliasType" and len(value.args) > 1:
        return hints(tree, where, value.args[1], depth + 1)
    return hints(tree, where, value, depth + 1)


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _literal(tree: SourceTree, module: str, node: ast.AST) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    return constant_string(tree, module, node)


def _class_kind(tree: SourceTree, module: str, cls: ast.ClassDef) -> Any:
    decorators = {_name(d.func if isinstance(d, ast.Call) else d) for d in cls.decorator_list}
    if decorators & {"dataclass", "config"}:
        return "dataclass"
    bases = {_name(b) for b in cls.bases}
    if any(b.endswith("Enum") for b in bases):
        members = [(t.id, n.value) for n in cls.body if isinstance(n, ast.Assign) for t in n.targets
                   if isinstance(t, ast.Name) and not t.id.startswith("_")]
        if "IntEnum" in bases:  # parsed from the value: `--optimization-level 3`
            return ("enum", [str(v.value) for _, v in members if isinstance(v, ast.Constant)])
        return ("enum", [name for name, _ in members])
    if "dict" in bases:
        return "dict"
    return "other"


def field_kwargs(atoms: list[Any]) -> Kwargs:
    """What vLLM's get_kwargs (arg_utils._compute_kwargs) makes of a field of these type atoms."""
    plain = {a for a in atoms if isinstance(a, str)}
    literal = next((a[1] for a in atoms if isinstance(a, tuple) and a[0] == "literal"), None)
    enum = next((a[1] for a in atoms if isinstance(a, tuple) and a[0] == "enum"), None)
    if "dataclass" in plain:
        return {"type": "json"}
    if plain == {"bool", "str", "none"} and literal is None:
        return {"type": "optional"}
    if "bool" in plain:
        return {"type": "bool", "action": "BooleanOptionalAction"}
    if literal is not None:
        kind = {int: "int", float: "float", bool: "bool"}.get(type(literal[0]), "str") if literal else "str"
        values = [str(v) for v in literal]
        # With `str` beside the Literal, the values are a hint (metavar), not a restriction.
        return {"type": kind, "suggested": values} if "str" in plain else {"type": kind, "choices": values}
    for atom, kind in (("list", "list"), ("int", "int"), ("float", "float"), ("dict", "json")):
        if atom in plain:
            return {"type": kind}
    if enum is not None:
        return {"type": "str", "choices": enum}
    return {"type": "str"}


def type_of(expr: ast.AST, current: str | None) -> str | None:
    """The value type a `type=` callable gives: json.loads is JSON, int is int; a normalising lambda keeps it."""
    text = ast.unparse(expr)
    if "json" in text:
        return "json"
    if isinstance(expr, ast.Call) and expr.args:  # optional_type(int), parse_type(float)
        return type_of(expr.args[0], current)
    name = _name(expr)
    if name in ("int", "human_readable_int", "human_readable_int_or_auto"):
        return "int"
    if name == "float":
        return "float"
    if name == "str" or name == "nullable_str":
        return "str"
    return current or "value"


def apply_kwarg(tree: SourceTree, module: str, kw: Kwargs, key: str, expr: ast.AST) -> None:
    """Fold one `key=expr` of an add_argument call (or a kwargs dict) into `kw`."""
    if key == "type":
        kw["type"] = type_of(expr, kw.get("type"))
    elif key == "choices":
        choices = constant_strings(tree, module, expr)
        kw.pop("suggested", None)
        if choices is None:
            kw.pop("choices", None)  # computed at run time (plugins, registries): not known here
        else:
            kw["choices"] = [c for c in choices if c != "None"]
    elif key == "action":
        kw["action"] = constant_string(tree, module, expr) if isinstance(expr, ast.Constant) else _name(expr)
    elif key == "nargs":
        kw["nargs"] = expr.value if isinstance(expr, ast.Constant) else None
    elif key == "const":
        kw["const"] = True
    elif key == "deprecated" and isinstance(expr, ast.Constant) and expr.value:
        kw["deprecated"] = kw.get("deprecated") or ""
    elif key == "help":
        note = constant_string(tree, module, expr)
        named = _name(expr).upper()
        if "DEPRECAT" in named or (note and _says_deprecated(note)):
            kw["deprecated"] = (note or "").strip()
    elif key == "new_flag":
        replacement = constant_string(tree, module, expr)
        kw["deprecated"] = f"use {replacement}" if replacement else kw.get("deprecated", "")


def _says_deprecated(note: str) -> bool:
    head = note.strip().lower().lstrip("([")
    return head.startswith("deprecated") or " is deprecated" in note.lower()[:200]


def flag_def(names: list[str], kw: Kwargs, enable_disable: bool = False) -> FlagDef:
    """One FlagDef from an option's spellings and our reading of its kwargs."""
    action = kw.get("action") or ""
    deprecated = kw.get("deprecated")
    negations: list[str] = []
    kind = kw.get("type") or "value"
    if action.startswith("Deprecated"):
        deprecated = deprecated if deprecated is not None else ""
        kind = "bool" if "StoreTrue" in action or kw.get("nargs") == 0 else kind
    if action in ("BooleanOptionalAction", "EnableDisableAction"):
        kind = "bool"
        longs = [n for n in names if n.startswith("--")]
        negations = [f"--no-{n[2:]}" for n in longs]
        if enable_disable:  # vLLM pairs --enable-x with --disable-x
            flips = {"--enable-": "--disable-", "--disable-": "--enable-"}
            negations += [flips[p] + n[len(p):] for n in longs for p in flips if n.startswith(p)]
    elif action in _NO_VALUE:
        kind = "bool"
    elif kw.get("nargs") == "?" and kw.get("const") and kind in ("str", "value", "optional"):
        kind = "optional"
    elif kw.get("nargs") == 0:
        kind = "bool"
    choices = kw.get("choices") if kind != "bool" else None
    suggested = kw.get("suggested") if kind != "bool" and not choices else None
    return FlagDef(name=names[0], aliases=names[1:], negations=negations, type=kind, choices=choices or None,
                   suggested=suggested or None, deprecated=deprecated)
