"""A campaign whose knobs the engine does not know is refused before anything is created or started."""

from __future__ import annotations

from pathlib import Path

import pytest

from arbor.host.campaign import new_run
from arbor.host.errors import SpecError
from arbor.host.spec import parse_spec

CAMPAIGN = """
name = "flags"
[target]
stack = "llamacpp"
binary = "{binary}"
model = "m.gguf"
hardware = "cpu:test"
[[knobs]]
name = "parallel"
flag = "{flag}"
type = "int"
min = 1
max = 64
values = [8]
"""


def stub_server(tmp_path: Path) -> Path:
    # Answers --help with nothing llama-like: the check falls back to the stored definitions of the pinned build.
    stub = tmp_path / "llama-server"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    return stub


def test_an_unknown_flag_is_refused_before_the_run_exists(tmp_path: Path) -> None:
    spec = parse_spec(CAMPAIGN.format(binary=stub_server(tmp_path), flag="--paralel"), "flags.toml")
    runs = tmp_path / "runs"
    with pytest.raises(SpecError, match=r"knob 'parallel': --paralel is not one of its options; "
                                        r"nearest real spelling: --parallel"):
        new_run(spec, runs, None, True, lambda _: None)
    assert not runs.exists()


def test_known_flags_start_the_run_and_say_what_they_were_checked_against(tmp_path: Path) -> None:
    spec = parse_spec(CAMPAIGN.format(binary=stub_server(tmp_path), flag="--parallel"), "flags.toml")
    said: list[str] = []
    run_dir = new_run(spec, tmp_path / "runs", None, True, said.append)
    assert run_dir.is_dir()
    assert "flags checked against llamacpp llama-cpp-python 0.3.36" in said[0]
