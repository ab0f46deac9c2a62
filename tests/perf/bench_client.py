"""How precise and how light is the load generator? Prints one JSON line.

Drives the stub OpenAI server (tests/support/stub_openai.py, its own process) at
concurrency 1, 16 and 64 with 50 ms to the first token and 10 ms between tokens.
Each streamed token's text is the CLOCK_MONOTONIC instant the stub wrote it; the
client stamps arrivals with the same clock, so the error is measured per token
rather than against the nominal delays (which the stub itself cannot hit exactly).

- ttft_err_ms_p50: median of (client's first-token arrival - stub's send time) at 64
- itl_err_ms_p50: median of |client gap - stub gap| between consecutive tokens at 64
- max_tokens_per_s: client-measured output throughput with no delays at 64 (stub and
  client share 2 cores, so this is a lower bound of what the client can absorb)
- client_cpu_share: client CPU seconds / wall seconds during the paced run at 64
Goal: timing errors under 1 ms at concurrency 64; max_tokens_per_s far above the
~160 tok/s the CPU demo target serves.

Run: .venv/bin/python tests/perf/bench_client.py
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from arbor.tools.bench.client import collect_records  # noqa: E402
from arbor.tools.bench.models import Workload  # noqa: E402
from arbor.tools.bench.prompts import Prompt  # noqa: E402
from arbor.tools.bench.summary import summarize  # noqa: E402
from arbor.tools.stats import percentile  # noqa: E402
from tests.conftest import start_stub  # noqa: E402

PROMPTS = [Prompt(" ".join(["word"] * 32), 32, True)] * 256


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(url: str, concurrency: int, output_len: int, prompts_per: int) -> dict:
    workload = Workload(model="stub", input_len=32, output_len=output_len, max_concurrency=concurrency,
                        num_prompts=concurrency * prompts_per, warmup=0)
    wall0, cpu0 = time.perf_counter(), _cpu()
    records, peak, _ = await collect_records(url, workload, PROMPTS[: workload.num_prompts])
    wall, cpu = time.perf_counter() - wall0, _cpu() - cpu0
    ttft_err, itl_err = [], []
    for record in records:
        sent = [float(x) for x in record.generated_text.split()]
        arrived = record.token_times
        if not record.success or len(sent) != len(arrived):
            continue
        ttft_err.append((arrived[0] - sent[0]) * 1000)
        for i in range(1, len(sent)):
            itl_err.append(abs((arrived[i] - arrived[i - 1]) - (sent[i] - sent[i - 1])) * 1000)
    result = summarize(records, workload=workload, base_url=url, max_concurrent=peak, verified_input=True, date="")
    return {"concurrency": concurrency, "failed": result.failed,
            "ttft_err_ms_p50": round(percentile(ttft_err, 50), 3),
            "ttft_err_ms_p99": round(percentile(ttft_err, 99), 3),
            "itl_err_ms_p50": round(percentile(itl_err, 50), 3), "itl_err_ms_p99": round(percentile(itl_err, 99), 3),
            "tokens_per_s": round(result.output_throughput, 1), "client_cpu_share": round(cpu / wall, 3)}


async def main() -> None:
    paced, url = start_stub("--ttft-ms", "50", "--itl-ms", "10")
    try:
        by_c = {c: await measure(url, c, 64, 2) for c in (1, 16, 64)}
    finally:
        paced.kill()
    flat, url = start_stub("--ttft-ms", "0", "--itl-ms", "0")
    try:
        burst = await measure(url, 64, 256, 2)
    finally:
        flat.kill()
    at64 = by_c[64]
    print(json.dumps({
        "ttft_err_ms_p50": at64["ttft_err_ms_p50"],
        "itl_err_ms_p50": at64["itl_err_ms_p50"],
        "max_tokens_per_s": burst["tokens_per_s"],
        "client_cpu_share": at64["client_cpu_share"],
        "by_concurrency": list(by_c.values()),
    }))


if __name__ == "__main__":
    asyncio.run(main())
