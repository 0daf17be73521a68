"""``genoforge model init``: build a fresh model directory from a DNABERT-2 encoder (or a tokenizer).

Steps:

1. resolve ``--dnabert_path`` (genoforge.model.dnabert): checkpoint, tokenizer-only directory, or
   Hugging Face id (falling back, loudly, to a random DNABERT-2-shaped encoder when offline);
2. copy the source tokenizer and add the built-in token inventory (+ ``--new_tokens_file``), so
   ``tokens append`` later finds nothing missing and ``tokens resize`` has nothing to do;
3. resolve the configuration: defaults < preset < config file < flags; the encoder shape comes
   from the checkpoint (or the published DNABERT-2 shape), the vocabulary from the tokenizer;
4. initialise every weight per the ``init_*_std`` fields, then copy the pretrained encoder in;
5. write config.json, model.safetensors, the tokenizer files and ``resolved_config.json`` into
   ``save_dir`` as one atomic directory.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from contextlib import ExitStack
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from genoforge import console
from genoforge.config import (
    SOURCE_PRESET,
    config_section,
    config_to_dict,
    load_toml_config,
    resolve_config,
    write_resolved_config,
)
from genoforge.errors import ConfigError
from genoforge.io import atomic_dir
from genoforge.model.config import ModelConfig, config_fields, preset
from genoforge.model.info import summary

RESOLVED_CONFIG_FILE = "resolved_config.json"
# Keys a --config file may hold besides ModelConfig fields.
INIT_KEYS = frozenset({"preset", "dnabert_path", "new_tokens_file"})


@dataclass
class InitResult:
    save_dir: Path
    config: ModelConfig
    source: str
    source_kind: str
    added_tokens: int
    unused_keys: list[str]
    info: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def flag_warnings(config: ModelConfig, given: Mapping[str, Any]) -> list[str]:
    """Warnings for flags that were given but have no effect in this configuration."""
    out = []
    if not config.use_moe:
        for name in ("num_experts", "moe_top_k", "init_moe_router_std", "moe_aux_loss_coef", "moe_z_loss_coef"):
            if given.get(name) is not None:
                out.append(f"--{name} has no effect without --use_moe (the decoder FFN is dense)")
    if config.num_latents == 0 and given.get("compressor_layers") is not None:
        out.append("--compressor_layers has no effect with --num_latents 0 (no compressor)")
    return out


def resolve_init_config(
    flags: Mapping[str, Any],
    preset_name: str | None,
    config_file: Path | None,
    encoder_shape: Mapping[str, Any],
) -> tuple[ModelConfig, dict[str, str], dict[str, Any]]:
    """defaults < preset < config file < flags, then the encoder shape of the source.

    Returns:
        (config, where each field came from, the config file's non-model keys)
    """
    file_table: dict[str, Any] = {}
    if config_file is not None:
        file_table = config_section(load_toml_config(config_file), "model")
    name = preset_name or file_table.get("preset") or "seed"
    base = preset(name)
    model_flags = {k: v for k, v in flags.items() if k in set(config_fields())}
    config, sources = resolve_config(
        base, file_table, model_flags, file_path=config_file, ignore_keys=INIT_KEYS, base_source=SOURCE_PRESET
    )
    # The checkpoint decides the encoder's shape; a conflicting explicit value is an error.
    for key, value in encoder_shape.items():
        if sources.get(key) not in (SOURCE_PRESET, None) and getattr(config, key) != value:
            raise ConfigError(
                f"{key} = {getattr(config, key)} ({sources[key]}) conflicts with the encoder checkpoint's {value}; "
                "remove it (the checkpoint decides the encoder shape)"
            )
    config = dataclasses.replace(config, **encoder_shape)
    for key in encoder_shape:
        sources[key] = "encoder checkpoint"
    extras = {k: v for k, v in file_table.items() if k in INIT_KEYS}
    extras["preset"] = name
    return config, sources, extras


def init_model(
    save_dir: str | Path,
    dnabert_path: str | Path | None = None,
    flags: Mapping[str, Any] | None = None,
    preset_name: str | None = None,
    config_file: str | Path | None = None,
    new_tokens_file: str | Path | None = None,
    overwrite: bool = False,
    seed: int = 0,
    dry_run: bool = False,
) -> InitResult:
    """Create a model directory (see the module docstring).

    Args:
        save_dir: the model directory to create (refused if it exists, unless ``overwrite``).
        dnabert_path: checkpoint dir, tokenizer dir or Hugging Face id (may come from the config file).
        flags: ModelConfig fields given on the command line (None values = not given).
        preset_name: debug, small or seed (default seed, or the config file's ``preset``).
        config_file: a TOML file with ModelConfig keys (top level or under [model]).
        new_tokens_file: extra tokens (one per line) added after the built-in inventory.
        seed: torch seed for the random initialisation.
        dry_run: resolve the configuration and count parameters; build and write nothing.

    Raises:
        GenoforgeError subclasses for every input problem; nothing is left at ``save_dir``.
    """
    from genoforge.model.dnabert import load_encoder_weights, read_state_dict, resolve_encoder_source
    from genoforge.model.io import build_empty_model, save_model
    from genoforge.tokenizer.core import GenoTokenizer
    from genoforge.tokenizer.edit import ensure_builtin_tokens, read_tokens_file
    from genoforge.genes.inventory import COORD_SEP, NUMBERS

    flags = dict(flags or {})
    config_path = Path(config_file) if config_file is not None else None
    file_extras: dict[str, Any] = {}
    if config_path is not None:
        file_extras = {k: v for k, v in config_section(load_toml_config(config_path), "model").items() if k in INIT_KEYS}
    dnabert_path = dnabert_path or file_extras.get("dnabert_path")
    if not dnabert_path:
        raise ConfigError("no encoder given: pass --dnabert_path (a DNABERT-2 dir, a tokenizer dir or a HF id)")
    new_tokens_file = new_tokens_file or file_extras.get("new_tokens_file")
    save_dir = Path(save_dir)
    if save_dir.exists() and not overwrite and not dry_run:
        raise ConfigError(f"{save_dir}: already exists; pass --overwrite or choose another --save_dir")

    source = resolve_encoder_source(str(dnabert_path))
    warnings = list(source.warnings)
    for message in source.warnings:
        console.warn(message)
    shape = dict(source.shape)
    requested_preset = preset_name or file_extras.get("preset")
    if source.kind == "fallback" and requested_preset in ("debug", "small"):
        shape = {}  # a tiny preset gets its own tiny encoder rather than a 117M random one
    extra_tokens = read_tokens_file(new_tokens_file).tokens if new_tokens_file else []

    with ExitStack() as stack:
        if dry_run:  # the tokenizer is still built (it decides the vocabulary), then discarded
            staging = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="genoforge-dry-run-")))
        else:
            staging = stack.enter_context(atomic_dir(save_dir, overwrite=overwrite))
        shutil.copyfile(source.tokenizer_file, staging / "tokenizer.json")
        report = ensure_builtin_tokens(staging, extra_tokens)
        tokenizer = GenoTokenizer.load(staging)
        flags["vocab_size"] = tokenizer.vocab_size
        flags["pad_token_id"] = tokenizer.pad_id
        config, sources, extras = resolve_init_config(flags, requested_preset, config_path, shape)
        for message in flag_warnings(config, flags):
            console.warn(message)
            warnings.append(message)

        info = summary(config)
        if dry_run:
            return InitResult(save_dir, config, source.description, source.kind, len(report.added), [], info, warnings)
        console.info(f"Building the {extras['preset']}-preset model ({source.description}) ...")
        torch.manual_seed(seed)
        model = build_empty_model(config)
        model.init_weights()
        model.bp_digit_token_ids.copy_(torch.tensor([tokenizer.token_to_id(n) for n in NUMBERS]))
        if model.pointer is not None:
            model.coord_sep_token_id.fill_(tokenizer.token_to_id(COORD_SEP))
        unused: list[str] = []
        if source.kind == "checkpoint":
            assert source.weights_file is not None
            state = read_state_dict(source.weights_file)
            unused = load_encoder_weights(model, state, str(source.weights_file))
            if unused:
                console.info(f"Unused checkpoint keys ({len(unused)}): {', '.join(unused)}")
        save_model(model, staging, tokenizer)
        write_resolved_config(
            staging / RESOLVED_CONFIG_FILE,
            {
                "command": "genoforge model init",
                "encoder_source": source.description,
                "encoder_source_kind": source.kind,
                "new_tokens_file": str(new_tokens_file) if new_tokens_file else None,
                "preset": extras["preset"],
                "seed": seed,
                "model": config_to_dict(config),
                "sources": sources,
                "unused_checkpoint_keys": unused,
                "warnings": warnings,
            },
        )
    return InitResult(
        save_dir=save_dir,
        config=config,
        source=source.description,
        source_kind=source.kind,
        added_tokens=len(report.added),
        unused_keys=unused,
        info=info,
        warnings=warnings,
    )


