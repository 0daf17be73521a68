"""The DNABERT-2 encoder (MosaicBERT at BERT-base size), re-implemented from SPEC.md section c.

Shape legend: B batch rows, S source (encoder) tokens, D hidden size, I intermediate size,
H heads, d head dim.

Per layer, post-LayerNorm (eps 1e-12):

    qkv = x Wqkv^T + b          rows of Wqkv: q (heads 0..H-1, d each), then k, then v
    x1  = LN(Drop(Attn(qkv) Wo^T + bo) + x)          Attn adds symmetric ALiBi -slope_h |i - j|
    g   = x1 Wg^T               no bias; g[..., :I] is the gate (erf GELU), g[..., I:] the linear half
    x2  = LN(Drop(GELU(g_gate) * g_up) Wo2^T + bo2 + x1)

Embeddings: ``LN(word_emb[ids] + token_type_emb[0])`` with dropout; no position embedding.
Attention is restricted to the token's own document (packed rows) and to the encoder window.
Padding positions (doc -1) come out as exact zeros, as DNABERT-2's unpadding does.

Parameter names keep DNABERT-2's fused tensors (Wqkv, gated_layers), so loading a checkpoint is a
renaming (see dnabert.py) and the fused projections stay single GEMMs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genoforge.model.attention import AlibiScore, Backend, alibi_slopes, attend
from genoforge.model.config import ModelConfig
from genoforge.model.masks import MaskSpec


class EncoderLayer(nn.Module):
    """One post-LN BERT layer with ALiBi attention and a GeGLU FFN (gate half first)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        hidden, inter = config.encoder_hidden_size, config.encoder_intermediate_size
        self.n_heads = config.encoder_heads
        self.head_dim = config.encoder_head_dim
        self.intermediate = inter
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.attn_out = nn.Linear(hidden, hidden)
        self.attn_norm = nn.LayerNorm(hidden, eps=config.encoder_layer_norm_eps)
        self.gated = nn.Linear(hidden, 2 * inter, bias=False)
        self.ffn_out = nn.Linear(inter, hidden)
        self.ffn_norm = nn.LayerNorm(hidden, eps=config.encoder_layer_norm_eps)
        self.dropout = nn.Dropout(config.encoder_dropout)

    def forward(self, x_BSD: Tensor, spec: MaskSpec, alibi: AlibiScore, backend: Backend) -> Tensor:
        batch, length, hidden = x_BSD.shape
        qkv = self.qkv(x_BSD).view(batch, length, 3, self.n_heads, self.head_dim)
        q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))  # each [B, H, S, d]
        ctx = attend(q, k, v, spec, backend, alibi=alibi)
        ctx = ctx.transpose(1, 2).reshape(batch, length, hidden)
        x1 = self.attn_norm(self.dropout(self.attn_out(ctx)) + x_BSD)
        gate, up = self.gated(x1).split(self.intermediate, dim=-1)
        h = self.dropout(F.gelu(gate, approximate="none") * up)
        return self.ffn_norm(self.ffn_out(h) + x1)


class DnabertEncoder(nn.Module):
    """DNABERT-2's BERT over packed rows: [B, S] token ids -> [B, S, D] hidden states."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        hidden = config.encoder_hidden_size
        self.config = config
        self.word_embeddings = nn.Embedding(config.vocab_size, hidden)
        # DNABERT-2 always adds token type 0 (its type table has 2 rows; row 1 is never used
        # without sentence pairs, so only row 0 is kept).
        self.token_type_embedding = nn.Parameter(torch.zeros(hidden))
        self.embed_norm = nn.LayerNorm(hidden, eps=config.encoder_layer_norm_eps)
        self.dropout = nn.Dropout(config.encoder_dropout)
        self.layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.encoder_layers))
        # Not a buffer: the slopes must stay fp32 whatever dtype the module is cast to.
        # fp32 (as DNABERT-2 computes them), fp64 when the encoder runs in fp64.
        self._slopes: dict[tuple[torch.device, torch.dtype], Tensor] = {}

    def alibi_slopes_H(self, device: torch.device, dtype: torch.dtype) -> Tensor:
        dtype = torch.float64 if dtype == torch.float64 else torch.float32
        if (device, dtype) not in self._slopes:
            self._slopes[device, dtype] = alibi_slopes(self.config.encoder_heads, dtype).to(device)
        return self._slopes[device, dtype]

    def forward(self, input_ids_BS: Tensor, spec: MaskSpec, backend: Backend) -> Tensor:
        x = self.word_embeddings(input_ids_BS) + self.token_type_embedding
        x = self.dropout(self.embed_norm(x))
        alibi = AlibiScore(self.alibi_slopes_H(x.device, x.dtype))
        for layer in self.layers:
            x = layer(x, spec, alibi, backend)
        real = (spec.q_doc >= 0).unsqueeze(-1)
        return x * real.to(x.dtype)
