"""Credentials never reach reports, and the host's own keys never reach an inference server."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from arbor.tools.serving import launcher
from arbor.tools.serving.secrets import MASK, child_env, redact_argv, redact_env
from arbor.tools.serving.stack import StackSpec
from tests.conftest import STUB


def test_redaction() -> None:
    assert redact_env({"HF_TOKEN": "hf_x", "HF_HOME": "/d", "AWS_SECRET_ACCESS_KEY": "s"}) == {
        "HF_TOKEN": MASK, "HF_HOME": "/d", "AWS_SECRET_ACCESS_KEY": MASK}
    assert redact_argv(["vllm", "serve", "m", "--api-key", "sk-1", "--hf-token=hf_2", "--port", "8"]) == [
        "vllm", "serve", "m", "--api-key", MASK, f"--hf-token={MASK}", "--port", "8"]


def test_child_env_drops_host_credentials() -> None:
    env = child_env({"ANTHROPIC_API_KEY": "a", "PATH": "/bin", "ARBOR_MCP_TOKEN": "t"}, {"HF_TOKEN": "h"})
    assert env == {"PATH": "/bin", "HF_TOKEN": "h"}


@pytest.mark.anyio
async def test_a_launched_server_sees_no_host_key_and_reports_none(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-secret")
    spec = StackSpec(kind="generic", model="m", command=[sys.executable, str(STUB), "--port", "{port}"],
                     env={"HF_TOKEN": "hf_secret"})
    server = await launcher.launch(spec, {}, tmp_path)
    try:
        environ = Path(f"/proc/{server.child.pid}/environ").read_bytes().split(b"\0")
        assert b"HF_TOKEN=hf_secret" in environ
        assert not any(e.startswith(b"ANTHROPIC_API_KEY=") for e in environ)
        assert server.info.env == {"HF_TOKEN": MASK}
        assert "hf_secret" not in server.info.model_dump_json()
    finally:
        launcher.stop(server)
