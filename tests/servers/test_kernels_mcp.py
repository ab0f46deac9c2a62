"""The kernels MCP server in-process: toolchains, gate on good and bad kernels, and bad inputs."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client

from arbor.servers.kernels import create_server

pytestmark = pytest.mark.anyio


async def test_toolchains_are_reported(tmp_path: Path) -> None:
    async with Client(create_server(tmp_path)) as client:
        out = (await client.call_tool("list_toolchains", {})).structured_content["toolchains"]
    c = next(t for t in out if t["language"] == "c")
    assert c["compiler_found"] and c["can_run"] and c["device"] == "cpu"
    assert {t["language"] for t in out} == {"c", "cpp", "hip", "cuda", "triton"}


async def test_example_gate_then_a_crashing_kernel_then_the_gate_again(tmp_path: Path) -> None:
    progress: list[str] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(message or "")

    async with Client(create_server(tmp_path)) as client:
        copied = await client.call_tool("new_task_from_example", {"dest": "mine"})
        assert "task.toml" in copied.structured_content["files"]
        good = await client.call_tool("gate_kernel", {"task": "mine"}, progress_callback=on_progress)
        assert not good.is_error and good.structured_content["passed"] is True
        assert good.structured_content["speedup"] > 1 and progress[-1] == "passed"
        fast = tmp_path / "mine" / "rmsnorm_fast.c"
        fast.write_text(fast.read_text().replace("float inv =", "*(volatile int *)0 = 1;\n        float inv ="))
        crashed = (await client.call_tool("test_kernel", {"task": "mine"})).structured_content
        assert crashed["passed"] is False and "segmentation fault" in crashed["steps"][-1]["summary"]
        broken = await client.call_tool("build_kernel", {"task": "mine"})
        assert broken.structured_content["passed"] is True, "it compiles; only running it crashes"
        await client.call_tool("new_task_from_example", {"dest": "again"})
        still = await client.call_tool("bench_kernel", {"task": "again"})
        assert still.structured_content["passed"] is True, "the server keeps serving after a crash"


@pytest.mark.parametrize(("tool", "args", "message"), [
    ("gate_kernel", {"task": "../../etc"}, "outside the kernels root"),
    ("gate_kernel", {"task": "nothing-here"}, "no task.toml"),
    ("new_task_from_example", {"example": "gemm", "dest": "x"}, "no example 'gemm'"),
    ("new_task_from_example", {"dest": "../escape"}, "dest"),
    ("gate_kernel", {"task": "t", "fast": True}, "fast"),
])
async def test_bad_inputs(tmp_path: Path, tool: str, args: dict, message: str) -> None:
    async with Client(create_server(tmp_path)) as client:
        out = await client.call_tool(tool, args)
    assert out.is_error and message in out.content[0].text


async def test_missing_source_and_unknown_language(tmp_path: Path) -> None:
    async with Client(create_server(tmp_path)) as client:
        await client.call_tool("new_task_from_example", {"dest": "t"})
        spec = tmp_path / "t" / "task.toml"
        original = spec.read_text()
        (tmp_path / "t" / "rmsnorm_fast.c").unlink()
        missing = await client.call_tool("gate_kernel", {"task": "t"})
        assert missing.is_error and "'rmsnorm_fast.c' does not exist" in missing.content[0].text
        spec.write_text(original.replace('language = "c"', 'language = "cobol"'))
        unknown = await client.call_tool("gate_kernel", {"task": "t"})
        assert unknown.is_error and "language" in unknown.content[0].text
    assert not (tmp_path / "t" / ".arbor-build").exists(), "nothing was built for a bad task"
