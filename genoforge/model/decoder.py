"""The decoder: pre-RMSNorm layers of causal self-attention, cross-attention and a (MoE) FFN.

Shape legend: B batch rows, T target tokens, M memory (latents or encoder) tokens, D model dim,
H query heads, G key/value heads, d head dim, W look-back window, V vocabulary.

Layer (residual dropout ``decoder_dropout`` on each branch):

    x = x + SelfAttn(norm(x))      causal, same document, look-back W, GQA, RoPE
    x = x + CrossAttn(norm(x), m)  every memory token of the same document (per token, no pooling)
    x = x + FFN(norm(x))           dropless top-k MoE (use_moe) or a dense SwiGLU

Token embeddings are read scaled by sqrt(D) (:class:`ScaledEmbedding`), so the token signal is
not swamped at init by what every token of a document shares (see that class).

Positions: RoPE (theta ``rope_theta``) on the position *within the document* (0 at ``<bos>``), so
a packed document is computed exactly as it would be alone, and incremental decoding uses the
step number. Rotary rather than ALiBi because it composes with the look-back window and the KV
cache without a bias tensor, and FlexAttention then needs only a mask.

Incremental decoding (:class:`DecodeCache`): per layer a ring buffer of the last W keys/values
(already rotated) and the cross-attention keys/values of the memory, computed once per window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genoforge.model.attention import Backend, GQAttention, apply_rope, attend, rope_cos_sin
from genoforge.model.config import ModelConfig
from genoforge.model.masks import MaskSpec
from genoforge.model.moe import MoEFeedForward, RouterStats
from genoforge.model.norms import RMSNorm, SwiGLU


@dataclass
class LayerCache:
    """Decode state of one layer."""

    self_k_BGWd: Tensor
    self_v_BGWd: Tensor
    cross_k_BGMd: Tensor
    cross_v_BGMd: Tensor


@dataclass
class DecodeCache:
    """Incremental-decoding state for a batch of windows (one document per row).

    ``slot_pos_W`` holds the position stored in each ring slot (-1 = empty); all rows advance in
    lockstep, one token per :meth:`GenoforgeDecoder.step`.
    """

    layers: list[LayerCache]
    memory_doc_BM: Tensor
    query_doc_B: Tensor
    slot_pos_W: Tensor
    position: int = 0
    extra: dict = field(default_factory=dict)


class ScaledEmbedding(nn.Embedding):
    """An embedding read as ``weight[ids] * sqrt(D)`` (Vaswani et al. 2017, section 3.4).

    Why: the table is drawn from N(0, init_embed_std) and tied to the output head, the right scale
    for logits; read unscaled, a token's vector has RMS 0.02 while at init each decoder layer's
    cross-attention (near-uniform attention, so a document's mean memory value) adds a vector of
    RMS ~0.3 that is the same for every token of the document. After the pre-MoE norm all tokens
    then looked alike and every router sent them all to the same 2 of 32 experts. Scaled, the
    token signal has RMS init_embed_std * sqrt(D) (0.55 at D = 768) and leads the residual stream.
    Every reader of the table (training forward, cached and per-row decoding, the bp signal, where
    bp_norm makes the scale moot) goes through ``forward``; the tied output head reads ``weight``.

    Not added: GPT-2's 1/sqrt(2 n_layers) init of the branch outputs. Measured at the seed shape
    with it, the final stream is then the input token's own vector, so the tied head predicts
    "next token = this token" with p ~ 1 at init (loss 14.8 vs ln V = 8.55; 8.99 without it), and
    in a short CPU run unlearning that went with the routers narrowing onto a few experts.
    """

    def __init__(self, num_embeddings: int, dim: int):
        super().__init__(num_embeddings, dim)
        self.scale = math.sqrt(dim)

    def forward(self, ids: Tensor) -> Tensor:
        return super().forward(ids) * self.scale


class DecoderLayer(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        dim = config.decoder_dim
        self.self_norm = RMSNorm(dim, config.norm_eps)
        self.self_attn = GQAttention(dim, dim, config.decoder_heads, config.decoder_kv_heads)
        self.cross_norm = RMSNorm(dim, config.norm_eps)
        self.cross_attn = GQAttention(dim, dim, config.decoder_heads, config.decoder_kv_heads)
        self.ffn_norm = RMSNorm(dim, config.norm_eps)
        self.ffn: nn.Module
        if config.use_moe:
            self.ffn = MoEFeedForward(dim, config.decoder_ff_dim, config.num_experts, config.moe_top_k)
        else:
            self.ffn = SwiGLU(dim, config.decoder_ff_dim)
        self.dropout = nn.Dropout(config.decoder_dropout)

    def feed_forward(self, x_BTD: Tensor, valid_BT: Tensor) -> tuple[Tensor, RouterStats | None]:
        h = self.ffn_norm(x_BTD)
        if isinstance(self.ffn, MoEFeedForward):
            out, stats = self.ffn(h, valid_BT)
            return x_BTD + self.dropout(out), stats
        return x_BTD + self.dropout(self.ffn(h)), None

    def forward(
        self,
        x_BTD: Tensor,
        memory_BMD: Tensor,
        self_spec: MaskSpec,
        cross_spec: MaskSpec,
        rope: tuple[Tensor, Tensor],
        valid_BT: Tensor,
        backend: Backend,
    ) -> tuple[Tensor, RouterStats | None]:
        h = self.self_norm(x_BTD)
        x_BTD = x_BTD + self.dropout(self.self_attn(h, h, self_spec, backend, rope=rope))
        h = self.cross_norm(x_BTD)
        x_BTD = x_BTD + self.dropout(self.cross_attn(h, memory_BMD, cross_spec, backend))
        return self.feed_forward(x_BTD, valid_BT)

    def step(self, x_B1D: Tensor, cache: LayerCache, state: DecodeCache, rope: tuple[Tensor, Tensor]) -> Tensor:
        """One token per row, reading and updating ``cache`` (the ring slot of this position)."""
        attn = self.self_attn
        h = self.self_norm(x_B1D)
        q = apply_rope(attn.split(attn.q_proj(h), attn.n_heads), *rope)
        k, v = attn.project_kv(h)
        slot = state.position % cache.self_k_BGWd.shape[2]
        cache.self_k_BGWd[:, :, slot] = apply_rope(k, *rope)[:, :, 0]
        cache.self_v_BGWd[:, :, slot] = v[:, :, 0]
        window = cache.self_k_BGWd.shape[2]
        visible_W = (state.slot_pos_W >= 0) & (state.slot_pos_W > state.position - window)
        out = F.scaled_dot_product_attention(
            q, cache.self_k_BGWd, cache.self_v_BGWd, attn_mask=visible_W[None, None, None], enable_gqa=True
        )
        x_B1D = x_B1D + attn.merge(out)

        cross = self.cross_attn
        h = self.cross_norm(x_B1D)
        q = cross.split(cross.q_proj(h), cross.n_heads)
        spec = MaskSpec(state.query_doc_B[:, None], state.memory_doc_BM)
        out = attend(q, cache.cross_k_BGMd, cache.cross_v_BGMd, spec, "reference")
        x_B1D = x_B1D + cross.merge(out)
        valid = torch.ones(x_B1D.shape[:2], dtype=torch.bool, device=x_B1D.device)
        return self.feed_forward(x_B1D, valid)[0]


class GenoforgeDecoder(nn.Module):
    """Token embedding, decoder layers, final norm and the output head."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        dim = config.decoder_dim
        self.config = config
        self.embed_tokens = ScaledEmbedding(config.vocab_size, dim)
        self.memory_norm = RMSNorm(dim, config.norm_eps)
        self.layers = nn.ModuleList(DecoderLayer(config) for _ in range(config.decoder_layers))
        self.norm = RMSNorm(dim, config.norm_eps)
        self.lm_head = nn.Linear(dim, config.vocab_size, bias=False)
        self.dropout = nn.Dropout(config.decoder_dropout)
        if config.tie_weights:
            self.lm_head.weight = self.embed_tokens.weight

    def rope(self, positions_BT: Tensor) -> tuple[Tensor, Tensor]:
        return rope_cos_sin(positions_BT, self.config.decoder_head_dim, self.config.rope_theta)

    def forward(
        self,
        decoder_ids_BT: Tensor,
        positions_BT: Tensor,
        memory_BMD: Tensor,
        self_spec: MaskSpec,
        cross_spec: MaskSpec,
        backend: Backend,
    ) -> tuple[Tensor, list[RouterStats]]:
        """Hidden states after the final norm [B, T, D] and each MoE layer's router statistics."""
        x = self.dropout(self.embed_tokens(decoder_ids_BT))
        memory = self.memory_norm(memory_BMD)
        rope = self.rope(positions_BT)
        valid_BT = self_spec.q_doc >= 0
        stats = []
        for layer in self.layers:
            x, layer_stats = layer(x, memory, self_spec, cross_spec, rope, valid_BT, backend)
            if layer_stats is not None:
                stats.append(layer_stats)
        return self.norm(x), stats

    def logits(self, hidden_BTD: Tensor) -> Tensor:
        return self.lm_head(hidden_BTD)

    @torch.no_grad()
    def new_cache(self, memory_BMD: Tensor, memory_doc_BM: Tensor, query_doc_B: Tensor | None = None) -> DecodeCache:
        """A fresh decode cache: cross K/V of every layer from ``memory``, empty self-attn rings."""
        config = self.config
        batch = memory_BMD.shape[0]
        window = config.decoder_window_size if config.decoder_window_size > 0 else 4096
        memory = self.memory_norm(memory_BMD)
        layers = []
        for layer in self.layers:
            ck, cv = layer.cross_attn.project_kv(memory)
            shape = (batch, config.decoder_kv_heads, window, config.decoder_head_dim)
            layers.append(
                LayerCache(
                    self_k_BGWd=torch.zeros(shape, device=memory.device, dtype=ck.dtype),
                    self_v_BGWd=torch.zeros(shape, device=memory.device, dtype=ck.dtype),
                    cross_k_BGMd=ck,
                    cross_v_BGMd=cv,
                )
            )
        if query_doc_B is None:
            query_doc_B = torch.zeros(batch, dtype=memory_doc_BM.dtype, device=memory.device)
        slot_pos = torch.full((window,), -1, dtype=torch.long, device=memory.device)
        return DecodeCache(layers=layers, memory_doc_BM=memory_doc_BM, query_doc_B=query_doc_B, slot_pos_W=slot_pos)

    @torch.no_grad()
    def step(self, token_ids_B: Tensor, cache: DecodeCache) -> Tensor:
        """Logits [B, V] for the next token after ``token_ids_B`` at position ``cache.position``.

        The ring buffer holds ``decoder_window_size`` slots (4096 when the window is 0, i.e. the
        whole document: longer targets then need a larger cache).
        """
        x = self.embed_tokens(token_ids_B)[:, None]
        positions = torch.full((token_ids_B.shape[0], 1), cache.position, device=x.device)
        rope = self.rope(positions)
        window = cache.slot_pos_W.shape[0]
        cache.slot_pos_W[cache.position % window] = cache.position
        for layer, layer_cache in zip(self.layers, cache.layers, strict=True):
            x = layer.step(x, layer_cache, cache, rope)
        cache.position += 1
        return self.logits(self.norm(x))[:, 0]
