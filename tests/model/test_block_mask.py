"""FlexAttention block masks built from document ranges (no full-grid predicate evaluation).

``MaskSpec.block_mask`` classifies each (query block, key block) pair as skipped, partial or full
from per-block document-id ranges and block positions. Skipping a block that holds an allowed pair
would silently drop attention; calling a block full that holds a forbidden pair would leak across
documents or through the causal mask. Both are checked against the materialised predicate over
the padded grid the kernel sees, and the classes are compared with ``create_block_mask`` (which
evaluates the predicate everywhere) on packed rows like the ones training builds.
"""

from __future__ import annotations

import pytest
import torch
from torch.nn.attention.flex_attention import create_block_mask

from genoforge.model.attention import (
    AlibiScore,
    MaskSpec,
    alibi_slopes,
    attend,
    cross_mask,
    decoder_self_mask,
    encoder_self_mask,
)


def packed_docs(gen: torch.Generator, rows: int, length: int, max_doc: int, fill: float) -> torch.Tensor:
    """Rows of contiguous documents 0, 1, 2, ... of random lengths, then -1 padding."""
    doc = torch.full((rows, length), -1, dtype=torch.long)
    for row in range(rows):
        used = int(length * fill)
        start, index = 0, 0
        while start < used:
            size = int(torch.randint(1, max_doc + 1, (1,), generator=gen))
            doc[row, start : min(start + size, used)] = index
            start, index = start + size, index + 1
    return doc


def dense_classes(spec: MaskSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """(partial, full) [B, Qb, Kb] from the predicate on every index (the ground truth)."""
    batch, n_q, n_kv = spec.shape
    block = spec.flex_block_size()
    qb, kb = -(-n_q // block), -(-n_kv // block)
    b = torch.arange(batch)[:, None, None]
    q = torch.arange(qb * block)[None, :, None]
    k = torch.arange(kb * block)[None, None, :]
    allowed = spec.block_mask_fn()(b, None, q, k).view(batch, qb, block, kb, block)
    any_, all_ = allowed.any(dim=(2, 4)), allowed.all(dim=(2, 4))
    return any_ & ~all_, all_


def blockmask_classes(block_mask, kv_blocks: int, side: str = "kv") -> tuple[torch.Tensor, torch.Tensor]:
    """(partial, full) [B, Qb, Kb] read back from a BlockMask's index lists.

    ``side="q"`` reads the key-block-major lists the backward pass uses ([B, Kb, Qb]; pass the
    number of query blocks as ``kv_blocks``).
    """
    if side == "q":
        lists = (block_mask.q_num_blocks, block_mask.q_indices, block_mask.full_q_num_blocks,
                 block_mask.full_q_indices)
    else:
        lists = (block_mask.kv_num_blocks, block_mask.kv_indices, block_mask.full_kv_num_blocks,
                 block_mask.full_kv_indices)
    def selected(num, idx):
        cols = torch.arange(idx.shape[-1])
        keep = cols[None, None, None, :] < num[..., None]
        out = torch.zeros(*num.shape, kv_blocks, dtype=torch.bool)
        out.scatter_(-1, idx.long().clamp(max=kv_blocks - 1), keep)  # listed-and-counted blocks only
        return out[:, 0]
    partial = selected(lists[0], lists[1])
    full = selected(lists[2], lists[3])
    return partial, full


def make_specs(seed: int) -> list[MaskSpec]:
    gen = torch.Generator().manual_seed(seed)
    enc = packed_docs(gen, 3, 203, 60, 0.9)
    dec = packed_docs(gen, 3, 77, 30, 0.8)
    lat = packed_docs(gen, 3, 40, 12, 1.0)
    return [
        encoder_self_mask(enc, 0, 16),
        encoder_self_mask(enc, 33, 16),
        encoder_self_mask(enc, 9, 8),
        decoder_self_mask(dec, 0, 8),
        decoder_self_mask(dec, 11, 8),
        decoder_self_mask(dec, 40, 16),
        cross_mask(dec, enc, 16),
        cross_mask(lat, enc, 8),
        cross_mask(lat, lat, 8),
    ]


@pytest.mark.parametrize("seed", range(6))
def test_block_classes_are_never_wrong_and_match_create_block_mask(seed):
    for spec in make_specs(seed):
        partial, full = spec.block_classes()
        true_partial, true_full = dense_classes(spec)
        assert not (full & ~true_full).any(), "a block called full holds a forbidden pair"
        assert not ((true_partial | true_full) & ~(partial | full)).any(), "a block with an allowed pair was skipped"
        batch, n_q, n_kv = spec.shape
        reference = create_block_mask(spec.block_mask_fn(), batch, None, n_q, n_kv, device="cpu",
                                      BLOCK_SIZE=spec.flex_block_size())
        ref_partial, ref_full = blockmask_classes(reference, partial.shape[-1])
        assert torch.equal(ref_partial, true_partial) and torch.equal(ref_full, true_full)  # the helper reads right
        # On contiguous packed documents the classes are exact, not merely safe.
        assert torch.equal(full, true_full)
        assert torch.equal(partial, true_partial)
        ours = spec.block_mask()
        ours_partial, ours_full = blockmask_classes(ours, partial.shape[-1])
        assert torch.equal(ours_partial, partial) and torch.equal(ours_full, full)
        # The transposed lists the backward pass reads, against create_block_mask's.
        q_blocks = partial.shape[1]
        ours_q = blockmask_classes(ours, q_blocks, "q")
        reference_q = blockmask_classes(reference, q_blocks, "q")
        assert torch.equal(ours_q[0], reference_q[0]) and torch.equal(ours_q[1], reference_q[1])
        assert torch.equal(ours_q[0], partial.transpose(1, 2)) and torch.equal(ours_q[1], full.transpose(1, 2))
        assert ours.seq_lengths == reference.seq_lengths and ours.BLOCK_SIZE == reference.BLOCK_SIZE


def test_a_misclassified_block_is_caught():
    """Negative control: the checks above fail if a forbidden block is called full."""
    spec = decoder_self_mask(packed_docs(torch.Generator().manual_seed(0), 2, 64, 20, 1.0), 0, 8)
    partial, full = spec.block_classes()
    true_partial, true_full = dense_classes(spec)
    broken = full.clone()
    broken[0, 0, -1] = True  # the first query block may not see the last key block (causal)
    assert (broken & ~true_full).any()


@pytest.mark.parametrize("seed", range(3))
def test_flex_with_range_built_masks_equals_reference(seed):
    gen = torch.Generator().manual_seed(100 + seed)
    for spec in make_specs(seed):
        batch, n_q, n_kv = spec.shape
        heads, kv_heads = 4, 2
        q = torch.randn(batch, heads, n_q, 8, generator=gen)
        k = torch.randn(batch, kv_heads, n_kv, 8, generator=gen)
        v = torch.randn(batch, kv_heads, n_kv, 8, generator=gen)
        score = AlibiScore(alibi_slopes(heads)) if spec.radius is not None else None
        reference = attend(q, k, v, spec, "reference", score)
        flex = attend(q, k, v, spec, "flex", score)
        torch.testing.assert_close(flex, reference, rtol=1e-5, atol=1e-5)


def test_compiled_flex_may_compile_every_attention_kind(monkeypatch):
    """Training with the compressor compiles flex_attention for 5 kinds x (train, eval) shapes;
    dynamo's default limit of 8 graphs per function made the 9th run unfused (seen on an H100)."""
    import genoforge.model.flex as flex

    monkeypatch.setattr(flex, "_compiled_flex", None)
    # dynamo's own patch restores the limit on exit (what flex_attention_fn raised it to included);
    # monkeypatch's undo of a config-module attribute deletes the setting under pytest 9.
    with torch._dynamo.config.patch(recompile_limit=8):
        flex.flex_attention_fn(torch.device("cuda"))  # torch.compile is lazy: nothing runs on a GPU here
        assert torch._dynamo.config.recompile_limit >= 2 * 5


def test_encoder_tiles_apply_on_hopper_only(monkeypatch):
    """The measured encoder tiles go to compute capability 9.x GPUs; others keep torch's choice."""
    from genoforge.model import attention, flex

    capability = {0: (9, 0), 1: (8, 0)}
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device: capability[device.index])
    assert flex.encoder_kernel_options(torch.device("cpu")) is None
    assert flex.encoder_kernel_options(torch.device("cuda", 0)) == flex.ENCODER_TILES_SM90
    assert flex.encoder_kernel_options(torch.device("cuda", 1)) is None
    monkeypatch.setattr(flex, "ENCODER_KERNEL_OPTIONS", None)
    assert flex.encoder_kernel_options(torch.device("cuda", 0)) is None
    monkeypatch.setattr(flex, "ENCODER_KERNEL_OPTIONS", {"BLOCK_M1": 32})
    assert flex.encoder_kernel_options(torch.device("cuda", 1)) == {"BLOCK_M1": 32}
    # The encoder's mask carries them; the decoder's and the cross masks never do.
    doc = torch.zeros(1, 8, dtype=torch.long)
    assert attention.encoder_self_mask(doc, 0, 4).kernel_options is None  # a CPU batch
    assert attention.decoder_self_mask(doc, 4, 4).kernel_options is None
    assert attention.cross_mask(doc, doc, 4).kernel_options is None
