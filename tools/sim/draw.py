"""One random draw of a simulated stack: categories, knobs and their effects, interactions, the blocking trap, flaws."""

from __future__ import annotations

import random

from arbor.tools.profiling.categorize import categories as profile_categories

from .features import FITTING, LAYERS
from .model import Region, Scenario, SimKnob, Value, effect_key

# The knob categories (the serving knob's kinds) that suit a knob acting on each profile category.
KINDS = {"gemm": ("kernel", "dispatch", "config"), "attention": ("kernel", "dispatch", "config"),
         "moe": ("kernel", "dispatch", "config"), "sampling": ("kernel", "compiler", "config"),
         "norm_elementwise": ("kernel", "compiler", "config"), "communication": ("communication", "config"),
         "host_idle": ("config", "compiler", "framework"), "memcpy": ("config", "framework")}
SUFFIX = {"bool": ("enable", "toggle", "switch", "flag"), "choice": ("mode", "variant", "path", "impl", "policy"),
          "int": ("size", "count", "limit", "width", "depth", "chunk")}
CRASHES = (
    ("oom", "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate {gib} GiB"),
    ("oom", "RuntimeError: CUDA out of memory. Tried to allocate {gib} GiB (GPU 0; 79.11 GiB total capacity)"),
    ("segfault", "Segmentation fault (core dumped)"),
    ("segfault", "Failed: Cuda error /workspace/csrc/custom_kernels.cu:{line} 'an illegal memory access was "
                 "encountered'"),
    ("abort", "RuntimeError: unsupported tile configuration for block size {line}"),
    ("abort", "NCCL error in: /workspace/csrc/distributed/comm.cpp:{line}, unhandled cuda error"),
)


class Draw:
    """One draw of a stack: categories, knobs and their effects, then the regions."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.ms = self.categories()
        self.knobs: list[SimKnob] = []
        self.target: dict[str, str] = {}  # knob -> the profile category its values act on
        self.interaction: list[Region] = []
        self.crash: list[Region] = []
        self.corrupt: list[Region] = []
        self.trap: list[Region] = []

    def scenario(self, name: str, seed: int, n: int) -> Scenario:
        """The stack with `n` knobs: some useless, the rest covering every category, then the regions."""
        rng = self.rng
        useless = min(n - 3, max(1, round(n * rng.uniform(0.1, 0.3))))
        by_size = sorted(self.ms, key=self.ms.get, reverse=True)  # type: ignore[arg-type]
        targets = [by_size[i] if i < len(by_size) else self.weighted() for i in range(n - useless)]
        roles = [*targets, *([None] * useless)]
        rng.shuffle(roles)  # a knob's number says nothing of its role
        for i, target in enumerate(roles):
            self.knobs.append(self.knob(i, target))
        active = [k for k in self.knobs if k.name in self.target]
        rng.shuffle(active)
        # The trap of the best first move: its strong move acts on the largest category, where moves count most.
        strong = [k for k in active if self.target[k.name] == by_size[0]][:1]
        blocking = [*strong, *[k for k in active if k not in strong][:2]]
        if len(active) < 5 or rng.random() >= 0.5:
            blocking = []
        reserved = {k.name for k in blocking}  # no other region may touch the trap of the best first move
        free = [k for k in active if k.name not in reserved]
        self.interactions(free)
        if blocking:
            self.blocking(*blocking)
        self.flaws([k for k in self.knobs if k.name not in reserved], free)
        return Scenario(name=name, description=f"generated from seed {seed}: {n} knobs over {', '.join(self.ms)}",
                        output_tok_s=round(rng.uniform(1200, 2000), -1), ttft_ms=round(rng.uniform(10, 15), 1),
                        noise_cv=round(rng.uniform(0.01, 0.05), 3), categories=self.ms, knob=self.knobs,
                        interaction=self.interaction, crash=self.crash, corrupt=self.corrupt, trap=self.trap)

    def categories(self) -> dict[str, float]:
        """3-6 profile categories with milliseconds per token; several of them matter."""
        rng = self.rng
        names = rng.sample(profile_categories(), rng.randint(3, 6))
        while True:
            weights = [rng.uniform(0.1, 1.0) ** 1.5 for _ in names]
            shares = sorted((w / sum(weights) for w in weights), reverse=True)
            if shares[0] <= 0.65 and shares[1] >= 0.15:
                break
        total = rng.uniform(6.0, 12.0)
        return {c: round(total * w / sum(weights), 3) for c, w in zip(names, weights, strict=True)}

    def weighted(self) -> str:
        """A category, the larger ones likelier."""
        return self.rng.choices(list(self.ms), weights=list(self.ms.values()))[0]

    def knob(self, i: int, target: str | None) -> SimKnob:
        """Knob number `i`: useless when it has no target, else each changed value speeds or slows its target."""
        rng = self.rng
        kind = rng.choices(("bool", "choice", "int"), weights=(0.35, 0.4, 0.25))[0]
        about = target or rng.choice(list(self.ms))
        fitting = FITTING[about]
        layer = rng.choice(fitting if rng.random() < 0.95 else [x for x in LAYERS if x not in fitting])
        common = {"name": f"opt_{i:02d}_{rng.choice(SUFFIX[kind])}", "category": rng.choice(KINDS[about]),
                  "layer": layer}
        if kind == "bool":
            knob = SimKnob(type="bool", default=rng.random() < 0.2, **common)
        elif kind == "choice":
            choices = [f"v{j}" for j in range(rng.randint(2, 4))]
            knob = SimKnob(type="choice", choices=choices, default=choices[0] if rng.random() < 0.7
                           else rng.choice(choices), **common)
        else:
            base = rng.choice((1, 2, 4, 8, 16, 32, 64, 128, 256, 512))
            values = [base * 2**j for j in range(rng.randint(3, 4))]
            default = rng.choice(values)
            knob = SimKnob(type="int", min=max(1, base // 2), max=values[-1] * 2, default=default,
                           values=[v for v in values if v != default], **common)
        for value in self.changed(knob):
            if target is None:  # useless: nothing, or a hair either way
                if rng.random() < 0.5:
                    knob.effect[effect_key(value)] = {rng.choice(list(self.ms)): round(rng.uniform(0.99, 1.01), 3)}
                continue
            factors = {target: rng.uniform(1.05, 1.35) if rng.random() < 0.2 else self.speedup()}
            if rng.random() < 0.2 and len(self.ms) > 1:  # a side effect elsewhere, for better or worse
                factors[rng.choice([c for c in self.ms if c != target])] = rng.uniform(0.85, 1.15)
            knob.effect[effect_key(value)] = {c: round(f, 3) for c, f in factors.items()}
        if target is not None:
            self.target[knob.name] = target
        return knob

    def speedup(self) -> float:
        """A factor from small (0.97) to large (0.4)."""
        r = self.rng.random()
        return self.rng.uniform(0.9, 0.97) if r < 0.4 else self.rng.uniform(0.7, 0.9) if r < 0.75 else \
            self.rng.uniform(0.4, 0.7)

    def changed(self, knob: SimKnob) -> list[Value]:
        """The knob's values other than its default (every region needs one: the defaults are always sound)."""
        return [v for v in knob.domain() if v != knob.default]

    def pick(self, knob: SimKnob) -> Value:
        return self.rng.choice(self.changed(knob))

    def fastest(self, knob: SimKnob) -> Value:
        """The changed value that saves the most time on its own."""
        return max(self.changed(knob), key=lambda v: self.saving(knob, v))

    def saving(self, knob: SimKnob, value: Value) -> float:
        """Milliseconds per token the value saves on its own."""
        return sum(ms * (1 - knob.factors(value).get(c, 1.0)) for c, ms in self.ms.items())

    def interactions(self, free: list[SimKnob]) -> None:
        """Pairs and triples that pay only together, and pairs that undo each other's gain."""
        rng = self.rng
        pool = list(free)
        groups = [2] * rng.choices((0, 1, 2, 3), weights=(0.2, 0.4, 0.3, 0.1))[0] + [3] * (rng.random() < 0.35)
        for size in groups:
            if len(pool) < size:
                break
            members, pool = pool[:size], pool[size:]
            category = self.target[members[0].name]
            when = {k.name: self.pick(k) for k in members}
            for k in members:  # alone each value does about nothing, or a little harm
                k.effect[effect_key(when[k.name])] = {category: round(rng.uniform(0.99, 1.04), 3)}
            low, high = (0.45, 0.8) if size == 2 else (0.35, 0.7)
            self.interaction.append(Region(when=when, scale={category: round(rng.uniform(low, high), 3)}))
        if len(pool) >= 2 and rng.random() < 0.4:  # both fine alone, together no double gain
            a, b = pool[:2]
            self.interaction.append(Region(when={a.name: self.fastest(a), b.name: self.fastest(b)},
                                           scale={self.target[a.name]: round(rng.uniform(1.15, 1.4), 3)}))

    def blocking(self, strong: SimKnob, p: SimKnob, q: SimKnob) -> None:
        """The trap of the best first move: a strong single move that blocks a stronger pair on the same category."""
        rng = self.rng
        category = self.target[strong.name]
        when = {strong.name: self.pick(strong), p.name: self.pick(p), q.name: self.pick(q)}
        for k in (p, q):  # alone a member does nothing or a little harm, whatever its value
            k.effect = {effect_key(when[k.name]): {category: round(rng.uniform(1.0, 1.03), 3)}}
        rival = max((self.saving(k, v) for k in self.knobs for v in self.changed(k) if when.get(k.name) != v),
                    default=0.0)
        alone = min(0.85, max(0.2, 1 - rival * rng.uniform(1.1, 1.3) / self.ms[category]))
        strong.effect[effect_key(when[strong.name])] = {category: round(alone, 3)}
        together = max(0.1, alone * rng.uniform(0.55, 0.8))
        self.interaction.append(Region(when={p.name: when[p.name], q.name: when[q.name]},
                                       scale={category: round(together, 3)}))
        self.interaction.append(Region(when=when, scale={category: round(rng.uniform(1.03, 1.12) / together, 3)}))

    def flaws(self, anyone: list[SimKnob], active: list[SimKnob]) -> None:
        """Crashes (one value, two knobs), corrupt outputs, and subtle traps on values that look like gains."""
        rng = self.rng
        for _ in range(rng.choices((0, 1, 2), weights=(0.45, 0.4, 0.15))[0]):
            if active:
                k = rng.choice(active)
                self.crash.append(self.crashing({k.name: self.fastest(k) if rng.random() < 0.6 else self.pick(k)}))
        for _ in range(rng.choices((0, 1, 2), weights=(0.35, 0.45, 0.2))[0]):
            if len(anyone) >= 2:
                self.crash.append(self.crashing({k.name: self.pick(k) for k in rng.sample(anyone, 2)}))
        for _ in range(rng.choices((0, 1, 2), weights=(0.25, 0.5, 0.25))[0]):
            if active and rng.random() < 0.5:
                k = rng.choice(active)
                self.corrupt.append(Region(when={k.name: self.fastest(k) if rng.random() < 0.6 else self.pick(k)}))
            elif len(anyone) >= 2:
                self.corrupt.append(Region(when={k.name: self.pick(k) for k in rng.sample(anyone, 2)}))
        for _ in range(rng.choices((0, 1, 2), weights=(0.35, 0.55, 0.1))[0]):
            if active:
                k = rng.choice(active)
                value = self.pick(k)
                factors = k.effect.setdefault(effect_key(value), {})
                if factors.get(self.target[k.name], 1.0) > 0.97:  # it must look like a gain
                    factors[self.target[k.name]] = round(rng.uniform(0.85, 0.95), 3)
                self.trap.append(Region(when={k.name: value}, output_scale=round(rng.uniform(0.9, 0.97), 2)))

    def crashing(self, when: dict[str, Value]) -> Region:
        """A crash region with a kind and a log line as real servers print them."""
        kind, log = self.rng.choice(CRASHES)
        return Region(when=when, kind=kind, log=log.format(gib=f"{self.rng.choice((1, 2, 3.5, 4, 8)):.2f}",
                                                            line=self.rng.randint(100, 999)))
