"""Model directories: save and load, refusing anything we cannot read exactly.

A model directory holds:

* ``config.json``: ``{"model_type": "genoforge", "format_version": 4, <every ModelConfig field>}``
  (version 3, from before the coordinate pointer, is read as ``pointer_dim`` 0; version 2, from
  before the head's signal outputs, also as ``base_head_signals`` false);
* ``model.safetensors``: the state dict (fp32 unless saved otherwise). With ``tie_weights`` the
  output head ``decoder.lm_head.weight`` is not stored (it is ``decoder.embed_tokens.weight``);
* the tokenizer files (``tokenizer.json``, ``tokenizer_config.json``, ``special_tokens_map.json``).

Loading refuses an unknown ``model_type`` or ``format_version``, unknown or missing config fields,
and missing, unexpected or mis-shaped tensors, with a CheckpointError naming them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from genoforge.errors import CheckpointError
from genoforge.io import atomic_write
from genoforge.model.config import ModelConfig
from genoforge.model.model import GenoforgeModel

MODEL_TYPE = "genoforge"
# 2: the per-base head (base_head_* fields and weights); 3: its signal outputs; 4: the coordinate
# pointer (pointer_* fields and weights)
FORMAT_VERSION = 4
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TIED_HEAD_KEY = "decoder.lm_head.weight"


def config_to_json(config: ModelConfig) -> dict[str, Any]:
    return {"model_type": MODEL_TYPE, "format_version": FORMAT_VERSION, **dataclasses.asdict(config)}


def read_model_config(model_dir: str | Path) -> ModelConfig:
    """The ModelConfig of a model directory (no weights are read).

    Raises:
        CheckpointError: missing/unreadable config.json, wrong model_type or format_version,
            unknown or missing fields.
    """
    path = Path(model_dir) / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{path}: not found; is {model_dir} a model directory (from `genoforge model init`)?")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: cannot read ({exc})") from exc
    if raw.get("model_type") != MODEL_TYPE:
        raise CheckpointError(f"{path}: model_type is {raw.get('model_type')!r}, expected {MODEL_TYPE!r}")
    version = raw.get("format_version")
    if version == 1:
        raise CheckpointError(
            f"{path}: format_version 1 predates the per-base head; re-create the model with "
            "genoforge model init (and re-run genoforge tune)"
        )
    if version in (2, 3):  # written before the pointer: coordinates from the token head
        raw = {"pointer_dim": 0, "pointer_label_smoothing": 0.2, "pointer_label_sigma": 2.0, **raw}
    if version == 2:  # written before the signal outputs: a head without them
        raw = {**raw, "base_head_signals": raw.get("base_head_signals", False)}
    elif version not in (3, FORMAT_VERSION):
        raise CheckpointError(
            f"{path}: format_version {version!r} is not supported (this genoforge reads {FORMAT_VERSION}); "
            "use the genoforge version that wrote it"
        )
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    values = {k: v for k, v in raw.items() if k not in ("model_type", "format_version")}
    unknown = sorted(set(values) - fields)
    missing = sorted(fields - set(values))
    if unknown or missing:
        parts = []
        if unknown:
            parts.append(f"unknown field(s) {', '.join(unknown)}")
        if missing:
            parts.append(f"missing field(s) {', '.join(missing)}")
        raise CheckpointError(f"{path}: {'; '.join(parts)}; the file was edited or written by another version")
    try:
        return ModelConfig(**values)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: invalid configuration ({exc})") from exc


def write_model_config(model_dir: str | Path, config: ModelConfig) -> Path:
    path = Path(model_dir) / CONFIG_FILE
    with atomic_write(path) as handle:
        json.dump(config_to_json(config), handle, indent=2)
        handle.write("\n")
    return path


def state_for_saving(model: GenoforgeModel) -> dict[str, Tensor]:
    """The persistent state, tied head dropped, every tensor contiguous on the CPU."""
    state = model.state_dict()
    if model.config.tie_weights:
        state.pop(TIED_HEAD_KEY, None)
    return {key: value.detach().to("cpu").contiguous() for key, value in state.items()}


def write_weights(path: str | Path, state: dict[str, Tensor]) -> None:
    """Write a safetensors file under a temporary name, then rename it into place."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(state, tmp, metadata={"format": "pt", "model_type": MODEL_TYPE})
        from genoforge.io import umask_mode

        os.chmod(tmp, umask_mode(0o666))  # mkstemp's 0600 would make the weights private
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_model(model: GenoforgeModel, model_dir: str | Path, tokenizer: Any = None) -> Path:
    """Write config.json, model.safetensors and (if given) the tokenizer into ``model_dir``.

    Each file is written atomically (temporary name, then rename); use
    ``genoforge.io.atomic_dir`` around the call for an all-or-nothing directory.

    Args:
        tokenizer: a GenoTokenizer (saved with its ``save``), or None.
    """
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    write_weights(model_dir / WEIGHTS_FILE, state_for_saving(model))
    write_model_config(model_dir, model.config)
    if tokenizer is not None:
        tokenizer.save(model_dir)
    return model_dir


def read_weights(model_dir: str | Path) -> dict[str, Tensor]:
    path = Path(model_dir) / WEIGHTS_FILE
    if not path.is_file():
        raise CheckpointError(f"{path}: not found; the model directory is incomplete")
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - a corrupt file is one clear error
        raise CheckpointError(f"{path}: cannot read weights ({type(exc).__name__}: {exc})") from exc


def build_empty_model(config: ModelConfig, device: str | torch.device = "cpu") -> GenoforgeModel:
    """A model with uninitialised storage (built on the meta device, then materialised).

    Skips the per-module default initialisation, which costs minutes at the seed size; call
    ``init_weights`` or load a state dict afterwards.
    """
    with torch.device("meta"):
        model = GenoforgeModel(config)
    model = model.to_empty(device=device)
    if config.tie_weights:
        model.decoder.lm_head.weight = model.decoder.embed_tokens.weight
    return model


def check_state_keys(model: GenoforgeModel, state: dict[str, Tensor], where: str) -> None:
    """Raise CheckpointError naming missing, unexpected and mis-shaped tensors."""
    expected = {k: v for k, v in model.state_dict().items()}
    if model.config.tie_weights:
        expected.pop(TIED_HEAD_KEY, None)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = sorted(
        f"{key} {tuple(state[key].shape)} (expected {tuple(expected[key].shape)})"
        for key in set(state) & set(expected)
        if tuple(state[key].shape) != tuple(expected[key].shape)
    )
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", shapes)):
        if items:
            shown = ", ".join(items[:6]) + (f" and {len(items) - 6} more" if len(items) > 6 else "")
            problems.append(f"{len(items)} {label} tensor(s): {shown}")
    if problems:
        raise CheckpointError(f"{where}: weights do not match config.json: {'; '.join(problems)}")


def load_model(
    model_dir: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> GenoforgeModel:
    """Load a model directory written by :func:`save_model`.

    Args:
        device: where the weights go.
        dtype: cast floating-point parameters to this dtype (None: as stored).

    Raises:
        CheckpointError: see the module docstring.
    """
    config = read_model_config(model_dir)
    state = read_weights(model_dir)
    model = build_empty_model(config, device="cpu")
    check_state_keys(model, state, str(Path(model_dir) / WEIGHTS_FILE))
    model.load_state_dict(state, strict=not config.tie_weights)
    if config.tie_weights:
        model.decoder.lm_head.weight = model.decoder.embed_tokens.weight
    model = model.to(device)
    if dtype is not None:
        model = model.to(dtype)  # floating-point tensors only; the token-id buffer stays int64
    return model
