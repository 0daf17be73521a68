"""ModelConfig: every hyperparameter of the genoforge model, and the named presets.

The model is encoder -> (optional) latent compressor -> decoder:

* encoder: DNABERT-2's BERT (post-LN, biases, GeGLU with the gate first, erf GELU, symmetric
  ALiBi, no position embeddings, token type 0 embedding added, LayerNorm eps 1e-12); the shape
  fields ``encoder_*`` follow the checkpoint's config.json when one is loaded;
* memory: encoder states (projected to ``decoder_dim`` when the widths differ) plus a projection
  of each token's window-relative bp offset, embedded with the decoder's coordinate-number token
  embeddings ("0".."999", hi and lo base-1000 digits);
* compressor: ``num_latents`` learned latents per document (0 = none, the decoder reads the memory
  directly), GQA cross-attention to the memory of the same document, then ``compressor_layers``
  self-attention layers among the document's latents; each block has a SwiGLU FFN;
* decoder: pre-RMSNorm layers of causal self-attention (RoPE on document-relative positions,
  ``decoder_window_size`` look-back, GQA), cross-attention to the memory/latents of the same
  document (per token, no pooling) and a SwiGLU FFN that is a dropless top-k MoE with
  ``use_moe``.

Attention windows, precisely:

* ``encoder_window_size`` W (bidirectional): a query at i sees keys j of its document with
  ``|i - j| <= (W - 1) // 2``, i.e. at most W tokens in total (W for odd W, W - 1 for even W).
* ``decoder_window_size`` W (causal look-back): a query at i sees keys j of its document with
  ``i - W < j <= i``, i.e. at most W tokens including itself.
* 0 means no window (whole document).

``*_block_size`` is the granularity (tokens per block, queries and keys) of the block-sparse
FlexAttention masks used on CUDA; it does not change what is computed, only how. FlexAttention's
fused kernels need blocks of at least 128 tokens, so smaller sizes are rounded up to 128 on CUDA.

``tie_weights``: the decoder's input token embedding and the output head (logits) share one
[V, decoder_dim] matrix. The encoder's word embedding (DNABERT-2's, [V, encoder_hidden_size]) is
never tied: it lives in a different space (and width).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from genoforge.errors import ConfigError

PRESETS = ("debug", "small", "seed")


@dataclass(kw_only=True)
class ModelConfig:
    """All hyperparameters of :class:`genoforge.model.model.GenoforgeModel` (defaults = seed)."""

    # Vocabulary: one tokenizer serves both streams (DNA tokens in, target tokens out).
    vocab_size: int = 4096
    pad_token_id: int = 3

    # Encoder (DNABERT-2 shape; overwritten from the checkpoint's config.json when loading one).
    encoder_hidden_size: int = 768
    encoder_layers: int = 12
    encoder_heads: int = 12
    encoder_intermediate_size: int = 3072
    encoder_layer_norm_eps: float = 1e-12
    encoder_dropout: float = 0.1  # DNABERT-2's hidden_dropout_prob; attention-prob dropout is 0
    encoder_window_size: int = 34560
    encoder_block_size: int = 256

    # Latent compressor.
    num_latents: int = 1024
    compressor_layers: int = 2
    compressor_ff_dim: int = 3072

    # Decoder.
    decoder_dim: int = 768
    decoder_layers: int = 12
    decoder_heads: int = 12
    decoder_kv_heads: int = 3
    decoder_ff_dim: int = 3072
    decoder_dropout: float = 0.1
    decoder_window_size: int = 1600
    decoder_block_size: int = 16
    rope_theta: float = 10000.0
    norm_eps: float = 1e-6

    # Mixture of experts (decoder FFN).
    use_moe: bool = True
    num_experts: int = 32
    moe_top_k: int = 2
    moe_aux_loss_coef: float = 1e-2  # Switch load-balancing loss [Fedus et al. 2021]
    moe_z_loss_coef: float = 1e-3  # router z-loss [Zoph et al. 2022 (ST-MoE)]

    # Weights.
    # Per-base head (genoforge.model.base_head): 0 channels = no head. Dilated conv blocks over the
    # bases before and after adding the token state and within-token offset.
    base_head_channels: int = 128
    base_head_layers: int = 10
    base_head_fused_layers: int = 4
    base_head_kernel: int = 9
    base_head_dropout: float = 0.0  # on each conv block's residual branch
    # Eight more outputs: donor, acceptor, start and stop sites per strand (model.base_signals),
    # which the structure decoder adds at its signal edges.
    base_head_signals: bool = True
    # Coordinate pointer (genoforge.model.pointer): coordinates are written by pointing at one of
    # the window's base boundaries (keys from the per-base head's features), not by the token
    # head's flat digit softmax. 0 = off (needs the per-base head). Its training targets put
    # ``pointer_label_smoothing`` of the mass on a Gaussian of ``pointer_label_sigma`` bp
    # around the true boundary (ordinal smoothing instead of uniform smoothing over the digits).
    pointer_dim: int = 128
    pointer_label_smoothing: float = 0.2
    pointer_label_sigma: float = 2.0

    tie_weights: bool = True
    init_std: float = 0.02  # any weight not covered by a more specific std below
    init_embed_std: float = 0.02  # token embeddings (also new rows added by `tokens resize`)
    init_ffn_std: float = 0.02  # FFN and expert matrices
    init_attn_std: float = 0.02  # attention projections
    init_moe_router_std: float = 0.006  # router

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError for inconsistent sizes (checked at construction)."""
        problems = []
        if self.encoder_hidden_size % self.encoder_heads:
            problems.append(
                f"encoder_hidden_size {self.encoder_hidden_size} is not divisible by "
                f"encoder_heads {self.encoder_heads}"
            )
        if self.decoder_dim % self.decoder_heads:
            problems.append(
                f"decoder_dim {self.decoder_dim} is not divisible by decoder_heads {self.decoder_heads}"
            )
        if self.decoder_kv_heads <= 0 or self.decoder_heads % self.decoder_kv_heads:
            problems.append(
                f"decoder_heads {self.decoder_heads} is not a multiple of decoder_kv_heads "
                f"{self.decoder_kv_heads} (GQA needs whole groups)"
            )
        if self.use_moe and not 1 <= self.moe_top_k <= self.num_experts:
            problems.append(f"moe_top_k {self.moe_top_k} must be in 1..num_experts {self.num_experts}")
        for name in ("encoder_layers", "decoder_layers", "vocab_size", "decoder_ff_dim",
                     "encoder_intermediate_size", "encoder_block_size", "decoder_block_size"):
            if getattr(self, name) <= 0:
                problems.append(f"{name} must be positive, got {getattr(self, name)}")
        if self.base_head_channels and self.base_head_kernel % 2 == 0:
            problems.append(f"base_head_kernel must be odd (centred convolutions), got {self.base_head_kernel}")
        for name in ("num_latents", "compressor_layers", "encoder_window_size", "decoder_window_size",
                     "base_head_channels", "base_head_layers", "base_head_fused_layers", "base_head_kernel"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("encoder_dropout", "decoder_dropout", "base_head_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                problems.append(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.pointer_dim < 0:
            problems.append(f"pointer_dim must be >= 0, got {self.pointer_dim}")
        if self.pointer_dim and not self.base_head_channels:
            problems.append("pointer_dim needs the per-base head (base_head_channels > 0): its keys are "
                            "the head's per-base features")
        if not 0.0 <= self.pointer_label_smoothing < 1.0:
            problems.append(f"pointer_label_smoothing must be in [0, 1), got {self.pointer_label_smoothing}")
        if self.pointer_label_sigma <= 0:
            problems.append(f"pointer_label_sigma must be > 0, got {self.pointer_label_sigma}")
        if problems:
            raise ConfigError("invalid model configuration: " + "; ".join(problems))

    @property
    def encoder_head_dim(self) -> int:
        return self.encoder_hidden_size // self.encoder_heads

    @property
    def decoder_head_dim(self) -> int:
        return self.decoder_dim // self.decoder_heads


def _debug() -> ModelConfig:
    # Odd, mutually distinct sizes so that a transposed dimension crashes instead of broadcasting.
    return ModelConfig(
        encoder_hidden_size=40,
        encoder_layers=2,
        encoder_heads=5,
        encoder_intermediate_size=37,
        encoder_window_size=33,
        encoder_block_size=16,
        num_latents=7,
        compressor_layers=1,
        compressor_ff_dim=29,
        decoder_dim=48,
        decoder_layers=2,
        decoder_heads=6,
        decoder_kv_heads=2,
        decoder_ff_dim=31,
        decoder_window_size=11,
        decoder_block_size=8,
        decoder_dropout=0.0,
        encoder_dropout=0.0,
        num_experts=4,
        moe_top_k=2,
        base_head_channels=13,
        base_head_layers=3,
        base_head_fused_layers=1,
        base_head_kernel=5,
        pointer_dim=11,
    )


def _small() -> ModelConfig:
    # One GPU, minutes: a 4-layer 256-wide encoder and a 4-layer 256-wide MoE decoder.
    return ModelConfig(
        encoder_hidden_size=256,
        encoder_layers=4,
        encoder_heads=4,
        encoder_intermediate_size=1024,
        encoder_window_size=4096,
        encoder_block_size=128,
        num_latents=128,
        compressor_layers=1,
        compressor_ff_dim=1024,
        decoder_dim=256,
        decoder_layers=4,
        decoder_heads=4,
        decoder_kv_heads=2,
        decoder_ff_dim=1024,
        decoder_window_size=1024,
        decoder_block_size=128,
        num_experts=8,
        moe_top_k=2,
        base_head_channels=64,
        base_head_layers=8,
        base_head_fused_layers=3,
        base_head_kernel=9,
        pointer_dim=64,
    )


def _seed() -> ModelConfig:
    return ModelConfig()  # the defaults are the recipe's full size


_PRESET_BUILDERS = {"debug": _debug, "small": _small, "seed": _seed}


def preset(name: str) -> ModelConfig:
    """The named preset: ``debug`` (CPU, seconds), ``small`` (one GPU, minutes), ``seed`` (recipe)."""
    try:
        return _PRESET_BUILDERS[name]()
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None


def config_fields() -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(ModelConfig))


# The help of every recipe flag of `genoforge model init` (the CLI and the library share it;
# this module imports no torch, so `--help` stays fast).
FLAG_HELP = {
    "tie_weights": "Tie the decoder's input token embedding and output head (one [V, D] matrix).",
    "decoder_layers": "Decoder layers (self-attention + cross-attention + FFN each).",
    "decoder_heads": "Decoder query heads (head dim = decoder width / heads).",
    "decoder_kv_heads": "Decoder key/value heads (GQA; must divide --decoder_heads).",
    "decoder_ff_dim": "Hidden width of each decoder FFN / expert (SwiGLU).",
    "decoder_dropout": "Residual dropout in the decoder and compressor.",
    "use_moe": "Decoder FFNs are dropless top-k mixtures of experts (else dense).",
    "num_experts": "Experts per MoE layer (needs --use_moe).",
    "moe_top_k": "Experts per token; their gates are renormalised to sum to 1 (needs --use_moe).",
    "init_std": "Std of weights not covered below (memory/bp projections).",
    "init_embed_std": "Std of token embeddings and latents (also rows added by `tokens resize`).",
    "init_ffn_std": "Std of FFN and expert matrices.",
    "init_attn_std": "Std of attention projections.",
    "init_moe_router_std": "Std of the MoE router.",
    "encoder_block_size": "Block size (tokens) of the encoder's sparse FlexAttention mask (CUDA).",
    "encoder_window_size": "Tokens an encoder query may see in total (bidirectional, ALiBi); 0 = all.",
    "decoder_block_size": "Block size (tokens) of the decoder's sparse FlexAttention masks (CUDA).",
    "decoder_window_size": "Tokens a decoder query may look back on, itself included; 0 = all.",
    "num_latents": "Learned latents per document in the compressor; 0 = the decoder reads the encoder.",
    "pointer_dim": "Width of the coordinate pointer over the window's base boundaries; 0 = digits from the token head.",
}
