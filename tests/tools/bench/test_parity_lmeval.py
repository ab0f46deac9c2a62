"""Greedy parity comparison, and lm-eval's command line and results format."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from arbor.tools.bench import lmeval
from arbor.tools.bench.parity import ParityOutputs, compare, default_prompts
from arbor.tools.errors import BenchError


def outputs(*texts: str | None) -> ParityOutputs:
    return ParityOutputs(model="m", max_tokens=8, prompts=[f"p{i}" for i in range(len(texts))],
                         outputs=list(texts))


def test_parity_agreement_and_first_divergence() -> None:
    report = compare(outputs("Paris is", "abc", "xyz"), outputs("Paris is", "abd", None), min_agreement=0.3)
    assert report.agreement_rate == pytest.approx(1 / 3)
    assert [p.first_divergence for p in report.prompts] == [None, 2, 0]
    assert report.prompts[1].reference_snippet == "abc" and report.prompts[1].candidate_snippet == "abd"
    assert report.failed_requests == 1 and report.passed is False
    assert compare(outputs("a", "b"), outputs("a", "b")).passed


def test_parity_refuses_different_prompt_sets() -> None:
    other = outputs("a").model_copy(update={"prompts": ["different"]})
    with pytest.raises(BenchError, match="different prompt sets"):
        compare(outputs("a"), other)


def test_default_prompts_are_shipped() -> None:
    assert len(default_prompts()) >= 12


def test_lm_eval_argv_follows_the_documented_form(tmp_path: Path) -> None:
    argv = lmeval.lm_eval_argv("http://127.0.0.1:8000/", "m", tmp_path, limit=50)
    assert argv[:5] == ["lm_eval", "--model", "local-completions", "--tasks", "gsm8k"]
    assert "model=m,base_url=http://127.0.0.1:8000/v1/completions,num_concurrent=8,tokenized_requests=False" in argv
    assert argv[-2:] == ["--limit", "50"]


def test_run_gsm8k_reads_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # lm_eval needs the GSM8K dataset from the hub, which this machine cannot reach: a stand-in
    # executable writes the results file in lm_eval's documented layout.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "lm_eval"
    fake.write_text("#!/bin/sh\nout=''\nwhile [ $# -gt 0 ]; do [ \"$1\" = --output_path ] && out=$2; shift; done\n"
                    "mkdir -p \"$out/m\"\n"
                    "echo '{\"results\": {\"gsm8k\": {\"exact_match,strict-match\": 0.41, "
                    "\"exact_match,flexible-extract\": 0.44}}}' > \"$out/m/results_2026-11-23T10-00-00.json\"\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    acc = lmeval.run_gsm8k("http://127.0.0.1:1", "m", tmp_path / "out", limit=10)
    assert (acc.strict_match, acc.flexible_extract, acc.limit) == (0.41, 0.44, 10)


def test_missing_lm_eval_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BenchError, match="lm_eval is not installed"):
        lmeval.run_gsm8k("http://127.0.0.1:1", "m", tmp_path / "out")


def test_results_without_the_task(tmp_path: Path) -> None:
    (tmp_path / "results_1.json").write_text(json.dumps({"results": {"other": {}}}))
    with pytest.raises(BenchError, match="no results for gsm8k"):
        lmeval.parse_results(tmp_path)
