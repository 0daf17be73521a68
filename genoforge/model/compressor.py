"""The latent compressor: a fixed number of learned latents per document read the encoder memory.

Shape legend: B batch rows, S memory (encoder) tokens, L latents per document, M latent slots per
row (= documents per row x L), D model dim.

Each document of a packed row gets its own copy of the ``L`` learned latent vectors (slots
``d*L .. d*L + L - 1`` belong to document d). Blocks, all pre-RMSNorm with residuals:

1. cross-attention: latents of document d -> memory tokens of document d (GQA);
2. SwiGLU FFN;
3. ``compressor_layers`` x (self-attention among the latents of the same document + SwiGLU FFN);
4. a final RMSNorm.

Latents have no positions (each learned vector is its own identity). Slots of documents absent
from a row carry doc -1 and output zeros. The latents are read scaled by sqrt(D), like the
decoder's token embeddings: at init the read's near-uniform cross-attention gives every latent
of a document the same vector (RMS ~0.3), which would otherwise swamp the 0.02-RMS learned
latents and leave the decoder L identical memory slots per document.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from genoforge.model.attention import Backend, GQAttention, MaskSpec, RMSNorm, SwiGLU
from genoforge.model.config import ModelConfig


class CompressorBlock(nn.Module):
    """Pre-norm attention (self or cross) + SwiGLU FFN, with residual dropout."""

    def __init__(self, config: ModelConfig, cross: bool):
        super().__init__()
        dim = config.decoder_dim
        self.cross = cross
        self.attn_norm = RMSNorm(dim, config.norm_eps)
        self.kv_norm = RMSNorm(dim, config.norm_eps) if cross else None
        self.attn = GQAttention(dim, dim, config.decoder_heads, config.decoder_kv_heads)
        self.ffn_norm = RMSNorm(dim, config.norm_eps)
        self.ffn = SwiGLU(dim, config.compressor_ff_dim)
        self.dropout = nn.Dropout(config.decoder_dropout)

    def forward(self, x_BMD: Tensor, memory_BSD: Tensor | None, spec: MaskSpec, backend: Backend) -> Tensor:
        h = self.attn_norm(x_BMD)
        kv = self.kv_norm(memory_BSD) if self.kv_norm is not None else h
        x_BMD = x_BMD + self.dropout(self.attn(h, kv, spec, backend))
        return x_BMD + self.dropout(self.ffn(self.ffn_norm(x_BMD)))


class LatentCompressor(nn.Module):
    """Memory [B, S, D] of packed documents -> latents [B, M, D], L per document."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.num_latents = config.num_latents
        self.latents_LD = nn.Parameter(torch.zeros(config.num_latents, config.decoder_dim))
        self.latent_scale = math.sqrt(config.decoder_dim)  # see the module docstring
        self.read = CompressorBlock(config, cross=True)
        self.layers = nn.ModuleList(CompressorBlock(config, cross=False) for _ in range(config.compressor_layers))
        self.norm = RMSNorm(config.decoder_dim, config.norm_eps)

    def forward(
        self,
        memory_BSD: Tensor,
        latent_doc_BM: Tensor,
        cross_spec: MaskSpec,
        self_spec: MaskSpec,
        backend: Backend,
    ) -> Tensor:
        batch, n_slots = latent_doc_BM.shape
        docs_per_row = n_slots // self.num_latents
        latents = (self.latents_LD * self.latent_scale).to(memory_BSD.dtype)
        x = latents.repeat(docs_per_row, 1).expand(batch, -1, -1)
        x = self.read(x, memory_BSD, cross_spec, backend)
        for layer in self.layers:
            x = layer(x, None, self_spec, backend)
        return self.norm(x) * (latent_doc_BM >= 0).unsqueeze(-1).to(x.dtype)
