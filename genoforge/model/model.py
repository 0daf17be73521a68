"""GenoforgeModel: DNABERT-2 encoder -> bp-offset signal -> latent compressor -> MoE decoder.

Shape legend: B batch rows, S encoder tokens, M memory tokens (latent slots, or S without a
compressor), T decoder tokens, D decoder width, V vocabulary, E experts.

The batch is the packed "Model batch" of docs/architecture.md (a mapping or an object with these
attributes): ``input_ids`` [B, S], ``input_doc`` [B, S] (-1 = padding), ``input_bp`` [B, S],
``decoder_ids`` [B, T], ``decoder_doc`` [B, T] (-1 = padding), ``labels`` [B, T] (-100 = ignored).
Optional: ``docs_per_row`` (int): latent slots are allocated for this many documents per row;
when absent it is read from ``input_doc`` (one host sync per batch). Pass a constant to keep
shapes fixed under torch.compile.

Absolute position signal: each encoder token's window-relative bp offset is split into base-1000
digits hi = bp // 1000 (clamped to 999) and lo = bp % 1000, embedded with the decoder's token
embeddings of the coordinate-number tokens "hi" and "lo" (the same rows the decoder reads and
writes coordinates with), normalised and projected, and added to the encoder output (projected
to D when the widths differ) before the compressor. The pretrained encoder itself is untouched.

Attention backend: ``"auto"`` (default) uses FlexAttention on CUDA and the explicit-mask
reference elsewhere; set ``model.attention_backend`` to force one. Masks are built once per
batch (:meth:`GenoforgeModel.build_masks`) and shared by every layer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genoforge.genes.classes import N_CLASSES
from genoforge.model.attention import (
    Backend,
    MaskSpec,
    RMSNorm,
    cross_mask,
    decoder_self_mask,
    document_positions,
    encoder_self_mask,
)
from genoforge.model.base_head import BaseHead
from genoforge.model.base_signals import signal_loss
from genoforge.model.compressor import LatentCompressor
from genoforge.model.config import ModelConfig
from genoforge.model.decoder import GenoforgeDecoder
from genoforge.model.encoder import DnabertEncoder
from genoforge.model.moe import MoEFeedForward, MoeImpl
from genoforge.model.pointer import (
    CoordinatePointer,
    PointerSums,
    number_values,
    pointer_loss,
    pointer_number_logits,
)
from genoforge.model.token_loss import decoder_loss_sums

BP_DIGIT_BASE = 1000  # coordinates are written as base-1000 digits "0".."999" (inventory.py)
IGNORE_INDEX = -100


@dataclass
class ModelOutput:
    """What :meth:`GenoforgeModel.forward` returns.

    Attributes:
        loss: the training objective: label-smoothed CE + aux_coef * aux_loss + z_coef * z_loss.
        logits: [B, T, V] (None when not requested).
        ce_loss: plain cross-entropy (no smoothing) over labelled tokens, for reporting.
        aux_loss: Switch load-balancing loss, mean over MoE layers (0 without MoE).
        z_loss: router z-loss, mean over MoE layers (0 without MoE).
        tokens_per_expert: [layers, E] real tokens routed to each expert (empty without MoE).
        num_label_tokens: number of labels that count (not -100).
        base_loss: class-weighted per-base CE (weights ``model.base_class_weights``), 0 without
            the head or without ``base_labels`` in the batch.
        base_logits: [W, L, K] per-base class logits (None without the head or base fields).
        num_base_labels: number of labelled bases.
        signal_logits: [W, L, S] the head's signal logits (None without them).
        signal_loss: their BCE (:func:`~genoforge.model.base_signals.signal_loss`), included in
            ``base_loss``; None without them or without labels.
        pointer_loss: the coordinate pointer's plain CE per coordinate digit it scored
            (:mod:`genoforge.model.pointer`), None without the pointer or the per-base fields.
            With the pointer, ``loss`` and ``ce_loss`` are means over every label token, the
            coordinate digits' terms coming from the pointer instead of the token head.
        num_pointer_labels: coordinate digits the pointer scored.
        pointer: the pointer's sums (:meth:`GenoforgeModel.coordinate_sums`), for a trainer that
            computes the token loss itself.
    """

    loss: Tensor
    logits: Tensor | None
    ce_loss: Tensor
    aux_loss: Tensor
    z_loss: Tensor
    tokens_per_expert: Tensor
    num_label_tokens: Tensor
    base_loss: Tensor | None = None
    base_logits: Tensor | None = None
    num_base_labels: Tensor | None = None
    signal_logits: Tensor | None = None
    signal_loss: Tensor | None = None
    pointer: PointerSums | None = None

    @property
    def pointer_loss(self) -> Tensor | None:
        return None if self.pointer is None else self.pointer.nll_sum / self.pointer.count.clamp(min=1)

    @property
    def num_pointer_labels(self) -> Tensor | None:
        return None if self.pointer is None else self.pointer.count


BASE_FIELDS = ("base_codes", "base_token", "base_offset", "base_mask")


@dataclass
class Memory:
    """What the decoder reads: [B, M, D] states and their document ids [B, M] (-1 = empty).

    With the coordinate pointer and the per-base fields, also each window's boundary keys
    ``pointer_keys_WLP`` [W, L + 1, P] and ``pointer_valid_WL`` (:mod:`genoforge.model.pointer`).
    """

    states_BMD: Tensor
    doc_BM: Tensor
    pointer_keys_WLP: Tensor | None = None
    pointer_valid_WL: Tensor | None = None
    base_logits_WLK: Tensor | None = None  # the per-base head's logits (decoding with a pointer)


@dataclass
class BatchMasks:
    """Every attention mask of one batch (built once, shared by all layers)."""

    encoder_self: MaskSpec
    latent_doc_BM: Tensor | None
    latent_cross: MaskSpec | None
    latent_self: MaskSpec | None
    decoder_self: MaskSpec | None
    decoder_cross: MaskSpec | None


def _get(batch: Any, name: str, default: Any = None) -> Any:
    if isinstance(batch, Mapping):
        return batch.get(name, default)
    return getattr(batch, name, default)


class GenoforgeModel(nn.Module):
    """The whole model. ``forward(batch) -> ModelOutput``; see the module docstring."""

    def __init__(self, config: ModelConfig, bp_digit_token_ids: Tensor | None = None):
        super().__init__()
        self.config = config
        self.encoder = DnabertEncoder(config)
        dim = config.decoder_dim
        if config.encoder_hidden_size != dim:
            self.memory_proj: nn.Module = nn.Linear(config.encoder_hidden_size, dim, bias=False)
        else:
            self.memory_proj = nn.Identity()
        self.bp_norm = RMSNorm(2 * dim, config.norm_eps)
        self.bp_proj = nn.Linear(2 * dim, dim, bias=False)
        self.compressor = LatentCompressor(config) if config.num_latents > 0 else None
        self.decoder = GenoforgeDecoder(config)
        # Built on a forked RNG: its default init (replaced by init_weights or a checkpoint) must
        # not shift the random stream that initialises everything else for a given seed.
        with torch.random.fork_rng(devices=[]):
            self.base_head = BaseHead(config) if config.base_head_channels > 0 else None
            self.pointer = CoordinatePointer(config) if config.pointer_dim > 0 else None
        # Per-class weights of the per-base loss (None: equal); set by tune from the training
        # labels, not saved with the weights.
        self.base_class_weights: Tensor | None = None
        self.base_boundary_weight = 0.0  # set by the trainer (TuneConfig.base_boundary_weight)
        self.base_signal_weight = 1.0  # set by the trainer (TuneConfig.base_signal_weight)
        # Token ids of "0".."999" (from the tokenizer); saved with the weights.
        if bp_digit_token_ids is None:
            bp_digit_token_ids = torch.zeros(BP_DIGIT_BASE, dtype=torch.long)
        self.register_buffer("bp_digit_token_ids", bp_digit_token_ids.clone().long())
        if self.pointer is not None:
            # The id of the coordinate separator ":" (-1: unknown, the pointer learns nothing).
            self.register_buffer("coord_sep_token_id", torch.full((1,), -1, dtype=torch.long))
        self.attention_backend: str = "auto"
        self._bf16_expert_layers: tuple[MoEFeedForward, ...] = ()  # see enable_bf16_expert_copies

    # ----------------------------------------------------------------------------------- setup
    def backend_for(self, device: torch.device) -> Backend:
        if self.attention_backend != "auto":
            return self.attention_backend  # type: ignore[return-value]
        return "flex" if device.type == "cuda" else "reference"

    def enable_bf16_expert_copies(self, enabled: bool = True) -> None:
        """Training forwards read bf16 copies of the expert weights, re-cast only when they change.

        Off unless enabled (tune enables it on CUDA; ``genoforge.model.moe`` docstring): saves
        the per-micro-batch fp32 -> bf16 cast of the experts on CUDA. The copies are refreshed at
        the start of every training-mode :meth:`forward`, outside the compiled layers.
        """
        experts = [module for module in self.modules() if isinstance(module, MoEFeedForward)]
        for module in experts:
            module.enable_bf16_copies(enabled)
        self._bf16_expert_layers = tuple(experts) if enabled else ()

    def set_moe_impl(self, impl: MoeImpl) -> None:
        """Force the MoE path of every layer: "grouped", "loop" or "auto"."""
        for module in self.modules():
            if isinstance(module, MoEFeedForward):
                module.impl = impl

    @torch.no_grad()
    def init_weights(self, skip_encoder: bool = False) -> None:
        """Initialise per the ``init_*_std`` fields (normal, zero mean; norms 1, biases 0).

        Embeddings and latents: init_embed_std; attention projections (encoder Wqkv and output,
        decoder/compressor q/k/v/o): init_attn_std; FFN and expert matrices: init_ffn_std;
        routers: init_moe_router_std; the base head's convolutions: PyTorch's default (fan-in
        uniform); anything else (memory, bp and base-head projections): init_std. The head is
        initialised on a forked RNG (:meth:`BaseHead.init_weights`).
        """
        config = self.config
        for name, module in self.named_modules():
            if (skip_encoder and name.startswith("encoder")) or name.startswith("base_head"):
                continue
            if isinstance(module, nn.Embedding):
                module.weight.normal_(0.0, config.init_embed_std)
            elif isinstance(module, nn.LayerNorm):
                module.weight.fill_(1.0)
                module.bias.zero_()
            elif isinstance(module, RMSNorm):
                module.weight.fill_(1.0)
            elif isinstance(module, nn.Conv1d):
                module.reset_parameters()  # the base head's convolutions: PyTorch's fan-in default
            elif isinstance(module, MoEFeedForward):
                module.router.weight.normal_(0.0, config.init_moe_router_std)
                for weight in (module.w_gate_EDF, module.w_up_EDF, module.w_down_EDF):
                    weight.normal_(0.0, config.init_ffn_std)
            elif isinstance(module, nn.Linear):
                if module.bias is not None:
                    module.bias.zero_()
                leaf = name.rsplit(".", 1)[-1]
                if leaf in {"qkv", "attn_out", "q_proj", "k_proj", "v_proj", "o_proj"}:
                    std = config.init_attn_std
                elif leaf in {"gated", "ffn_out", "w_gate", "w_up", "w_down"}:
                    std = config.init_ffn_std
                elif leaf == "router":
                    continue  # initialised with its MoE layer
                elif leaf == "lm_head":
                    if config.tie_weights:
                        continue
                    std = config.init_embed_std
                else:
                    std = config.init_std
                module.weight.normal_(0.0, std)
        if not skip_encoder:
            self.encoder.token_type_embedding.normal_(0.0, config.init_embed_std)
        if self.compressor is not None:
            self.compressor.latents_LD.normal_(0.0, config.init_embed_std)
        if self.base_head is not None:
            # On a forked RNG, as at construction: the head's size (its outputs, layers) must not
            # shift the random stream that initialises the rest of the model for a given seed.
            with torch.random.fork_rng(devices=[]):
                self.base_head.init_weights(config.init_embed_std, config.init_std)

    # ----------------------------------------------------------------------------------- masks
    def build_masks(self, batch: Any, with_decoder: bool = True) -> BatchMasks:
        config = self.config
        input_doc = _get(batch, "input_doc").long()
        enc = encoder_self_mask(input_doc, config.encoder_window_size, config.encoder_block_size)
        latent_doc = latent_cross = latent_self = None
        if self.compressor is not None:
            docs_per_row = _get(batch, "docs_per_row")
            if docs_per_row is None:
                docs_per_row = int(input_doc.max().clamp(min=0).item()) + 1  # one sync per batch
            latent_doc = self.latent_docs(input_doc, int(docs_per_row))
            latent_cross = cross_mask(latent_doc, input_doc, config.encoder_block_size)
            latent_self = cross_mask(latent_doc, latent_doc, config.decoder_block_size)
        memory_doc = latent_doc if latent_doc is not None else input_doc
        dec_self = dec_cross = None
        if with_decoder:
            decoder_doc = _get(batch, "decoder_doc").long()
            dec_self = decoder_self_mask(decoder_doc, config.decoder_window_size, config.decoder_block_size)
            dec_cross = cross_mask(decoder_doc, memory_doc, config.decoder_block_size)
        masks = BatchMasks(enc, latent_doc, latent_cross, latent_self, dec_self, dec_cross)
        # Built here, eagerly, once per batch: (compiled) layers then only read them.
        flex = self.backend_for(input_doc.device) == "flex"
        for spec in (enc, latent_cross, latent_self, dec_self, dec_cross):
            if spec is not None:
                spec.block_mask() if flex else spec.bool_mask()
        return masks

    def latent_docs(self, input_doc_BS: Tensor, docs_per_row: int) -> Tensor:
        """[B, docs_per_row * L] document of each latent slot; -1 where the row lacks that doc."""
        n_latents = self.config.num_latents
        batch = input_doc_BS.shape[0]
        present = torch.zeros(batch, docs_per_row + 1, dtype=torch.bool, device=input_doc_BS.device)
        # Padding (-1) and documents beyond docs_per_row land in the extra column and are dropped.
        column = torch.where((input_doc_BS >= 0) & (input_doc_BS < docs_per_row), input_doc_BS, docs_per_row)
        present.scatter_(1, column, True)
        slot_doc = torch.arange(docs_per_row, device=input_doc_BS.device).repeat_interleave(n_latents)
        return torch.where(present[:, :docs_per_row].repeat_interleave(n_latents, dim=1), slot_doc, -1)

    # --------------------------------------------------------------------------------- forward
    def bp_signal(self, input_bp_BS: Tensor) -> Tensor:
        """[B, S, D] projection of the bp offset's base-1000 digits, via coordinate embeddings."""
        bp = input_bp_BS.long().clamp(min=0)
        hi = (bp // BP_DIGIT_BASE).clamp(max=BP_DIGIT_BASE - 1)
        lo = bp % BP_DIGIT_BASE
        table = self.decoder.embed_tokens
        digits = torch.cat((table(self.bp_digit_token_ids[hi]), table(self.bp_digit_token_ids[lo])), dim=-1)
        return self.bp_proj(self.bp_norm(digits))

    def encode(self, batch: Any, masks: BatchMasks | None = None) -> Memory:
        """Encoder + bp signal + compressor: what the decoder cross-attends to."""
        if masks is None:
            masks = self.build_masks(batch, with_decoder=False)
        return self._memory(batch, masks, self.encode_tokens(batch, masks))

    def encode_tokens(self, batch: Any, masks: BatchMasks) -> Tensor:
        """[B, S, H] encoder states (what the per-base head and the memory read)."""
        input_ids = _get(batch, "input_ids")
        return self.encoder(input_ids, masks.encoder_self, self.backend_for(input_ids.device))

    def base_logits(self, batch: Any, hidden_BSH: Tensor) -> Tensor | None:
        """[W, L, K] per-base logits of the batch's windows, [W, L, K + S] with the head's signal
        outputs (:func:`split_head_logits`); None without the head or fields."""
        if self.base_head is None or _get(batch, "base_codes") is None:
            return None
        return self.base_head(hidden_BSH, *(_get(batch, name) for name in BASE_FIELDS))

    def base_features_and_logits(self, batch: Any, hidden_BSH: Tensor) -> tuple[Tensor, Tensor] | None:
        """(per-base features [W, L, C], :meth:`base_logits`) in one pass; None as there."""
        if self.base_head is None or _get(batch, "base_codes") is None:
            return None
        return self.base_head.features_and_logits(hidden_BSH, *(_get(batch, name) for name in BASE_FIELDS))

    def encode_for_decoding(self, batch: Any) -> Memory:
        """:meth:`encode`, plus the pointer's boundary keys when the model has a pointer (the
        batch must then carry the per-base fields)."""
        masks = self.build_masks(batch, with_decoder=False)
        hidden = self.encode_tokens(batch, masks)
        memory = self._memory(batch, masks, hidden)
        if self.pointer is not None:
            head = self.base_features_and_logits(batch, hidden)
            if head is None:
                raise ValueError("a model with a coordinate pointer decodes from the per-base fields "
                                 "(base_codes, ...) of its windows")
            memory.pointer_keys_WLP, memory.pointer_valid_WL = self.pointer.keys(head[0], _get(batch, "base_mask"))
            memory.base_logits_WLK = head[1]
        return memory

    @torch.no_grad()
    def step(self, token_ids_B: Tensor, cache, active_B: Tensor) -> Tensor:
        """Logits [B, V] of every row's next token (:meth:`GenoforgeDecoder.step`), the number
        tokens' taken from the pointer at coordinate slots (``cache.coord_slot_B``)."""
        hidden_BD = self.decoder.step_hidden(token_ids_B, cache, active_B)
        logits = self.decoder.logits(hidden_BD)
        return self.pointer_logits(hidden_BD, logits, cache)

    def pointer_logits(self, hidden_BD: Tensor, logits_BV: Tensor, cache) -> Tensor:
        """``logits_BV`` with the pointer's number logits at the rows' coordinate slots (as is
        without a pointer or without keys in ``cache``)."""
        if self.pointer is None or cache.pointer_keys_BLP is None:
            return logits_BV
        return pointer_number_logits(self.pointer, hidden_BD, cache.pointer_keys_BLP, cache.pointer_valid_BL,
                                     cache.coord_slot_B, cache.coord_hi_B, cache.coord_previous_B, logits_BV,
                                     self.bp_digit_token_ids, cache.guide_bias(), cache.coord_range_B2)

    def _memory(self, batch: Any, masks: BatchMasks, hidden: Tensor) -> Memory:
        backend = self.backend_for(hidden.device)
        memory = self.memory_proj(hidden) + self.bp_signal(_get(batch, "input_bp"))
        memory = memory * (masks.encoder_self.q_doc >= 0).unsqueeze(-1).to(memory.dtype)
        if self.compressor is None:
            return Memory(memory, masks.encoder_self.q_doc)
        assert masks.latent_doc_BM is not None and masks.latent_cross is not None and masks.latent_self is not None
        latents = self.compressor(
            memory, masks.encoder_self.q_doc, masks.latent_doc_BM, masks.latent_cross, masks.latent_self, backend
        )
        return Memory(latents, masks.latent_doc_BM)

    def forward(self, batch: Any, label_smoothing: float = 0.0, return_logits: bool = True,
                with_decoder: bool = True) -> ModelOutput:
        """Loss and logits of a packed batch (see the module docstring for the fields).

        ``with_decoder`` False skips the compressor and decoder (a per-base-only step): the token
        terms are then 0 and ``logits`` None.
        """
        config = self.config
        if self.training:
            for module in self._bf16_expert_layers:  # before the (compiled) layers read them
                module.refresh_bf16_copies()
        masks = self.build_masks(batch, with_decoder=with_decoder)
        hidden_BSH = self.encode_tokens(batch, masks)
        head = self.base_features_and_logits(batch, hidden_BSH)
        base_features, head_logits = head if head is not None else (None, None)
        base_logits, signal_logits = split_head_logits(head_logits)
        base_loss = n_base = signal_term = None
        base_labels = _get(batch, "base_labels")
        if base_logits is not None and base_labels is not None:
            base_loss, n_base = self.base_loss(base_logits, base_labels)
            if signal_logits is not None:
                signal_term = signal_loss(signal_logits, base_labels)
                base_loss = base_loss + self.base_signal_weight * signal_term
        if not with_decoder:
            zero = hidden_BSH.new_zeros((), dtype=torch.float32)
            return ModelOutput(
                loss=zero, logits=None, ce_loss=zero, aux_loss=zero, z_loss=zero,
                tokens_per_expert=torch.zeros(0, 0, dtype=torch.long, device=hidden_BSH.device),
                num_label_tokens=torch.zeros((), dtype=torch.long, device=hidden_BSH.device),
                base_loss=base_loss, base_logits=base_logits, num_base_labels=n_base,
                signal_logits=signal_logits, signal_loss=signal_term,
            )
        memory = self._memory(batch, masks, hidden_BSH)
        decoder_ids = _get(batch, "decoder_ids")
        assert masks.decoder_self is not None and masks.decoder_cross is not None
        positions = document_positions(masks.decoder_self.q_doc)
        hidden, stats = self.decoder(
            decoder_ids, positions, memory.states_BMD, masks.decoder_self, masks.decoder_cross,
            self.backend_for(decoder_ids.device),
        )
        logits = self.decoder.logits(hidden).float()
        labels = _get(batch, "labels")
        zero = logits.new_zeros(())
        pointer = self.coordinate_sums(batch, hidden, base_features, labels, logits.shape[-1])
        if labels is not None:
            smoothed_sum, ce_sum, _ = decoder_loss_sums(logits, pointer, labels, label_smoothing)
            n_labels = (labels != IGNORE_INDEX).sum()
            # Means over the label tokens (nan with none, as F.cross_entropy's mean is).
            ce = ce_sum / n_labels
            smoothed = smoothed_sum / n_labels
        else:
            ce = smoothed = zero
            n_labels = torch.zeros((), dtype=torch.long, device=logits.device)
        if stats:
            aux = torch.stack([s.aux_loss for s in stats]).mean()
            z = torch.stack([s.z_loss for s in stats]).mean()
            per_expert = torch.stack([s.tokens_per_expert for s in stats])
        else:
            aux = z = zero
            per_expert = torch.zeros(0, 0, dtype=torch.long, device=logits.device)
        loss = smoothed + config.moe_aux_loss_coef * aux + config.moe_z_loss_coef * z
        return ModelOutput(
            loss=loss,
            logits=logits if return_logits else None,
            ce_loss=ce,
            aux_loss=aux,
            z_loss=z,
            tokens_per_expert=per_expert,
            num_label_tokens=n_labels,
            base_loss=base_loss,
            base_logits=base_logits,
            num_base_labels=n_base,
            signal_logits=signal_logits,
            signal_loss=signal_term,
            pointer=pointer,
        )

    def coordinate_sums(self, batch: Any, hidden_BTD: Tensor, base_features_WLC: Tensor | None,
                        labels_BT: Tensor | None, vocab_size: int) -> PointerSums | None:
        """The pointer's loss sums over the coordinate digits of ``labels`` (or of the batch's
        ``pointer_labels``, what a trainer that pops ``labels`` passes); None without a pointer or
        labels. Without the per-base fields nothing is scored, but every pointer weight still
        enters the sum (times 0): its gradient is then 0, not None, so the optimizer state, DDP's
        reducer and a resumed run always see the same parameters."""
        if self.pointer is None:
            return None
        labels = labels_BT if labels_BT is not None else _get(batch, "pointer_labels")
        if labels is None:
            return None
        touch = 0.0 * sum(p.reshape(-1)[0].float() for p in self.pointer.parameters())
        if base_features_WLC is None:
            none = torch.zeros_like(labels, dtype=torch.bool)
            return PointerSums(touch, touch.detach(), labels.new_zeros(()), none)
        keys, valid = self.pointer.keys(base_features_WLC, _get(batch, "base_mask"))
        smoothed, nll, count, scored = pointer_loss(
            self.pointer, hidden_BTD, labels, _get(batch, "decoder_doc"), keys, valid,
            number_values(self.bp_digit_token_ids, vocab_size), self.coord_sep_token_id,
            self.config.pointer_label_smoothing, self.config.pointer_label_sigma,
        )
        return PointerSums(smoothed + touch, nll, count, scored)

    def base_loss(self, base_logits_WLK: Tensor, base_labels_WL: Tensor) -> tuple[Tensor, Tensor]:
        """(class-weighted mean CE over labelled bases, labelled-base count)."""
        weights = self.base_class_weights
        if weights is not None:
            weights = weights.to(base_logits_WLK.device, torch.float32)
        flat_labels = base_labels_WL.reshape(-1).long()
        flat_logits = base_logits_WLK.reshape(-1, base_logits_WLK.shape[-1])
        if self.base_boundary_weight > 0:
            # reduction "none" gives w_y * CE per base; the mean divides by sum(w_y * boost)
            per_base = F.cross_entropy(flat_logits, flat_labels, weight=weights, ignore_index=IGNORE_INDEX,
                                       reduction="none")
            labelled = (flat_labels != IGNORE_INDEX).float()
            boost = labelled * (1.0 + self.base_boundary_weight * near_boundary(base_labels_WL).reshape(-1))
            class_mass = weights[flat_labels.clamp(min=0)] if weights is not None else torch.ones_like(per_base)
            loss = (per_base * boost).sum() / (class_mass * boost).sum().clamp(min=1e-12)
        else:
            loss = F.cross_entropy(flat_logits, flat_labels, weight=weights, ignore_index=IGNORE_INDEX)
        n_base = (flat_labels != IGNORE_INDEX).sum()
        # All bases ignored: CE is nan (0/0); a zero that keeps the graph instead.
        loss = torch.where(n_base > 0, loss, base_logits_WLK.sum() * 0.0)
        return loss, n_base


def split_head_logits(head_logits: Tensor | None) -> tuple[Tensor | None, Tensor | None]:
    """(class logits [..., K], signal logits [..., S] or None) of the head's output."""
    if head_logits is None or head_logits.shape[-1] == N_CLASSES:
        return head_logits, None
    return head_logits[..., :N_CLASSES], head_logits[..., N_CLASSES:]


BOUNDARY_RADIUS = 3  # bases each side of a class change that count as "at a boundary"


def near_boundary(labels_WL: Tensor, radius: int = BOUNDARY_RADIUS) -> Tensor:
    """float [W, L]: 1 where a labelled base lies within ``radius`` of a change of class.

    A change is between two neighbouring labelled bases of different classes (IGNORE_INDEX on
    either side is no change: padding and unlabelled stretches mark no boundary).
    """
    labels = labels_WL.long()
    left, right = labels[:, :-1], labels[:, 1:]
    change = (left != right) & (left != IGNORE_INDEX) & (right != IGNORE_INDEX)
    edge = torch.zeros_like(labels, dtype=torch.float32)
    edge[:, 1:] = change.float()  # the first base of the new class
    # bases t with a change at any s in [t - radius + 1, t + radius]
    near = F.max_pool1d(edge.unsqueeze(1), kernel_size=2 * radius, stride=1, padding=radius).squeeze(1)
    return near[:, 1:] * (labels != IGNORE_INDEX).float()


def count_parameters(module: nn.Module) -> int:
    """Distinct parameters (tied tensors counted once)."""
    seen: set[int] = set()
    total = 0
    for param in module.parameters():
        if id(param) not in seen:
            seen.add(id(param))
            total += param.numel()
    return total

