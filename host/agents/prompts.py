"""Prompt templates: files under prompts/, filled with string.Template (a missing field is an error)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from string import Template
from typing import Any


@cache
def _template(name: str) -> Template:
    return Template(resources.files(__package__).joinpath("prompts", f"{name}.tmpl").read_text())


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str, sort_keys=True)


def render(name: str, **fields: Any) -> str:
    """The template `name` with every $field filled (dicts and lists as compact JSON)."""
    return _template(name).substitute({k: _text(v) for k, v in fields.items()})
