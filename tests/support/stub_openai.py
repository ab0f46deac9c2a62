"""A stub OpenAI-compatible streaming server with known delays, for timing the load generator.

Speaks the wire format of llama-server/vLLM: `POST /v1/completions` and
`/v1/chat/completions` with `stream: true` answer `text/event-stream` chunks
`data: {...}` and a final `data: [DONE]`; `/tokenize` and `/detokenize` in the
llama.cpp dialect (one token per whitespace-separated word); `/health`;
`/v1/models`. Each streamed token's text is the CLOCK_MONOTONIC time at which it
was written, so a client's arrival times can be checked against the send times.
With `--profile-dir` it serves vLLM's `/start_profile` and `/stop_profile` (no body,
`*.pt.trace.json.gz` per rank); with `--sglang-profiler`, SGLang's (GET or POST, an
optional JSON body naming `output_dir` and `activities`, SGLANG_TORCH_PROFILER_DIR or
/tmp the default folder, `{profile_id}-TP-{rank}.trace.json.gz` written on stop).

Run: python stub_openai.py --port P --ttft-ms 50 --itl-ms 10 [--drop-after N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time

VOCAB_SIZE = 50_000


class Stub:
    def __init__(self, ttft_ms: float, itl_ms: float, drop_after: int | None, usage: bool,
                 profile_dir: str | None = None, garble: bool = False, short_output: bool = False,
                 jitter_ms: float = 0.0, noisy: int = 0, sglang_profiler: bool = False) -> None:
        self.profile_dir = profile_dir
        self.sglang_profiler = sglang_profiler
        self.noisy = noisy
        self.garble, self.short_output, self.jitter = garble, short_output, jitter_ms / 1000.0
        self.profiling_since: int | None = None
        self.ttft = ttft_ms / 1000.0
        self.itl = itl_ms / 1000.0
        self.drop_after = drop_after
        self.usage = usage
        self.requests = 0
        self.words: dict[str, int] = {}
        self.ids: dict[int, str] = {}

    def token_id(self, word: str) -> int:
        if word not in self.words:
            self.words[word] = len(self.words) + 1
            self.ids[self.words[word]] = word
        return self.words[word]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        received = time.monotonic()
        request_line, *header_lines = head.decode().split("\r\n")
        method, path, _ = request_line.split(" ", 2)
        headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines if h)}
        body = b""
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        try:
            if method == "POST" and path in ("/v1/completions", "/v1/chat/completions"):
                await self.stream(writer, json.loads(body), path.endswith("chat/completions"), received)
            elif method == "POST" and path == "/tokenize":
                text = json.loads(body).get("content", "")
                await self.json(writer, {"tokens": [self.token_id(w) for w in text.split()]})
            elif method == "POST" and path == "/detokenize":
                ids = json.loads(body).get("tokens", [])
                await self.json(writer, {"content": " ".join(self.ids.get(i, "x") for i in ids)})
            elif method == "POST" and path in ("/start_profile", "/stop_profile") and self.profile_dir:
                await self.profile(writer, path == "/start_profile")
            elif method in ("GET", "POST") and path in ("/start_profile", "/stop_profile") and self.sglang_profiler:
                await self.sglang_profile(writer, path == "/start_profile", json.loads(body) if body else None)
            elif path == "/health":
                await self.json(writer, {"status": "ok"})
            elif path == "/v1/models":
                await self.json(writer, {"object": "list", "data": [{"id": "stub", "object": "model"}]})
            else:
                await self.json(writer, {"error": "not found"}, status="404 Not Found")
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def profile(self, writer: asyncio.StreamWriter, start: bool) -> None:
        """vLLM's torch profiler endpoints: on stop, one gzipped Chrome trace per rank in the profile dir."""
        import os

        if start:
            self.profiling_since = self.requests
        else:
            assert self.profile_dir is not None
            self.write_trace(os.path.join(self.profile_dir, f"stub-rank0.{time.time_ns()}.pt.trace.json.gz"))
        await self.json(writer, {})

    async def sglang_profile(self, writer: asyncio.StreamWriter, start: bool, req: dict | None) -> None:
        """SGLang's endpoints: the start body picks the folder (default SGLANG_TORCH_PROFILER_DIR, else /tmp)."""
        import os

        if start:
            req = req or {}
            self.sglang_dir = req.get("output_dir") or os.environ.get("SGLANG_TORCH_PROFILER_DIR", "/tmp")
            self.profile_id, self.profiling_since = str(time.time()), self.requests
            await self.text(writer, "Start profiling.\n")
        else:
            os.makedirs(self.sglang_dir, exist_ok=True)
            self.write_trace(os.path.join(self.sglang_dir, f"{self.profile_id}-TP-0.trace.json.gz"))
            await self.text(writer, "Stop profiling. This will take some time.\n")

    def write_trace(self, path: str) -> None:
        """A gzipped Chrome trace: a GEMM and an attention kernel per request served since the start."""
        import gzip
        import os

        served = self.requests - (self.profiling_since or 0)
        events = []
        for i in range(max(1, served)):
            events.append({"ph": "X", "cat": "kernel", "name": "sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n",
                           "ts": i * 10.0, "dur": 7.0, "pid": 0, "tid": 7})
            events.append({"ph": "X", "cat": "kernel", "name": "void flash_fwd_kernel<Flash_fwd_kernel_traits>",
                           "ts": i * 10.0 + 7, "dur": 3.0, "pid": 0, "tid": 7})
        with gzip.open(path + ".tmp", "wt") as handle:
            json.dump({"traceEvents": events}, handle)
        os.replace(path + ".tmp", path)

    async def text(self, writer: asyncio.StreamWriter, content: str) -> None:
        payload = content.encode()
        writer.write(f"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {len(payload)}"
                     f"\r\nConnection: close\r\n\r\n".encode() + payload)
        await writer.drain()

    async def json(self, writer: asyncio.StreamWriter, data: dict, status: str = "200 OK") -> None:
        payload = json.dumps(data).encode()
        writer.write(f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}"
                     f"\r\nConnection: close\r\n\r\n".encode() + payload)
        await writer.drain()

    async def stream(self, writer: asyncio.StreamWriter, req: dict, chat: bool, received: float) -> None:
        if not req.get("stream"):
            await self.complete(writer, req, chat)
            return
        self.requests += 1
        drop = self.drop_after is not None and self.requests % 2 == 0
        prompt = req.get("prompt") or " ".join(m["content"] for m in req.get("messages", []))
        n_prompt = len(str(prompt).split())
        n_out = int(req.get("max_tokens", 16))
        if self.short_output:
            n_out = max(1, n_out // 2)  # ignores ignore_eos: the length drift the Critic must catch
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked"
                     b"\r\nConnection: close\r\n\r\n")
        due = received + self.ttft
        itl = self.itl
        if self.noisy:
            # Speed flips between two regimes every `noisy` requests (one benchmark repeat): about
            # 5% faster on average, but one repeat runs fast and the next slow.
            itl *= 0.45 if ((self.requests - 1) // self.noisy) % 2 == 0 else 1.45
        for i in range(n_out):
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if drop and i == self.drop_after:
                writer.transport.abort()
                return
            text = f"{time.monotonic():.7f} "
            choice = {"index": 0, "delta": {"content": text}} if chat else {"index": 0, "text": text}
            self.chunk(writer, {"object": "chat.completion.chunk" if chat else "text_completion",
                                "choices": [choice]})
            await writer.drain()
            due += itl + (random.uniform(0, self.jitter) if self.jitter else 0.0)
        if self.usage:
            self.chunk(writer, {"choices": [], "usage": {"prompt_tokens": n_prompt, "completion_tokens": n_out,
                                                         "total_tokens": n_prompt + n_out}})
        self.chunk_raw(writer, b"data: [DONE]\n\n")
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def complete(self, writer: asyncio.StreamWriter, req: dict, chat: bool) -> None:
        """A non-streaming answer: one JSON body after the whole (delayed) generation."""
        n_out = int(req.get("max_tokens", 16))
        await asyncio.sleep(self.ttft)  # no per-token pacing: timing is what the streaming path measures
        text = " ".join(["garbled" if self.garble else "tok"] * n_out)
        choice = {"index": 0, "message": {"role": "assistant", "content": text}} if chat else {"index": 0, "text": text}
        await self.json(writer, {"object": "chat.completion" if chat else "text_completion", "choices": [choice],
                                 "usage": {"prompt_tokens": 1, "completion_tokens": n_out, "total_tokens": n_out + 1}})

    def chunk(self, writer: asyncio.StreamWriter, event: dict) -> None:
        self.chunk_raw(writer, b"data: " + json.dumps(event).encode() + b"\n\n")

    @staticmethod
    def chunk_raw(writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")


async def serve(port: int, stub: Stub) -> None:
    server = await asyncio.start_server(stub.handle, "127.0.0.1", port, backlog=1024)
    print(f"listening {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ttft-ms", type=float, default=50.0)
    parser.add_argument("--itl-ms", type=float, default=10.0)
    parser.add_argument("--drop-after", type=int, default=None, help="every 2nd stream is cut after N tokens")
    parser.add_argument("--no-usage", action="store_true")
    parser.add_argument("--profile-dir", default=None, help="serve /start_profile and /stop_profile like vLLM")
    parser.add_argument("--sglang-profiler", action="store_true", help="serve them like SGLang (folder in the body)")
    parser.add_argument("--fail-start", action="store_true", help="die at start like a server out of memory")
    parser.add_argument("--garble", action="store_true", help="answer greedy requests with different text")
    parser.add_argument("--short-output", action="store_true", help="stop streams at half the asked length")
    parser.add_argument("--jitter-ms", type=float, default=0.0, help="random extra delay per token")
    parser.add_argument("--noisy", type=int, default=0, metavar="N",
                        help="speed flips between two regimes every N streamed requests: noisy, slightly faster")
    args = parser.parse_args()
    if args.fail_start:
        print("loading model", flush=True)
        print("error: simulated failure: CUDA out of memory. Tried to allocate 2.00 GiB", flush=True)
        sys.exit(1)
    asyncio.run(serve(args.port, Stub(args.ttft_ms, args.itl_ms, args.drop_after, not args.no_usage,
                                      args.profile_dir, args.garble, args.short_output, args.jitter_ms,
                                      args.noisy, args.sglang_profiler)))


if __name__ == "__main__":
    main()
