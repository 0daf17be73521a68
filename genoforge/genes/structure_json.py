"""The gene-structure JSON files (:mod:`genoforge.genes.structure`): reading, checking, writing.

Each file is one JSON object with a ``format_version``, whose other keys are exactly the fields
of the dataclass it holds; it is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import fields
from pathlib import Path

from genoforge.errors import ConfigError


def load_versioned_object(text: str, source: str, version: int) -> dict:
    """The JSON object in ``text`` (read from ``source``), checked to carry ``format_version``.

    Raises:
        ConfigError: not JSON, not an object, or another ``format_version`` (re-run bake).
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"{source}: not valid JSON ({error.msg} at line {error.lineno})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a JSON object, found {type(data).__name__}")
    found = data.get("format_version")
    if found != version:
        raise ConfigError(f"{source}: format_version {found!r}, this genoforge reads {version}; "
                          "re-run bake to regenerate it")
    return data


def check_fields(cls: type, data: dict, source: str) -> None:
    """Raise ConfigError unless ``data``'s keys are exactly the dataclass ``cls``'s fields."""
    names = {f.name for f in fields(cls)}
    missing = sorted(names - set(data))
    unknown = sorted(set(data) - names)
    if missing:
        raise ConfigError(f"{source}: missing field(s) {', '.join(missing)}")
    if unknown:
        raise ConfigError(f"{source}: unknown field(s) {', '.join(unknown)}")


def read_text(path: Path) -> str:
    """The UTF-8 text of ``path`` (ConfigError, naming the file, if it cannot be read)."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read ({error.strerror or error})") from None


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` under a temporary name in its folder, renamed when complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

