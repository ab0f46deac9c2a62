"""A live perf profile of the real llama-server under load."""

from __future__ import annotations

import pytest

from arbor.tools.bench.models import Workload
from arbor.tools.profiling.live import profile_under_load
from arbor.tools.serving.launcher import ServerInfo

pytestmark = [pytest.mark.llama, pytest.mark.anyio]


async def test_perf_profile_of_llama_server_under_load(llama_server: ServerInfo, tmp_path) -> None:
    workload = Workload(model=llama_server.model_name, input_len=32, output_len=32, max_concurrency=4,
                        num_prompts=8)
    loaded = await profile_under_load(llama_server.pid, llama_server.base_url, workload, 3.0, tmp_path)
    profile = loaded.profile
    assert profile.tool == "perf" and profile.tool_version and 2.5 < profile.window_s < 4.0
    assert profile.samples > 1000, "two busy cores at 999 Hz for 3 s"
    assert sum(k.share for k in profile.kernels) == pytest.approx(1.0)
    assert sum(profile.categories.values()) == pytest.approx(1.0)
    top = profile.kernels[:3]
    assert all(k.name.startswith(("ggml_", "(anonymous namespace)::tinyBLAS")) for k in top[:2]), top
    assert top[0].category == "gemm" and profile.categories["gemm"] > 0.4
    assert all(k.category for k in profile.kernels)
    assert set(profile.unknown) == {k.name for k in profile.kernels if k.category == "unknown"}
    assert profile.categories.get("unknown", 0.0) < 0.05, profile.unknown[:20]
    assert loaded.load_failed == 0
