"""The fast CUDA paths equal the references within bf16 tolerance (run on the lent H100).

FlexAttention (compiled, block-sparse, bf16, fwd and bwd) vs the explicit-mask reference on fp32
copies, for each mask kind; MoE grouped GEMM vs the per-expert loop (bf16 autocast, fwd and bwd);
the whole small model with flex vs reference attention (fp32, forward); compiled + checkpointed
training against eager; CUDA-graph decoding against eager decoding; bitwise run-to-run equal
encoding. Skipped without CUDA.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from tests.helpers import document_ids as docs

from genoforge.model.attention import (
    AlibiScore,
    alibi_slopes,
    attend,
    cross_mask,
    decoder_self_mask,
    encoder_self_mask,
)
from genoforge.model.config import preset
from genoforge.model.model import GenoforgeModel
from genoforge.model.moe import MoEFeedForward

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

DEV = "cuda"


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm().clamp(min=1e-12)).item()


@pytest.mark.parametrize("kind", ["encoder", "decoder", "cross"])
def test_flex_matches_reference_attention_fwd_bwd(kind):
    torch.manual_seed(0)
    enc_doc = torch.stack([docs([700, 900, 400], 2048), docs([1500, 300], 2048)]).to(DEV)
    if kind == "encoder":
        spec, heads, kv_heads = encoder_self_mask(enc_doc, 1025, 256), 12, 12
        alibi = AlibiScore(alibi_slopes(12).to(DEV))
    elif kind == "decoder":
        spec, heads, kv_heads, alibi = decoder_self_mask(enc_doc, 300, 16), 12, 3, None
    else:
        latent_doc = torch.stack([docs([64, 64, 64], 256), docs([64, 64], 256)]).to(DEV)
        spec, heads, kv_heads, alibi = cross_mask(latent_doc, enc_doc, 128), 12, 3, None
    batch, n_q, n_kv = spec.shape
    q = torch.randn(batch, heads, n_q, 64, device=DEV, dtype=torch.bfloat16, requires_grad=True)
    k = torch.randn(batch, kv_heads, n_kv, 64, device=DEV, dtype=torch.bfloat16, requires_grad=True)
    v = torch.randn(batch, kv_heads, n_kv, 64, device=DEV, dtype=torch.bfloat16, requires_grad=True)
    grad_out = torch.randn(batch, heads, n_q, 64, device=DEV, dtype=torch.bfloat16)
    flex = attend(q, k, v, spec, "flex", alibi)
    flex_grads = torch.autograd.grad(flex, (q, k, v), grad_out)
    # The reference runs on fp32 copies: the error measured is the bf16 kernel's own.
    q32, k32, v32 = (t.detach().float().requires_grad_(True) for t in (q, k, v))
    ref = attend(q32, k32, v32, spec, "reference", alibi)
    ref_grads = torch.autograd.grad(ref, (q32, k32, v32), grad_out.float())
    for fast, slow in zip((flex, *flex_grads), (ref, *ref_grads), strict=True):
        assert torch.isfinite(fast).all()
        assert rel_err(fast, slow) < 2e-2


@pytest.mark.parametrize("kind", ["encoder", "decoder", "cross"])
def test_graphed_block_lists_equal_the_eager_ones(kind):
    """Mask building replayed from a CUDA graph gives the eager lists, batch after batch, and a
    mask kept from an earlier batch is not overwritten by the next replay."""
    from genoforge.model.block_lists import block_lists
    from genoforge.model.mask_graphs import build_block_lists

    layouts = [[700, 900, 400], [1500, 300], [128, 1000, 512, 200], [2048]]
    made = []
    for i, lengths in enumerate(layouts):  # first eager, second captures, then replays
        enc_doc = torch.stack([docs(lengths, 2048), docs(layouts[(i + 1) % 4], 2048)]).to(DEV)
        if kind == "encoder":
            spec = encoder_self_mask(enc_doc, 1025, 256)
        elif kind == "decoder":
            spec = decoder_self_mask(enc_doc, 300, 16)
        else:
            latent_doc = torch.stack([docs([64] * len(lengths), 256), docs([64, 64], 256)]).to(DEV)
            spec = cross_mask(latent_doc, enc_doc, 128)
        args = (spec.flex_block_size(), spec.causal, spec.lookback, spec.radius)
        made.append((build_block_lists(spec.q_doc, spec.kv_doc, *args),
                     block_lists(spec.q_doc, spec.kv_doc, *args)))
    for got_lists, want_lists in made:  # checked after every replay has run
        for got, want in zip(got_lists, want_lists, strict=True):
            assert got.dtype == want.dtype and torch.equal(got, want)


def test_moe_grouped_matches_loop_fwd_bwd():
    torch.manual_seed(0)
    moe = MoEFeedForward(dim=768, ff_dim=3072, num_experts=32, top_k=2).to(DEV)
    for w in (moe.w_gate_EDF, moe.w_up_EDF, moe.w_down_EDF):
        torch.nn.init.normal_(w, std=0.02)
    torch.nn.init.normal_(moe.router.weight, std=0.02)
    x = torch.randn(4, 2048, 768, device=DEV)
    valid = torch.ones(4, 2048, dtype=torch.bool, device=DEV)
    valid[3, 1500:] = False
    outs = {}
    for impl in ("grouped", "loop"):
        moe.impl = impl
        moe.zero_grad()
        xi = x.clone().requires_grad_(True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out, stats = moe(xi, valid)
        out.float().pow(2).mean().backward()
        outs[impl] = (out, xi.grad, moe.w_up_EDF.grad.clone(), moe.router.weight.grad.clone(), stats)
    for a, b in zip(outs["grouped"][:4], outs["loop"][:4], strict=True):
        assert rel_err(a, b) < 2e-2
    assert torch.equal(outs["grouped"][4].tokens_per_expert, outs["loop"][4].tokens_per_expert)
    assert int(outs["grouped"][4].tokens_per_expert.sum()) == int(valid.sum()) * 2


def test_small_model_flex_matches_reference():
    """The whole small model, fp32 (routing is then identical on both paths), forward."""
    config = dataclasses.replace(preset("small"), vocab_size=1200, decoder_dropout=0.0, encoder_dropout=0.0)
    torch.manual_seed(0)
    model = GenoforgeModel(config, torch.arange(100, 1100)).to(DEV).eval()
    model.init_weights()
    model.set_moe_impl("loop")
    enc_doc = torch.stack([docs([600, 400], 1024), docs([900], 1024)]).to(DEV).int()
    dec_doc = torch.stack([docs([200, 100], 320), docs([250], 320)]).to(DEV).int()
    batch = dict(
        input_ids=torch.randint(5, 90, enc_doc.shape, device=DEV),
        input_doc=enc_doc,
        input_bp=(torch.arange(1024, device=DEV) * 5).int().expand(2, -1).contiguous(),
        decoder_ids=torch.randint(0, 1200, dec_doc.shape, device=DEV),
        decoder_doc=dec_doc,
        labels=torch.randint(0, 1200, dec_doc.shape, device=DEV),
        docs_per_row=2,
    )
    logits = {}
    for backend in ("flex", "reference"):
        model.attention_backend = backend
        with torch.no_grad():
            logits[backend] = model(batch).logits[dec_doc >= 0]
    assert rel_err(logits["flex"], logits["reference"]) < 1e-3


def test_small_model_compiled_and_checkpointed_trains():
    """tune's wrapping for `--compile --gradient_checkpointing`: blocks compiled, then checkpointed.

    Compiling a checkpointed block (the other order) failed on an H100 with torch 2.11: dynamo
    cannot trace flex_attention inside the checkpoint's higher-order op (pytorch/pytorch#167116).
    Gradients must match the eager model's under bf16 autocast.
    """
    from genoforge.training.parallelize import apply_activation_checkpointing, compile_blocks

    config = dataclasses.replace(preset("small"), vocab_size=1200, decoder_dropout=0.0, encoder_dropout=0.0)
    enc_doc = torch.stack([docs([600, 400], 1024), docs([900], 1024)]).to(DEV).int()
    dec_doc = torch.stack([docs([200, 100], 320), docs([250], 320)]).to(DEV).int()
    gen = torch.Generator(device="cpu").manual_seed(1)
    batch = dict(
        input_ids=torch.randint(5, 90, enc_doc.shape, generator=gen).to(DEV),
        input_doc=enc_doc,
        input_bp=(torch.arange(1024, device=DEV) * 5).int().expand(2, -1).contiguous(),
        decoder_ids=torch.randint(0, 1200, dec_doc.shape, generator=gen).to(DEV),
        decoder_doc=dec_doc,
        labels=torch.randint(0, 1200, dec_doc.shape, generator=gen).to(DEV),
        docs_per_row=2,
    )
    grads = {}
    for wrapped in (False, True):
        torch.manual_seed(0)
        model = GenoforgeModel(config, torch.arange(100, 1100)).to(DEV).train()
        model.init_weights()
        if wrapped:
            assert compile_blocks(model) > 0
            assert apply_activation_checkpointing(model) > 0
        for _ in range(2):  # the second pass runs the cached graphs
            model.zero_grad(set_to_none=True)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = model(batch).loss
            loss.backward()
        grads[wrapped] = torch.cat([p.grad.flatten().float() for p in model.parameters() if p.grad is not None])
    assert grads[True].numel() == grads[False].numel()
    assert rel_err(grads[True], grads[False]) < 5e-2


def test_cuda_graph_decoding_writes_the_eager_tokens(tmp_path):
    """`predict --cuda_graphs`'s decoder step (GraphedRowStep: warm-up, capture, replay) writes
    exactly the tokens of the eager row_step: small preset, random weights, bf16, 7 windows on 3
    rows (refilled mid-stream). <eos> is held back for 40 steps (device work, captured with the
    step, as benchmarks/predict.py does) so most tokens come from replays."""
    import random
    import shutil

    from genoforge.inference.cuda_graphs import GraphedRowStep
    from genoforge.inference.stream import decode_stream, row_step
    from genoforge.tokenizer.core import GenoTokenizer, dnabert2_tokenizer_path
    from genoforge.tokenizer.edit import ensure_builtin_tokens

    shutil.copyfile(dnabert2_tokenizer_path(), tmp_path / "tokenizer.json")
    ensure_builtin_tokens(tmp_path)
    tokenizer = GenoTokenizer.load(tmp_path)
    config = dataclasses.replace(preset("small"), vocab_size=tokenizer.vocab_size, pad_token_id=tokenizer.pad_id,
                                 decoder_dropout=0.0, encoder_dropout=0.0)
    torch.manual_seed(0)
    digits = torch.tensor([tokenizer.token_to_id(str(i)) for i in range(1000)])
    model = GenoforgeModel(config, digits).to(DEV)
    model.init_weights()
    model = model.to(torch.bfloat16).eval()
    eos = tokenizer.eos_id

    def held_back(model, token_ids, cache, active):
        logits = row_step(model, token_ids, cache, active)
        early = cache.position_B < 40
        logits[:, eos] = torch.where(early, logits[:, eos] - 1e4, logits[:, eos])
        return logits

    rng = random.Random(0)
    lengths = [3_000, 1_200, 2_500, 800, 3_000, 2_000, 1_500]
    items = [(k, tokenizer.encode_dna("".join(rng.choice("ACGT") for _ in range(n))), n)
             for k, n in enumerate(lengths)]
    eager = dict(decode_stream(model, tokenizer, items, batch_size=3, max_new_tokens=64, step=held_back))
    graphed = GraphedRowStep(body=held_back)
    steps = 0

    def counted(*args):
        nonlocal steps
        steps += 1
        return graphed(*args)

    replayed = dict(decode_stream(model, tokenizer, items, batch_size=3, max_new_tokens=64, step=counted))
    assert graphed.captures == 1  # a compressor: fixed memory width, one capture for the stream
    assert steps > 80  # 3 rows, 7 windows of >= 41 steps each: at least 3 rounds
    assert [replayed[k].token_ids for k in range(7)] == [eager[k].token_ids for k in range(7)]


def test_encoding_is_the_same_bits_every_run():
    """`predict` twice on one genome must write one GFF3: on the H100 two eager runs of the same
    trained model gave 190 and 184 genes while the compressor's chunk means were a bf16 float
    scatter-add (atomics, arrival order). The memory of a packed bf16 batch (encoder, bp signal,
    compressor) must now be bitwise equal from run to run, under autocast as in predict."""
    config = dataclasses.replace(preset("small"), vocab_size=1200, decoder_dropout=0.0, encoder_dropout=0.0)
    torch.manual_seed(0)
    model = GenoforgeModel(config, torch.arange(100, 1100)).to(DEV)
    model.init_weights()
    model = model.to(torch.bfloat16).eval()
    lengths = [4096, 3000, 2500, 2000, 1500, 1200, 900, 800]  # 16,384-token rows
    enc_doc = torch.stack([docs(lengths, 16384), docs(lengths[::-1], 16384)]).to(DEV).int()
    batch = dict(
        input_ids=torch.randint(5, 90, enc_doc.shape, device=DEV),
        input_doc=enc_doc,
        input_bp=(torch.arange(16384, device=DEV) * 5).int().expand(2, -1).contiguous(),
        docs_per_row=len(lengths),
    )
    with torch.no_grad():
        runs = [model.encode(batch).states_BMD.clone() for _ in range(4)]
    for other in runs[1:]:
        assert torch.equal(runs[0], other)
