"""The Critic judges lengths against the baseline's for the same prompts, on simulated servers run for real.

The measurements go the campaign's way: `run_bench` and `check_lengths` of the bench MCP server
(in process), then `critic.check_result`. Scenario gen-5: `opt_07_impl=v1` is an honest +13%,
`opt_09_switch=true` a trap whose outputs come out 5% shorter when `ignore_eos` is asked.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client

from arbor.host import critic
from arbor.host.spec import load_spec
from arbor.servers.bench import BenchRun, create_server
from arbor.tools.bench.lengths import LengthReport
from tests.support.sim_server import sim_server

pytestmark = pytest.mark.anyio

DEMO = load_spec(None)
SPEC = DEMO.model_copy(update={"workload": DEMO.workload.model_copy(
    update={"input_len": 16, "output_len": 32, "concurrency": 4, "num_prompts": 16})})
# A server like TGI or a proxy: no tokenizer endpoints, and a model that ends on EOS whatever ignore_eos says.
BARE = ("--eos-stop", "--tokenizer-endpoints", "none")


async def bench(client: Client, url: str, label: str, repeats: int = 1) -> BenchRun:
    out = await client.call_tool("run_bench", {"base_url": url, "workload": SPEC.workload.bench("sim-gen-5"),
                                               "repeats": repeats, "run_dir": "r", "label": label})
    assert not out.is_error, out.content
    return BenchRun.model_validate(out.structured_content)


async def check_lengths(client: Client, baseline: list[str], candidate: str) -> LengthReport:
    out = await client.call_tool("check_lengths", {"baseline": baseline, "candidate": candidate})
    assert not out.is_error, out.content
    return LengthReport.model_validate(out.structured_content)


async def test_an_honest_faster_move_is_valid_when_the_model_ends_on_eos_and_there_is_no_tokenizer(
        tmp_path: Path) -> None:
    with sim_server("gen-5", *BARE) as base_url, sim_server("gen-5", *BARE, "--opt_07_impl", "v1") as fast_url:
        async with Client(create_server(tmp_path)) as client:
            base = await bench(client, base_url, "base", repeats=2)
            fast = await bench(client, fast_url, "fast")
            report = await check_lengths(client, base.paths, fast.paths[0])
    result = fast.results[0]
    assert result.failed == 0 and result.output_throughput > max(r.output_throughput for r in base.results)
    # Many outputs ended before the 32 tokens asked, and the prompts could not be cut to 16 tokens.
    assert result.output_len_check.min < 32 and not result.lengths_ok
    assert not result.input_len_check.verified and result.input_len_check.mismatched == 0
    assert result.input_len_check.note.startswith("the server has no /tokenize or /detokenize: prompt lengths are "
                                                  "unverified")
    assert result.output_lens == base.results[0].output_lens, "the same prompts end at the same place"
    assert report.compared and report.drifts == []
    verdict = critic.check_result(SPEC, result, base.results[0].fingerprint, fast.paths[0], report)
    assert verdict.stable and not verdict.retest and verdict.findings == []
    # Judged against the asked lengths alone (the old rule), the same honest move was thrown out.
    assert critic.check_result(SPEC, result, base.results[0].fingerprint, fast.paths[0]).retest


@pytest.mark.parametrize("flags", [BARE, ()], ids=["eos-no-tokenizer", "ignore-eos-tokenizer"])
async def test_a_candidate_a_few_percent_shorter_for_the_same_prompts_is_caught(tmp_path: Path,
                                                                                 flags: tuple[str, ...]) -> None:
    with sim_server("gen-5", *flags) as base_url, sim_server("gen-5", *flags, "--opt_09_switch", "true") as trap_url:
        async with Client(create_server(tmp_path)) as client:
            base = await bench(client, base_url, "base")
            trap = await bench(client, trap_url, "trap")
            report = await check_lengths(client, base.paths, trap.paths[0])
    (drift,) = report.drifts
    assert drift.side == "output" and -0.07 < drift.rel_change < -0.03 and drift.prompts == 16
    verdict = critic.check_result(SPEC, trap.results[0], base.results[0].fingerprint, trap.paths[0], report)
    assert not verdict.stable and verdict.retest
    (finding,) = verdict.findings
    assert finding.kind == "length_drift" and finding.evidence["drifts"][0]["side"] == "output"
    assert finding.message.startswith("lengths drifted from the baseline's for the same prompts: output ")
