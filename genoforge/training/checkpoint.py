"""Resumable training checkpoints: ``OUTPUT_DIR/step-NNNNNNNN/``, no pickle anywhere.

A checkpoint directory holds:

* ``model.safetensors``: the full (unsharded) fp32 model state, keyed by parameter name; a tensor
  shared under several names (tied weights) is stored once, its other names in ``aliases`` of
  ``checkpoint.json``;
* ``optimizer.safetensors`` + ``optimizer.json``: the optimizer state flattened by parameter name
  (tensor ``"<param name>/<state key>"``, e.g. ``decoder.layers.0.w_up/exp_avg``) and its param
  groups (hyperparameters and member names) as JSON;
* ``rng.safetensors``: the torch CPU (and CUDA, per device) generator states of rank 0;
* ``trainer_state.json``: global step, epoch, optimizer steps done in that epoch (the data
  position), schedule, early-stopping state, and the data signature the position is valid for;
* ``checkpoint.json``: format version and, per file, its size and CRC-32 (written last).

The directory is built under a temporary name and renamed into place when complete, so a crash or
SIGKILL while saving leaves no ``step-*`` directory behind. On load, a missing or unknown manifest,
a size or checksum mismatch, or an unreadable file raises :class:`CheckpointError` naming the file
and the fix; nothing is loaded from a damaged checkpoint.

The training window (:class:`~genoforge.model.training_window.TrainingWindow`,
``training_window.json``; schema in that module) records the bake's windows; it is written into
every exported model directory.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genoforge.errors import CheckpointError
from genoforge.io import atomic_dir, atomic_write, remove_stale_temps
from genoforge.model.training_window import (  # noqa: F401  (re-exported: checkpoints write it)
    TRAINING_WINDOW_FILE,
    TRAINING_WINDOW_FORMAT,
    TRAINING_WINDOW_VERSION,
    TrainingWindow,
    read_training_window,
    write_training_window,
)

FORMAT_VERSION = 1
MANIFEST = "checkpoint.json"
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
OPTIMIZER_JSON = "optimizer.json"
RNG_FILE = "rng.safetensors"
STATE_FILE = "trainer_state.json"
STEP_DIR = re.compile(r"^step-(\d{8})$")


def step_dir_name(step: int) -> str:
    return f"step-{step:08d}"


def list_checkpoints(output_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of every ``step-NNNNNNNN`` directory in ``output_dir``, oldest first."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    found = []
    for child in output_dir.iterdir():
        match = STEP_DIR.match(child.name)
        if match and child.is_dir():
            found.append((int(match.group(1)), child))
    return sorted(found)


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest ``step-*`` directory (complete by construction: they appear by rename)."""
    found = list_checkpoints(output_dir)
    return found[-1][1] if found else None


def prune_checkpoints(output_dir: str | Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` checkpoints (0 keeps all); returns what was deleted."""
    if keep <= 0:
        return []
    removed = []
    for _, path in list_checkpoints(output_dir)[:-keep]:
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _crc32(path: Path) -> int:
    crc = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 24):
            crc = zlib.crc32(chunk, crc)
    return crc


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def dedupe_shared(state: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Drop names whose tensor shares storage with an earlier one; returns (state, alias -> name)."""
    kept: dict[str, Any] = {}
    aliases: dict[str, str] = {}
    by_storage: dict[tuple[int, int, tuple], str] = {}
    for name, tensor in state.items():
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
        if tensor.numel() and key in by_storage:
            aliases[name] = by_storage[key]
            continue
        by_storage[key] = name
        kept[name] = tensor.detach().contiguous()
    return kept, aliases


def flatten_optimizer_state(state_dict: dict) -> tuple[dict[str, Any], dict]:
    """Optimizer state dict keyed by parameter name -> (tensors, JSON-ready rest)."""
    import torch

    tensors: dict[str, Any] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for param_name, param_state in state_dict["state"].items():
        for key, value in param_state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{param_name}/{key}"] = value.detach().contiguous().cpu()
            else:
                scalars.setdefault(str(param_name), {})[key] = value
    groups = []
    for group in state_dict["param_groups"]:
        groups.append({k: (list(v) if isinstance(v, tuple) else v) for k, v in group.items()})
    return tensors, {"param_groups": groups, "scalars": scalars}


def unflatten_optimizer_state(tensors: dict[str, Any], meta: dict) -> dict:
    state: dict[str, dict[str, Any]] = {}
    for key, value in tensors.items():
        param_name, _, entry = key.rpartition("/")
        state.setdefault(param_name, {})[entry] = value
    for param_name, entries in meta.get("scalars", {}).items():
        state.setdefault(param_name, {}).update(entries)
    groups = []
    for group in meta["param_groups"]:
        group = dict(group)
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
        groups.append(group)
    return {"state": state, "param_groups": groups}


@dataclass
class Checkpoint:
    """A verified checkpoint, loaded on the CPU."""

    path: Path
    model_state: dict[str, Any]
    optimizer_state: dict
    rng_state: dict[str, Any]
    trainer_state: dict[str, Any]

    @property
    def global_step(self) -> int:
        return int(self.trainer_state["global_step"])


def save_checkpoint(
    output_dir: str | Path,
    step: int,
    *,
    model_state: dict[str, Any],
    optimizer_state: dict,
    rng_state: dict[str, Any],
    trainer_state: dict[str, Any],
    keep_last: int = 0,
    training_window: TrainingWindow | None = None,
) -> Path:
    """Write ``output_dir/step-NNNNNNNN/`` atomically, then prune to the newest ``keep_last``.

    First removes the ``.step-NNNNNNNN.*.tmp`` folders (any step) that a killed run left in
    ``output_dir`` (:func:`genoforge.io.remove_stale_temps`: only those whose writer is gone).

    Args:
        model_state: full model state dict (CPU tensors).
        optimizer_state: full optimizer state dict keyed by parameter name
            (``torch.distributed.checkpoint.state_dict.get_optimizer_state_dict`` layout).
        rng_state: name -> uint8 tensor of generator states.
        trainer_state: JSON-ready loop state (must hold ``global_step``).
        training_window: written as ``training_window.json`` when given (module docstring).
    """
    from safetensors.torch import save_file

    target = Path(output_dir) / step_dir_name(step)
    remove_stale_temps(target, name_pattern=STEP_DIR.pattern.removeprefix("^").removesuffix("$"))
    weights, aliases = dedupe_shared(model_state)
    opt_tensors, opt_meta = flatten_optimizer_state(optimizer_state)
    with atomic_dir(target, overwrite=True) as tmp:
        save_file(weights, str(tmp / MODEL_FILE), metadata={"format": "pt"})
        save_file(opt_tensors, str(tmp / OPTIMIZER_FILE), metadata={"format": "pt"})
        save_file({k: v.contiguous() for k, v in rng_state.items()}, str(tmp / RNG_FILE))
        (tmp / OPTIMIZER_JSON).write_text(json.dumps(opt_meta, indent=1, default=_json_default) + "\n")
        (tmp / STATE_FILE).write_text(json.dumps(trainer_state, indent=2, default=_json_default) + "\n")
        names = [MODEL_FILE, OPTIMIZER_FILE, OPTIMIZER_JSON, RNG_FILE, STATE_FILE]
        if training_window is not None:
            write_training_window(tmp, training_window)
            names.append(TRAINING_WINDOW_FILE)
        files = {}
        for name in names:
            _fsync(tmp / name)
            files[name] = {"bytes": (tmp / name).stat().st_size, "crc32": _crc32(tmp / name)}
        manifest = {"format_version": FORMAT_VERSION, "global_step": step, "files": files, "aliases": aliases}
        with atomic_write(tmp / MANIFEST) as handle:
            json.dump(manifest, handle, indent=2)
            handle.write("\n")
    prune_checkpoints(output_dir, keep_last)
    return target


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def verify_checkpoint(path: str | Path) -> dict:
    """Check the manifest, sizes and checksums; returns the manifest.

    Raises:
        CheckpointError: anything missing, of an unknown version, or not matching its checksum.
    """
    path = Path(path)
    fix = "delete it and resume from an earlier one (--resume PATH), or start afresh without --resume"
    if not path.is_dir():
        raise CheckpointError(f"{path}: checkpoint directory not found; check the --resume path")
    manifest_path = path / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{manifest_path}: missing, so the checkpoint is incomplete; {fix}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{manifest_path}: unreadable ({exc}); {fix}") from exc
    version = manifest.get("format_version") if isinstance(manifest, dict) else None
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{manifest_path}: unknown checkpoint format version {version!r} (this genoforge reads "
            f"{FORMAT_VERSION}); resume with the genoforge version that wrote it"
        )
    listed = manifest.get("files", {})
    optional = [name for name in (TRAINING_WINDOW_FILE,) if name in listed]  # checked when recorded
    for name in (MODEL_FILE, OPTIMIZER_FILE, OPTIMIZER_JSON, RNG_FILE, STATE_FILE, *optional):
        entry = listed.get(name)
        file = path / name
        if entry is None or not file.is_file():
            raise CheckpointError(f"{file}: missing from the checkpoint; {fix}")
        size = file.stat().st_size
        if size != entry["bytes"]:
            raise CheckpointError(
                f"{file}: {size:,} bytes, but the checkpoint recorded {entry['bytes']:,} (truncated or "
                f"overwritten); {fix}"
            )
        if _crc32(file) != entry["crc32"]:
            raise CheckpointError(f"{file}: checksum mismatch (the file is corrupt); {fix}")
    return manifest


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Verify and load a checkpoint directory onto the CPU."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    manifest = verify_checkpoint(path)
    try:
        model_state = load_file(str(path / MODEL_FILE))
        opt_tensors = load_file(str(path / OPTIMIZER_FILE))
        rng_state = load_file(str(path / RNG_FILE))
        opt_meta = json.loads((path / OPTIMIZER_JSON).read_text())
        trainer_state = json.loads((path / STATE_FILE).read_text())
    except (SafetensorError, OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: cannot read the checkpoint ({exc}); delete it or pick another") from exc
    for alias, name in manifest.get("aliases", {}).items():
        model_state[alias] = model_state[name]
    return Checkpoint(
        path=path,
        model_state=model_state,
        optimizer_state=unflatten_optimizer_state(opt_tensors, opt_meta),
        rng_state=rng_state,
        trainer_state=trainer_state,
    )


def resolve_resume(resume: str, output_dir: str | Path) -> Path | None:
    """The checkpoint ``--resume`` names: "" -> None, "auto" -> newest in ``output_dir`` (or None),
    otherwise the given path (a ``step-*`` directory, or a run directory whose newest is used).

    Raises:
        CheckpointError: an explicit path that holds no checkpoint.
    """
    if not resume:
        return None
    if resume == "auto":
        return latest_checkpoint(output_dir)
    path = Path(resume)
    if (path / MANIFEST).exists() or STEP_DIR.match(path.name):
        return path
    newest = latest_checkpoint(path)
    if newest is None:
        raise CheckpointError(
            f"{path}: no checkpoint there (expected a step-NNNNNNNN directory); check the --resume path"
        )
    return newest


# ------------------------------------------------------------------------------ training window


def training_window_of(train_path: str | Path, shard) -> TrainingWindow:
    """The training window of ``shard`` (a PackedShard read from ``train_path``).

    From the bake's ``manifest.json`` beside the shard when it describes this shard (its
    ``outputs`` entry has the shard's name and sample count): the largest ``window_size`` among
    the shard's species and the largest overlap at that size. Otherwise from the shard itself:
    the longest ``window_end - window_start`` (a full window wherever a segment was long enough),
    overlap unknown.

    Raises:
        CheckpointError: the shard holds no sample (no window to record).
    """
    from genoforge.genes.manifest import MANIFEST_FILE

    train_path = Path(train_path)
    names = set(shard.species)
    manifest_path = train_path.parent / MANIFEST_FILE
    manifest: dict[str, Any] = {}
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        pass  # no usable manifest: the shard alone says enough (check_tokenizer_match reports bad ones)
    output = manifest.get("outputs", {}).get(train_path.name) if isinstance(manifest, dict) else None
    species = manifest.get("species", {}) if isinstance(output, dict) else {}
    if isinstance(output, dict) and output.get("samples") == len(shard) and isinstance(species, dict):
        table = {
            name: {"window_size": int(entry["window_size"]), "overlap": int(entry["overlap"])}
            for name, entry in sorted(species.items())
            if name in names and isinstance(entry, dict) and "window_size" in entry and "overlap" in entry
        }
        if table:
            size = max(entry["window_size"] for entry in table.values())
            overlap = max(entry["overlap"] for entry in table.values() if entry["window_size"] == size)
            return TrainingWindow(window_size=size, overlap=overlap, source="manifest", species=table)
    if len(shard) == 0:
        raise CheckpointError(f"{train_path}: holds no samples, so no training window to record; bake more data")
    lengths = shard.array("window_end") - shard.array("window_start")
    return TrainingWindow(window_size=int(lengths.max()), overlap=None, source="shards", species={})




def copy_gene_structure(train_path: str | Path, directory: str | Path) -> Path | None:
    """Copy the bake's ``gene_structure.json`` (beside the training shard) into ``directory``.

    The HMM decoder of ``predict --decoder hmm`` reads it from the model directory; a bake without
    one (none of the training species had a usable gene model) copies nothing.
    """
    import shutil

    from genoforge.genes.structure_set import GENE_STRUCTURE_FILE

    source = Path(train_path).parent / GENE_STRUCTURE_FILE
    if not source.is_file():
        return None
    target = Path(directory) / GENE_STRUCTURE_FILE
    shutil.copyfile(source, target)
    return target



