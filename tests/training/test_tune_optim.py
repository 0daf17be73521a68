"""AdamW groups, the cosine schedule, the loss sums and early stopping."""

from __future__ import annotations


import pytest
import torch
import torch.nn.functional as F

from genoforge.training.early_stopping import EarlyStopping
from genoforge.training.losses import micro_batch_seed, token_loss_sums
from genoforge.training.optim import CosineSchedule, build_optimizer, split_decay_groups

from tests.tiny import tiny_model


@pytest.fixture(scope="module")
def debug_model():
    return tiny_model(seed=None, digits=False, init_weights=False)


def test_no_decay_on_norms_biases_embeddings_and_latents(debug_model):
    decay, no_decay = split_decay_groups(debug_model)
    decay_names = {n for n, _ in decay}
    no_decay_names = {n for n, _ in no_decay}
    assert not decay_names & no_decay_names
    all_ids = {id(p) for p in debug_model.parameters()}
    assert len(decay) + len(no_decay) == len(all_ids)  # every parameter once (tied head included)
    for name, param in decay:
        assert param.ndim >= 2, name
        assert "embed" not in name and "norm" not in name and not name.endswith("bias")
    # Norms (LayerNorm and RMSNorm), biases, embeddings and the compressor's latents.
    assert {"decoder.norm.weight", "decoder.embed_tokens.weight", "compressor.latents_LD",
            "encoder.token_type_embedding"} <= no_decay_names
    assert any(n.endswith(".bias") for n in no_decay_names)
    assert any("LayerNorm" in n or "layer_norm" in n or "norm" in n for n in no_decay_names)
    # The tied output head is the embedding tensor: exempt, and not listed twice.
    assert "decoder.lm_head.weight" not in decay_names
    # Experts, router and attention projections decay.
    assert any(n.endswith("w_up_EDF") for n in decay_names)
    assert any(n.endswith("router.weight") for n in decay_names)
    assert any("q_proj" in n for n in decay_names)


def test_optimizer_groups_carry_their_decay(debug_model):
    optimizer = build_optimizer(debug_model, lr=1e-3, weight_decay=0.05, betas=(0.9, 0.95), eps=1e-8, fused=False)
    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert decay["betas"] == (0.9, 0.95)


def test_cosine_schedule_warmup_peak_and_decay():
    schedule = CosineSchedule.from_ratio(total_steps=100, warmup_ratio=0.03)
    assert schedule.warmup_steps == 3
    assert [schedule.multiplier(s) for s in range(3)] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert schedule.multiplier(3) == pytest.approx(1.0)
    values = [schedule.multiplier(s) for s in range(3, 100)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))  # monotone decay
    assert schedule.multiplier(3 + 97 // 2) == pytest.approx(0.5, abs=0.02)  # half way: half the peak
    assert 0 < values[-1] < 0.01 and schedule.multiplier(100) == pytest.approx(0.0)
    floor = CosineSchedule.from_ratio(total_steps=10, warmup_ratio=0.0, min_lr_ratio=0.1)
    assert floor.multiplier(0) == pytest.approx(1.0) and floor.multiplier(10) == pytest.approx(0.1)


def test_schedule_sets_every_group():
    params = [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2, 2))]
    optimizer = torch.optim.AdamW([{"params": params[:1]}, {"params": params[1:]}], lr=1.0)
    lr = CosineSchedule.from_ratio(10, 0.5).apply(optimizer, 2e-4, step=1)
    assert lr == pytest.approx(2e-4 * 2 / 5)
    assert all(g["lr"] == lr for g in optimizer.param_groups)


def test_token_loss_sums_match_cross_entropy():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 11)
    labels = torch.randint(0, 11, (2, 5))
    labels[0, 3:] = -100
    smoothed, nll, count = token_loss_sums(logits, labels, 0.1)
    flat_logits, flat_labels = logits.view(-1, 11), labels.view(-1)
    assert count.item() == 8
    assert nll.item() == pytest.approx(F.cross_entropy(flat_logits, flat_labels, reduction="sum").item(), rel=1e-6)
    expected = F.cross_entropy(flat_logits, flat_labels, reduction="sum", label_smoothing=0.1)
    assert smoothed.item() == pytest.approx(expected.item(), rel=1e-6)
    plain, _, _ = token_loss_sums(logits, labels, 0.0)
    assert plain.item() == pytest.approx(nll.item())


def test_micro_batch_seeds_are_distinct_and_stable():
    seeds = {micro_batch_seed(42, epoch, index) for epoch in range(3) for index in range(100)}
    assert len(seeds) == 300
    assert micro_batch_seed(42, 1, 7) == micro_batch_seed(42, 1, 7)
    assert all(0 <= s < 2**63 for s in seeds)


def test_early_stopping_counts_evaluations_without_improvement():
    stopper = EarlyStopping(patience=2)
    assert stopper.update(5.0, step=10) and not stopper.should_stop
    assert stopper.update(4.0, step=20)
    assert not stopper.update(4.0, step=30)  # equal is not better
    assert not stopper.should_stop
    assert not stopper.update(4.5, step=40)
    assert stopper.should_stop and stopper.best_step == 20 and stopper.best_val_loss == 4.0
    restored = EarlyStopping(patience=2)
    restored.load_state_dict(stopper.state_dict())
    assert restored.should_stop and restored.best_step == 20


def test_early_stopping_min_delta_and_off():
    stopper = EarlyStopping(patience=1, min_delta=0.5)
    stopper.update(3.0, 1)
    assert not stopper.update(2.7, 2) and stopper.should_stop  # 0.3 < min_delta
    never = EarlyStopping(patience=0)
    for step, loss in enumerate([1.0, 2.0, 3.0, 4.0]):
        never.update(loss, step)
    assert not never.should_stop
