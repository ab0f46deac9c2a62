"""The comparison's command line: options checked, a resumed comparison's settings as the defaults."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from typing import Any

from arbor.tools.errors import InputError
from arbor.tools.sim import stack
from arbor.tools.sim.model import scenarios

from .plan import Plan, draw_generator_seeds, load
from .summary import ORDER

BUDGET = 24
SEEDS_NAMED, SEEDS_GENERATED = 3, 1  # a generated scenario is a fresh draw: more scenarios beat more seeds
NEEDS = {"optuna": (("optuna",), "test"), "optuna_gp": (("optuna", "torch", "scipy"), "bench")}


def missing(strategy: str) -> str | None:
    """Why `strategy` cannot run here (a module it needs does not import), or None."""
    modules, extra = NEEDS.get(strategy, ((), ""))
    for module in modules:
        try:
            importlib.import_module(module)
        except (ImportError, OSError):
            return (f"{strategy} needs {', '.join(modules)} and {module} does not import: pip install -e "
                    f"'.[{extra}]' (or leave {strategy} out of --strategies)")
    return None


def parser(doc: str) -> argparse.ArgumentParser:
    """The options; those left unset take a resumed comparison's settings, else the defaults."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--scenarios", default=None,
                   help=f"named scenarios, comma-separated, '' for none (default: all shipped, {sorted(scenarios())})")
    p.add_argument("--generated", type=int, default=None, metavar="N",
                   help="N generated scenarios (gen-<seed>) from seeds drawn fresh each run (default 0)")
    p.add_argument("--gen-seeds", default=None, metavar="S1,S2,...",
                   help="the generator seeds to use instead of fresh ones, to repeat a run")
    p.add_argument("--seeds", type=int, default=None,
                   help=f"run seeds per scenario (default {SEEDS_NAMED} per named, {SEEDS_GENERATED} per generated "
                        "scenario; given, it applies to both)")
    p.add_argument("--budget", type=int, default=None, help=f"evaluations per run, the defaults included "
                                                            f"(default {BUDGET})")
    p.add_argument("--strategies", default=None,
                   help=f"comma-separated, of {','.join(ORDER)} (default: all, optuna_gp only when torch imports: "
                        "pip install -e '.[bench]')")
    p.add_argument("--out", type=Path, default=None, help="where the JSON, Markdown and plot go (default: --resume's "
                                                          "folder, else a new temporary one)")
    p.add_argument("--resume", type=Path, default=None, metavar="DIR",
                   help="go on with the comparison in DIR: its settings are the defaults, finished (strategy, "
                        "scenario, seed) runs are kept and skipped")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--demo", action="store_true", help="the real llama-server demo target, equal wall clock")
    p.add_argument("--demo-wall-s", type=float, default=300.0)
    return p


def _ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = [-1]
    if any(v < 0 for v in values) or len(set(values)) != len(values):
        raise ValueError("expected distinct integers >= 0, comma-separated")
    return values


def parse(argv: list[str] | None, doc: str) -> tuple[argparse.Namespace, Plan, list[str], list[dict[str, Any]]]:
    """The options, the plan of runs, the strategies, and the runs already finished (when resuming)."""
    p = parser(doc)
    args = p.parse_args(argv)
    if args.demo and (args.resume or args.generated or args.gen_seeds):
        p.error("--demo runs the real llama-server: --generated, --gen-seeds and --resume do not apply")
    recorded: dict[str, Any] = {}
    runs: list[dict[str, Any]] = []
    if args.resume:
        try:
            recorded, runs = load(args.resume)
        except ValueError as exc:
            p.error(str(exc))
        if args.budget is not None and args.budget != recorded.get("budget", args.budget):
            p.error(f"--budget {args.budget} differs from the {recorded['budget']} that {args.resume} was run with")
    args.budget = args.budget if args.budget is not None else recorded.get("budget", BUDGET)
    if args.budget < 2 or (args.seeds is not None and args.seeds < 1):
        p.error("--budget must be >= 2 and --seeds >= 1")

    names = ([n for n in args.scenarios.split(",") if n] if args.scenarios is not None
             else recorded.get("scenarios", sorted(scenarios())))
    try:
        gen_seeds = _ints(args.gen_seeds) if args.gen_seeds is not None else None
    except ValueError as exc:
        p.error(f"--gen-seeds {args.gen_seeds!r}: {exc}")
    if gen_seeds is not None and args.generated is not None and args.generated != len(gen_seeds):
        p.error(f"--generated {args.generated} but {len(gen_seeds)} --gen-seeds")
    if args.generated is not None and args.generated < 0:
        p.error("--generated must be >= 0")
    if gen_seeds is None:
        kept = recorded.get("generator_seeds") or []
        gen_seeds = draw_generator_seeds(len(kept) if args.generated is None else args.generated, kept)
    if args.seeds is not None:
        seeds = seeds_generated = list(range(args.seeds))
    else:
        seeds = recorded.get("seeds", list(range(SEEDS_NAMED)))
        seeds_generated = recorded.get("seeds_generated", list(range(SEEDS_GENERATED)))
    plan = Plan(names, gen_seeds, seeds, seeds_generated)

    strategies = ([s for s in args.strategies.split(",") if s] if args.strategies is not None
                  else recorded.get("strategies") or [s for s in ORDER if s != "optuna_gp" or not missing(s)])
    bad, why = sorted(set(strategies) - set(ORDER)), []
    for name in [*plan.named, *plan.generated]:
        try:
            stack.scenario(name)
        except InputError as exc:
            bad.append(name)
            why.append(str(exc))
    if bad:
        p.error(f"unknown {bad}" + (f": {why[0]}" if why else ""))
    if not plan.pairs() and not args.demo:
        p.error("no scenario to run: --scenarios '' needs --generated N (or --gen-seeds)")
    for strategy in strategies:
        reason = missing(strategy)
        if reason:
            p.error(reason)
    return args, plan, strategies, runs
