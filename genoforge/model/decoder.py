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

Incremental decoding (:meth:`GenoforgeDecoder.step`, state in
:class:`~genoforge.model.decode_cache.RowCache`): one token per row, each row at its own position,
per layer a ring buffer of the last W keys/values (already rotated) and the cross-attention
keys/values of the row's memory, computed once per window (:meth:`GenoforgeDecoder.cross_kv`).
A layer's body is written once (:meth:`DecoderLayer._body`): the full-sequence forward and the
cached step differ only in where attention reads its keys and values.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from genoforge.model.attention import Backend, GQAttention, attend_cached, rope_cos_sin
from genoforge.model.config import ModelConfig
from genoforge.model.decode_cache import LayerKV, RowCache, StepMasks
from genoforge.model.masks import MaskSpec
from genoforge.model.moe import MoEFeedForward, RouterStats
from genoforge.model.norms import RMSNorm, SwiGLU

Branch = Callable[[Tensor], Tensor]  # an attention branch: normed stream [B, T, D] -> its output


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
        """The layer over whole sequences (training, and the full-prefix decoding reference)."""
        return self._body(
            x_BTD,
            lambda h: self.self_attn(h, h, self_spec, backend, rope=rope),
            lambda h: self.cross_attn(h, memory_BMD, cross_spec, backend),
            valid_BT,
        )

    def step(self, x_B1D: Tensor, kv: LayerKV, rope: tuple[Tensor, Tensor], masks: StepMasks) -> Tensor:
        """The layer for one token per row, at each row's own position (``rope`` of it).

        Writes the token's rotated key and value into its ring slot of ``kv`` (``masks.rows_B``,
        ``masks.slot_B``), then attends the ring and the row's cached memory keys/values under
        the step's masks. Device work only: no host sync, shapes fixed by the cache.
        """

        def self_attention(h_B1D: Tensor) -> Tensor:
            attn = self.self_attn
            k, v = attn.project_kv(h_B1D, rope)
            kv.self_k_BGWd[masks.rows_B, :, masks.slot_B] = k[:, :, 0]
            kv.self_v_BGWd[masks.rows_B, :, masks.slot_B] = v[:, :, 0]
            q = attn.project_q(h_B1D, rope)
            return attn.merge(attend_cached(q, kv.self_k_BGWd, kv.self_v_BGWd, masks.self_visible_B11W))

        def cross_attention(h_B1D: Tensor) -> Tensor:
            attn = self.cross_attn
            q = attn.project_q(h_B1D)
            return attn.merge(attend_cached(q, kv.cross_k_BGMd, kv.cross_v_BGMd, masks.cross_visible_B11M))

        return self._body(x_B1D, self_attention, cross_attention, masks.valid_B1)[0]

    def _body(self, x_BTD: Tensor, self_attention: Branch, cross_attention: Branch,
              valid_BT: Tensor) -> tuple[Tensor, RouterStats | None]:
        """The layer (module docstring), given its two attention branches."""
        x_BTD = x_BTD + self.dropout(self_attention(self.self_norm(x_BTD)))
        x_BTD = x_BTD + self.dropout(cross_attention(self.cross_norm(x_BTD)))
        return self.feed_forward(x_BTD, valid_BT)


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
    def cross_kv(self, memory_BMD: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Each layer's cross-attention keys and values [B, G, M, d] of ``memory`` (the encoder
        side's output, before ``memory_norm``): what a :class:`RowCache` row holds per window."""
        memory = self.memory_norm(memory_BMD)
        return [layer.cross_attn.project_kv(memory) for layer in self.layers]

    @torch.no_grad()
    def step(self, token_ids_B: Tensor, cache: RowCache, active_B: Tensor) -> Tensor:
        """Logits [B, V] of the next token of every row, fed ``token_ids_B`` at its own position.

        Advances every row of ``cache`` by one position (:meth:`RowCache.begin_step`). Rows
        where ``active_B`` is False hold no window: they are computed on padding, and their
        logits must be ignored.
        """
        return self.logits(self.step_hidden(token_ids_B, cache, active_B))

    @torch.no_grad()
    def step_hidden(self, token_ids_B: Tensor, cache: RowCache, active_B: Tensor) -> Tensor:
        """:meth:`step`'s hidden states [B, D] after the final norm (before the output head)."""
        masks = cache.begin_step(active_B)
        x_B1D = self.embed_tokens(token_ids_B)[:, None]
        rope = self.rope(cache.position_B[:, None])
        for index, layer in enumerate(self.layers):
            x_B1D = layer.step(x_B1D, cache.layer(index), rope, masks)
        cache.position_B += 1
        return self.norm(x_B1D)[:, 0]
