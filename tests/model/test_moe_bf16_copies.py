"""Persistent bf16 copies of the expert weights (opt-in): same arithmetic as casting every forward.

On CUDA the grouped MoE path casts its fp32 expert weights to bf16 on every forward; with copies
enabled it reads copies refreshed only when a weight changes. A stale copy would silently train
on old weights, so the tests change the weights the ways training does (optimizer steps, a
state-dict load) and require outputs and gradients bitwise equal to the casting path. On the CPU
``force_bf16`` runs the same bf16 grouped path.
"""

from __future__ import annotations

import copy

import pytest
import torch

from genoforge.model.moe import MoEFeedForward

from tests.tiny import tiny_model


def make_pair(seed: int = 0) -> tuple[MoEFeedForward, MoEFeedForward]:
    torch.manual_seed(seed)
    casting = MoEFeedForward(dim=32, ff_dim=64, num_experts=4, top_k=2)
    for w in (casting.w_gate_EDF, casting.w_up_EDF, casting.w_down_EDF):
        torch.nn.init.normal_(w, std=0.1)
    torch.nn.init.normal_(casting.router.weight, std=0.1)
    copying = copy.deepcopy(casting)
    for module in (casting, copying):
        module.force_bf16 = True
        module.impl = "grouped"
        module.train()
    copying.enable_bf16_copies()
    return casting, copying


def run(module: MoEFeedForward, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    module.zero_grad(set_to_none=True)
    out, stats = module(x, torch.ones(x.shape[:2], dtype=torch.bool))
    (out.float().square().mean() + 0.01 * stats.aux_loss).backward()
    return out.detach(), [p.grad.clone() for p in module.parameters()]


def assert_same(a, b):
    assert torch.equal(a[0], b[0])
    for ga, gb in zip(a[1], b[1], strict=True):
        assert ga.dtype == torch.float32 and torch.equal(ga, gb)


def test_copies_give_the_casting_path_bitwise_through_optimizer_steps():
    casting, copying = make_pair()
    opt_a = torch.optim.AdamW(casting.parameters(), lr=1e-2)
    opt_b = torch.optim.AdamW(copying.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(1)
    for step in range(4):
        for _micro in range(2):  # accumulation: the copies stay valid between micro-batches
            x = torch.randn(2, 7, 32, generator=gen)
            assert_same(run(casting, x), run(copying, x))
        opt_a.step()
        opt_b.step()
    stale = copying._bf16_copies[0].clone()  # refreshed lazily: the next forward (or this call)
    assert not torch.equal(stale, copying.w_gate_EDF.detach().to(torch.bfloat16))
    assert copying.refresh_bf16_copies()
    assert torch.equal(copying._bf16_copies[0], copying.w_gate_EDF.detach().to(torch.bfloat16))


def test_copies_follow_a_state_dict_load_and_eval_mode_casts():
    casting, copying = make_pair()
    x = torch.randn(2, 5, 32)
    run(copying, x)  # copies made
    other, _ = make_pair(seed=7)
    copying.load_state_dict(other.state_dict())
    casting.load_state_dict(other.state_dict())
    assert_same(run(casting, x), run(copying, x))  # refreshed, not stale
    copying.eval()
    casting.eval()
    with torch.no_grad():
        valid = torch.ones(2, 5, dtype=torch.bool)
        assert torch.equal(copying(x, valid)[0], casting(x, valid)[0])


def test_a_stale_copy_would_be_caught():
    """Negative control: freezing the copies makes the comparison fail after a weight change."""
    casting, copying = make_pair()
    x = torch.randn(2, 5, 32)
    run(copying, x)
    with torch.no_grad():
        for module in (casting, copying):
            module.w_up_EDF.add_(0.5)
    copying.refresh_bf16_copies = lambda: True  # type: ignore[method-assign]  # never refresh
    out_a, _ = run(casting, x)
    out_b, _ = run(copying, x)
    assert not torch.equal(out_a, out_b)


def test_copies_are_off_by_default_and_need_fp32_training_weights():
    module = MoEFeedForward(dim=32, ff_dim=64, num_experts=4, top_k=2)
    module.force_bf16 = True
    assert module.refresh_bf16_copies() is False  # not enabled
    module.enable_bf16_copies()
    module.eval()
    assert module.refresh_bf16_copies() is False  # eval: decode paths cast as before
    module.train()
    assert module.refresh_bf16_copies() is True
    module.enable_bf16_copies(False)
    assert module._bf16_copies is None


@pytest.mark.parametrize("preset_name", ["debug", "small"])
def test_model_level_switch_reaches_every_expert_layer(preset_name):
    model = tiny_model(preset_name=preset_name, seed=None, init_weights=False)
    moes = [m for m in model.modules() if isinstance(m, MoEFeedForward)]
    assert moes
    model.enable_bf16_expert_copies()
    assert all(m._use_bf16_copies for m in moes)
    model.enable_bf16_expert_copies(False)
    assert not any(m._use_bf16_copies for m in moes)


def train_losses(copies: bool, compile_layers: bool, checkpoint: bool) -> list[float]:
    """Losses of a debug model with a one-layer decoder of aligned widths (the grouped path; the
    debug preset's odd widths take the loop) over 2 optimizer steps of 2 micro-batches, bf16
    grouped experts. One layer: torch.compile on a CPU costs about a minute per compiled layer."""
    from genoforge.training.parallelize import apply_activation_checkpointing

    from tests.helpers import document_ids as docs

    enc = torch.stack([docs([60, 40], 128), docs([90], 128)]).int()
    dec = torch.stack([docs([20, 10], 32), docs([25], 32)]).int()
    gen = torch.Generator().manual_seed(0)
    batch = dict(input_ids=torch.randint(5, 90, enc.shape, generator=gen), input_doc=enc,
                 input_bp=(torch.arange(128) * 5).int().expand(2, -1).contiguous(),
                 decoder_ids=torch.randint(0, 1200, dec.shape, generator=gen), decoder_doc=dec,
                 labels=torch.randint(0, 1200, dec.shape, generator=gen), docs_per_row=2)
    model = tiny_model(decoder_layers=1, decoder_dim=48, decoder_ff_dim=64, decoder_heads=6, decoder_kv_heads=2,
                       decoder_dropout=0.0, encoder_dropout=0.0)
    model.train()
    for module in model.modules():
        if isinstance(module, MoEFeedForward):
            module.force_bf16 = True
    model.enable_bf16_expert_copies(copies)
    if compile_layers:  # tune's order: compile each block, then checkpoint it
        for layer in model.decoder.layers:
            layer.compile()
    if checkpoint:
        apply_activation_checkpointing(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _step in range(2):
        for _micro in range(2):
            out = model(batch)
            out.loss.backward()
            losses.append(out.loss.item())
        optimizer.step()
        optimizer.zero_grad()
    moes = [m for m in model.modules() if isinstance(m, MoEFeedForward)]
    assert moes and all((m._bf16_copies is not None) == copies for m in moes), "the bf16 copies path did not run"
    return losses


def test_checkpointed_model_trains_the_same_with_copies():
    """tune on CUDA enables the copies by default, also under --gradient_checkpointing: the
    backward's recomputation reads the same copies, and the losses equal the casting path's."""
    with_copies = train_losses(copies=True, compile_layers=False, checkpoint=True)
    assert with_copies == train_losses(copies=False, compile_layers=False, checkpoint=True)
    assert with_copies == train_losses(copies=True, compile_layers=False, checkpoint=False)
    assert with_copies[2] < with_copies[0]  # the weights (and so the copies) did change


@pytest.mark.slow
def test_compiled_model_trains_the_same_with_copies():
    """torch.compile'd decoder layers (as tune --compile and the GPU benchmark run them) read the
    copies without graph breaks, and the losses over optimizer steps equal the casting path's."""
    from torch._dynamo.utils import counters

    counters.clear()
    losses = {copies: train_losses(copies, compile_layers=True, checkpoint=False) for copies in (False, True)}
    assert not counters["graph_break"]
    assert losses[True] == losses[False]
    assert losses[True][2] < losses[True][0]  # the weights (and so the copies) did change
