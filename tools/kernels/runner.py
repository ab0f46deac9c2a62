"""Runs a built kernel in a child process: correctness, adversarial cases or timing. JSON in, JSON out.

The gate starts this with a timeout; it caps its own address space first, so a
kernel that crashes, loops or allocates without bound takes only this process down.
Each case is announced on stderr before it runs, so a crash can be pinned to it.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import math
import resource
import sys
import time
from pathlib import Path
from typing import Any

CTYPES = {"float32": ctypes.c_float, "float64": ctypes.c_double, "int32": ctypes.c_int32,
          "int64": ctypes.c_int64, "uint8": ctypes.c_uint8, "float16": ctypes.c_uint16}
TINY = {"float32": 1e-40, "float64": 1e-310, "float16": 1e-7}


def announce(case: str) -> None:
    print(f"case: {case}", file=sys.stderr, flush=True)


def load_reference(ref: dict[str, str]) -> Any:
    spec = importlib.util.spec_from_file_location("arbor_kernel_reference", ref["file"])
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return getattr(module, ref["function"])


def load_kernel(lib: str, entry: str, args: list[dict], returns: str) -> Any:
    handle = ctypes.CDLL(lib)
    fn = getattr(handle, entry)
    types = []
    for arg in args:
        if arg["kind"] in ("in", "out", "inout"):
            types.append(ctypes.c_void_p)
        elif arg["kind"] == "dim":
            types.append(CTYPES[arg.get("dtype") or "int32"])
        else:
            types.append(CTYPES[arg["dtype"]])
    fn.argtypes = types
    fn.restype = ctypes.c_int if returns == "status" else None
    return fn


class Inputs:
    """Arrays and scalars for one shape, made the same way for kernel and reference."""

    def __init__(self, np: Any, args: list[dict], shape: dict[str, int], seed: int, unaligned: bool = False) -> None:
        self.np, self.args, self.shape = np, args, shape
        rng = np.random.default_rng(seed)
        self.values: dict[str, Any] = {}
        for arg in args:
            kind = arg["kind"]
            if kind == "dim":
                self.values[arg["name"]] = shape[arg["name"]]
            elif kind == "scalar":
                self.values[arg["name"]] = arg["value"]
            else:
                dims = [shape[d] if isinstance(d, str) else d for d in arg["shape"]]
                dtype = np.dtype(arg["dtype"])
                if dtype.kind == "f":
                    data = rng.standard_normal(dims).astype(dtype)
                else:
                    data = rng.integers(-100, 100, size=dims).astype(dtype)
                if kind == "out":
                    # Untouched outputs must show: NaN for floats, an odd pattern for integers.
                    data = np.full(dims, np.nan if dtype.kind == "f" else 0x5A, dtype=dtype)
                if unaligned:
                    # One element in: the pointer loses the allocator's 16/32/64-byte alignment.
                    backing = np.empty(data.size + 1, dtype=dtype)
                    view = backing[1:].reshape(dims)
                    view[...] = data
                    data = view
                self.values[arg["name"]] = data

    def arrays(self, kinds: tuple[str, ...]) -> list[str]:
        return [a["name"] for a in self.args if a["kind"] in kinds]

    def call_args(self) -> list[Any]:
        out = []
        for arg in self.args:
            value = self.values[arg["name"]]
            out.append(value.ctypes.data if arg["kind"] in ("in", "out", "inout") else value)
        return out

    def reference_kwargs(self) -> dict[str, Any]:
        return {a["name"]: (self.values[a["name"]].copy() if a["kind"] in ("in", "inout") else self.values[a["name"]])
                for a in self.args if a["kind"] != "out"}


def expected_outputs(np: Any, reference: Any, inputs: Inputs) -> dict[str, Any]:
    result = reference(**inputs.reference_kwargs())
    outs = inputs.arrays(("out", "inout"))
    if isinstance(result, dict):
        return {k: np.asarray(result[k]) for k in outs}
    if isinstance(result, (tuple, list)) and len(outs) > 1:
        return {k: np.asarray(v) for k, v in zip(outs, result, strict=True)}
    return {outs[0]: np.asarray(result)}


def compare(np: Any, name: str, actual: Any, expected: Any, tol: dict[str, float]) -> dict[str, Any]:
    """Closeness of one output: NaN where the reference has NaN, finite where it is finite."""
    if actual.shape != expected.shape:
        return {"output": name, "ok": False, "why": f"shape {actual.shape} != reference {expected.shape}"}
    a, e = actual.astype(np.float64), expected.astype(np.float64)
    nan_mismatch = np.isnan(a) != np.isnan(e)
    close = np.isclose(a, e, rtol=tol["rtol"], atol=tol["atol"], equal_nan=True)
    bad = ~close | nan_mismatch
    finite = np.isfinite(a) & np.isfinite(e)
    err = np.abs(a - e)
    max_abs = float(err[finite].max()) if finite.any() else 0.0
    rel = err[finite] / np.maximum(np.abs(e[finite]), 1e-30)
    report: dict[str, Any] = {"output": name, "ok": not bad.any(), "max_abs_err": max_abs,
                              "max_rel_err": float(rel.max()) if rel.size else 0.0, "mismatches": int(bad.sum()),
                              "elements": int(a.size)}
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        report["first_mismatch"] = {"index": list(index), "got": _num(a[index]), "expected": _num(e[index])}
        if nan_mismatch.any():
            report["why"] = "NaN where the reference has none, or a NaN the reference propagates went missing"
    return report


def _num(value: Any) -> float | str:
    v = float(value)
    return v if math.isfinite(v) else str(v)


def run_case(np: Any, kernel: Any, reference: Any, inputs: Inputs, tol: dict[str, float], returns: str) -> dict:
    expected = expected_outputs(np, reference, inputs)
    status = kernel(*inputs.call_args())
    if returns == "status" and status != 0:
        return {"ok": False, "why": f"kernel returned status {status}"}
    outputs = [compare(np, name, inputs.values[name], expected[name], tol) for name in expected]
    return {"ok": all(o["ok"] for o in outputs), "outputs": outputs}


def adversarial_inputs(np: Any, job: dict, case: str) -> Inputs:
    base = dict(job["shapes"][0])
    adv = job.get("adversarial") or {}
    shape = base
    if case == "size1":
        shape = {k: 1 for k in base}
    elif case == "odd":
        shape = adv.get("odd_shape") or {k: (v | 1) + 2 for k, v in base.items()}
    elif case == "large":
        shape = adv.get("large_shape") or {k: v * 8 for k, v in base.items()}
    inputs = Inputs(np, job["args"], shape, job["seed"] + 7, unaligned=case == "unaligned")
    floats = [a for a in job["args"] if a["kind"] in ("in", "inout") and np.dtype(a["dtype"]).kind == "f"]
    for arg in floats:
        data = inputs.values[arg["name"]]
        flat = data.reshape(-1)
        if case == "zeros":
            data[...] = 0
        elif case == "denormal":
            data[...] = TINY.get(arg["dtype"], 1e-40) * np.sign(data)
        elif case in ("nan", "inf") and arg is floats[0]:
            flat[:: max(1, flat.size // 3)] = np.nan if case == "nan" else np.inf
    return inputs


def correctness(np: Any, job: dict) -> dict:
    kernel = load_kernel(job["lib"], job["entry"], job["args"], job["returns"])
    reference = load_reference(job["reference"])
    cases = []
    for i, shape in enumerate(job["shapes"]):
        announce(f"shape {shape}")
        result = run_case(np, kernel, reference, Inputs(np, job["args"], shape, job["seed"] + i), job["tolerance"],
                          job["returns"])
        cases.append({"case": f"shape {shape}", **result})
    return {"ok": all(c["ok"] for c in cases), "cases": cases}


def adversarial(np: Any, job: dict) -> dict:
    kernel = load_kernel(job["lib"], job["entry"], job["args"], job["returns"])
    reference = load_reference(job["reference"])
    cases = []
    with np.errstate(all="ignore"):
        for case in (job.get("adversarial") or {}).get("cases", []):
            inputs = adversarial_inputs(np, job, case)
            announce(f"{case} {inputs.shape}")
            cases.append({"case": case, "shape": inputs.shape,
                          **run_case(np, kernel, reference, inputs, job["tolerance"], job["returns"])})
    return {"ok": all(c["ok"] for c in cases), "cases": cases}


def _median_ci(values: list[float]) -> tuple[float, float, float]:
    """Median and a distribution-free ~95% interval from binomial(n, 1/2) order statistics."""
    ordered = sorted(values)
    n = len(ordered)
    median = ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2
    half = 1.959963984540054 * math.sqrt(n) / 2
    low = max(0, int(math.floor(n / 2 - half)) - 1)
    high = min(n - 1, int(math.ceil(n / 2 + half)))
    return median, ordered[low], ordered[high]


def benchmark(np: Any, job: dict) -> dict:
    bench = job["bench"]
    candidate = load_kernel(job["lib"], job["entry"], job["args"], job["returns"])
    baseline = load_kernel(job["baseline_lib"], job["entry"], job["args"], job["returns"]) \
        if job.get("baseline_lib") else None
    results = []
    for shape in bench["shapes"]:
        announce(f"bench {shape}")
        inputs = Inputs(np, job["args"], shape, job["seed"])
        call = inputs.call_args()
        for _ in range(bench["warmup"]):
            candidate(*call)
            if baseline:
                baseline(*call)
        inner, elapsed = 1, 0.0
        while True:  # batch calls so one timed repeat is long enough to measure
            t0 = time.perf_counter()
            for _ in range(inner):
                candidate(*call)
            elapsed = time.perf_counter() - t0
            if elapsed * 1000 >= bench["target_ms"] or inner >= 1 << 24:
                break
            inner *= 2
        cand_t, base_t, ratios = [], [], []
        for _ in range(bench["repeats"]):  # interleaved, so drift hits both kernels alike
            t0 = time.perf_counter()
            for _ in range(inner):
                candidate(*call)
            c = (time.perf_counter() - t0) / inner
            cand_t.append(c)
            if baseline:
                t0 = time.perf_counter()
                for _ in range(inner):
                    baseline(*call)
                b = (time.perf_counter() - t0) / inner
                base_t.append(b)
                ratios.append(b / c)
        row: dict[str, Any] = {"shape": shape, "calls_per_repeat": inner, "repeats": bench["repeats"],
                               "candidate_ns": _median_ci([t * 1e9 for t in cand_t])}
        if baseline:
            row["baseline_ns"] = _median_ci([t * 1e9 for t in base_t])
            row["speedup"] = _median_ci(ratios)
        results.append(row)
    return {"ok": True, "shapes": results}


def main() -> None:
    job = json.loads(sys.stdin.read())
    limit = job["memory_mb"] * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import numpy as np

    if not Path(job["lib"]).is_file():
        raise SystemExit(f"no library {job['lib']}")
    mode = {"correctness": correctness, "adversarial": adversarial, "bench": benchmark}[job["mode"]]
    print(json.dumps(mode(np, job)))


if __name__ == "__main__":
    main()
