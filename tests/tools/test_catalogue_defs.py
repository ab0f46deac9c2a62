"""The built-in catalogues and key metrics hold only what the pinned engine releases define, and nothing deprecated."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from arbor.tools.serving.enginedefs import ENGINES, stored
from arbor.tools.serving.flagcheck import findings
from arbor.tools.serving.knobs import Catalogue, catalogue, catalogue_file
from arbor.tools.serving.metrics import KEY_METRICS, OLDER_BUILDS, RENAMED


@pytest.mark.parametrize("engine", ENGINES)
def test_catalogue_flags_variables_and_choices_are_the_engines(engine: str) -> None:
    # Any finding fails: an unknown flag or variable, a choice the engine refuses or does not name, a deprecated one.
    problems = [f"{f.where}: {f.problem}" for f in findings(list(catalogue(engine).values()), [], {}, stored(engine))]
    assert problems == []


@pytest.mark.parametrize("engine", ENGINES)
def test_catalogue_states_the_release_it_was_checked_against(engine: str) -> None:
    parsed = catalogue_file(engine)
    assert parsed is not None and parsed.engine == engine
    assert parsed.engine_version == stored(engine).version


def test_a_broken_catalogue_entry_is_caught() -> None:
    knobs = catalogue("sglang")
    broken = [knobs["tp_size"].model_copy(update={"flag": "--tp"}),
              knobs["attn_dp_size"].model_copy(update={"flag": "--enable-dp-attention", "type": "bool"})]
    problems = [(f.where, f.problem, f.fatal) for f in findings(broken, [], {}, stored("sglang"))]
    assert problems[0] == ("knob 'tp_size'", "--tp is not one of its options; nearest real spelling: --tp-size", True)
    assert problems[1][0] == "knob 'attn_dp_size'" and "deprecated" in problems[1][1] and not problems[1][2]


def test_key_metrics_are_exported_by_the_pinned_releases() -> None:
    missing = [m for m in (*KEY_METRICS, *RENAMED.values()) if m not in OLDER_BUILDS
               and m not in stored(m.split(":")[0]).metrics]
    assert missing == []
    # A name kept for older builds only must really be gone from the pinned one, or it belongs above.
    assert [m for m in OLDER_BUILDS if m in stored(m.split(":")[0]).metrics] == []


def test_a_catalogue_without_its_release_is_refused() -> None:
    knob = {"name": "x", "flag": "--x", "type": "int"}
    with pytest.raises(ValidationError, match="engine_version"):
        Catalogue.model_validate({"engine": "vllm", "knob": [knob]})
    with pytest.raises(ValidationError, match="knob names repeat"):
        Catalogue.model_validate({"engine": "vllm", "engine_version": "1", "knob": [knob, knob]})
