"""Reading a Python package's source without importing it: files from a wheel or a folder, names across modules."""

from __future__ import annotations

import ast
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import InputError


@dataclass
class SourceTree:
    """The files of a wheel (read as a zip) or of an installed site-packages folder, by relative path."""

    root: Path
    _zip: zipfile.ZipFile | None = None
    _modules: dict[str, ast.Module | None] = field(default_factory=dict)

    @classmethod
    def open(cls, path: Path) -> SourceTree:
        """A tree over a .whl file or a folder; InputError when it is neither."""
        path = Path(path)
        if path.is_dir():
            return cls(path)
        if path.is_file() and zipfile.is_zipfile(path):
            return cls(path, zipfile.ZipFile(path))
        raise InputError(f"{path}: neither a wheel nor a folder")

    def read(self, relative: str) -> str | None:
        """The text of one file, or None when the tree has no such file."""
        if self._zip is not None:
            try:
                return self._zip.read(relative).decode("utf-8", errors="replace")
            except KeyError:
                return None
        target = self.root / relative
        return target.read_text(errors="replace") if target.is_file() else None

    def names(self, prefix: str, suffix: str = ".py") -> list[str]:
        """Relative paths under `prefix` ending in `suffix`, sorted."""
        if self._zip is not None:
            return sorted(n for n in self._zip.namelist() if n.startswith(prefix) and n.endswith(suffix))
        base = self.root / prefix
        if not base.is_dir():
            return []
        return sorted(str(p.relative_to(self.root)) for p in base.rglob(f"*{suffix}"))

    def module(self, dotted: str) -> ast.Module | None:
        """The parsed module `a.b.c` (a/b/c.py or a/b/c/__init__.py), or None; parsed once."""
        if dotted not in self._modules:
            base = dotted.replace(".", "/")
            text = self.read(base + ".py")
            if text is None:
                text = self.read(base + "/__init__.py")
            try:
                self._modules[dotted] = ast.parse(text) if text is not None else None
            except SyntaxError:  # newer syntax than this interpreter's: the names there stay unknown
                self._modules[dotted] = None
        return self._modules[dotted]

    def version(self, distributions: tuple[str, ...]) -> str | None:
        """The version in the first of `distributions`' dist-info METADATA the tree holds."""
        for dist in distributions:
            stem = re.sub(r"[-.]+", "_", dist)
            for name in self.names("", "/METADATA") if self._zip is not None else _dist_infos(self.root):
                folder = name.split("/", 1)[0]
                if folder.lower().startswith(stem.lower() + "-") and folder.endswith(".dist-info"):
                    match = re.search(r"^Version: (\S+)", self.read(name) or "", re.M)
                    if match:
                        return match.group(1)
        return None

    def close(self) -> None:
        """Release the wheel file."""
        if self._zip is not None:
            self._zip.close()


def _dist_infos(root: Path) -> list[str]:
    return sorted(f"{p.name}/METADATA" for p in root.glob("*.dist-info") if (p / "METADATA").is_file())


_TYPE_ALIAS = getattr(ast, "TypeAlias", ())


def definition(tree: SourceTree, module: str, name: str, depth: int = 0) -> tuple[str, ast.AST] | None:
    """Where `name` seen in `module` is defined: (module, its class, function or bound value); imports followed."""
    parsed = tree.module(module)
    if parsed is None or depth > 8:
        return None
    found: tuple[str, ast.AST] | None = None
    for node in _top_level(parsed.body):
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and node.name == name:
            found = (module, node)
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            found = (module, node.value)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name \
                and node.value is not None:
            found = (module, node.value)
        elif isinstance(node, _TYPE_ALIAS) and node.name.id == name:  # `type X = ...` (Python 3.12+ sources)
            found = (module, node.value)
    # `if TYPE_CHECKING: from m import X / else: X = str`: the imported X says what values are meant.
    stand_in = found is not None and isinstance(found[1], ast.Name) and found[1].id in ("str", "Any", "object")
    if found and not stand_in:
        return found
    for node in _top_level(parsed.body):
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    source = _absolute(module, node, tree)
                    return definition(tree, source, alias.name, depth + 1) or found
    return found


def _absolute(module: str, node: ast.ImportFrom, tree: SourceTree) -> str:
    if not node.level:
        return node.module or ""
    is_package = tree.read(module.replace(".", "/") + "/__init__.py") is not None
    parts = module.split(".")
    keep = len(parts) - node.level + (1 if is_package else 0)
    return ".".join(parts[:keep] + ([node.module] if node.module else []))


def _top_level(body: list[ast.stmt]) -> list[ast.stmt]:
    # Definitions under `if TYPE_CHECKING:` / `try:` count: modules define names there too.
    out: list[ast.stmt] = []
    for node in body:
        if isinstance(node, ast.If):
            out += _top_level(node.body) + _top_level(node.orelse)
        elif isinstance(node, ast.Try):
            out += _top_level(node.body) + _top_level(node.orelse)
            for handler in node.handlers:
                out += _top_level(handler.body)
        else:
            out.append(node)
    return out


def constant_strings(tree: SourceTree, module: str, node: ast.AST | None, depth: int = 0) -> list[str] | None:
    """The strings a list/tuple/set literal (or a name bound to one, or `a + b` of them) holds, or None."""
    if node is None or depth > 8:
        return None
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        values = [constant_string(tree, module, e) if not isinstance(e, ast.Constant) else str(e.value)
                  for e in node.elts]
        return [v for v in values if v is not None] if None not in values else None
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):  # `Backend.ALL`
        found = definition(tree, module, node.value.id)
        if found and isinstance(found[1], ast.ClassDef):
            scope = _class_scope(found[1])
            value = scope.get(node.attr)
            if isinstance(value, (ast.List, ast.Tuple, ast.Set)):
                items = [scope.get(e.id) if isinstance(e, ast.Name) else e for e in value.elts]
                strings = [i.value for i in items if isinstance(i, ast.Constant) and isinstance(i.value, str)]
                return strings if len(strings) == len(items) else None
        return None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left = constant_strings(tree, module, node.left, depth + 1)
        right = constant_strings(tree, module, node.right, depth + 1)
        return left + right if left is not None and right is not None else None
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("list", "sorted", "set") \
            and len(node.args) == 1:
        return constant_strings(tree, module, node.args[0], depth + 1)
    if isinstance(node, ast.Name):
        found = definition(tree, module, node.id)
        return constant_strings(tree, found[0], found[1], depth + 1) if found else None
    return None


def _class_scope(cls: ast.ClassDef) -> dict[str, ast.AST]:
    return {t.id: n.value for n in cls.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}


def constant_string(tree: SourceTree, module: str, node: ast.AST | None) -> str | None:
    """A string literal, or the string a module-level name is bound to, or None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        found = definition(tree, module, node.id)
        if found and isinstance(found[1], ast.Constant) and isinstance(found[1].value, str):
            return found[1].value
    return None


def call_name(node: ast.AST) -> str:
    """`f` for `f(...)`, `Counter` for `prometheus_client.Counter(...)`, '' for anything else."""
    func = node.func if isinstance(node, ast.Call) else None
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def metric_names(tree: SourceTree, prefix: str, folders: list[str]) -> list[str]:
    """Prometheus names `prefix:...` the sources declare, as exported (a counter gains `_total`)."""
    pattern = re.compile(rf"^{re.escape(prefix)}:[a-z0-9_]+$")
    names: set[str] = set()
    for folder in folders:
        for path in tree.names(folder):
            text = tree.read(path) or ""
            if f'"{prefix}:' not in text and f"'{prefix}:" not in text:
                continue
            try:
                parsed = ast.parse(text)
            except SyntaxError:
                continue
            for node in ast.walk(parsed):
                if not isinstance(node, ast.Call):
                    continue
                args = [*node.args[:1], *(k.value for k in node.keywords if k.arg == "name")]
                for arg in args:
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and pattern.match(arg.value):
                        counter = "counter" in call_name(node).lower()
                        names.add(arg.value + "_total" if counter and not arg.value.endswith("_total")
                                  else arg.value)
    return sorted(names)
