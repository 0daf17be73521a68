"""Loading DNABERT-2 (zhihan1996/DNABERT-2-117M layout) without ``trust_remote_code``.

Accepted ``--dnabert_path`` values:

* a local directory in the Hugging Face layout: ``config.json`` + ``pytorch_model.bin`` (read with
  ``torch.load(weights_only=True)``, no pickle code runs) or ``model.safetensors`` +
  ``tokenizer.json``. The state dict is that of DNABERT-2's ``BertForMaskedLM`` (SPEC.md
  section b): keys ``bert.embeddings.*``, ``bert.encoder.layer.{i}.*`` and ``cls.*``. We map the
  ``bert.*`` keys by name onto :class:`genoforge.model.encoder.DnabertEncoder`; unused keys
  (the MLM head ``cls.*``, token type row 1) are reported, missing ones refused.
* a directory holding only a tokenizer (e.g. from ``genoforge tokens train``): a randomly
  initialised encoder of the preset's shape over that tokenizer.
* a Hugging Face id (``owner/name``): the files are taken from the local cache, else downloaded
  with ``huggingface_hub.snapshot_download``; when that is impossible (offline, not installed,
  not found) a loud warning is printed and the encoder is a random one of the published
  DNABERT-2 shape over the bundled DNABERT-2 tokenizer.

``config.json`` is read with ``json`` directly (transformers' AutoConfig refuses its ``auto_map``
without remote code; SPEC.md section a).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from genoforge.errors import CheckpointError

CONFIG_FILE = "config.json"
BIN_FILE = "pytorch_model.bin"
SAFETENSORS_FILE = "model.safetensors"
TOKENIZER_FILE = "tokenizer.json"
HF_FILES = [CONFIG_FILE, BIN_FILE, SAFETENSORS_FILE, TOKENIZER_FILE, "tokenizer_config.json"]

# The published DNABERT-2-117M shape (SPEC.md section a), used when the hub is unreachable.
DNABERT2_SHAPE = {
    "encoder_hidden_size": 768,
    "encoder_layers": 12,
    "encoder_heads": 12,
    "encoder_intermediate_size": 3072,
    "encoder_layer_norm_eps": 1e-12,
    "encoder_dropout": 0.1,
}

_HF_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

# Our encoder parameter name <- DNABERT-2 key (without the "bert." prefix), per layer.
_LAYER_KEYS = {
    "qkv.weight": "attention.self.Wqkv.weight",
    "qkv.bias": "attention.self.Wqkv.bias",
    "attn_out.weight": "attention.output.dense.weight",
    "attn_out.bias": "attention.output.dense.bias",
    "attn_norm.weight": "attention.output.LayerNorm.weight",
    "attn_norm.bias": "attention.output.LayerNorm.bias",
    "gated.weight": "mlp.gated_layers.weight",
    "ffn_out.weight": "mlp.wo.weight",
    "ffn_out.bias": "mlp.wo.bias",
    "ffn_norm.weight": "mlp.layernorm.weight",
    "ffn_norm.bias": "mlp.layernorm.bias",
}
_TOP_KEYS = {
    "word_embeddings.weight": "embeddings.word_embeddings.weight",
    "embed_norm.weight": "embeddings.LayerNorm.weight",
    "embed_norm.bias": "embeddings.LayerNorm.bias",
}
_TOKEN_TYPE_KEY = "embeddings.token_type_embeddings.weight"


@dataclass
class EncoderSource:
    """Where the encoder (and the tokenizer it comes with) comes from.

    Attributes:
        kind: "checkpoint" (weights to load), "tokenizer" (random encoder over a given tokenizer)
            or "fallback" (hub unreachable: random DNABERT-2-shaped encoder, bundled tokenizer).
        tokenizer_file: the tokenizer.json to start from.
        shape: encoder fields of ModelConfig implied by the source ({} = use the preset's).
        weights_file: pytorch_model.bin or model.safetensors (kind "checkpoint").
        description: for messages.
    """

    kind: Literal["checkpoint", "tokenizer", "fallback"]
    tokenizer_file: Path
    shape: dict = field(default_factory=dict)
    weights_file: Path | None = None
    description: str = ""
    warnings: list[str] = field(default_factory=list)


def looks_like_hf_id(spec: str) -> bool:
    return bool(_HF_ID.match(spec)) and not spec.startswith((".", "/", "~"))


def resolve_encoder_source(spec: str | Path, offline: bool | None = None) -> EncoderSource:
    """Decide what ``--dnabert_path`` refers to (see the module docstring).

    Args:
        spec: a local directory or a Hugging Face id.
        offline: never try the network (default: the ``HF_HUB_OFFLINE`` environment variable).

    Raises:
        CheckpointError: a local directory that is neither a checkpoint nor a tokenizer directory,
            or a path that does not exist and is not a Hugging Face id.
    """
    path = Path(spec).expanduser()
    if path.exists():
        return _local_source(path)
    spec = str(spec)
    if not looks_like_hf_id(spec):
        raise CheckpointError(
            f"{spec}: --dnabert_path is neither an existing directory nor a Hugging Face id "
            "(owner/name); check the path"
        )
    if offline is None:
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0", "false", "False")
    snapshot, problem = _hub_snapshot(spec, offline)
    if snapshot is not None:
        source = _local_source(snapshot)
        source.description = f"{spec} (Hugging Face, {snapshot})"
        return source
    from genoforge.tokenizer.core import dnabert2_tokenizer_path

    message = (
        f"could not get {spec} from the Hugging Face hub ({problem}); FALLING BACK to a RANDOMLY "
        "INITIALISED encoder of the DNABERT-2 shape over the bundled DNABERT-2 tokenizer. The model "
        "will not have pretrained DNA knowledge. Download the checkpoint (e.g. `hf download "
        f"{spec}`) and pass its directory to --dnabert_path to use the pretrained weights."
    )
    return EncoderSource(
        kind="fallback",
        tokenizer_file=dnabert2_tokenizer_path(),
        shape=dict(DNABERT2_SHAPE),
        description=f"{spec} (unavailable: random DNABERT-2-shaped encoder)",
        warnings=[message],
    )


def _hub_snapshot(repo_id: str, offline: bool) -> tuple[Path | None, str]:
    """A local snapshot dir of ``repo_id`` (cache first, then download), or None and why not."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        return None, "huggingface_hub is not installed"
    problem = ""
    attempts = [True] if offline else [True, False]
    for local_only in attempts:
        try:
            folder = snapshot_download(repo_id, allow_patterns=HF_FILES, local_files_only=local_only)
        except Exception as exc:  # noqa: BLE001 - any hub failure means "use the fallback"
            problem = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".strip()
            continue
        path = Path(folder)
        if (path / CONFIG_FILE).is_file() and _weights_file(path) is not None:
            return path, ""
        problem = "the snapshot has no config.json with weights"
    if offline and not problem:
        problem = "offline"
    return None, problem or "offline (HF_HUB_OFFLINE)"


def _weights_file(directory: Path) -> Path | None:
    for name in (SAFETENSORS_FILE, BIN_FILE):
        if (directory / name).is_file():
            return directory / name
    return None


def _local_source(path: Path) -> EncoderSource:
    if path.is_file():
        if path.name.endswith(".json"):
            return EncoderSource(kind="tokenizer", tokenizer_file=path, description=f"tokenizer {path}")
        raise CheckpointError(f"{path}: --dnabert_path must be a directory (or a tokenizer.json)")
    weights = _weights_file(path)
    tokenizer = path / TOKENIZER_FILE
    if weights is None:
        if tokenizer.is_file():
            return EncoderSource(kind="tokenizer", tokenizer_file=tokenizer, description=f"tokenizer dir {path}")
        raise CheckpointError(
            f"{path}: no {BIN_FILE} / {SAFETENSORS_FILE} and no {TOKENIZER_FILE}; pass a DNABERT-2 "
            "checkpoint directory or a tokenizer directory from `genoforge tokens train`"
        )
    if not (path / CONFIG_FILE).is_file():
        raise CheckpointError(f"{path}: has {weights.name} but no {CONFIG_FILE}; copy the checkpoint's config.json")
    if not tokenizer.is_file():
        raise CheckpointError(f"{path}: has weights but no {TOKENIZER_FILE}; copy the checkpoint's tokenizer.json")
    return EncoderSource(
        kind="checkpoint",
        tokenizer_file=tokenizer,
        shape=read_encoder_shape(path / CONFIG_FILE),
        weights_file=weights,
        description=f"checkpoint {path}",
    )


def read_encoder_shape(config_file: Path) -> dict:
    """Encoder fields of ModelConfig from a DNABERT-2 config.json."""
    try:
        raw = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{config_file}: cannot read checkpoint config ({exc})") from exc
    required = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
    missing = [key for key in required if key not in raw]
    if missing:
        raise CheckpointError(f"{config_file}: missing {', '.join(missing)}; is this a BERT config.json?")
    return {
        "encoder_hidden_size": int(raw["hidden_size"]),
        "encoder_layers": int(raw["num_hidden_layers"]),
        "encoder_heads": int(raw["num_attention_heads"]),
        "encoder_intermediate_size": int(raw["intermediate_size"]),
        "encoder_layer_norm_eps": float(raw.get("layer_norm_eps", 1e-12)),
        "encoder_dropout": float(raw.get("hidden_dropout_prob", 0.1)),
    }


def read_state_dict(weights_file: Path) -> dict[str, Tensor]:
    """A flat name -> tensor dict from pytorch_model.bin (weights_only) or model.safetensors."""
    try:
        if weights_file.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(weights_file))
        else:
            state = torch.load(weights_file, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - corrupt/unsafe files all become one clear error
        raise CheckpointError(f"{weights_file}: cannot read weights ({type(exc).__name__}: {exc})") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(f"{weights_file}: not a flat state dict of tensors")
    return state


def map_dnabert_state(state: dict[str, Tensor], n_layers: int, source: str) -> tuple[dict[str, Tensor], list[str]]:
    """DNABERT-2 keys -> our encoder's parameter names (without the ``encoder.`` prefix).

    Returns:
        (mapped state, unused checkpoint keys).

    Raises:
        CheckpointError: keys our encoder needs are missing (all of them are named).
    """
    prefix = "bert." if any(key.startswith("bert.") for key in state) else ""
    wanted: dict[str, str] = {ours: prefix + theirs for ours, theirs in _TOP_KEYS.items()}
    for i in range(n_layers):
        for ours, theirs in _LAYER_KEYS.items():
            wanted[f"layers.{i}.{ours}"] = f"{prefix}encoder.layer.{i}.{theirs}"
    token_type_key = prefix + _TOKEN_TYPE_KEY
    missing = [theirs for theirs in [*wanted.values(), token_type_key] if theirs not in state]
    if missing:
        shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        raise CheckpointError(
            f"{source}: checkpoint lacks {len(missing)} key(s) the DNABERT-2 encoder needs: {shown}; "
            "is this a DNABERT-2 (MosaicBERT) checkpoint with the configured number of layers?"
        )
    mapped = {ours: state[theirs] for ours, theirs in wanted.items()}
    mapped["token_type_embedding"] = state[token_type_key][0]
    used = set(wanted.values()) | {token_type_key}
    unused = sorted(key for key in state if key not in used)
    if state[token_type_key].shape[0] > 1:
        unused.append(f"{token_type_key}[1:] (token types other than 0 are never used)")
    return mapped, unused


def load_encoder_weights(model, state: dict[str, Tensor], source: str) -> list[str]:  # model: GenoforgeModel
    """Copy a DNABERT-2 state dict into ``model.encoder``; returns the unused keys.

    The word embedding may have more rows in our model (the added token inventory): the
    checkpoint's rows are copied, the others keep their initialisation.

    Raises:
        CheckpointError: missing keys, or shapes that do not match the configured encoder.
    """
    encoder = model.encoder
    mapped, unused = map_dnabert_state(state, len(encoder.layers), source)
    own = dict(encoder.named_parameters())
    with torch.no_grad():
        for name, tensor in mapped.items():
            target = own[name]
            if name == "word_embeddings.weight":
                if tensor.shape[1] != target.shape[1] or tensor.shape[0] > target.shape[0]:
                    raise CheckpointError(
                        f"{source}: word embeddings {tuple(tensor.shape)} do not fit the model's "
                        f"{tuple(target.shape)} (the tokenizer must extend the checkpoint's vocabulary)"
                    )
                target[: tensor.shape[0]].copy_(tensor)
                continue
            if tensor.shape != target.shape:
                raise CheckpointError(
                    f"{source}: {name} has shape {tuple(tensor.shape)}, the encoder expects {tuple(target.shape)}"
                )
            target.copy_(tensor)
    return unused
