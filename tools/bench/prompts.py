"""Seeded prompts of an exact token length, counted by the server's own tokenizer or a local one where there is one."""

from __future__ import annotations

import asyncio
import random
import uuid
from dataclasses import dataclass
from typing import Protocol

import httpx

from ..errors import BenchError
from .local_tokenizer import load_local

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
    """A prompt and its length in tokens; `verified` when a tokenizer counted it, `note` says which or why not."""

    text: str
    tokens: int
    verified: bool
    note: str = ""


class Counter(Protocol):
    """What cuts prompts to an exact length: the server's tokenizer endpoints or a local tokenizer."""

    async def tokenize(self, text: str) -> list[int]: ...

    async def detokenize(self, tokens: list[int]) -> str: ...


# Statuses that mean "no such endpoint" (a proxy or server without it), not "the endpoint failed".
ABSENT = (404, 405, 501)


class EndpointError(BenchError):
    """A tokenizer endpoint did not answer as expected; `status` is its HTTP status (0 when none came)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class Tokenizer:
    """The server's /tokenize and /detokenize (llama.cpp and vLLM dialects), when it has them."""

    def __init__(self, client: httpx.AsyncClient, base_url: str, model: str) -> None:
        self.client, self.base_url, self.model = client, base_url.rstrip("/"), model
        self.dialect: str | None = None
        self.missing = ""  # why the server's tokenizer cannot cut prompts, once `probe` said so

    async def probe(self) -> bool:
        """Find which dialect the server speaks; False (and `missing` says why) without both endpoints."""
        tokens: list[int] = []
        failure: EndpointError | None = None
        for dialect in ("llamacpp", "vllm"):
            self.dialect = dialect
            try:
                tokens = await self.tokenize("hello world")
            except EndpointError as exc:
                failure = exc
                continue
            except (KeyError, ValueError, TypeError):
                continue
            if tokens:
                break
        if not tokens:
            self.dialect = None
            if failure is not None and failure.status not in ABSENT:
                self.missing = f"the server's tokenizer did not answer ({failure})"
            elif await self._answers("/detokenize"):
                self.missing = "the server has /detokenize but no /tokenize"
            else:
                self.missing = "the server has no /tokenize or /detokenize"
            return False
        try:
            await self.detokenize(tokens)
        except EndpointError as exc:
            # A half tokenizer API cannot cut a prompt to a token count; the benchmark still runs, on prompts
            # of about the asked length, and comparisons judge lengths against the baseline's for the same prompts.
            self.dialect = None
            self.missing = ("the server has /tokenize but no /detokenize" if exc.status in ABSENT
                            else f"the server's tokenizer did not answer ({exc})")
            return False
        return True

    async def _answers(self, path: str) -> bool:
        """`path` exists on the server (any answer but 'no such endpoint')."""
        try:
            response = await self.client.post(f"{self.base_url}{path}", json={"tokens": [1]})
        except httpx.HTTPError:
            return False
        return response.status_code not in ABSENT

    async def _post(self, path: str, body: dict) -> dict:
        """POST to a tokenizer endpoint; a one-line EndpointError naming it when it fails."""
        try:
            response = await self.client.post(f"{self.base_url}{path}", json=body)
        except httpx.HTTPError as exc:
            raise EndpointError(f"POST {path} failed: {type(exc).__name__}: {exc}".strip()) from exc
        if response.status_code != 200:
            detail = " ".join(response.text.split())[:120]
            raise EndpointError(f"POST {path} answered HTTP {response.status_code}"
                                f"{': ' + detail if detail else ''}", response.status_code)
        data = response.json()
        if not isinstance(data, dict):
            raise ValueError(f"{path} answered {type(data).__name__}, not a JSON object")
        return data

    async def tokenize(self, text: str) -> list[int]:
        """Token ids of `text` without special tokens."""
        if self.dialect == "llamacpp":
            body = {"content": text, "add_special": False}
        else:
            body = {"model": self.model, "prompt": text, "add_special_tokens": False}
        tokens = (await self._post("/tokenize", body))["tokens"]
        # llama.cpp may return [id, piece] pairs when asked for pieces; plain ids otherwise
        return [t[0] if isinstance(t, list) else t for t in tokens]

    async def detokenize(self, tokens: list[int]) -> str:
        """Text of token ids."""
        body: dict = {"tokens": tokens}
        if self.dialect != "llamacpp":
            body["model"] = self.model
        data = await self._post("/detokenize", body)
        return data["content"] if "content" in data else data["prompt"]


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


async def _exact(tokenizer: Counter, rng: random.Random, length: int, tag: str, note: str) -> Prompt:
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
    return Prompt(text=text, tokens=count, verified=True, note=note)


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
                        num_prompts: int, seed: int, unique: bool = True, local: str | None = None) -> list[Prompt]:
    """`num_prompts` seeded prompts of `input_len` tokens (exact when a tokenizer can count), cache-cold if `unique`.

    The server's /tokenize and /detokenize count when it has both; else the local tokenizer at `local`
    when one loads; else the prompts are about `input_len` tokens and say so.
    """
    server = Tokenizer(client, base_url, model)
    rngs = [random.Random(f"{seed}:{i}") for i in range(num_prompts)]
    tags = _tags(num_prompts, unique)
    counter: Counter | None = None
    note = ""
    if await server.probe():
        counter = server
    else:
        note = server.missing
        if local:
            counter, why = load_local(local)
            note = f"counted by the local tokenizer {local} ({note})" if counter is not None else f"{note}; {why}"
    if counter is None:
        # ~1.3 tokens per word for English text. The server's usage tells the real lengths, and comparisons
        # judge them against the baseline's for the same prompts (bench.lengths), not against `input_len`.
        words = max(1, round(input_len / 1.3))
        note = f"{note}: prompt lengths are unverified (about {input_len} tokens each)"
        return [Prompt(tag + _words(rng, words), input_len, False, note)
                for tag, rng in zip(tags, rngs, strict=True)]
    gate = asyncio.Semaphore(8)
    found = counter

    async def one(rng: random.Random, tag: str) -> Prompt:
        async with gate:
            return await _exact(found, rng, input_len, tag, note)

    return list(await asyncio.gather(*(one(rng, tag) for rng, tag in zip(rngs, tags, strict=True))))
