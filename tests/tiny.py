"""The tiny-model tester: the one place that builds a cheap model, its tokenizer and a batch.

Models are the debug preset (genoforge/model/config.py: odd, mutually distinct sizes, so a
transposed dimension crashes instead of broadcasting; a forward pass takes milliseconds on a CPU)
unless a test names another preset. Two vocabularies:

* synthetic, no tokenizer files: ``VOCAB`` ids, of which 100..1099 (``DIGITS``) play the
  coordinate numbers "0".."999"; :func:`packed_batch` fills rows of packed documents with random
  ids of it;
* real: the bundled DNABERT-2 BPE plus the built-in token inventory, what `genoforge model init`
  writes (:func:`write_tokenizer_dir`); pass the loaded tokenizer to :func:`tiny_model`, which
  sizes the model to it and reads the digit ids from it.

:func:`build_debug_model` and :func:`build_debug_model_dir` give the random model the decoding and predict
tests use: one that writes targets of different lengths for different windows.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from genoforge.model.config import ModelConfig
    from genoforge.model.model import GenoforgeModel
    from genoforge.tokenizer.core import GenoTokenizer

# The synthetic vocabulary: ids 100..1099 are the numbers "0".."999" (see digit_ids).
VOCAB = 1200
DIGIT_OFFSET = 100


def synthetic_digits() -> torch.Tensor:
    """The digit ids of the synthetic vocabulary: id 100 + n is the number n (0..999)."""
    import torch

    return torch.arange(DIGIT_OFFSET, DIGIT_OFFSET + 1000)


def digit_ids(tokenizer: GenoTokenizer) -> torch.Tensor:
    """The token ids of the numbers "0".."999" in ``tokenizer`` (the model's bp-digit table)."""
    import torch

    return torch.tensor([tokenizer.token_to_id(str(i)) for i in range(1000)])


def write_tokenizer_dir(directory: Path) -> Path:
    """``directory``/tokenizer.json: the bundled DNABERT-2 BPE plus the built-in token inventory
    (what `genoforge model init` gives). Creates ``directory`` if needed."""
    from genoforge.tokenizer.core import dnabert2_tokenizer_path
    from genoforge.tokenizer.edit import ensure_builtin_tokens

    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(dnabert2_tokenizer_path(), directory / "tokenizer.json")
    ensure_builtin_tokens(directory)
    return directory


def tiny_config(tokenizer: GenoTokenizer | None = None, *, preset_name: str = "debug", **changes) -> ModelConfig:
    """The preset's config sized to ``tokenizer`` (its vocabulary and pad id), or to the synthetic
    ``VOCAB`` without one; ``changes`` override any field, the vocabulary's included."""
    from genoforge.model.config import preset

    sizes = {"vocab_size": VOCAB} if tokenizer is None else {"vocab_size": tokenizer.vocab_size,
                                                              "pad_token_id": tokenizer.pad_id}
    return dataclasses.replace(preset(preset_name), **{**sizes, **changes})


def tiny_model(tokenizer: GenoTokenizer | None = None, *, seed: int | None = 0, digits: bool = True,
               init_weights: bool = True, preset_name: str = "debug", **changes) -> GenoforgeModel:
    """A random model of :func:`tiny_config` (same arguments), in training mode.

    Args:
        seed: ``torch.manual_seed`` before the model is built (None: the global generator as is).
        digits: give the model its bp-digit ids (the tokenizer's, else ``synthetic_digits``);
            False builds it without (all zeros), as ``GenoforgeModel(config)`` does.
        init_weights: run ``model.init_weights()`` (the initialisation `model init` uses).
    """
    import torch

    from genoforge.model.model import GenoforgeModel

    config = tiny_config(tokenizer, preset_name=preset_name, **changes)
    if seed is not None:
        torch.manual_seed(seed)
    table = None if not digits else synthetic_digits() if tokenizer is None else digit_ids(tokenizer)
    model = GenoforgeModel(config, table)
    if init_weights:
        model.init_weights()
    if tokenizer is not None and model.pointer is not None:
        from genoforge.genes.inventory import COORD_SEP

        model.coord_sep_token_id.fill_(tokenizer.token_to_id(COORD_SEP))
    return model


def packed_batch(enc_docs, dec_docs, seed: int = 0, vocab_size: int = VOCAB) -> dict[str, torch.Tensor]:
    """A batch of the synthetic vocabulary: rows of packed documents.

    ``enc_docs[b]`` / ``dec_docs[b]`` is ``(lengths, pad)``: each document's length in row b, then
    ``pad`` positions of padding (document -1, label -100). Encoder bp offsets grow by 1..6 per
    token from a random start per document.
    """
    import torch

    gen = torch.Generator().manual_seed(seed)

    def layout(rows):
        length = max(sum(lengths) + pad for lengths, pad in rows)
        doc = torch.full((len(rows), length), -1, dtype=torch.int32)
        for b, (lengths, _) in enumerate(rows):
            start = 0
            for d, n in enumerate(lengths):
                doc[b, start : start + n] = d
                start += n
        return doc

    input_doc, decoder_doc = layout(enc_docs), layout(dec_docs)
    input_ids = torch.randint(5, 90, input_doc.shape, generator=gen)
    steps = torch.randint(1, 7, input_doc.shape, generator=gen)
    input_bp = torch.zeros(input_doc.shape, dtype=torch.int32)
    for b in range(input_doc.shape[0]):
        start = 0
        for s in range(input_doc.shape[1]):
            if s == 0 or input_doc[b, s] != input_doc[b, s - 1]:
                start = int(torch.randint(0, 30000, (1,), generator=gen))
            input_bp[b, s] = start
            start += int(steps[b, s])
    decoder_ids = torch.randint(0, vocab_size, decoder_doc.shape, generator=gen)
    labels = torch.randint(0, vocab_size, decoder_doc.shape, generator=gen)
    labels[decoder_doc < 0] = -100
    input_ids[input_doc < 0] = 3
    decoder_ids[decoder_doc < 0] = 3
    return dict(input_ids=input_ids, input_doc=input_doc, input_bp=input_bp,
                decoder_ids=decoder_ids, decoder_doc=decoder_doc, labels=labels)


def build_debug_model(tokenizer: GenoTokenizer, seed: int = 0, **changes) -> GenoforgeModel:
    """A random debug-preset model (``changes`` override the preset) that writes targets of
    different lengths for different windows."""
    import torch

    model = tiny_model(tokenizer, seed=seed, **changes)
    # A freshly initialised decoder mostly follows its input token (its embeddings are read
    # scaled by sqrt(D)) and barely its window, so a random model would write the same target
    # for every window, often <eos> at once. For these tests it must write targets of different
    # lengths for different windows: point <eos>'s (tied) row away from <bos>'s and give the
    # cross-attention a strong say, so rows finish at different steps and the ring buffer wraps.
    with torch.no_grad():
        table = model.decoder.lm_head.weight
        table[tokenizer.eos_id] -= table[tokenizer.bos_id]
        if model.compressor is not None:
            model.compressor.read.attn.o_proj.weight.mul_(30.0)
        for layer in model.decoder.layers:
            layer.cross_attn.q_proj.weight.mul_(4.0)
            layer.cross_attn.k_proj.weight.mul_(4.0)
            layer.cross_attn.o_proj.weight.mul_(30.0)
        if model.pointer is not None:
            # Coordinates from the window's own bases, not a length prior shared by all windows.
            model.pointer.query_proj.weight.mul_(30.0)
            model.pointer.distance_proj.weight.zero_()
    return model


def build_debug_model_dir(directory: Path, seed: int = 0, **changes) -> Path:
    """A model directory (model init's layout) holding a :func:`build_debug_model` and its tokenizer
    (``changes`` override the preset)."""
    from genoforge.model.io import save_model
    from genoforge.tokenizer.core import GenoTokenizer

    directory.mkdir(parents=True)
    write_tokenizer_dir(directory)
    tokenizer = GenoTokenizer.load(directory)
    save_model(build_debug_model(tokenizer, seed, **changes), directory, tokenizer)
    return directory
