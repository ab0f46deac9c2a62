"""The simulated serving stack as a real OpenAI-compatible streaming server, paced by the scenario model.

It speaks what llama-server and vLLM speak: `POST /v1/completions` and
`/v1/chat/completions` (streamed as `text/event-stream` chunks ending in
`data: [DONE]`, with a usage chunk on `stream_options.include_usage`, or one JSON
body), llama.cpp's `/tokenize` and `/detokenize` (one token per word), `/health`,
`/v1/models`, and vLLM's `/start_profile` and `/stop_profile`, which write a gzipped
Chrome trace per rank into the folder of `--profiler-config '{"profiler": "torch",
"torch_profiler_dir": DIR}'`. As in current vLLM, those two routes exist only with a
profiler configured (VLLM_TORCH_PROFILER_DIR is not read).

The configuration comes as one flag per knob (`--NAME VALUE`). A configuration in a
crash region dies at start with the region's log line (a segfault kills itself
with SIGSEGV); in a corrupt region greedy outputs differ from the defaults'; in a
trap region a stream that asks `ignore_eos` stops early anyway (the workload changes, the
greedy outputs do not). `--eos-stop` makes the model end on its own before `max_tokens` on some
prompts, with `ignore_eos` not honoured; `--tokenizer-endpoints` leaves out /tokenize,
/detokenize or both: servers that do either are common (TGI, proxies).
Tokens come at the modelled rate shared by the active streams, with seeded noise.

Run: python -m arbor.tools.sim.server --scenario layered|gen-<seed> --seed 0 --port 8000 [--gemm_tuning tuned ...]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import random
import signal
import socket
import sys
import time
import zlib

from arbor.tools.errors import InputError

from .model import Behaviour, Scenario, Value, behaviour, noisy, scenarios
from .stack import scenario

WORDS = ("the of and to in is was for on that with as by at from it his an were are which this be has or had "
         "one not but first new after also two who their its time more been other year world city state").split()
# Kernel names as they appear in GPU traces, one per category; the profiler's own patterns classify them.
KERNELS = {
    "gemm": "sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64_warpgroupsize1x1x1_execute_segment_k_off",
    "attention": "void flash::flash_fwd_splitkv_kernel<Flash_fwd_kernel_traits<128, 64, 128, 4>, true>",
    "communication": "ncclDevKernel_AllReduce_Sum_bf16_RING_LL(ncclDevKernelArgsStorage<4096ul>)",
    "moe": "fused_moe_kernel",
    "norm_elementwise": "void vllm::rms_norm_kernel<c10::BFloat16, 8, 2>",
    "memcpy": "Memcpy DtoD (Device -> Device)",
    "sampling": "void flashinfer::sampling::TopKTopPSamplingFromProbKernel<1024, 1, 4, float, int>",
}
WINDOW_S = 1.0  # the slow noise component is redrawn this often


class Engine:
    """Token pacing, outputs and the trace of one simulated server."""

    def __init__(self, scenario: Scenario, b: Behaviour, seed: int, model: str, start: int = 0,
                 eos_stop: bool = False) -> None:
        self.s, self.b, self.model, self.eos_stop = scenario, b, model, eos_stop
        # Each start draws its own noise: a machine's noise does not replay itself after a restart. With one
        # stream per seed, the n-th repeat after every start read the same factor, so configurations measured
        # once each shared their noise (it cancelled) and repeats compared across starts carried a fixed bias.
        self.rng = random.Random(f"{seed}:{start}")
        self.active = 0
        self.generated = 0
        self.window = (-1, 1.0)
        self.profiling_since: int | None = None
        self.vocab: dict[str, int] = {}
        self.words: dict[int, str] = {}

    def slow_factor(self) -> float:
        """The machine-level noise of the current window (what makes repeats differ)."""
        index = int(time.monotonic() / WINDOW_S)
        if index != self.window[0]:
            self.window = (index, noisy(1.0, self.s.noise_cv, self.rng))
        return self.window[1]

    def step_s(self, factor: float) -> float:
        """Seconds until this stream's next token: the rate is shared once the batch is full."""
        return max(self.s.saturation, self.active) / self.b.output_tok_s * factor

    def text(self, prompt: str, n: int) -> list[str]:
        """The greedy output for `prompt`: fixed per prompt, different in a corrupt region."""
        salt = "corrupt" if self.b.corrupt else ""
        rng = random.Random(zlib.crc32(f"{salt}{prompt}".encode()))
        return [rng.choice(WORDS) for _ in range(n)]

    def natural_end(self, prompt: str) -> int | None:
        """Where the model ends on its own with --eos-stop (8 to 63 tokens); None: beyond anything asked."""
        if not self.eos_stop:
            return None
        # It follows from the end of the prompt (the recent context), not from the fresh tag at its start.
        return 8 + zlib.crc32(f"eos:{' '.join(prompt.split()[-8:])}".encode()) % 56

    def n_out(self, req: dict, prompt: str = "") -> int:
        asked = max(1, int(req.get("max_tokens") or 16))
        natural = self.natural_end(prompt)
        # With --eos-stop the server does not honour ignore_eos (as servers without that option): the model's end
        # counts. Without it the natural end of every prompt lies beyond what is asked.
        n = asked if natural is None else min(asked, natural)
        if not req.get("ignore_eos"):
            return n
        # A trap stops at an end-of-sequence the request said to ignore: the benchmark's workload shrinks while
        # greedy outputs, which never ask to ignore it, stay the same.
        return max(1, round(n * self.b.output_scale))

    def finish_reason(self, prompt: str, n: int) -> str:
        """"stop" for an output that ended on the model's end-of-sequence, else "length"."""
        return "stop" if n == self.natural_end(prompt) else "length"

    def token_id(self, word: str) -> int:
        if word not in self.vocab:
            self.vocab[word] = len(self.vocab) + 1
            self.words[self.vocab[word]] = word
        return self.vocab[word]

    def trace(self, directory: str) -> str:
        """Write the profile window as a vLLM-style gzipped Chrome trace; GPU kernels only, host time as gaps."""
        tokens = max(1, self.generated - (self.profiling_since or 0))
        events, ts = [], 0.0
        steps = min(tokens, 2000)  # enough events for stable shares, a small file
        per_step = tokens / steps
        for _ in range(steps):
            for category, ms in self.b.ms_per_token.items():
                dur = ms * 1000.0 * per_step  # microseconds
                if category in KERNELS:
                    cat = "gpu_memcpy" if category == "memcpy" else "kernel"
                    events.append({"ph": "X", "cat": cat, "name": KERNELS[category], "ts": ts, "dur": dur,
                                   "pid": 0, "tid": 7})
                else:
                    events.append({"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "ts": ts,
                                   "dur": dur, "pid": 0, "tid": 1})
                ts += dur
        path = os.path.join(directory, f"{socket.gethostname()}_{os.getpid()}.{time.time_ns()}.pt.trace.json.gz")
        with gzip.open(path + ".tmp", "wt") as handle:
            json.dump({"schemaVersion": 1, "traceEvents": events}, handle)
        os.replace(path + ".tmp", path)
        return path


class Server:
    """HTTP/1.1 with Connection: close, as the bench client expects."""

    def __init__(self, engine: Engine, tokenizer: str = "both", profiler: dict | None = None) -> None:
        self.e = engine
        self.profiler = profiler or {}
        # Several real servers (TGI, proxies, vLLM with some options) lack one or both tokenizer endpoints.
        self.tokenize, self.detokenize = tokenizer in ("both", "tokenize"), tokenizer in ("both", "detokenize")

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            received = time.monotonic()
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            method, path, _ = request_line.split(" ", 2)
            headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines if h)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            req = json.loads(body) if body else {}
            if not isinstance(req, dict):
                raise ValueError("the body is not a JSON object")
            await self.route(writer, method, path.split("?", 1)[0], req, received)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        except (ValueError, KeyError, TypeError) as exc:
            await self.json(writer, {"error": {"message": f"bad request: {exc}", "type": "invalid_request_error"}},
                            "400 Bad Request")
        finally:
            writer.close()

    async def route(self, writer: asyncio.StreamWriter, method: str, path: str, req: dict, received: float) -> None:
        if method == "POST" and path in ("/v1/completions", "/v1/chat/completions"):
            chat = path.endswith("chat/completions")
            if req.get("stream"):
                await self.stream(writer, req, chat, received)
            else:
                await self.complete(writer, req, chat)
        elif method == "POST" and path == "/tokenize" and self.tokenize:
            await self.json(writer, {"tokens": [self.e.token_id(w) for w in str(req.get("content", "")).split()]})
        elif method == "POST" and path == "/detokenize" and self.detokenize:
            words = [self.e.words.get(int(i), "the") for i in req.get("tokens", [])]
            await self.json(writer, {"content": " ".join(words)})
        elif method == "POST" and path in ("/start_profile", "/stop_profile") and self.profiler.get("profiler"):
            # vLLM mounts these routes only when a profiler is configured: otherwise they are unknown paths.
            await self.profile(writer, path == "/start_profile")
        elif path == "/health":
            await self.json(writer, {"status": "ok"})
        elif path == "/v1/models":
            await self.json(writer, {"object": "list", "data": [{"id": self.e.model, "object": "model",
                                                                 "owned_by": "arbor-sim"}]})
        else:
            await self.json(writer, {"error": {"message": f"no route {method} {path}"}}, "404 Not Found")

    async def profile(self, writer: asyncio.StreamWriter, start: bool) -> None:
        directory = self.profiler.get("torch_profiler_dir")
        if start:
            self.e.profiling_since = self.e.generated
        elif directory:  # the "cuda" profiler leaves its capture to nsys: no trace of its own
            os.makedirs(directory, exist_ok=True)
            path = await asyncio.to_thread(self.e.trace, directory)
            print(f"profiler: trace written to {path}", flush=True)
        await self.json(writer, {})

    def answer(self, req: dict, chat: bool) -> tuple[str, list[str], float]:
        """The prompt, the words to generate, and this request's noise factor on every delay."""
        if chat:
            prompt = " ".join(str(m.get("content", "")) for m in req.get("messages", []) if isinstance(m, dict))
        else:
            raw = req.get("prompt", "")
            prompt = " ".join(map(str, raw)) if isinstance(raw, list) else str(raw)
        e = self.e
        return prompt, e.text(prompt, e.n_out(req, prompt)), noisy(1.0, e.s.noise_cv, e.rng) * e.slow_factor()

    async def stream(self, writer: asyncio.StreamWriter, req: dict, chat: bool, received: float) -> None:
        e = self.e
        prompt, words, factor = self.answer(req, chat)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked"
                     b"\r\nConnection: close\r\n\r\n")
        created, rid = int(time.time()), f"cmpl-{zlib.crc32(prompt.encode()):08x}{time.monotonic_ns() % 10**6}"
        kind = "chat.completion.chunk" if chat else "text_completion"
        e.active += 1
        try:
            due = received + e.b.ttft_ms / 1000.0 * factor
            for i, word in enumerate(words):
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                text = word if i == 0 else " " + word
                last = i == len(words) - 1
                choice = {"index": 0, "delta": {"content": text}} if chat else {"index": 0, "text": text}
                choice["finish_reason"] = e.finish_reason(prompt, len(words)) if last else None
                self.chunk(writer, {"id": rid, "object": kind, "created": created, "model": e.model,
                                    "choices": [choice]})
                await writer.drain()
                e.generated += 1
                due += e.step_s(factor)
        finally:
            e.active -= 1
        if (req.get("stream_options") or {}).get("include_usage"):
            n_prompt = len(prompt.split())
            self.chunk(writer, {"id": rid, "object": kind, "created": created, "model": e.model, "choices": [],
                                "usage": {"prompt_tokens": n_prompt, "completion_tokens": len(words),
                                          "total_tokens": n_prompt + len(words)}})
        self.chunk_raw(writer, b"data: [DONE]\n\n")
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def complete(self, writer: asyncio.StreamWriter, req: dict, chat: bool) -> None:
        e = self.e
        prompt, words, factor = self.answer(req, chat)
        e.active += 1
        try:
            await asyncio.sleep(e.b.ttft_ms / 1000.0 * factor + (len(words) - 1) * e.step_s(factor))
        finally:
            e.active -= 1
        e.generated += len(words)
        text = " ".join(words)
        reason = e.finish_reason(prompt, len(words))
        choice = ({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": reason} if chat
                  else {"index": 0, "text": text, "finish_reason": reason})
        n_prompt = len(prompt.split())
        await self.json(writer, {"id": "cmpl-sim", "object": "chat.completion" if chat else "text_completion",
                                 "created": int(time.time()), "model": e.model, "choices": [choice],
                                 "usage": {"prompt_tokens": n_prompt, "completion_tokens": len(words),
                                           "total_tokens": n_prompt + len(words)}})

    @staticmethod
    async def json(writer: asyncio.StreamWriter, data: dict, status: str = "200 OK") -> None:
        payload = json.dumps(data).encode()
        writer.write(f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}"
                     f"\r\nConnection: close\r\n\r\n".encode() + payload)
        await writer.drain()

    def chunk(self, writer: asyncio.StreamWriter, event: dict) -> None:
        self.chunk_raw(writer, b"data: " + json.dumps(event).encode() + b"\n\n")

    @staticmethod
    def chunk_raw(writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, Scenario, dict[str, Value]]:
    """The server's options and the configuration its knob flags set (validated against the scenario)."""
    first = argparse.ArgumentParser(prog="arbor-sim", add_help=False)
    first.add_argument("--scenario", required=True, help=f"one of {sorted(scenarios())}, or gen-<seed>")
    known, _ = first.parse_known_args(argv)
    try:
        s = scenario(known.scenario)
    except InputError as exc:
        first.error(str(exc))
    parser = argparse.ArgumentParser(prog="arbor-sim", description=f"simulated stack: {s.description}")
    parser.add_argument("--scenario", required=True, help=f"one of {sorted(scenarios())}, or gen-<seed>")
    parser.add_argument("--seed", type=int, default=0, help="seeds the noise (with a nonce per start)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--served-model-name", default=f"sim-{s.name}")
    parser.add_argument("--startup-s", type=float, default=0.2, help="time spent 'loading the model'")
    parser.add_argument("--eos-stop", action="store_true",
                        help="the model ends on its own (8 to 63 tokens, by prompt) and ignore_eos is not honoured")
    parser.add_argument("--tokenizer-endpoints", choices=("both", "tokenize", "detokenize", "none"), default="both",
                        help="which of /tokenize and /detokenize the server has")
    parser.add_argument("--profiler-config", type=profiler_config, default={}, metavar="JSON",
                        help='as vLLM: {"profiler": "torch", "torch_profiler_dir": DIR} serves /start_profile and '
                             "/stop_profile, traces into DIR")
    for knob in s.knob:
        parser.add_argument(f"--{knob.name}", metavar="VALUE", help=f"{knob.category}/{knob.layer}: {knob.domain()}")
    args = parser.parse_args(argv)
    config: dict[str, Value] = {}
    for knob in s.knob:
        raw = getattr(args, knob.name)
        if raw is None:
            continue
        if knob.type == "bool":
            if raw.lower() not in ("true", "false", "1", "0", "on", "off"):
                parser.error(f"argument --{knob.name}: invalid bool value: {raw!r}")
            config[knob.name] = raw.lower() in ("true", "1", "on")
        elif knob.type == "int":
            try:
                config[knob.name] = int(raw)
            except ValueError:
                parser.error(f"argument --{knob.name}: invalid int value: {raw!r}")
        else:
            config[knob.name] = raw
    try:
        s.full(config)
    except InputError as exc:
        parser.error(str(exc))
    return args, s, config


def profiler_config(raw: str) -> dict:
    """vLLM's --profiler-config as its ProfilerConfig checks it: a JSON object; "torch" needs torch_profiler_dir."""
    try:
        config = json.loads(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    kind, directory = config.get("profiler"), config.get("torch_profiler_dir") or ""
    if kind not in (None, "torch", "cuda"):
        raise argparse.ArgumentTypeError(f"profiler must be 'torch' or 'cuda', not {kind!r}")
    if not isinstance(directory, str):
        raise argparse.ArgumentTypeError("torch_profiler_dir must be a string")
    if directory and kind != "torch":
        raise argparse.ArgumentTypeError("torch_profiler_dir is only applicable when profiler is set to 'torch'")
    if kind == "torch" and not directory:
        raise argparse.ArgumentTypeError("torch_profiler_dir must be set when profiler is 'torch'")
    return config | ({"torch_profiler_dir": os.path.abspath(os.path.expanduser(directory))} if directory else {})


async def serve(args: argparse.Namespace, engine: Engine) -> None:
    handler = Server(engine, args.tokenizer_endpoints, args.profiler_config).handle
    server = await asyncio.start_server(handler, args.host, args.port, backlog=1024)
    print(f"INFO: serving {engine.model} on http://{args.host}:{args.port}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    args, s, config = parse_args(sys.argv[1:] if argv is None else argv)
    print(f"INFO: arbor-sim scenario={s.name} seed={args.seed} config={json.dumps(config, sort_keys=True)}",
          flush=True)
    print("INFO: loading model weights", flush=True)
    b = behaviour(s, config)
    time.sleep(args.startup_s)
    if b.crash is not None:
        print(b.crash.log, flush=True)
        if b.crash.kind == "segfault":
            os.kill(os.getpid(), signal.SIGSEGV)
        if b.crash.kind == "abort":
            os.abort()
        sys.exit(1)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        engine = Engine(s, b, args.seed, args.served_model_name, time.time_ns() ^ os.getpid(), args.eos_stop)
        asyncio.run(serve(args, engine))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
