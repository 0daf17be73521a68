"""Numerical guards of the model's building blocks (CPU, seconds).

* The MoE router computes its logits in fp32 even inside a bf16 autocast region (the training
  loop runs the model under bf16 autocast on CUDA; a bf16 router rounds the small init logits).
* FlexAttention masks are safe for rows whose length is not a whole number of mask blocks: the
  fused CUDA kernel evaluates the mask predicate on whole blocks, so the predicate must accept
  every index of the last, partial block (an unguarded read past the row end was an illegal
  memory access on an H100). On CPU flex_attention runs eagerly and reads only real indices,
  so the guard is checked on the predicate itself, over the padded index grid the kernel uses.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from genoforge.model.attention import (
    AlibiScore,
    alibi_slopes,
    attend,
    cross_mask,
    decoder_self_mask,
    encoder_self_mask,
)
from genoforge.model.moe import MoEFeedForward


def test_router_logits_are_fp32_under_bf16_autocast():
    torch.manual_seed(0)
    moe = MoEFeedForward(dim=64, ff_dim=32, num_experts=8, top_k=2)
    torch.nn.init.normal_(moe.router.weight, std=0.006)
    x = torch.randn(50, 64)
    expected = F.linear(x.double(), moe.router.weight.double()).float()  # what fp32 math gives
    reference = moe.router_logits(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert F.linear(x, moe.router.weight).dtype == torch.bfloat16  # what autocast does to a plain linear
        logits = moe.router_logits(x)
        experts, gates, stats = moe.route(x, torch.ones(50, dtype=torch.bool))
    assert logits.dtype == torch.float32 and gates.dtype == torch.float32
    assert torch.equal(logits, reference)
    torch.testing.assert_close(logits, expected, rtol=1e-6, atol=1e-7)
    experts_fp32, gates_fp32, stats_fp32 = moe.route(x, torch.ones(50, dtype=torch.bool))
    assert torch.equal(experts, experts_fp32) and torch.equal(gates, gates_fp32)
    assert torch.equal(stats.tokens_per_expert, stats_fp32.tokens_per_expert)


def _ragged_docs(length: int, cut: int) -> torch.Tensor:
    """Two rows of ``length`` tokens: row 0 holds documents 0 and 1, row 1 document 0 and padding."""
    doc = torch.full((2, length), -1, dtype=torch.long)
    doc[0, :cut], doc[0, cut:] = 0, 1
    doc[1, : length - 5] = 0
    return doc


# Row lengths 45 / 13 / 9 with blocks of 16 and 8: no length is a whole number of blocks.
CASES = {
    "encoder": lambda: (encoder_self_mask(_ragged_docs(45, 20), 21, 16), 6, 6, True),
    "decoder": lambda: (decoder_self_mask(_ragged_docs(45, 20), 11, 8), 6, 2, False),
    "cross": lambda: (cross_mask(_ragged_docs(13, 6), _ragged_docs(45, 20), 16), 4, 2, False),
    "latent_self": lambda: (cross_mask(_ragged_docs(9, 4), _ragged_docs(9, 4), 8), 4, 2, False),
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_block_mask_predicate_accepts_every_index_of_partial_blocks(kind):
    spec, *_ = CASES[kind]()
    batch, n_q, n_kv = spec.shape
    block = spec.flex_block_size()
    assert n_q % block and n_kv % block  # the case under test: partial last blocks on both axes
    padded_q, padded_kv = -(-n_q // block) * block, -(-n_kv // block) * block
    b = torch.arange(batch)[:, None, None]
    q = torch.arange(padded_q)[None, :, None]
    k = torch.arange(padded_kv)[None, None, :]
    with pytest.raises(IndexError):  # the unguarded predicate reads past the row end
        spec.mask_fn()(b, None, q, k)
    allowed = spec.block_mask_fn()(b, None, q, k)
    assert allowed.shape == (batch, padded_q, padded_kv)
    assert torch.equal(allowed[:, :n_q, :n_kv], spec.bool_mask())
    assert not allowed[:, n_q:].any() and not allowed[:, :, n_kv:].any()  # padding sees and is seen by nothing


@pytest.mark.parametrize("kind", sorted(CASES))
def test_flex_equals_reference_when_rows_are_not_whole_blocks(kind):
    spec, heads, kv_heads, alibi = CASES[kind]()
    batch, n_q, n_kv = spec.shape
    gen = torch.Generator().manual_seed(3)
    q = torch.randn(batch, heads, n_q, 8, generator=gen)
    k = torch.randn(batch, kv_heads, n_kv, 8, generator=gen)
    v = torch.randn(batch, kv_heads, n_kv, 8, generator=gen)
    score = AlibiScore(alibi_slopes(heads)) if alibi else None
    reference = attend(q, k, v, spec, "reference", score)
    flex = attend(q, k, v, spec, "flex", score)
    torch.testing.assert_close(flex, reference, rtol=1e-5, atol=1e-5)
    block_mask = spec.block_mask()
    assert block_mask.shape[-2:] == (n_q, n_kv)
