"""argparse registrations read from source: `add_argument` calls and the get_kwargs dicts they draw from."""

from __future__ import annotations

import ast
import copy
from typing import Any

from . import FlagDef
from .pyargs import Kwargs, apply_kwarg, field_kwargs, flag_def, hints
from .source import SourceTree, call_name, constant_string, definition


class Registrations:
    """Walks argparse registration code statement by statement, tracking get_kwargs dicts and their edits."""

    def __init__(self, tree: SourceTree, enable_disable: bool) -> None:
        self.tree = tree
        self.enable_disable = enable_disable
        self.flags: dict[str, FlagDef] = {}

    def class_kwargs(self, module: str, name: str) -> dict[str, Kwargs] | None:
        """get_kwargs(cls): each dataclass field's argparse kwargs, inherited fields first."""
        found = definition(self.tree, module, name)
        if found is None or not isinstance(found[1], ast.ClassDef):
            return None
        out: dict[str, Kwargs] = {}
        for where, cls in self._mro(found[0], found[1]):
            for node in cls.body:
                if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) \
                        and "ClassVar" not in ast.unparse(node.annotation):
                    out[node.target.id] = field_kwargs(hints(self.tree, where, node.annotation))
        return out

    def _mro(self, module: str, cls: ast.ClassDef, depth: int = 0) -> list[tuple[str, ast.ClassDef]]:
        bases: list[tuple[str, ast.ClassDef]] = []
        for base in cls.bases:
            found = definition(self.tree, module, ast.unparse(base).split("[")[0].split(".")[-1])
            if found and isinstance(found[1], ast.ClassDef) and depth < 6:
                bases += self._mro(found[0], found[1], depth + 1)
        return bases + [(module, cls)]

    def value(self, module: str, expr: ast.AST, env: dict[str, Any]) -> Any:
        """What an expression holds: a class's kwargs, one field's kwargs, or None."""
        if isinstance(expr, ast.Call) and call_name(expr) == "get_kwargs" and expr.args:
            return self.class_kwargs(module, ast.unparse(expr.args[0]).split(".")[-1])
        if isinstance(expr, ast.Name):
            return env.get(expr.id)
        if isinstance(expr, ast.Subscript) and isinstance(expr.slice, ast.Constant):
            held = self.value(module, expr.value, env)
            return held.get(expr.slice.value) if isinstance(held, dict) else None
        if isinstance(expr, ast.Dict):
            merged: Kwargs = {}
            for key, item in zip(expr.keys, expr.values, strict=True):
                if key is None:
                    merged.update(copy.deepcopy(self.value(module, item, env) or {}))
                elif isinstance(key, ast.Constant) and isinstance(key.value, str):
                    apply_kwarg(self.tree, module, merged, key.value, item)
            return merged
        return None

    def run(self, module: str, body: list[ast.stmt], env: dict[str, Any]) -> None:
        """Read a function body; both branches of an `if` count (a flag registered on any path exists)."""
        for stmt in body:
            self.statement(module, stmt, env)

    def statement(self, module: str, stmt: ast.stmt, env: dict[str, Any]) -> None:
        if isinstance(stmt, (ast.If, ast.For, ast.While, ast.With, ast.Try)):
            for block in ("body", "orelse", "finalbody"):
                self.run(module, getattr(stmt, block, []), env)
            for handler in getattr(stmt, "handlers", []):
                self.run(module, handler.body, env)
        elif isinstance(stmt, ast.Assign):
            for target in stmt.targets:
                self.assign(module, target, stmt.value, env)
        elif isinstance(stmt, ast.Delete):
            for target in stmt.targets:
                held = self._container(module, target, env)
                if held is not None:
                    held[0].pop(held[1], None)
        elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
            self.call(module, stmt.value, env)

    def assign(self, module: str, target: ast.AST, expr: ast.AST, env: dict[str, Any]) -> None:
        if isinstance(target, ast.Name):
            held = self.value(module, expr, env)
            if held is not None:
                env[target.id] = copy.deepcopy(held)
            return
        held = self._container(module, target, env)
        if held is not None:
            apply_kwarg(self.tree, module, held[0], held[1], expr)

    def _container(self, module: str, target: ast.AST, env: dict[str, Any]) -> tuple[Kwargs, str] | None:
        # `x_kwargs["field"]["type"]` -> (the field's kwargs, "type")
        if isinstance(target, ast.Subscript) and isinstance(target.slice, ast.Constant):
            held = self.value(module, target.value, env)
            if isinstance(held, dict) and isinstance(target.slice.value, str):
                return held, target.slice.value
        return None

    def call(self, module: str, call: ast.Call, env: dict[str, Any]) -> None:
        func = call.func
        if isinstance(func, ast.Attribute) and func.attr == "remove" and call.args:
            held = self._container(module, func.value, env)
            if held is not None and held[1] == "choices" and held[0].get("choices"):
                gone = constant_string(self.tree, module, call.args[0])
                held[0]["choices"] = [c for c in held[0]["choices"] if c != gone]
        elif isinstance(func, ast.Attribute) and func.attr == "add_argument":
            self.add_argument(module, call, env)

    def add_argument(self, module: str, call: ast.Call, env: dict[str, Any]) -> None:
        names = [a.value for a in call.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        if not names or not all(n.startswith("-") for n in names):
            return  # a positional argument (the model tag)
        kw: Kwargs = {}
        for keyword in call.keywords:
            if keyword.arg is None:
                kw.update(copy.deepcopy(self.value(module, keyword.value, env) or {}))
            else:
                apply_kwarg(self.tree, module, kw, keyword.arg, keyword.value)
        longs = [n for n in names if n.startswith("--")]
        names = longs + [n for n in names if not n.startswith("--")]  # the long spelling names the option
        self.flags[names[0]] = flag_def(names, kw, self.enable_disable)

    def frontend(self, module: str, cls: str) -> None:
        """FrontendArgs: one `--field-name` option per field, after its _customize_cli_kwargs edits."""
        kwargs = self.class_kwargs(module, cls)
        if kwargs is None:
            return
        found = definition(self.tree, module, cls)
        assert found is not None and isinstance(found[1], ast.ClassDef)
        env: dict[str, Any] = {"frontend_kwargs": kwargs}
        for where, klass in self._mro(found[0], found[1]):
            for node in klass.body:
                if isinstance(node, ast.FunctionDef) and node.name == "_customize_cli_kwargs":
                    self.run(where, node.body, env)
        for field, kw in env["frontend_kwargs"].items():
            name = "--" + field.replace("_", "-")
            self.flags.setdefault(name, flag_def([name], kw, self.enable_disable))
