"""A model's own tokenizer.json, read offline with the `tokenizers` package, for servers without /tokenize."""

from __future__ import annotations

from pathlib import Path
from typing import Any

NAME = "tokenizer.json"


class LocalTokenizer:
    """Counts and cuts prompts like the server would, from the tokenizer.json its model ships."""

    def __init__(self, tokenizer: Any, path: Path) -> None:
        self.tokenizer, self.path = tokenizer, path

    async def tokenize(self, text: str) -> list[int]:
        """Token ids of `text` without special tokens."""
        return list(self.tokenizer.encode(text, add_special_tokens=False).ids)

    async def detokenize(self, tokens: list[int]) -> str:
        """Text of token ids."""
        return str(self.tokenizer.decode(tokens, skip_special_tokens=True))


def load_local(path: str) -> tuple[LocalTokenizer | None, str]:
    """The tokenizer at `path` (a tokenizer.json, or a model folder holding one), or None and why not."""
    where = Path(path).expanduser()
    if where.is_dir():
        where = where / NAME
    # Only a file of that name is read: the path may come from a remote MCP client.
    if where.name != NAME:
        return None, f"no local tokenizer: {path} is not a {NAME} or a folder holding one"
    if not where.is_file():
        return None, f"no local tokenizer: {where} does not exist"
    try:
        from tokenizers import Tokenizer
    except ImportError:
        return None, "no local tokenizer: the `tokenizers` package is not installed (pip install tokenizers)"
    try:
        return LocalTokenizer(Tokenizer.from_file(str(where)), where), ""
    except Exception as exc:  # noqa: BLE001 - the library raises plain Exceptions for a bad file
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
        return None, f"no local tokenizer: {where} does not load: {first}"
