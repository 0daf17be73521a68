"""The compressor's chunk means (each latent starts from the mean of its chunk of the document).

They are computed with sorted prefix sums, not a float scatter-add: on a GPU a scatter-add sums
with atomics in arrival order, and the same genome gave 190 and then 184 predicted genes in two
identical `predict` runs on an H100 (benchmarks/RESULTS.md, "Predict"). These tests pin the values
against a per-slot loop in float64, on layouts a packed row does not have (documents out of
order, padding between them), and the precision under bf16 (the old bf16 scatter-add also placed
chunk boundaries by bf16 positions, inexact past 256). tests/gpu checks run-to-run equality.
"""

from __future__ import annotations

import dataclasses

import torch

from genoforge.model.compressor import LatentCompressor
from genoforge.model.config import preset


def reference_means(memory_BSD: torch.Tensor, doc_BS: torch.Tensor, n_latents: int, n_docs: int) -> torch.Tensor:
    """Latent i of document d: mean of the document's tokens j (in row order) with j*L//n == i."""
    batch, _, dim = memory_BSD.shape
    out = torch.zeros(batch, n_docs * n_latents, dim, dtype=torch.float64)
    for b in range(batch):
        for d in range(n_docs):
            tokens = (doc_BS[b] == d).nonzero().flatten().tolist()
            n = len(tokens)
            for i in range(n_latents):
                mine = [t for j, t in enumerate(tokens) if min(j * n_latents // n, n_latents - 1) == i]
                if mine:
                    out[b, d * n_latents + i] = memory_BSD[b, mine].double().mean(dim=0)
    return out


def compressor(latents: int) -> LatentCompressor:
    return LatentCompressor(dataclasses.replace(preset("debug"), num_latents=latents))


def test_chunk_means_match_a_loop_on_any_layout():
    torch.manual_seed(0)
    latents, n_docs = 7, 3
    # Row 0: documents out of order with padding between them; row 1: a 3-token document (fewer
    # tokens than latents: empty latents stay zero), a missing document 2, padding at the end.
    doc = torch.tensor([[2] * 9 + [0] * 20 + [-1] * 3 + [1] * 17 + [-1],
                        [0] * 3 + [1] * 40 + [-1] * 7])
    memory = torch.randn(2, doc.shape[1], 16, dtype=torch.float64)
    got = compressor(latents).chunk_means(memory, doc, n_docs * latents)
    want = reference_means(memory, doc, latents, n_docs)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    # Row 1's 3-token document fills latents 0, 2, 4 (j * 7 // 3); the others, and the missing
    # document's, are zero.
    assert (got[1, [1, 3, 5, 6]] == 0).all() and (got[1, 2 * latents:] == 0).all()
    assert (got[1, [0, 2, 4]] != 0).all()


def test_chunk_means_of_bf16_memory_are_the_rounded_exact_means():
    torch.manual_seed(1)
    latents, n_docs = 8, 2
    # 2,048-token documents: 256-token chunks, positions far past bf16's exact integers.
    doc = torch.tensor([[0] * 2048 + [1] * 1500 + [-1] * 52])
    memory = (torch.randn(1, doc.shape[1], 32) + 0.5).to(torch.bfloat16)
    got = compressor(latents).chunk_means(memory, doc, n_docs * latents)
    want = reference_means(memory, doc, latents, n_docs)
    assert got.dtype == torch.bfloat16
    # fp32 sums then one rounding: within one bf16 step (2^-8 relative) of the exact mean.
    assert ((got.double() - want).abs() <= want.abs() * 2.0**-8 + 1e-6).all()


def test_chunk_means_gradient_is_exact():
    """The hand-written backward (each token gets its slot's gradient over the slot's count, a
    gather, no atomics) against autograd's numerical gradient, float64, padding and empty slots."""
    torch.manual_seed(2)
    latents, n_docs = 3, 3
    doc = torch.tensor([[1] * 5 + [-1] * 2 + [0] * 7 + [2] * 2, [0] * 10 + [1] * 4 + [-1] * 2])
    memory = torch.randn(2, doc.shape[1], 4, dtype=torch.float64, requires_grad=True)
    module = compressor(latents)
    assert torch.autograd.gradcheck(lambda m: module.chunk_means(m, doc, n_docs * latents), (memory,))
    # Padding and tokens of documents beyond the row's slots get no gradient.
    module.chunk_means(memory, doc, 2 * latents).sum().backward()
    assert (memory.grad[0, 5:7] == 0).all() and (memory.grad[0, 14:] == 0).all()
    assert (memory.grad[0, :5] != 0).all()
