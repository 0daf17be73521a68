"""Numerical guards of the model's building blocks (CPU, seconds).

* The MoE router computes its logits in fp32 even inside a bf16 autocast region (the training
  loop runs the model under bf16 autocast on CUDA; a bf16 router rounds the small init logits).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

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
