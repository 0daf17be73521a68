"""Must-hold properties of the model, on the debug preset (CPU, seconds).

Causality, gradients reaching every parameter, isolation of packed documents, padding
invariance, packed == alone, FlexAttention == explicit-mask reference, MoE grouped == loop, and
incremental decoding == full forward. The batches are synthetic: a 1200-token vocabulary whose
ids 100..1099 play the coordinate numbers "0".."999".
"""

from __future__ import annotations


import pytest
import torch

from genoforge.model.attention import (
    AlibiScore,
    alibi_slopes,
    attend,
    cross_mask,
    decoder_self_mask,
    encoder_self_mask,
)
from genoforge.model.config import ModelConfig, preset
from genoforge.model.model import document_positions
from genoforge.model.moe import MoEFeedForward

from tests.tiny import DIGIT_OFFSET, VOCAB, packed_batch, tiny_model

# Bases per encoder id of the synthetic vocabulary (ids 5..89 cover 1..6 bases; the rest none).
BP_LENGTHS = torch.zeros(VOCAB, dtype=torch.long)
BP_LENGTHS[5:90] = torch.arange(5, 90) % 6 + 1


def with_bases(batch: dict, seed: int = 0) -> dict:
    """``batch`` plus the per-base head's fields: random bases under each encoder document's tokens,
    random labels (a few unlabelled)."""
    import numpy as np

    from genoforge.model.base_inputs import base_fields

    rng = np.random.default_rng(seed)
    doc, ids = batch["input_doc"].numpy(), batch["input_ids"].numpy()
    bases, tokens, starts, labels = [], [], [], []
    S = doc.shape[1]
    for b in range(doc.shape[0]):
        for d in range(int(doc[b].max()) + 1):
            cols = np.flatnonzero(doc[b] == d)
            n = int(BP_LENGTHS.numpy()[ids[b, cols]].sum())
            bases.append(rng.integers(0, 5, n).astype(np.uint8))
            lab = rng.integers(0, 17, n).astype(np.uint8)
            lab[rng.random(n) < 0.1] = 255
            labels.append(lab)
            tokens.append(ids[b, cols])
            starts.append(b * S + int(cols[0]))
    fields = base_fields(bases, tokens, starts, BP_LENGTHS.numpy(), labels=labels)
    return {**batch, **{k: torch.from_numpy(v) for k, v in fields.items()}}


TWO_ROWS = dict(enc_docs=[([22, 18], 0), ([30], 10)], dec_docs=[([12, 12], 0), ([18], 6)])


@torch.no_grad()
def logits_of(model, batch):
    return model(batch).logits


@pytest.mark.parametrize("backend", ["reference", "flex"])
def test_changing_target_token_leaves_earlier_logits_unchanged(backend):
    model = tiny_model().eval()
    model.attention_backend = backend
    batch = packed_batch(**TWO_ROWS)
    before = logits_of(model, batch)
    t = 6  # a position inside document 0 of row 0
    changed = {k: v.clone() for k, v in batch.items()}
    changed["decoder_ids"][0, t + 1] = (changed["decoder_ids"][0, t + 1] + 17) % VOCAB
    after = logits_of(model, changed)
    torch.testing.assert_close(after[0, : t + 1], before[0, : t + 1], rtol=0, atol=1e-6)
    assert (after[0, t + 1] - before[0, t + 1]).abs().max() > 1e-4  # the change does reach t+1


def test_every_parameter_gets_a_gradient():
    model = tiny_model(decoder_dropout=0.1, encoder_dropout=0.1).train()
    batch = with_bases(packed_batch(enc_docs=[([40, 30], 0), ([50], 20)], dec_docs=[([40, 30], 0), ([60], 10)]))
    # Coordinates "0 : 5" and "0 : 9" (synthetic id 7 plays ":"), so the pointer is trained too.
    model.coord_sep_token_id.fill_(7)
    batch["labels"][0, 3:6] = torch.tensor([DIGIT_OFFSET, 7, DIGIT_OFFSET + 5])
    batch["labels"][1, 10:13] = torch.tensor([DIGIT_OFFSET, 7, DIGIT_OFFSET + 9])
    out = model(batch, label_smoothing=0.1)
    assert (out.tokens_per_expert > 0).all(), "the batch must route tokens to every expert"
    assert out.base_loss is not None and out.num_base_labels > 0
    assert out.num_pointer_labels == 4 and out.pointer_loss > 0
    (out.loss + out.base_loss).backward()
    missing = [
        name for name, p in model.named_parameters()
        if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)
    ]
    assert missing == []


@pytest.mark.parametrize("num_latents", [7, 0])
def test_packed_documents_are_isolated(num_latents):
    model = tiny_model(num_latents=num_latents).eval()
    batch = packed_batch(**TWO_ROWS)
    base = logits_of(model, batch)
    doc0, doc1 = batch["decoder_doc"][0] == 0, batch["decoder_doc"][0] == 1

    for field, doc_field in (("input_ids", "input_doc"), ("input_bp", "input_doc"), ("decoder_ids", "decoder_doc")):
        changed = {k: v.clone() for k, v in batch.items()}
        target = changed[doc_field][0] == 1
        changed[field][0, target] = (changed[field][0, target] + 7) % 90
        out = logits_of(model, changed)
        torch.testing.assert_close(out[0, doc0], base[0, doc0], rtol=0, atol=1e-6, msg=f"{field} leaked")
        torch.testing.assert_close(out[1], base[1], rtol=0, atol=1e-6)
        assert (out[0, doc1] - base[0, doc1]).abs().max() > 1e-4, f"changing {field} had no effect"


def test_packed_document_equals_the_document_alone():
    model = tiny_model().eval()
    batch = packed_batch(**TWO_ROWS)
    packed = logits_of(model, batch)
    enc1, dec1 = batch["input_doc"][0] == 1, batch["decoder_doc"][0] == 1
    alone = dict(
        input_ids=batch["input_ids"][0:1, enc1],
        input_doc=torch.zeros(1, int(enc1.sum()), dtype=torch.int32),
        input_bp=batch["input_bp"][0:1, enc1],
        decoder_ids=batch["decoder_ids"][0:1, dec1],
        decoder_doc=torch.zeros(1, int(dec1.sum()), dtype=torch.int32),
        labels=batch["labels"][0:1, dec1],
    )
    torch.testing.assert_close(logits_of(model, alone)[0], packed[0, dec1], rtol=1e-5, atol=1e-5)


def test_padding_is_ignored():
    model = tiny_model().eval()
    batch = packed_batch(**TWO_ROWS)
    padded = packed_batch(enc_docs=[([22, 18], 9), ([30], 25)], dec_docs=[([12, 12], 5), ([18], 13)])
    for key in batch:  # same real content, longer rows
        real = batch[key].shape[1]
        padded[key][:, :real] = batch[key]
    real = batch["decoder_doc"] >= 0
    torch.testing.assert_close(logits_of(model, padded)[:, : real.shape[1]][real], logits_of(model, batch)[real],
                               rtol=1e-5, atol=1e-5)


def test_flex_and_reference_models_agree():
    model = tiny_model().eval()
    batch = packed_batch(**TWO_ROWS)
    model.attention_backend = "reference"
    reference = logits_of(model, batch)
    model.attention_backend = "flex"
    flex = logits_of(model, batch)
    real = batch["decoder_doc"] >= 0
    torch.testing.assert_close(flex[real], reference[real], rtol=1e-4, atol=1e-4)


def test_flex_and_reference_attention_agree_per_mask_kind():
    torch.manual_seed(1)
    doc = torch.tensor([[0] * 37 + [1] * 40 + [-1] * 3, [0] * 70 + [-1] * 10])
    latent_doc = torch.tensor([[0] * 5 + [1] * 5, [0] * 5 + [-1] * 5])
    cases = [
        (encoder_self_mask(doc, 21, 16), 6, 6, AlibiScore(alibi_slopes(6))),
        (decoder_self_mask(doc, 11, 8), 6, 2, None),
        (cross_mask(latent_doc, doc, 16), 4, 2, None),
    ]
    for spec, heads, kv_heads, alibi in cases:
        batch, n_q, n_kv = spec.shape
        q = torch.randn(batch, heads, n_q, 8)
        k, v = torch.randn(batch, kv_heads, n_kv, 8), torch.randn(batch, kv_heads, n_kv, 8)
        reference = attend(q, k, v, spec, "reference", alibi)
        flex = attend(q, k, v, spec, "flex", alibi)
        torch.testing.assert_close(flex, reference, rtol=1e-5, atol=1e-5)
        no_key = ~spec.bool_mask().any(-1)
        assert reference.transpose(1, 2)[no_key].abs().max() == 0 if no_key.any() else True


def test_encoder_window_limits_what_a_token_sees():
    doc = torch.zeros(1, 40, dtype=torch.long)
    seen = encoder_self_mask(doc, 9, 16).bool_mask()[0].sum(-1)
    assert seen.max() == 9 and seen[20] == 9 and seen[0] == 5  # radius 4 both sides
    look = decoder_self_mask(doc, 11, 8).bool_mask()[0]
    assert look[30].nonzero().flatten().tolist() == list(range(20, 31))


def test_alibi_slopes_follow_the_dnabert2_head_order():
    expected = [2.0 ** -(h + 1) for h in range(8)] + [2.0 ** -(0.5 + k) for k in range(4)]
    torch.testing.assert_close(alibi_slopes(12), torch.tensor(expected), rtol=0, atol=0)
    torch.testing.assert_close(alibi_slopes(8), torch.tensor([2.0 ** -(h + 1) for h in range(8)]), rtol=0, atol=0)


def test_document_positions_restart_per_document():
    doc = torch.tensor([[0, 0, 0, 1, 1, -1, -1], [0, 0, 0, 0, 0, 0, 0]])
    assert document_positions(doc).tolist() == [[0, 1, 2, 0, 1, 0, 1], [0, 1, 2, 3, 4, 5, 6]]


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
def test_moe_grouped_equals_loop(dtype, tol):
    torch.manual_seed(0)
    moe = MoEFeedForward(dim=16, ff_dim=24, num_experts=5, top_k=2).to(dtype)
    for w in (moe.w_gate_EDF, moe.w_up_EDF, moe.w_down_EDF):
        torch.nn.init.normal_(w, std=0.2)
    torch.nn.init.normal_(moe.router.weight, std=0.5)
    x = torch.randn(3, 11, 16, dtype=dtype)
    valid = torch.ones(3, 11, dtype=torch.bool)
    valid[2, 7:] = False
    results = {}
    for impl in ("grouped", "loop"):
        moe.impl = impl
        moe.zero_grad()
        xi = x.clone().requires_grad_(True)
        out, stats = moe(xi, valid)
        (out.float() * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        results[impl] = (out.float(), xi.grad.float(), moe.w_down_EDF.grad.float().clone(), stats)
    (out_g, dx_g, dw_g, st_g), (out_l, dx_l, dw_l, st_l) = results["grouped"], results["loop"]
    torch.testing.assert_close(out_g, out_l, rtol=tol, atol=tol)
    torch.testing.assert_close(dx_g, dx_l, rtol=tol, atol=tol)
    torch.testing.assert_close(dw_g, dw_l, rtol=tol, atol=tol)
    assert st_g.tokens_per_expert.sum() == int(valid.sum()) * 2  # padding is not counted
    assert torch.equal(st_g.tokens_per_expert, st_l.tokens_per_expert)


@pytest.mark.parametrize("group", [1, 3])
def test_gathered_rows_get_the_gradient_plain_indexing_gives(group):
    """The MoE dispatch/combine gather's own backward (a gather, no index_put) is exact."""
    from genoforge.model.moe import _GatherRows

    torch.manual_seed(0)
    n_rows, dim = 7, 5
    flat = torch.randint(0, 4, (n_rows * group,))  # expert of each of a row's `group` copies
    order = flat.argsort(stable=True)
    index = order // group
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(order.numel())
    x = torch.randn(n_rows, dim, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(n_rows * group, dim, dtype=torch.float64)
    (_GatherRows.apply(x, index, inverse, group) * weight).sum().backward()
    ours = x.grad.clone()
    x.grad = None
    (x[index] * weight).sum().backward()
    torch.testing.assert_close(ours, x.grad, rtol=0, atol=1e-12)
    assert torch.autograd.gradcheck(lambda t: _GatherRows.apply(t, index, inverse, group), (x.detach().requires_grad_(),))


def test_moe_auto_path_falls_back_to_loop_for_unaligned_widths():
    assert MoEFeedForward(dim=48, ff_dim=31, num_experts=4, top_k=2).resolve_impl(torch.zeros(1, 48)) == "loop"
    assert MoEFeedForward(dim=48, ff_dim=32, num_experts=4, top_k=2).resolve_impl(torch.zeros(1, 48)) == "grouped"


def test_uniform_router_gives_unit_balance_loss():
    moe = MoEFeedForward(dim=8, ff_dim=8, num_experts=4, top_k=2)
    torch.nn.init.zeros_(moe.router.weight)
    _, _, stats = moe.route(torch.randn(10, 8), torch.ones(10, dtype=torch.bool))
    assert stats.aux_loss.item() == pytest.approx(1.0)
    assert stats.z_loss.item() == pytest.approx(torch.log(torch.tensor(4.0)).item() ** 2)


def test_incremental_decoding_matches_the_full_forward():
    """The decoder's cached step (one token per row, each row at its own position) gives the full
    forward's logits: row 1 takes its window 7 steps after row 0, and idles before and after."""
    from genoforge.model.decode_cache import RowCache

    model = tiny_model().eval()  # decoder window 11 < 20 target tokens: the ring buffer wraps
    batch = packed_batch(enc_docs=[([30], 0), ([24], 6)], dec_docs=[([20], 0), ([20], 0)], seed=3)
    full = logits_of(model, batch)
    ids, length, late = batch["decoder_ids"], 20, 7
    stepped: list[list[torch.Tensor]] = [[], []]
    with torch.no_grad():
        memory = model.encode(batch)
        kv = model.decoder.cross_kv(memory.states_BMD)
        cache = RowCache.empty(model.config, 2, memory.states_BMD.shape[1], "cpu", kv[0][0].dtype,
                               max_positions=length + 1)

        def load(b: int) -> None:
            cache.load(b, [k[b] for k, _ in kv], [v[b] for _, v in kv], memory.doc_BM[b] >= 0)

        load(0)
        for t in range(length + late):
            if t == late:
                load(1)
            start = (0, late)
            tokens = torch.stack([ids[b, min(max(t - start[b], 0), length - 1)] for b in range(2)])
            active = torch.tensor([0 <= t - start[b] < length for b in range(2)])
            logits = model.decoder.step(tokens, cache, active)
            for b in range(2):
                if active[b]:
                    stepped[b].append(logits[b])
    for b in range(2):
        torch.testing.assert_close(torch.stack(stepped[b]), full[b], rtol=1e-4, atol=1e-4)


def test_config_rejects_inconsistent_sizes():
    from genoforge.errors import ConfigError

    with pytest.raises(ConfigError, match="decoder_kv_heads"):
        ModelConfig(decoder_heads=12, decoder_kv_heads=5)
    with pytest.raises(ConfigError, match="unknown preset"):
        preset("huge")


def test_near_boundary_marks_three_bases_each_side_of_a_class_change():
    from genoforge.model.model import near_boundary

    labels = torch.tensor([[0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, -100, -100, 2, 2]])
    # change between bases 4 and 5: bases 2..7 are near it; unlabelled gaps mark no boundary
    assert near_boundary(labels).tolist() == [[0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0]]


def test_boundary_weight_is_a_weighted_mean_of_the_class_weighted_ce():
    import torch.nn.functional as F

    from genoforge.model.model import near_boundary

    model = tiny_model()
    torch.manual_seed(0)
    logits = torch.randn(2, 40, 17)
    labels = torch.randint(0, 17, (2, 40))
    labels[1, 30:] = -100
    model.base_class_weights = torch.rand(17) + 0.5
    plain, count = model.base_loss(logits, labels)
    torch.testing.assert_close(plain, F.cross_entropy(logits.reshape(-1, 17), labels.reshape(-1),
                                                      weight=model.base_class_weights, ignore_index=-100))
    model.base_boundary_weight = 4.0
    boosted, _ = model.base_loss(logits, labels)
    keep = labels.reshape(-1) != -100
    ce = F.cross_entropy(logits.reshape(-1, 17)[keep], labels.reshape(-1)[keep], reduction="none")
    w = model.base_class_weights[labels.reshape(-1)[keep]] * (1 + 4.0 * near_boundary(labels).reshape(-1)[keep])
    torch.testing.assert_close(boosted, (w * ce).sum() / w.sum())
    assert count == keep.sum()


def test_signal_weight_scales_the_signal_bce_inside_the_per_base_loss():
    model = tiny_model().eval()
    batch = with_bases(packed_batch(**TWO_ROWS), seed=1)
    with torch.no_grad():
        one = model(batch, with_decoder=False)
        model.base_signal_weight = 3.0
        three = model(batch, with_decoder=False)
        model.base_signal_weight = 0.0
        none = model(batch, with_decoder=False)
    assert one.signal_loss is not None and one.signal_loss > 0
    class_ce, _ = model.base_loss(one.base_logits, batch["base_labels"])
    torch.testing.assert_close(none.base_loss, class_ce)
    torch.testing.assert_close(one.base_loss, class_ce + one.signal_loss)
    torch.testing.assert_close(three.base_loss, class_ce + 3.0 * one.signal_loss)
