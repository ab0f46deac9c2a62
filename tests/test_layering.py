"""The shape of the code: the dependency rule of the design, no import circle in host/, small modules, SQL in stores."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import typing
from enum import Enum
from pathlib import Path

import pytest
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tools", "kb", "servers", "host", "tui")
MAX_HOST_LINES = 400
# Functions the host may call in the tools directly, each for a reason; everything else goes through MCP.
HOST_MAY_CALL = {
    "arbor.tools.migrations": {"connect", "load", "MigrationError"},  # one migrations runner for every store
    "arbor.tools.provision": {"ensure_default_target", "DefaultTarget"},  # the demo is built before any server
    "arbor.tools.errors": {"ArborError"},  # ...and what that build raises, translated where it is called
    "arbor.tools.paths": {"runs_root", "contained"},  # the one default runs root; the one path confinement
    "arbor.kb.db": {"default_path"},  # the one default knowledge-base file
    "arbor.tools.sim.stack": {"scenario", "sim_knobs"},  # a sim target's knob space is its scenario's
    "arbor.tools.serving.flagcheck": {"check_stack"},  # the target's flags are checked before any server exists
    # the server's torch profiler is switched on by its argv or env, which only exist before it starts
    "arbor.tools.serving.torchprof": {"torch_profiling"},
}


# The one upward import: `arbor-host tui` opens the TUI from the CLI, the product's front door.
UPWARD = {("arbor.host.cli", "tui")}


def modules(package: str) -> dict[str, Path]:
    """Module name -> file, for one top-level folder."""
    out = {}
    for f in (ROOT / package).rglob("*.py"):
        name = ".".join(("arbor", package, *f.relative_to(ROOT / package).with_suffix("").parts))
        out[name.removesuffix(".__init__")] = f
    return out


def imports(name: str, path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of every import in a file, relative ones resolved; TYPE_CHECKING ones included."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(parts + ([base] if base else []))
            out.append((base, [a.name for a in node.names]))
    return out


def ours(module: str) -> str | None:
    """The top-level folder an `arbor.*` module belongs to."""
    parts = module.split(".")
    return parts[1] if parts[0] == "arbor" and len(parts) > 1 and parts[1] in PACKAGES else None


def is_type(value: object) -> bool:
    """A model, an enum or a type alias: what crosses an MCP edge as data, not work."""
    if inspect.isclass(value):
        return issubclass(value, (BaseModel, Enum))
    return typing.get_origin(value) is not None


@pytest.mark.parametrize("package, allowed", [
    ("tools", {"tools"}), ("kb", {"kb", "tools"}), ("servers", {"servers", "tools", "kb"}),
    ("host", {"host", "servers", "tools", "kb"}), ("tui", {"tui", "host"}),
])
def test_nothing_imports_upward(package: str, allowed: set[str]) -> None:
    wrong = [f"{name} imports {mod}" for name, path in modules(package).items()
             for mod, _ in imports(name, path) if ours(mod) and ours(mod) not in allowed
             and (name, ours(mod)) not in UPWARD]
    assert wrong == []


def test_the_host_takes_only_types_from_the_tools_and_the_knowledge_base() -> None:
    """The host talks to tools and KB through MCP: it may name their result models, not call their work."""
    wrong = []
    for name, path in modules("host").items():
        for mod, names in imports(name, path):
            if ours(mod) not in ("tools", "kb"):
                continue
            module = importlib.import_module(mod)
            for imported in names:
                if imported not in HOST_MAY_CALL.get(mod, set()) and not is_type(getattr(module, imported)):
                    wrong.append(f"{name}: {mod}.{imported}")
    assert wrong == []


def test_no_import_circle_in_host() -> None:
    graph = {name: set() for name in modules("host")}
    for name, path in modules("host").items():
        for mod, names in imports(name, path):
            for target in (mod, *(f"{mod}.{n}" for n in names)):
                if target in graph and target != name:
                    graph[name].add(target)
    circles = []
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    assert circles == []


def test_host_modules_stay_small() -> None:
    long = {str(p.relative_to(ROOT)): n for p in modules("host").values()
            if (n := len(p.read_text().splitlines())) > MAX_HOST_LINES}
    assert long == {}


def test_sql_lives_in_the_stores() -> None:
    sql = re.compile(r"""["'](\s*)(SELECT|INSERT|UPDATE|DELETE)\s""", re.I)
    outside = [str(p.relative_to(ROOT)) for package in ("host", "tui") for p in modules(package).values()
               if "store" not in p.relative_to(ROOT).parts and sql.search(p.read_text())]
    assert outside == []
