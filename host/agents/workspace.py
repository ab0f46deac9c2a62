"""A specialist's isolated workspace: a copy of the task's sources; file tools that cannot reach outside."""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path

from pydantic import BaseModel, Field

from arbor.tools.paths import contained

from ..errors import ProposalError

MAX_FILE = 512 * 1024


class ReadFile(BaseModel):
    path: str = Field(min_length=1, max_length=500, description="relative to the workspace")


class WriteFile(BaseModel):
    path: str = Field(min_length=1, max_length=500, description="relative to the workspace")
    content: str = Field(max_length=MAX_FILE)


class ListFiles(BaseModel):
    pass


class Workspace:
    """A copy of `source` under `root`; every path is resolved and refused if it leaves the copy."""

    def __init__(self, source: Path, root: Path) -> None:
        self.source = Path(source).resolve()
        self.root = Path(root)
        if self.root.exists():
            shutil.rmtree(self.root)
        shutil.copytree(self.source, self.root, symlinks=False, ignore=shutil.ignore_patterns(".arbor-build"))
        self.root = self.root.resolve()
        self.refused: list[str] = []

    def _path(self, relative: str) -> Path:
        try:
            # resolve() follows symlinks, so a link that points out is caught as well
            return contained(self.root, relative, "workspace")
        except ValueError as exc:
            self.refused.append(relative)
            raise ProposalError(str(exc)) from exc

    def list(self, _: ListFiles | None = None) -> list[str]:
        """Files in the workspace."""
        return sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*")
                      if p.is_file() and ".arbor-build" not in p.parts)

    def read(self, args: ReadFile) -> str:
        """A file's text."""
        path = self._path(args.path)
        if not path.is_file():
            raise ProposalError(f"no file {args.path!r} in the workspace")
        return path.read_text(errors="replace")[:MAX_FILE]

    def write(self, args: WriteFile) -> str:
        """Replace a file's text (new files allowed inside the workspace)."""
        path = self._path(args.path)
        if path.is_dir():
            raise ProposalError(f"{args.path!r} is a folder")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(args.content)
        return f"wrote {len(args.content)} characters to {args.path}"

    def diff(self) -> str:
        """Unified diff from the original sources to the workspace."""
        out: list[str] = []
        for name in self.list():
            new = (self.root / name).read_text(errors="replace").splitlines(keepends=True)
            original = self.source / name
            old = original.read_text(errors="replace").splitlines(keepends=True) if original.is_file() else []
            out += difflib.unified_diff(old, new, f"a/{name}", f"b/{name}")
        return "".join(out)
