"""Seeded prompts of an exact token length, counted by the server's own tokenizer where it has one."""

from __future__ import annotations

import asyncio
import random
import uuid
from dataclasses import dataclass

import httpx

# Common English words: natural text tokenizes like real prompts do, unlike random characters.
WORDS = """the of and to in is was that for on as with by he at from his an were are which this be
it has had not but or have one their its new after who they been first two also she her other
all there more would when into time year about over only then many some such these most later
during can while where under city world team before between made through however since being
both three state music because under war film home may part after long school book second group
number against each found used known work well life several people early place public years game
north south east west river water family national series small large house system around world
season album government history number general local court built final play named during high
still end united based while best within led line center form including among city history power
own village area country began following despite major form season short light field word human
road market story union design report across order paper energy field model peace voice trade
garden winter summer morning evening bridge forest island valley mountain letter window engine""".split()


@dataclass(frozen=True)
class Prompt:
    """A prompt and its length in tokens; `verified` when the server's tokenizer counted it."""

    text: str
    tokens: int
    verified: bool


class Tokenizer:
    """The server's /tokenize and /detokenize (llama.cpp and vLLM dialects), when it has them."""

    def __init__(self, client: httpx.AsyncClient, base_url: str, model: str) -> None:
        self.client, self.base_url, self.model = client, base_url.rstrip("/"), model
        self.dialect: str | None = None

    async def probe(self) -> bool:
        """Find which dialect the server speaks; False when it has no tokenizer endpoint."""
        for dialect in ("llamacpp", "vllm"):
            self.dialect = dialect
            try:
                tokens = await self.tokenize("hello world")
            except (httpx.HTTPError, KeyError, ValueError, TypeError):
                continue
            if tokens:
                return True
        self.dialect = None
        return False

    async def tokenize(self, text: str) -> list[int]:
        """Token ids of `text` without special tokens."""
        if self.dialect == "llamacpp":
            body = {"content": text, "add_special": False}
        else:
            body = {"model": self.model, "prompt": text, "add_special_tokens": False}
        response = await self.client.post(f"{self.base_url}/tokenize", json=body)
        response.raise_for_status()
        tokens = response.json()["tokens"]
        # llama.cpp may return [id, piece] pairs when asked for pieces; plain ids otherwise
        return [t[0] if isinstance(t, list) else t for t in tokens]

    async def detokenize(self, tokens: list[int]) -> str:
        """Text of token ids."""
        body: dict = {"tokens": tokens}
        if self.dialect != "llamacpp":
            body["model"] = self.model
        response = await self.client.post(f"{self.base_url}/detokenize", json=body)
        response.raise_for_status()
        data = response.json()
        return data["content"] if "content" in data else data["prompt"]


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


async def _exact(tokenizer: Tokenizer, rng: random.Random, length: int, tag: str) -> Prompt:
    n_words = max(1, length)
    while True:
        text = tag + _words(rng, n_words)
        tokens = await tokenizer.tokenize(text)
        if len(tokens) >= length:
            break
        n_words *= 2
    text = await tokenizer.detokenize(tokens[:length])
    # A detokenize/tokenize round trip can merge or split a token at the edges; trim or pad once.
    count = len(await tokenizer.tokenize(text))
    if count != length:
        retokens = await tokenizer.tokenize(text)
        if count > length:
            text = await tokenizer.detokenize(retokens[:length])
        else:
            text = text + " " + _words(rng, length - count)
        count = len(await tokenizer.tokenize(text))
    return Prompt(text=text, tokens=count, verified=True)


def _tags(num_prompts: int, unique: bool) -> list[str]:
    # A fresh random tag at the start of every prompt means no request can reuse the KV cache
    # of an earlier one (warm-up, a previous repeat or sweep point), which would flatter TTFT
    # and throughput. The words after it stay seeded, so the workload is the same.
    if not unique:
        return [""] * num_prompts
    # Random per prompt, not a shared run id plus a counter: a common first few tokens would
    # still be a (short) prefix-cache hit.
    return [f"{uuid.uuid4().hex[:12]} " for _ in range(num_prompts)]


async def build_prompts(client: httpx.AsyncClient, base_url: str, model: str, input_len: int,
                        num_prompts: int, seed: int, unique: bool = True) -> list[Prompt]:
    """`num_prompts` seeded prompts of `input_len` tokens (exact when the server can count), cache-cold if `unique`."""
    tokenizer = Tokenizer(client, base_url, model)
    rngs = [random.Random(f"{seed}:{i}") for i in range(num_prompts)]
    tags = _tags(num_prompts, unique)
    if not await tokenizer.probe():
        # ~1.3 tokens per word for English text; the server's usage numbers will show the drift.
        words = max(1, round(input_len / 1.3))
        return [Prompt(tag + _words(rng, words), input_len, False) for tag, rng in zip(tags, rngs, strict=True)]
    gate = asyncio.Semaphore(8)

    async def one(rng: random.Random, tag: str) -> Prompt:
        async with gate:
            return await _exact(tokenizer, rng, input_len, tag)

    return list(await asyncio.gather(*(one(rng, tag) for rng, tag in zip(rngs, tags, strict=True))))
