"""The training-window record of a model directory (``training_window.json``): which windows the
model was trained on, so ``predict`` can default to the same window.

The training window (:class:`TrainingWindow`, ``training_window.json``) records the bake's window
size and overlap of the data a model was trained on. ``tune`` writes it into every model directory
it exports (``best/``, ``final/``) and into its step checkpoints (listed and checksummed in
``checkpoint.json`` there; optional, so older checkpoints still verify). It is a file of its own
beside ``config.json``, whose fields the model loader checks strictly: model directories without
it (``model init``, older runs) load as before, and ``genoforge predict`` then falls back to its
default window. Its schema (version :data:`TRAINING_WINDOW_VERSION`)::

    format          "genoforge-training-window"
    schema_version  1
    window_size     the longest training window in bp: what predict uses by default
    overlap         bp shared by neighbouring training windows of that size, or null when unknown
    source          "manifest" (the bake's manifest.json beside the training shard) or "shards"
                    (no matching manifest: the longest window in the shard; overlap unknown)
    species         {name: {window_size, overlap}} per species of the shard (manifest only, else {})
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genoforge.errors import CheckpointError
from genoforge.io import atomic_write

TRAINING_WINDOW_FILE = "training_window.json"
TRAINING_WINDOW_FORMAT = "genoforge-training-window"
TRAINING_WINDOW_VERSION = 1


@dataclass(frozen=True)
class TrainingWindow:
    """The bake's windows a model was trained on (schema in the module docstring)."""

    window_size: int
    overlap: int | None
    source: str
    species: dict[str, dict[str, int]]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": TRAINING_WINDOW_FORMAT, "schema_version": TRAINING_WINDOW_VERSION,
            "window_size": self.window_size, "overlap": self.overlap, "source": self.source,
            "species": self.species,
        }


def write_training_window(directory: str | Path, record: TrainingWindow) -> Path:
    """Write ``directory/training_window.json`` atomically."""
    path = Path(directory) / TRAINING_WINDOW_FILE
    with atomic_write(path) as handle:
        json.dump(record.to_json(), handle, indent=2)
        handle.write("\n")
    return path


def read_training_window(model_dir: str | Path) -> TrainingWindow | None:
    """The training window recorded in a model directory, or None where there is none.

    Raises:
        CheckpointError: the file exists but is unreadable, of another format or version, or its
            values are not a valid window (naming the file and the fix).
    """
    path = Path(model_dir) / TRAINING_WINDOW_FILE
    if not path.is_file():
        return None
    fix = "delete it, or pass --window_size and --overlap explicitly"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: unreadable ({exc}); {fix}") from exc
    if not isinstance(raw, dict) or raw.get("format") != TRAINING_WINDOW_FORMAT:
        raise CheckpointError(f"{path}: not a genoforge training-window record; {fix}")
    version = raw.get("schema_version")
    if version != TRAINING_WINDOW_VERSION:
        raise CheckpointError(
            f"{path}: schema_version {version!r} is not supported (this genoforge reads "
            f"{TRAINING_WINDOW_VERSION}); {fix}"
        )
    size, overlap = raw.get("window_size"), raw.get("overlap")
    valid_size = isinstance(size, int) and not isinstance(size, bool) and size > 0
    valid_overlap = overlap is None or (isinstance(overlap, int) and not isinstance(overlap, bool)
                                        and valid_size and 0 <= overlap < size)
    if not (valid_size and valid_overlap):
        raise CheckpointError(f"{path}: window_size {size!r} / overlap {overlap!r} is not a valid window; {fix}")
    species = raw.get("species")
    return TrainingWindow(window_size=size, overlap=overlap, source=str(raw.get("source", "")),
                          species=species if isinstance(species, dict) else {})
