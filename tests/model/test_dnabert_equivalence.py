"""Our encoder computes DNABERT-2's function (SPEC.md section c), loaded without remote code.

A small checkpoint is written in DNABERT-2's exact key layout (SPEC.md section b: the 142-key
BertForMaskedLM state dict, here with 2 layers, hidden 48 and 12 heads of 4 so that the real
12-head ALiBi order is exercised) as pytorch_model.bin + config.json + tokenizer.json. It is
loaded through `model init --dnabert_path`, and the saved model's encoder is compared in float64
with a reference forward written below, independently, from the text of SPEC.md section c.
Negative controls (swapped GeGLU halves, no ALiBi, one-sided ALiBi, tanh GELU) must differ.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch

from genoforge.errors import CheckpointError
from genoforge.model.attention import encoder_self_mask
from genoforge.model.init import init_model
from genoforge.model.io import load_model
from genoforge.tokenizer.core import dnabert2_tokenizer_path

HIDDEN, LAYERS, HEADS, INTER, VOCAB = 48, 2, 12, 40, 4096

# SPEC.md section c, the 12-head table, typed in rather than computed.
SPEC_SLOPES_12 = [1 / 2, 1 / 4, 1 / 8, 1 / 16, 1 / 32, 1 / 64, 1 / 128, 1 / 256,
                  2 ** -0.5, 2 ** -1.5, 2 ** -2.5, 2 ** -3.5]


def dnabert_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A random state dict with DNABERT-2's keys, in its registration order (setting A of S8)."""
    g = torch.Generator().manual_seed(seed)

    def linear(out_dim, in_dim):
        return torch.randn(out_dim, in_dim, generator=g) / math.sqrt(in_dim)

    def norm(dim):
        return 1.0 + 0.1 * torch.randn(dim, generator=g)

    def vec(dim):
        return torch.randn(dim, generator=g)

    state = {
        "bert.embeddings.word_embeddings.weight": torch.randn(VOCAB, HIDDEN, generator=g),
        "bert.embeddings.token_type_embeddings.weight": torch.randn(2, HIDDEN, generator=g),
        "bert.embeddings.LayerNorm.weight": norm(HIDDEN),
        "bert.embeddings.LayerNorm.bias": vec(HIDDEN),
    }
    for i in range(LAYERS):
        p = f"bert.encoder.layer.{i}."
        state[p + "attention.self.Wqkv.weight"] = linear(3 * HIDDEN, HIDDEN)
        state[p + "attention.self.Wqkv.bias"] = vec(3 * HIDDEN)
        state[p + "attention.output.dense.weight"] = linear(HIDDEN, HIDDEN)
        state[p + "attention.output.dense.bias"] = vec(HIDDEN)
        state[p + "attention.output.LayerNorm.weight"] = norm(HIDDEN)
        state[p + "attention.output.LayerNorm.bias"] = vec(HIDDEN)
        state[p + "mlp.gated_layers.weight"] = linear(2 * INTER, HIDDEN)
        state[p + "mlp.wo.weight"] = linear(HIDDEN, INTER)
        state[p + "mlp.wo.bias"] = vec(HIDDEN)
        state[p + "mlp.layernorm.weight"] = norm(HIDDEN)
        state[p + "mlp.layernorm.bias"] = vec(HIDDEN)
    state["cls.predictions.transform.dense.weight"] = linear(HIDDEN, HIDDEN)
    state["cls.predictions.transform.dense.bias"] = vec(HIDDEN)
    state["cls.predictions.transform.LayerNorm.weight"] = norm(HIDDEN)
    state["cls.predictions.transform.LayerNorm.bias"] = vec(HIDDEN)
    state["cls.predictions.decoder.weight"] = state["bert.embeddings.word_embeddings.weight"]  # tied
    state["cls.predictions.decoder.bias"] = vec(VOCAB)
    return state


def write_checkpoint(directory: Path, state: dict[str, torch.Tensor]) -> Path:
    directory.mkdir(parents=True)
    torch.save(state, directory / "pytorch_model.bin")
    config = {
        "_name_or_path": "zhihan1996/DNABERT-2-117M", "alibi_starting_size": 512,
        "attention_probs_dropout_prob": 0.0,
        "auto_map": {"AutoConfig": "configuration_bert.BertConfig", "AutoModel": "bert_layers.BertModel"},
        "classifier_dropout": None, "gradient_checkpointing": False, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "hidden_size": HIDDEN, "initializer_range": 0.02,
        "intermediate_size": INTER, "layer_norm_eps": 1e-12, "max_position_embeddings": 512,
        "num_attention_heads": HEADS, "num_hidden_layers": LAYERS, "position_embedding_type": "absolute",
        "torch_dtype": "float32", "transformers_version": "4.28.0", "type_vocab_size": 2,
        "use_cache": True, "vocab_size": VOCAB,
    }
    (directory / "config.json").write_text(json.dumps(config))
    shutil.copyfile(dnabert2_tokenizer_path(), directory / "tokenizer.json")
    return directory


def reference_forward(state, input_ids, attention_mask, *, swap_glu=False, alibi="symmetric", tanh_gelu=False):
    """SPEC.md section c, step by step, in float64."""
    s = {k: v.double() for k, v in state.items()}
    eps, d = 1e-12, HIDDEN // HEADS
    batch, length = input_ids.shape

    def layer_norm(x, w, b):
        mean = x.mean(-1, keepdim=True)
        var = ((x - mean) ** 2).mean(-1, keepdim=True)
        return (x - mean) / torch.sqrt(var + eps) * w + b

    def gelu(x):
        if tanh_gelu:
            return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
        return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))

    # 1. embeddings: word + token type 0, LayerNorm, no positions.
    x = s["bert.embeddings.word_embeddings.weight"][input_ids] + s["bert.embeddings.token_type_embeddings.weight"][0]
    x = layer_norm(x, s["bert.embeddings.LayerNorm.weight"], s["bert.embeddings.LayerNorm.bias"])
    # 2. additive key mask (-10000) + ALiBi -slope_h |i - j|.
    slopes = torch.tensor(SPEC_SLOPES_12, dtype=torch.float64)
    i = torch.arange(length, dtype=torch.float64)
    dist = (i[:, None] - i[None, :]).abs() if alibi == "symmetric" else (i[:, None] - i[None, :]).clamp(min=0)
    alibi_bias = -slopes[:, None, None] * dist if alibi != "none" else torch.zeros(HEADS, length, length, dtype=torch.float64)
    bias = alibi_bias[None] + ((1.0 - attention_mask.double()) * -10000.0)[:, None, None, :]
    for layer in range(LAYERS):
        p = f"bert.encoder.layer.{layer}."
        qkv = x @ s[p + "attention.self.Wqkv.weight"].T + s[p + "attention.self.Wqkv.bias"]
        qkv = qkv.view(batch, length, 3, HEADS, d)
        q, k, v = (qkv[:, :, j].permute(0, 2, 1, 3) for j in range(3))
        scores = q @ k.transpose(-1, -2) / math.sqrt(d) + bias
        ctx = (scores.softmax(-1) @ v).permute(0, 2, 1, 3).reshape(batch, length, HIDDEN)
        x1 = layer_norm(ctx @ s[p + "attention.output.dense.weight"].T + s[p + "attention.output.dense.bias"] + x,
                        s[p + "attention.output.LayerNorm.weight"], s[p + "attention.output.LayerNorm.bias"])
        g = x1 @ s[p + "mlp.gated_layers.weight"].T
        a, b = g[..., :INTER], g[..., INTER:]
        if swap_glu:
            a, b = b, a
        h = gelu(a) * b
        x = layer_norm(h @ s[p + "mlp.wo.weight"].T + s[p + "mlp.wo.bias"] + x1,
                       s[p + "mlp.layernorm.weight"], s[p + "mlp.layernorm.bias"])
    # 3. padded positions come out as exact zeros (unpadding).
    return x * attention_mask.double()[..., None]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """(checkpoint state, our model loaded from the model dir that `model init` wrote, init result)."""
    root = tmp_path_factory.mktemp("dnabert")
    state = dnabert_state()
    checkpoint = write_checkpoint(root / "ckpt", state)
    result = init_model(root / "model", dnabert_path=checkpoint, preset_name="debug")
    model = load_model(root / "model", dtype=torch.float64).eval()
    return state, model, result


def batch_3x37():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, VOCAB, (3, 37), generator=g)
    ids[2, 5:15] = 9  # a run of repeated tokens
    mask = torch.ones(3, 37, dtype=torch.long)
    mask[1, 30:] = 0
    mask[2, 20:] = 0
    return ids, mask


def our_encoder(model, ids, mask):
    doc = torch.where(mask.bool(), 0, -1)
    spec = encoder_self_mask(doc, window_size=0, block_size=16)  # DNABERT-2 itself has no window
    with torch.no_grad():
        return model.encoder(ids, spec, "reference")


def test_encoder_matches_the_spec_reference_forward(loaded):
    state, model, result = loaded
    assert result.config.encoder_hidden_size == HIDDEN and result.config.encoder_heads == HEADS
    ids, mask = batch_3x37()
    ours = our_encoder(model, ids, mask)
    reference = reference_forward(state, ids, mask)
    assert (ours - reference).abs().max().item() < 1e-10
    assert ours[1, 30:].abs().max() == 0 and ours[2, 20:].abs().max() == 0


@pytest.mark.parametrize(
    "variant", [dict(swap_glu=True), dict(alibi="none"), dict(alibi="one-sided"), dict(tanh_gelu=True)]
)
def test_negative_controls_differ(loaded, variant):
    state, model, _ = loaded
    ids, mask = batch_3x37()
    ours = our_encoder(model, ids, mask)
    assert (ours - reference_forward(state, ids, mask, **variant)).abs().max().item() > 1e-6


def test_flex_path_of_the_loaded_encoder_matches(loaded):
    state, model, _ = loaded
    ids, mask = batch_3x37()
    doc = torch.where(mask.bool(), 0, -1)
    with torch.no_grad():
        flex = model.encoder(ids, encoder_self_mask(doc, 0, 16), "flex")
    assert (flex - reference_forward(state, ids, mask)).abs().max().item() < 1e-8


def test_unused_keys_are_reported_and_tokenizer_extended(loaded):
    _, model, result = loaded
    assert set(k for k in result.unused_keys if k.startswith("cls.")) == {
        "cls.predictions.transform.dense.weight", "cls.predictions.transform.dense.bias",
        "cls.predictions.transform.LayerNorm.weight", "cls.predictions.transform.LayerNorm.bias",
        "cls.predictions.decoder.weight", "cls.predictions.decoder.bias",
    }
    assert any("token_type_embeddings" in k for k in result.unused_keys)
    assert result.config.vocab_size > VOCAB  # the built-in inventory was added
    assert model.encoder.word_embeddings.weight.shape[0] == result.config.vocab_size


def test_missing_key_is_refused_and_named(tmp_path):
    state = dnabert_state()
    del state["bert.encoder.layer.1.mlp.wo.bias"]
    checkpoint = write_checkpoint(tmp_path / "ckpt", state)
    with pytest.raises(CheckpointError, match=r"bert\.encoder\.layer\.1\.mlp\.wo\.bias"):
        init_model(tmp_path / "model", dnabert_path=checkpoint, preset_name="debug")
    assert not (tmp_path / "model").exists()  # nothing half-written


def test_safetensors_checkpoint_loads_the_same(tmp_path, loaded):
    from safetensors.torch import save_file

    state, model, _ = loaded
    checkpoint = write_checkpoint(tmp_path / "ckpt", state)
    (checkpoint / "pytorch_model.bin").unlink()
    flat = {k: v.clone().contiguous() for k, v in state.items() if k != "cls.predictions.decoder.weight"}
    save_file(flat, str(checkpoint / "model.safetensors"))
    init_model(tmp_path / "model", dnabert_path=checkpoint, preset_name="debug")
    other = load_model(tmp_path / "model", dtype=torch.float64).eval()
    ids, mask = batch_3x37()
    assert torch.equal(our_encoder(other, ids, mask), our_encoder(model, ids, mask))
