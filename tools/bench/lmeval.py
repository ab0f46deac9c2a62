"""GSM8K through lm-evaluation-harness against a running OpenAI-compatible endpoint (where installed)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from pydantic import BaseModel

from ..errors import BenchError
from ..procs import spawn


class TaskAccuracy(BaseModel):
    """GSM8K exact match, strict and flexible extraction."""

    task: str
    strict_match: float | None
    flexible_extract: float | None
    limit: int | None
    results_path: str


def lm_eval_argv(base_url: str, model: str, out_dir: Path, limit: int | None = None,
                 num_concurrent: int = 8, task: str = "gsm8k") -> list[str]:
    """The `lm_eval --model local-completions` command line for `task`."""
    model_args = (f"model={model},base_url={base_url.rstrip('/')}/v1/completions,"
                  f"num_concurrent={num_concurrent},tokenized_requests=False")
    argv = ["lm_eval", "--model", "local-completions", "--tasks", task, "--model_args", model_args,
            "--output_path", str(out_dir)]
    if limit is not None:
        argv += ["--limit", str(limit)]
    return argv


def parse_results(out_dir: Path, task: str = "gsm8k", limit: int | None = None) -> TaskAccuracy:
    """Read the newest `results_*.json` lm_eval wrote under `out_dir`."""
    found = sorted(out_dir.rglob("results_*.json"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise BenchError(f"lm_eval wrote no results_*.json under {out_dir}")
    data = json.loads(found[-1].read_text())
    try:
        scores = data["results"][task]
    except KeyError as exc:
        raise BenchError(f"{found[-1]} has no results for {task}") from exc
    return TaskAccuracy(task=task, strict_match=scores.get("exact_match,strict-match"),
                        flexible_extract=scores.get("exact_match,flexible-extract"), limit=limit,
                        results_path=str(found[-1]))


def run_gsm8k(base_url: str, model: str, out_dir: Path, limit: int | None = None, num_concurrent: int = 8,
              timeout_s: float = 7200.0) -> TaskAccuracy:
    """Run lm_eval GSM8K against the endpoint and return its scores; BenchError if lm_eval is missing or fails."""
    if shutil.which("lm_eval") is None:
        raise BenchError("lm_eval is not installed (pip install 'lm-eval[api]'); parity is the CPU demo's gate")
    out_dir.mkdir(parents=True, exist_ok=True)
    child = spawn(lm_eval_argv(base_url, model, out_dir, limit, num_concurrent), log_path=out_dir / "lm_eval.log")
    code = child.wait(timeout_s)
    child.stop(grace=5)
    if code is None:
        raise BenchError(f"lm_eval did not finish within {timeout_s:g}s; log {out_dir / 'lm_eval.log'}")
    if code != 0:
        raise BenchError(f"lm_eval exited with {code}; log {out_dir / 'lm_eval.log'}")
    return parse_results(out_dir, "gsm8k", limit)
