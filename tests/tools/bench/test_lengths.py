"""Lengths against the baseline's for the same prompts; prompts on servers with half or no tokenizer API."""

from __future__ import annotations

import random
from pathlib import Path

import httpx
import pytest

from arbor.tools.bench.client import run_benchmark
from arbor.tools.bench.lengths import drifts
from arbor.tools.bench.models import Workload
from arbor.tools.bench.prompts import build_prompts
from tests.support.sim_server import sim_server

pytestmark = pytest.mark.anyio

ENDED = [32, 26, 30, 17, 32, 29, 32, 21]  # outputs of a model that ends on EOS before the 32 tokens asked


def workload(**extra: object) -> Workload:
    return Workload(**({"model": "sim-layered", "input_len": 16, "output_len": 32, "max_concurrency": 4,
                        "num_prompts": 8, "warmup": 0} | extra))


def test_the_same_early_ends_are_no_drift_and_a_shift_of_a_few_percent_is() -> None:
    base = [([16] * 8, ENDED), ([16] * 8, ENDED)]
    assert drifts(base, ([16] * 8, ENDED)) == []
    (short,) = drifts(base, ([16] * 8, [round(n * 0.95) for n in ENDED]))
    assert short.side == "output" and short.rel_change == pytest.approx(25.875 / 27.375 - 1)
    (longer,) = drifts(base, ([18] * 8, ENDED))
    assert longer.side == "input" and longer.message == "input 18.0 vs 16.0 tokens a request (+12.5% over 8 prompts)"
    # One output a token short is not a workload change; a failed request (no output) is left out on either side.
    assert drifts(base, ([16] * 8, [31, *ENDED[1:]])) == []
    assert drifts(base, ([16] * 8, [0, 0, 0, *ENDED[3:]])) == []


def test_lengths_that_vary_run_to_run_are_judged_by_their_spread() -> None:
    # An end-of-sequence that moves with every run (say, with each prompt's fresh tag): 64 prompts, 8 to 63
    # tokens where 32 are asked. Honest runs are seldom flagged; a 20% shortfall always is.
    def ends(rng: random.Random, scale: float = 1.0) -> list[int]:
        return [max(1, round(min(32, rng.randrange(8, 64)) * scale)) for _ in range(64)]

    def flagged(scale: float) -> int:
        count = 0
        for seed in range(200):
            rng = random.Random(seed)
            base = [([16] * 64, ends(rng)) for _ in range(3)]
            count += bool(drifts(base, ([16] * 64, ends(rng, scale))))
        return count

    assert flagged(1.0) <= 6
    assert flagged(0.8) >= 190


@pytest.mark.parametrize(("endpoints", "note"), [
    ("tokenize", "the server has /tokenize but no /detokenize"),
    ("detokenize", "the server has /detokenize but no /tokenize"),
    ("none", "the server has no /tokenize or /detokenize"),
])
async def test_a_server_with_half_the_tokenizer_api_is_benchmarked_and_says_which_half(endpoints: str,
                                                                                       note: str) -> None:
    with sim_server("layered", "--tokenizer-endpoints", endpoints) as url:
        result = await run_benchmark(url, workload())
    assert result.completed == 8 and result.failed == 0 and result.lengths_ok
    check = result.input_len_check
    assert not check.verified and check.mismatched == 0 and check.source == "server"
    assert check.note == f"{note}: prompt lengths are unverified (about 16 tokens each)"


async def test_a_local_tokenizer_json_counts_when_the_server_cannot(tmp_path: Path) -> None:
    tokenizers = pytest.importorskip("tokenizers")
    from arbor.tools.bench.prompts import WORDS

    # The simulated server counts one token per word: a word-level tokenizer.json over the prompts' words is its
    # model's own. Prompts without a fresh tag here: a tag is not in a word-level vocabulary.
    vocab = {"[UNK]": 0} | {w: i + 1 for i, w in enumerate(dict.fromkeys(WORDS))}
    tokenizer = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    tokenizer.decoder = tokenizers.decoders.WordPiece()  # joins words with spaces
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    with sim_server("layered", "--tokenizer-endpoints", "none") as url:
        result = await run_benchmark(url, workload(tokenizer=str(tmp_path), unique_prompts=False))
        async with httpx.AsyncClient() as client:
            missing = await build_prompts(client, url, "m", 16, 2, seed=0, local=str(tmp_path / "nowhere"))
    check = result.input_len_check
    assert check.verified and check.mismatched == 0 and result.input_lens == [16] * 8 and result.lengths_ok
    assert check.note == f"counted by the local tokenizer {tmp_path} (the server has no /tokenize or /detokenize)"
    # A local tokenizer that is not there leaves the lengths unverified, and says why; the benchmark still runs.
    assert not missing[0].verified and missing[0].note == (
        f"the server has no /tokenize or /detokenize; no local tokenizer: {tmp_path / 'nowhere'} is not a "
        "tokenizer.json or a folder holding one: prompt lengths are unverified (about 16 tokens each)")
