"""The latent compressor: a fixed number of learned latents per document read the encoder memory.

Shape legend: B batch rows, S memory (encoder) tokens, L latents per document, M latent slots per
row (= documents per row x L), D model dim.

Each document of a packed row gets its own copy of the ``L`` learned latent vectors (slots
``d*L .. d*L + L - 1`` belong to document d). Blocks, all pre-RMSNorm with residuals:

1. cross-attention: latents of document d -> memory tokens of document d (GQA);
2. SwiGLU FFN;
3. ``compressor_layers`` x (self-attention among the latents of the same document + SwiGLU FFN);
4. a final RMSNorm.

Each latent starts as its learned vector plus the mean of its own chunk of the document: the
document's memory tokens are cut into L contiguous chunks (latent i takes tokens
``[i*n/L, (i+1)*n/L)`` of an n-token document; a latent with no token gets zeros). Why: at init the
read's cross-attention is near uniform, so every latent would receive the same document-wide
average, in which the window's content is averaged away (measured on the debug preset: 1% of the
compressed memory differed between windows, and the decoder needed ~450 steps to start reading
its input on a toy task). Chunk means keep where things are and what they are, so the decoder can
read its window from the first step; the cross-attention and self-attention layers then learn
what to gather beyond the chunk. Slots of documents absent from a row carry doc -1 and output
zeros.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genoforge.model.attention import Backend, GQAttention, document_positions
from genoforge.model.config import ModelConfig
from genoforge.model.masks import MaskSpec
from genoforge.model.norms import RMSNorm, SwiGLU


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


class _SlotMeans(torch.autograd.Function):
    """Mean of the tokens of each slot: [B, S, D] tokens, [B, S] slots in [0, M] -> [B, M, D].

    Slot M collects what belongs nowhere and is dropped; an empty slot gives zeros.

    Forward: the tokens stably sorted by slot (a no-op for packed rows, whose slots already
    ascend) are summed as prefix sums in fp32 (fp64 for fp64 input), and a slot's sum is the
    difference of the prefix sums at its ends: the same additions in the same order every time.
    Backward: each token receives its slot's gradient divided by the slot's count, a gather
    (no scatter-add, so no atomics either).
    """

    @staticmethod
    def forward(ctx, memory_BSD: Tensor, slot_BS: Tensor, n_slots: int) -> Tensor:
        batch, _, dim = memory_BSD.shape
        accumulate = torch.promote_types(memory_BSD.dtype, torch.float32)
        order_BS = torch.argsort(slot_BS, dim=1, stable=True)
        sorted_slot_BS = slot_BS.gather(1, order_BS)
        sorted_BSD = memory_BSD.gather(1, order_BS.unsqueeze(-1).expand(-1, -1, dim))
        # Prefix sums along the last axis, [B, D, S + 1]: a scan along the middle axis of [B, S, D]
        # runs one thread per (row, feature) down all S tokens (6.1 ms of an H100 step at 16k
        # tokens a row); along the last axis it is a parallel scan over contiguous rows.
        prefix_BDS = F.pad(sorted_BSD.transpose(1, 2).to(accumulate).cumsum(dim=-1), (1, 0))
        # Slot s holds the sorted tokens [start_s, end_s): end_s = tokens with a slot <= s, and
        # start_s = end_(s-1) (slots are >= 0, so slot 0 starts at 0).
        slots_BM = torch.arange(n_slots, device=slot_BS.device).expand(batch, -1).contiguous()
        end_BM = torch.searchsorted(sorted_slot_BS, slots_BM, right=True)
        start_BM = F.pad(end_BM[:, :-1], (1, 0))

        def prefix_at(index_BM: Tensor) -> Tensor:  # [B, M, D]
            return prefix_BDS.gather(2, index_BM.unsqueeze(1).expand(-1, dim, -1)).transpose(1, 2)

        counts_BM = (end_BM - start_BM).clamp(min=1).to(accumulate)
        ctx.save_for_backward(slot_BS, counts_BM)
        ctx.memory_dtype = memory_BSD.dtype
        means_BMD = (prefix_at(end_BM) - prefix_at(start_BM)) / counts_BM.unsqueeze(-1)
        return means_BMD.to(memory_BSD.dtype).contiguous()

    @staticmethod
    def backward(ctx, grad_BMD: Tensor) -> tuple[Tensor | None, None, None]:
        slot_BS, counts_BM = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None
        per_token = grad_BMD.to(counts_BM.dtype) / counts_BM.unsqueeze(-1)
        per_token = torch.cat([per_token, per_token.new_zeros(per_token.shape[0], 1, per_token.shape[2])], dim=1)
        grad_BSD = per_token.gather(1, slot_BS.unsqueeze(-1).expand(-1, -1, per_token.shape[2]))
        return grad_BSD.to(ctx.memory_dtype), None, None


class LatentCompressor(nn.Module):
    """Memory [B, S, D] of packed documents -> latents [B, M, D], L per document."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.num_latents = config.num_latents
        self.latents_LD = nn.Parameter(torch.zeros(config.num_latents, config.decoder_dim))
        self.read = CompressorBlock(config, cross=True)
        self.layers = nn.ModuleList(CompressorBlock(config, cross=False) for _ in range(config.compressor_layers))
        self.norm = RMSNorm(config.decoder_dim, config.norm_eps)

    def chunk_means(self, memory_BSD: Tensor, memory_doc_BS: Tensor, n_slots: int) -> Tensor:
        """[B, M, D]: slot d*L + i holds the mean of document d's i-th chunk (module docstring).

        Deterministic on every device, forward and backward (:class:`_SlotMeans`): a float
        scatter-add would sum each chunk with atomics in whatever order the GPU's threads arrive
        (bf16 under autocast), so the same window could give different memory, and different
        predicted genes, from one run to the next (seen on an H100: 190 and 184 genes).
        """
        n_latents = self.num_latents
        doc = memory_doc_BS.long()
        kept = (doc >= 0) & (doc < n_slots // n_latents)
        doc_index = torch.where(kept, doc, 0)
        # Tokens per document (a count of ones: exact in any order), to cut each into L chunks;
        # fp32 positions (bf16 ones are inexact past 256).
        ones = kept.to(torch.float32)
        per_doc = torch.zeros(doc.shape[0], n_slots // n_latents, dtype=torch.float32, device=doc.device)
        per_doc = per_doc.scatter_add(1, doc_index, ones)
        doc_length = per_doc.gather(1, doc_index).clamp(min=1)
        chunk = (document_positions(doc).to(torch.float32) * n_latents / doc_length).floor().long()
        slot_BS = torch.where(kept, doc_index * n_latents + chunk.clamp(max=n_latents - 1), n_slots)
        return _SlotMeans.apply(memory_BSD, slot_BS, n_slots)

    def forward(
        self,
        memory_BSD: Tensor,
        memory_doc_BS: Tensor,
        latent_doc_BM: Tensor,
        cross_spec: MaskSpec,
        self_spec: MaskSpec,
        backend: Backend,
    ) -> Tensor:
        batch, n_slots = latent_doc_BM.shape
        docs_per_row = n_slots // self.num_latents
        latents = self.latents_LD.to(memory_BSD.dtype).repeat(docs_per_row, 1).expand(batch, -1, -1)
        x = latents + self.chunk_means(memory_BSD, memory_doc_BS, n_slots)
        x = self.read(x, memory_BSD, cross_spec, backend)
        for layer in self.layers:
            x = layer(x, None, self_spec, backend)
        return self.norm(x) * (latent_doc_BM >= 0).unsqueeze(-1).to(x.dtype)
