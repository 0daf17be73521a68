"""The per-base head: a gene-structure class for every base of a window.

Shape legend: W windows (documents), L bases (padded to the longest window), C head channels,
H encoder width, K classes (``genoforge.genes.classes.N_CLASSES``), B/S the encoder batch.

Base resolution comes from three inputs, summed after the local stack:

* a dilated residual convolution stack over the embedded bases (A C G T N), the proven choice of
  published per-base gene finders (SpliceAI-like stacks): ``base_head_layers`` blocks with
  dilations 1, 2, 4, ... (cycling after 128), kernel ``base_head_kernel``;
* the encoder state of the BPE token that holds the base (window-wide context);
* an embedding of the base's offset inside that token (0 .. ``MAX_TOKEN_OFFSET``).

``base_head_fused_layers`` more blocks then mix the three, and a linear layer gives K logits, plus
S = ``N_SIGNALS`` signal logits (donor, acceptor, start, stop per strand;
:mod:`genoforge.model.base_signals`) where ``base_head_signals`` is on: [W, L, K + S].
Padding bases are zeroed after every block, so a window's logits do not depend on what pads it
(a test checks it). Each block normalises per base (RMSNorm over channels): no statistic is shared
across positions or windows.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from genoforge.genes.classes import N_CLASSES, N_CODE, N_SIGNALS
from genoforge.model.attention import RMSNorm
from genoforge.model.base_signals import SIGNAL_INIT_BIAS
from genoforge.model.config import ModelConfig

MAX_TOKEN_OFFSET = 63  # offsets past this share the last row (DNABERT-2 tokens are <= ~16 bp)
MAX_DILATION_EXPONENT = 7  # dilations 1 .. 128, then the cycle starts again


class _ConvBlock(nn.Module):
    """x + dropout(W2 gelu(dilated conv(norm x))), per-base norm; padding re-zeroed by the caller."""

    def __init__(self, channels: int, kernel: int, dilation: int, eps: float, dropout: float = 0.0):
        super().__init__()
        self.norm = RMSNorm(channels, eps)
        self.conv = nn.Conv1d(channels, channels, kernel, dilation=dilation, padding=dilation * (kernel - 1) // 2)
        self.mix = nn.Conv1d(channels, channels, 1)
        self.act = nn.GELU()
        self.drop = nn.Dropout(dropout)

    def forward(self, x_WCL: Tensor) -> Tensor:
        normed = self.norm(x_WCL.transpose(1, 2)).transpose(1, 2)
        return x_WCL + self.drop(self.mix(self.act(self.conv(normed))))


class BaseHead(nn.Module):
    """Per-base class logits from bases, token states and within-token offsets (module docstring)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        channels, kernel = config.base_head_channels, config.base_head_kernel
        self.embed_bases = nn.Embedding(N_CODE + 1, channels)
        self.local = nn.ModuleList(
            _ConvBlock(channels, kernel, 2 ** (i % (MAX_DILATION_EXPONENT + 1)), config.norm_eps,
                       config.base_head_dropout)
            for i in range(config.base_head_layers)
        )
        self.token_proj = nn.Linear(config.encoder_hidden_size, channels, bias=False)
        self.embed_offset = nn.Embedding(MAX_TOKEN_OFFSET + 1, channels)
        self.fused = nn.ModuleList(
            _ConvBlock(channels, kernel, 2 ** (i % (MAX_DILATION_EXPONENT + 1)), config.norm_eps,
                       config.base_head_dropout)
            for i in range(config.base_head_fused_layers)
        )
        self.out_norm = RMSNorm(channels, config.norm_eps)
        self.classify = nn.Linear(channels, N_CLASSES + (N_SIGNALS if config.base_head_signals else 0))

    @torch.no_grad()
    def init_weights(self, embed_std: float, std: float) -> None:
        """Embeddings normal(0, ``embed_std``), linear layers normal(0, ``std``) (biases 0), norms 1, convolutions
        PyTorch's fan-in default; the signal outputs start at bias ``SIGNAL_INIT_BIAS`` (sites are
        rare: a low probability, not 0.5)."""
        for module in self.modules():
            if isinstance(module, nn.Embedding):
                module.weight.normal_(0.0, embed_std)
            elif isinstance(module, nn.Linear):
                module.weight.normal_(0.0, std)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, RMSNorm):
                module.weight.fill_(1.0)
            elif isinstance(module, nn.Conv1d):
                module.reset_parameters()
        if self.classify.out_features > N_CLASSES:
            self.classify.bias[N_CLASSES:].fill_(SIGNAL_INIT_BIAS)

    def forward(self, hidden_BSH: Tensor, base_codes_WL: Tensor, base_token_WL: Tensor,
                base_offset_WL: Tensor, base_mask_WL: Tensor) -> Tensor:
        """Logits [W, L, K] (fp32), [W, L, K + S] with the signal outputs (class logits first).
        :meth:`features_and_logits` also returns the features they are read from.

        Args:
            hidden_BSH: the encoder's output states.
            base_codes_WL: base codes (A0 C1 G2 T3, other 4; padding 4).
            base_token_WL: index into the flattened [B * S] tokens of the token holding each base.
            base_offset_WL: the base's offset inside that token.
            base_mask_WL: True on real bases.
        """
        return self.features_and_logits(hidden_BSH, base_codes_WL, base_token_WL, base_offset_WL,
                                        base_mask_WL)[1]

    def features_and_logits(self, hidden_BSH: Tensor, base_codes_WL: Tensor, base_token_WL: Tensor,
                            base_offset_WL: Tensor, base_mask_WL: Tensor) -> tuple[Tensor, Tensor]:
        """(normalised features [W, L, C], zero on padding; the logits of :meth:`forward`)."""
        keep = base_mask_WL.unsqueeze(1).to(hidden_BSH.dtype)  # [W, 1, L]
        x = self.embed_bases(base_codes_WL.long()).transpose(1, 2) * keep
        for block in self.local:
            x = block(x) * keep
        flat = hidden_BSH.reshape(-1, hidden_BSH.shape[-1])
        token_states = flat[base_token_WL.long().clamp(min=0)]
        offsets = base_offset_WL.long().clamp(0, MAX_TOKEN_OFFSET)
        context = self.token_proj(token_states) + self.embed_offset(offsets)
        x = x + context.transpose(1, 2).to(x.dtype) * keep
        for block in self.fused:
            x = block(x) * keep
        features = self.out_norm(x.transpose(1, 2))
        return features, self.classify(features).float()
