"""Resize a model's token embeddings to a tokenizer (``genoforge tokens resize``).

Rows of the encoder word embedding and the decoder token embedding (and the output head when it
is not tied) are kept for every old id; new rows are drawn from N(0, init_embed_std) with a fixed
seed, so a resize is reproducible. Tying is preserved (a tied head is never stored separately).
Shrinking drops the highest ids and needs ``allow_shrink``; it is refused if it would drop a
coordinate-number token the bp-offset signal uses.
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from genoforge.errors import CheckpointError, TokenizerError
from genoforge.genes import inventory
from genoforge.io import atomic_dir
from genoforge.model.io import TIED_HEAD_KEY, read_model_config, read_weights, write_model_config, write_weights

EMBEDDING_KEYS = ("encoder.word_embeddings.weight", "decoder.embed_tokens.weight")
RESIZE_SEED = 20240601


@dataclass
class ResizeReport:
    model_dir: Path
    old_vocab_size: int
    new_vocab_size: int
    tokenizer_copied: bool

    @property
    def changed(self) -> bool:
        return self.old_vocab_size != self.new_vocab_size or self.tokenizer_copied


def resize_model(model_dir: str | Path, tokenizer: str | Path | None = None, allow_shrink: bool = False) -> ResizeReport:
    """Resize the embeddings in ``model_dir`` to ``tokenizer`` (default: the model's own).

    Args:
        tokenizer: a tokenizer.json or a directory holding one; when it is not the model's own
            tokenizer its files are copied into the model directory.
        allow_shrink: permit a smaller vocabulary (drops the rows of the highest ids).

    Raises:
        CheckpointError / TokenizerError: unreadable model or tokenizer, a shrink without
            ``allow_shrink``, or a tokenizer whose coordinate tokens moved.
    """
    from genoforge.tokenizer.core import GenoTokenizer, resolve_tokenizer_file

    model_dir = Path(model_dir)
    config = read_model_config(model_dir)
    tok_file = resolve_tokenizer_file(tokenizer if tokenizer is not None else model_dir)
    tok = GenoTokenizer.load(tok_file)
    own_file = model_dir / "tokenizer.json"
    copy_tokenizer = not (own_file.exists() and own_file.resolve() == tok_file.resolve())
    new_size, old_size = tok.vocab_size, config.vocab_size
    if new_size < old_size and not allow_shrink:
        raise CheckpointError(
            f"{tok_file}: tokenizer has {new_size} tokens, the model {old_size}; shrinking drops embedding "
            "rows: pass --allow_shrink if that is intended"
        )
    state = read_weights(model_dir)
    _check_coordinate_ids(state, tok, tok_file)
    if new_size == old_size and not copy_tokenizer:
        return ResizeReport(model_dir, old_size, new_size, tokenizer_copied=False)

    generator = torch.Generator().manual_seed(RESIZE_SEED)
    keys = list(EMBEDDING_KEYS) + ([] if config.tie_weights else [TIED_HEAD_KEY])
    for key in keys:
        if key not in state:
            raise CheckpointError(f"{model_dir}: weights lack {key}; is this a genoforge model directory?")
        old = state[key]
        if new_size <= old.shape[0]:
            state[key] = old[:new_size].contiguous()
            continue
        extra = torch.empty(new_size - old.shape[0], old.shape[1], dtype=torch.float32)
        extra.normal_(0.0, config.init_embed_std, generator=generator)
        state[key] = torch.cat([old, extra.to(old.dtype)]).contiguous()
    new_config = dataclasses.replace(config, vocab_size=new_size, pad_token_id=tok.pad_id)
    # Weights, config and tokenizer must change together: build the resized directory beside the
    # old one and swap it in whole, so an interruption leaves the old model intact.
    with atomic_dir(model_dir, overwrite=True) as staging:
        for entry in model_dir.iterdir():
            if entry.name == "model.safetensors":
                continue  # rewritten below
            if entry.is_dir():
                shutil.copytree(entry, staging / entry.name)
            else:
                shutil.copy2(entry, staging / entry.name)
        write_weights(staging / "model.safetensors", state)
        write_model_config(staging, new_config)
        if copy_tokenizer:
            tok.save(staging)
    return ResizeReport(model_dir, old_size, new_size, tokenizer_copied=copy_tokenizer)


def _check_coordinate_ids(state: dict[str, torch.Tensor], tok, tok_file: Path) -> None:
    ids = state.get("bp_digit_token_ids")
    if ids is None:
        return
    expected = []
    for number in inventory.NUMBERS:
        try:
            expected.append(tok.token_to_id(number))
        except TokenizerError:
            raise TokenizerError(
                f"tokenizer lacks coordinate token {number!r} the model's bp-offset signal uses; "
                "use the model's own tokenizer (or one extended from it with `genoforge tokens append`)",
                tok_file,
            ) from None
    if torch.tensor(expected, dtype=torch.long).ne(ids.long()).any():
        raise TokenizerError(
            "coordinate tokens '0'..'999' have other ids than in the model; this tokenizer is not an "
            "extension of the model's (append tokens, never rebuild the vocabulary)",
            tok_file,
        )
