"""FLOP accounting for tune's MFU (the ``mfu`` of a ``perf`` record, :mod:`genoforge.training.telemetry`).

MFU (as benchmarks/RESULTS.md states it): model FLOPs of the real tokens / (time x GPUs x peak), counting the
active parameters (routed experts x top_k / num_experts), 6 FLOPs per parameter per token for the
linear layers (the output head included) and 12 x layers x width x (query, key) pairs for
attention, with the pairs each document's masks actually allow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# bf16 dense peak per GPU (FLOP/s), the MFU denominator (vendor datasheets, as torchtitan uses).
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "H800": 989e12, "A100": 312e12, "B200": 2250e12}


def peak_flops(device) -> float | None:
    """The card's bf16 dense peak, or None where unknown (CPU, unlisted cards)."""
    import torch

    if getattr(device, "type", None) != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, value in PEAK_BF16_FLOPS.items():
        if key in name:
            return value
    return None


@dataclass(frozen=True)
class FlopModel:
    """Active parameter counts by what they are applied to, and the attention shapes.

    Parameters are applied per encoder token (encoder, bp signal, memory projection, the
    compressor's key/value projections of the memory), per latent slot of a document (the rest of
    the compressor), per memory slot of a document (the decoder's cross-attention key/value
    projections) or per decoder token (everything else of the decoder, the output head included).
    """

    encoder_token_params: int
    latent_params: int
    memory_params: int
    decoder_token_params: int
    encoder_layers: int
    encoder_width: int
    encoder_window: int
    compressor_layers: int
    compressor_width: int
    num_latents: int
    decoder_layers: int
    decoder_width: int
    decoder_window: int

    def micro_batch_flops(self, doc_enc: np.ndarray, doc_dec: np.ndarray) -> float:
        """Model FLOPs (fwd + bwd) of the real tokens of one micro-batch, from document lengths."""
        enc = doc_enc.astype(np.float64)
        dec = doc_dec.astype(np.float64)
        n_docs = float(enc.size)
        memory = np.full_like(dec, self.num_latents) if self.num_latents else enc
        flops = 6.0 * (
            self.encoder_token_params * enc.sum()
            + self.latent_params * self.num_latents * n_docs
            + self.memory_params * memory.sum()
            + self.decoder_token_params * dec.sum()
        )
        # Encoder self-attention: a token sees at most `window` tokens of its document.
        enc_window = self.encoder_window or np.inf
        pairs = float((enc * np.minimum(enc, enc_window)).sum())
        flops += 12.0 * self.encoder_layers * self.encoder_width * pairs
        if self.num_latents:
            # Latents read their document's memory (one layer), then attend each other.
            pairs = self.num_latents * enc.sum() + n_docs * self.num_latents**2 * self.compressor_layers
            flops += 12.0 * self.compressor_width * float(pairs)
        # Decoder causal self-attention with a look-back window, then cross-attention.
        w = self.decoder_window or np.inf
        causal = np.where(dec <= w, dec * (dec + 1) / 2, w * (w + 1) / 2 + (dec - w) * w)
        flops += 12.0 * self.decoder_layers * self.decoder_width * float(causal.sum() + (dec * memory).sum())
        return flops


def flop_model(model, config) -> FlopModel:
    """Classify the model's parameters (see :class:`FlopModel`); embeddings and latents are
    lookups, not matmuls, and are left out; experts count top_k / num_experts of their size; the
    output head counts ``vocab x decoder_dim`` whether or not it is tied."""
    from torch import nn

    skip = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    use_moe = bool(getattr(config, "use_moe", False))
    experts = config.num_experts if use_moe else 0
    expert_share = config.moe_top_k / config.num_experts if use_moe else 1.0
    parts = {"encoder": 0.0, "latent": 0.0, "memory": 0.0, "decoder": 0.0}
    seen: set[int] = set()
    for name, param in model.named_parameters():
        if id(param) in seen or id(param) in skip or "embed" in name or "latents" in name:
            continue
        seen.add(id(param))
        if "lm_head" in name:
            continue  # added below, tied or not
        count = float(param.numel())
        if experts and param.ndim == 3 and param.shape[0] == experts:
            count *= expert_share
        top = name.split(".", 1)[0]
        if top == "decoder":
            part = "memory" if ("cross_attn.k_proj" in name or "cross_attn.v_proj" in name) else "decoder"
        elif top == "compressor":
            reads_memory = name.startswith(("compressor.read.attn.k_proj", "compressor.read.attn.v_proj",
                                            "compressor.read.kv_norm"))
            part = "encoder" if reads_memory else "latent"
        else:
            part = "encoder"
        parts[part] += count
    parts["decoder"] += float(config.vocab_size * config.decoder_dim)
    return FlopModel(
        encoder_token_params=int(parts["encoder"]),
        latent_params=int(parts["latent"]),
        memory_params=int(parts["memory"]),
        decoder_token_params=int(parts["decoder"]),
        encoder_layers=config.encoder_layers,
        encoder_width=config.encoder_hidden_size,
        encoder_window=config.encoder_window_size,
        compressor_layers=config.compressor_layers,
        compressor_width=config.decoder_dim,
        num_latents=config.num_latents,
        decoder_layers=config.decoder_layers,
        decoder_width=config.decoder_dim,
        decoder_window=config.decoder_window_size,
    )
