"""The model can learn what only its input tells it.

An earlier project with this recipe trained to a plausible loss and produced empty predictions:
its decoder never used the DNA. This test gives the debug model K windows of random DNA whose
targets differ only in their coordinates. A decoder that ignores its input cannot do better, at
the first coordinate token, than guessing among the K values (cross-entropy ln K); one that reads
its window (encoder -> compressor -> cross-attention) fits every window's own target, so greedy
decoding writes exactly that target. Both with the latent compressor and without it. Like any
encoder-decoder, the model first learns the targets' common shape and only then reads its input,
so the run is a few hundred steps long.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
import torch

from genoforge.genes.target import WindowAnnotation, WindowTranscript, encode_target

from tests.tiny import tiny_model, write_tokenizer_dir

K_WINDOWS = 4
WINDOW_BP = 240
# Measured on this task (2026-11-27): both variants fit every window by ~300 steps. Before the
# compressor's latents started from chunk means, the compressor variant still sat at ln K after
# 400 steps, and so does any model whose decoder cannot see its window.
STEPS = 400


def _windows(tokenizer) -> tuple[list[list[int]], list[list[int]]]:
    """K random windows; window k's gene starts at 20 + 37k (only the input says which)."""
    return _windows_and_dna(tokenizer)[:2]


def _windows_and_dna(tokenizer) -> tuple[list[list[int]], list[list[int]], list[str]]:
    rng = random.Random(7)
    inputs, targets, sequences = [], [], []
    for k in range(K_WINDOWS):
        dna = "".join(rng.choice("ACGT") for _ in range(WINDOW_BP))
        sequences.append(dna)
        start = 20 + 37 * k
        gene = WindowTranscript(strand="+", biotype="protein_coding", gene=0, partial=".",
                                exons=((start, start + 60),), cds=(start, start + 60), cds_phase=0)
        inputs.append(tokenizer.encode_dna(dna))
        targets.append(tokenizer.encode_target(encode_target(WindowAnnotation(records=(gene,)))))
    return inputs, targets, sequences


def _batch(tokenizer, inputs, targets) -> dict:
    """One window per row, right-padded: the model batch of docs/architecture.md."""
    bp = tokenizer.bp_lengths()
    s_len = max(len(x) for x in inputs)
    t_len = max(len(t) for t in targets) - 1
    rows = len(inputs)
    batch = {
        "input_ids": torch.full((rows, s_len), tokenizer.pad_id, dtype=torch.long),
        "input_doc": torch.full((rows, s_len), -1, dtype=torch.int32),
        "input_bp": torch.zeros((rows, s_len), dtype=torch.int32),
        "decoder_ids": torch.full((rows, t_len), tokenizer.pad_id, dtype=torch.long),
        "decoder_doc": torch.full((rows, t_len), -1, dtype=torch.int32),
        "labels": torch.full((rows, t_len), -100, dtype=torch.long),
    }
    for r, (x, t) in enumerate(zip(inputs, targets)):
        batch["input_ids"][r, : len(x)] = torch.tensor(x)
        batch["input_doc"][r, : len(x)] = 0
        offsets = [0]
        for token in x[:-1]:
            offsets.append(offsets[-1] + int(bp[token]))
        batch["input_bp"][r, : len(x)] = torch.tensor(offsets, dtype=torch.int32)
        batch["decoder_ids"][r, : len(t) - 1] = torch.tensor(t[:-1])
        batch["decoder_doc"][r, : len(t) - 1] = 0
        batch["labels"][r, : len(t) - 1] = torch.tensor(t[1:])
    return batch


@pytest.mark.parametrize(("num_latents", "pointer_dim"), [(7, 0), (0, 0), (7, 11)],
                         ids=["compressor", "no-compressor", "pointer"])
def test_the_decoder_learns_what_only_the_input_says(tmp_path: Path, num_latents: int, pointer_dim: int) -> None:
    """``pointer``: coordinates come from the coordinate pointer, which reads the window's bases
    through the per-base head's features (a pointer that ignored them would sit at ln K too)."""
    from genoforge.genes.classes import encode_bases
    from genoforge.inference.stream import decode_windows
    from genoforge.model.base_inputs import base_fields
    from genoforge.tokenizer.core import GenoTokenizer

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        tokenizer = GenoTokenizer.load(write_tokenizer_dir(tmp_path / "tok"))
        # No ordinal smoothing: its spread mass would set a floor under the plain CE checked here.
        model = tiny_model(tokenizer, seed=0, num_latents=num_latents, decoder_dropout=0.0,
                           pointer_dim=pointer_dim, pointer_label_smoothing=0.0)
        inputs, targets, sequences = _windows_and_dna(tokenizer)
        batch = _batch(tokenizer, inputs, targets)
        if pointer_dim:
            width = batch["input_ids"].shape[1]
            fields = base_fields([encode_bases(dna) for dna in sequences], inputs,
                                 [r * width for r in range(K_WINDOWS)], tokenizer.bp_lengths())
            batch.update({name: torch.from_numpy(value) for name, value in fields.items()})
        # The first label where the K targets differ: the gene start's low coordinate token.
        labels = batch["labels"]
        differs = [(labels[:, j] != labels[0, j]).any().item() for j in range(labels.shape[1])]
        first = differs.index(True)

        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
        model.train()
        for _ in range(STEPS):
            optimizer.zero_grad()
            out = model(batch)
            (out.loss + 0.01 * out.aux_loss).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            out = model(batch)
        if pointer_dim:
            # Ignoring the input, the mean over the coordinate digits is at best ln K / 2 (the hi
            # digits are all 0; each lo digit a uniform guess among K).
            assert out.num_pointer_labels == 8 * K_WINDOWS
            ce_first = out.pointer_loss.item()
        else:
            ce_first = torch.nn.functional.cross_entropy(out.logits[:, first], labels[:, first]).item()
        # Ignoring the input, the best possible here is ln K (a uniform guess among the K starts).
        assert ce_first < 0.1 * math.log(K_WINDOWS), f"CE at the first differing token {ce_first:.3f}"
        decoded = decode_windows(model, tokenizer, inputs, [WINDOW_BP] * K_WINDOWS, max_new_tokens=64)
        assert [p.token_ids for p in decoded] == targets
    finally:
        torch.set_num_threads(threads)
