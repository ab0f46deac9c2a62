"""Which hazards a simulated stack holds: interactions, blocking moves, crashes, corruption, traps, odd labels."""

from __future__ import annotations

from .model import Scenario, Value, behaviour

LAYERS = ("attention", "gemm", "moe", "communication", "parallelism", "norm", "sampling", "kernels", "graph",
          "scheduler", "runtime", "batching", "memory")
# What a layer's name suggests it speeds up, as the host reads a label (its whole-step layers: host time).
SUGGESTS = {"attention": ("attention",), "gemm": ("gemm",), "moe": ("moe",), "communication": ("communication",),
            "parallelism": ("communication", "gemm"), "norm": ("norm_elementwise",), "sampling": ("sampling",),
            "kernels": ("gemm", "attention"), "graph": ("host_idle", "norm_elementwise"),
            "scheduler": ("host_idle",), "runtime": ("host_idle", "memcpy"), "batching": ("host_idle",),
            "memory": ("memcpy",)}
FITTING = {c: [layer for layer in LAYERS if c in SUGGESTS[layer]] for c in
           ("gemm", "attention", "moe", "communication", "norm_elementwise", "sampling", "host_idle", "memcpy")}
NOTICEABLE = 0.02  # a factor this close to 1 acts on nothing worth a label


def features(s: Scenario) -> set[str]:
    """The hazards of `s` by name: interaction, blocking, crash, corrupt, trap, mislabelled, useless, slowdown."""
    out = set()
    if any(len(r.when) >= 2 and all(x < 1 for x in r.scale.values()) for r in s.interaction):
        out.add("interaction")
    if any(any(x > 1 for x in r.scale.values()) for r in s.interaction):
        out.add("blocking")
    out |= {name for name in ("crash", "corrupt", "trap") if getattr(s, name)}
    named = {k for r in (*s.interaction, *s.crash, *s.corrupt, *s.trap) for k in r.when}
    for knob in s.knob:
        acts = acts_on(s, knob.name)
        if acts and not set(acts) & set(SUGGESTS.get(knob.layer, ())):
            out.add("mislabelled")
        if not acts and knob.name not in named:
            out.add("useless")
        if any(f > 1 + NOTICEABLE for v in knob.domain() for f in knob.factors(v).values()):
            out.add("slowdown")
    return out


def acts_on(s: Scenario, name: str) -> set[str]:
    """The categories knob `name` changes noticeably, alone or in an interaction."""
    knob = next(k for k in s.knob if k.name == name)
    alone = {c for v in knob.domain() for c, f in knob.factors(v).items() if abs(f - 1) > NOTICEABLE}
    return alone | {c for r in s.interaction if name in r.when for c, x in r.scale.items() if abs(x - 1) > NOTICEABLE}


def first_move(s: Scenario) -> tuple[str, Value] | None:
    """The valid single change from the defaults that gains the most, or None when none gains."""
    base = behaviour(s, {}).output_tok_s
    moves = [(behaviour(s, {k.name: v}), k.name, v) for k in s.knob for v in k.domain() if v != k.default]
    valid = [(b.output_tok_s, name, v) for b, name, v in moves if b.flaw() is None and b.output_tok_s > base]
    return max(valid, key=lambda m: m[0])[1:] if valid else None
