"""llama.cpp's definitions: llama-server's options and variables from its own `--help`, metrics from its source."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from ...errors import InputError
from . import EngineDefs, EnvDef, FlagDef

_NAME = re.compile(r"-{1,2}[A-Za-z0-9][A-Za-z0-9_.+-]*")
_ENV = re.compile(r"\(env: ([A-Z_][A-Z0-9_]*)\)")
_BULLET = re.compile(r"^- ([A-Za-z0-9_+.-]+): ")
_METRIC_BLOCK = re.compile(r"std::vector<metric_item>\s+\w+\s*=\s*\{(.*?)\n\s*\};", re.S)


def parse_help(text: str) -> tuple[list[FlagDef], list[EnvDef]]:
    """The options and `(env: ...)` variables of llama-server's `--help` output."""
    entries: list[tuple[list[str], str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("-") and not line.startswith("-----"):
            names, metavar, rest = _head(line)
            entries.append((names, metavar, [rest] if rest else []))
        elif entries and line.startswith(" "):
            entries[-1][2].append(line.strip())
    flags, env = [], []
    for names, metavar, lines in entries:
        description = " ".join(lines)
        flag = _flag(names, metavar, lines)
        flags.append(flag)
        env += [EnvDef(name=n, type="bool" if flag.type == "bool" else "str", choices=flag.choices)
                for n in _ENV.findall(description)]
    return sorted(flags, key=lambda f: f.name), sorted(env, key=lambda e: e.name)


def _head(line: str) -> tuple[list[str], str, str]:
    """(spellings, metavar, description start) of an option's first line."""
    names, pos = [], 0
    while True:
        match = _NAME.match(line, pos)
        if not match:
            break
        names.append(match.group(0))
        pos = match.end()
        comma = re.match(r",\s*(?=-)", line[pos:])
        if not comma:
            break
        pos += comma.end()
    tail = line[pos:]
    gap = re.search(r"\s{2,}", tail)
    head, rest = (tail[:gap.start()], tail[gap.end():]) if gap else (tail, "")
    return names, head.strip(), rest.strip()


def _flag(names: list[str], metavar: str, lines: list[str]) -> FlagDef:
    description = " ".join(lines)
    positive = [n for n in names if not n.startswith(("--no-", "-no-"))] or names
    negations = [n for n in names if n.startswith(("--no-", "-no-")) and n not in positive]
    longs = [n for n in positive if n.startswith("--")]
    name = longs[0] if longs else positive[0]
    aliases = [n for n in positive if n != name]
    deprecated = "deprecated" if re.search(r"\bdeprecated\b", description, re.I) else None
    if not metavar:
        return FlagDef(name=name, aliases=aliases, negations=negations, type="bool", deprecated=deprecated)
    return FlagDef(name=name, aliases=aliases, negations=negations, type="value", choices=_choices(metavar, lines),
                   deprecated=deprecated)


def _choices(metavar: str, lines: list[str]) -> list[str] | None:
    """The values an option lists: `{a,b}`, `[a|b]`, `<0|1>`, "allowed values: a, b", or `- a:` bullets."""
    bracket = re.fullmatch(r"[\[{<]([^\]}>]*)[\]}>]", metavar)
    if bracket and "..." not in bracket.group(1):
        values = [v.strip() for v in re.split(r"[|,]", bracket.group(1)) if v.strip()]
        if len(values) > 1:
            return values
    allowed = re.search(r"allowed values: ([^()]+?)(?:\(|$)", " ".join(lines))
    if allowed:
        return [v.strip() for v in allowed.group(1).split(",") if v.strip()]
    bullets = [m.group(1) for line in lines if (m := _BULLET.match(line))]
    return bullets if len(bullets) > 1 else None


def help_defs(binary: str | Path, version: str | None = None, timeout_s: float = 30.0) -> EngineDefs:
    """Run `binary --help` (and `--version`) and read its options; InputError when that yields none."""
    def run(flag: str) -> str:
        try:
            done = subprocess.run([str(binary), flag], capture_output=True, text=True, timeout=timeout_s)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise InputError(f"cannot run {binary} {flag}: {exc}") from exc
        return done.stdout + done.stderr

    flags, env = parse_help(run("--help"))
    if len(flags) < 10:  # not llama-server's help: a stub, a wrapper, another program
        raise InputError(f"{binary} --help lists no llama-server options")
    if version is None:
        line = next((ln for ln in run("--version").splitlines() if ln.lower().startswith("version")), "")
        version = line.split(":", 1)[-1].strip() or "unknown"
    return EngineDefs(engine="llamacpp", version=version, source=f"{binary} --help", flags=flags, env=env)


def metrics_from_source(texts: list[str]) -> list[str]:
    """The `llamacpp:` metric names llama-server's sources export (tools/server/*.cpp)."""
    names: set[str] = set()
    for text in texts:
        for block in _METRIC_BLOCK.findall(text):
            names.update(f"llamacpp:{n}" for n in re.findall(r"\{\s*\"([a-z0-9_]+)\"\s*,", block))
        names.update(re.findall(r"\"(llamacpp:[a-z0-9_]+)", text))
    return sorted(names)
