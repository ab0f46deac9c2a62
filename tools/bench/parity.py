"""Accuracy gate for the default target: greedy outputs of a fixed prompt set against the baseline's."""

from __future__ import annotations

import asyncio
from importlib import resources

import httpx
from pydantic import BaseModel, Field

from ..errors import BenchError


class ParityOutputs(BaseModel):
    """Greedy completions of a prompt set, as a reference or a candidate."""

    model: str
    max_tokens: int
    prompts: list[str]
    outputs: list[str | None] = Field(description="None where the request failed")


class PromptParity(BaseModel):
    """How one prompt's output compares with the reference."""

    prompt: str
    identical: bool
    first_divergence: int | None = Field(None, description="character offset of the first difference")
    reference_snippet: str = ""
    candidate_snippet: str = ""
    prefix_ratio: float = Field(description="shared prefix length / reference length")


class ParityReport(BaseModel):
    """Agreement of a candidate's greedy outputs with the reference's."""

    agreement_rate: float
    mean_prefix_ratio: float
    min_agreement: float
    passed: bool
    failed_requests: int
    prompts: list[PromptParity]


def default_prompts() -> list[str]:
    """The fixed prompt set shipped with the package."""
    text = resources.files(__package__).joinpath("parity_prompts.txt").read_text()
    return [line for line in text.splitlines() if line.strip()]


async def collect(base_url: str, model: str, prompts: list[str] | None = None, max_tokens: int = 32,
                  concurrency: int = 1, timeout_s: float = 120.0) -> ParityOutputs:
    """Greedy completions (temperature 0) of every prompt; a failed request is recorded as None."""
    prompts = prompts or default_prompts()
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_keepalive_connections=0)

    async with httpx.AsyncClient(timeout=timeout_s, limits=limits) as client:
        async def one(prompt: str) -> str | None:
            async with gate:
                try:
                    response = await client.post(f"{base_url.rstrip('/')}/v1/completions", json={
                        "model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0.0,
                        "top_k": 1, "seed": 0})
                    response.raise_for_status()
                    return response.json()["choices"][0]["text"]
                except (httpx.HTTPError, ValueError, KeyError, IndexError):
                    return None

        outputs = await asyncio.gather(*(one(p) for p in prompts))
    return ParityOutputs(model=model, max_tokens=max_tokens, prompts=prompts, outputs=list(outputs))


def _divergence(a: str, b: str) -> int | None:
    if a == b:
        return None
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def compare(reference: ParityOutputs, candidate: ParityOutputs, min_agreement: float = 0.75) -> ParityReport:
    """Per-prompt agreement and first divergence; passes when the agreement rate reaches `min_agreement`."""
    if reference.prompts != candidate.prompts or reference.max_tokens != candidate.max_tokens:
        raise BenchError("parity outputs come from different prompt sets or lengths; not comparable")
    for side in (reference, candidate):
        if len(side.outputs) != len(side.prompts):
            raise BenchError(f"parity file has {len(side.outputs)} outputs for {len(side.prompts)} prompts")
    rows, failed = [], 0
    for prompt, ref, cand in zip(reference.prompts, reference.outputs, candidate.outputs, strict=True):
        if ref is None:
            raise BenchError(f"the reference has no output for prompt {prompt!r}; collect it again")
        if cand is None:
            failed += 1
            rows.append(PromptParity(prompt=prompt, identical=False, first_divergence=0, prefix_ratio=0.0,
                                     candidate_snippet="<request failed>"))
            continue
        at = _divergence(ref, cand)
        ratio = 1.0 if at is None else (at / len(ref) if ref else 0.0)
        rows.append(PromptParity(
            prompt=prompt, identical=at is None, first_divergence=at, prefix_ratio=ratio,
            reference_snippet="" if at is None else ref[max(0, at - 10): at + 20],
            candidate_snippet="" if at is None else cand[max(0, at - 10): at + 20]))
    agreement = sum(r.identical for r in rows) / len(rows) if rows else 0.0
    mean_prefix = sum(r.prefix_ratio for r in rows) / max(1, len(rows))
    return ParityReport(agreement_rate=agreement, mean_prefix_ratio=mean_prefix,
                        min_agreement=min_agreement, passed=agreement >= min_agreement and failed == 0,
                        failed_requests=failed, prompts=rows)
