"""The coordinate pointer: the decoder writes coordinates by pointing at a base boundary.

Shape legend: W windows, L bases (padded), P pointer width, C the per-base head's channels,
B decoder rows, T decoder positions, N coordinate positions of a batch, D decoder width.

Why: a coordinate is two number tokens, ``hi : lo`` (docs/target-format.md). Written by the token
head, ``lo`` is a flat 1000-way softmax that the decoder must resolve from the compressor's
latents, which do not hold single bases; trained that way the decoder wrote no exact exon on the
fly validation region. The pointer instead scores every **boundary** of the window (b = 0..L,
between base b - 1 and base b: a start is the boundary before its first base, an end the one
after its last) against the decoder's state, so a coordinate is one choice among the window's
boundaries, made with the per-base head's view of each base.

* keys [W, L + 1, P]: a projection of the head's features on both sides of the boundary (zeros
  past the window's ends): what the boundary looks like (an acceptor, the end of a coding run);
* a query [P] per decoder position, from its hidden state; score = q . k / sqrt(P);
* plus a length term: the signed distance d = b - p from the coordinate written before (p, 0 for
  a window's first) falls in one of ``DISTANCE_BUCKETS`` log-spaced buckets, and the decoder's
  state gives a logit per bucket (exon, intron and gene lengths, as a gene finder's length
  distributions do). The keys carry no absolute position: a pointer that could name "base
  5,231" memorises the training windows' coordinates (measured: validation CE rose from step 250
  while training CE fell), whereas "the next acceptor ~80 bp on" carries over to new windows.

The token format stays ``hi : lo``: the pointer's distribution over boundaries factorises exactly
into the two tokens. At a ``hi`` slot the logit of digit h is the logsumexp of the scores of
boundaries h*1000 .. h*1000+999; at a ``lo`` slot (``hi`` = h written) the logit of digit l is
the score of boundary h*1000 + l. So the grammar masks, the decode cache and the CUDA graph see
ordinary number-token logits (:func:`pointer_number_logits`).

Training (:func:`pointer_loss`): each coordinate contributes at both of its positions. At the
``hi`` position the target is the boundary among all of the window's; at the ``lo`` position it
is the boundary within its thousand. Targets are ordinal: ``1 - smoothing`` on the true boundary
and ``smoothing`` on a Gaussian of ``sigma`` bp around it (clipped to the allowed boundaries),
so a near miss costs less than a far one. The token head's cross-entropy skips these positions.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genoforge.genes.grammar import SLOT_HI, SLOT_LO, SLOT_NONE
from genoforge.model.attention import RMSNorm
from genoforge.model.config import ModelConfig

COORD_BLOCK = 1000  # a coordinate's lo digit: boundaries per hi value (inventory base 1000)
# Buckets of the signed distance from the previous coordinate: 0 for d = 0, then
# +-(1 + floor(1.5 log2 |d|)), so 1, 2, 3, 4-5, 6-9, ... bp; |d| >= ~2^15 bp shares the last one.
DISTANCE_SCALE = 1.5
DISTANCE_HALF = 23
DISTANCE_BUCKETS = 2 * DISTANCE_HALF + 1
# Coordinate slots of a decoder position (what the grammar says the next token is): SLOT_NONE,
# SLOT_HI, SLOT_LO of genoforge.genes.grammar.
IGNORE_INDEX = -100


class PointerSums(NamedTuple):
    """The pointer's loss over a batch's coordinate digits: sums of the ordinal-smoothed and of
    the plain CE, how many digits it scored, and where they are ([B, T] bool; the token head's
    CE skips them)."""

    smoothed_sum: Tensor
    nll_sum: Tensor
    count: Tensor
    scored_BT: Tensor


def distance_bucket(distance: Tensor) -> Tensor:
    """The bucket 0 .. DISTANCE_BUCKETS - 1 of each signed distance (module docstring)."""
    magnitude = distance.abs().float()
    rank = torch.where(magnitude > 0, 1 + torch.floor(DISTANCE_SCALE * torch.log2(magnitude.clamp(min=1))), 0.0)
    rank = rank.clamp(max=DISTANCE_HALF).long()
    return DISTANCE_HALF + torch.sign(distance).long() * rank


class CoordinatePointer(nn.Module):
    """Keys of a window's boundaries and queries of decoder states (module docstring)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        width = config.pointer_dim
        self.key_proj = nn.Linear(2 * config.base_head_channels, width, bias=False)
        self.key_norm = RMSNorm(width, config.norm_eps)
        self.query_proj = nn.Linear(config.decoder_dim, width, bias=False)
        self.distance_proj = nn.Linear(config.decoder_dim, DISTANCE_BUCKETS, bias=False)
        self.scale = 1.0 / math.sqrt(width)

    def keys(self, features_WLC: Tensor, mask_WL: Tensor) -> tuple[Tensor, Tensor]:
        """(keys [W, L + 1, P], valid boundaries [W, L + 1]: b <= the window's length)."""
        feats = features_WLC * mask_WL.unsqueeze(-1).to(features_WLC.dtype)
        left = F.pad(feats, (0, 0, 1, 0))  # boundary b sees base b - 1 on its left
        right = F.pad(feats, (0, 0, 0, 1))  # and base b on its right
        keys = self.key_norm(self.key_proj(torch.cat((left, right), dim=-1)))
        lengths = mask_WL.sum(dim=1)
        valid = torch.arange(keys.shape[1], device=keys.device)[None, :] <= lengths[:, None]
        return keys, valid

    def queries(self, hidden_ND: Tensor) -> Tensor:
        return self.query_proj(hidden_ND) * self.scale

    def scores(self, hidden_ND: Tensor, keys_NLP: Tensor, previous_N: Tensor) -> Tensor:
        """[N, L] fp32 score of every boundary for each of N positions (keys per position)."""
        content = torch.bmm(keys_NLP, self.queries(hidden_ND)[:, :, None].to(keys_NLP.dtype)).squeeze(-1)
        return content.float() + self.length_term(hidden_ND, previous_N, keys_NLP.shape[1])

    def length_term(self, hidden_ND: Tensor, previous_N: Tensor, n_boundaries: int) -> Tensor:
        """[N, L] the bucket logit of each boundary's distance from the previous coordinate."""
        boundaries = torch.arange(n_boundaries, device=hidden_ND.device)
        buckets = distance_bucket(boundaries[None, :] - previous_N[:, None])
        return self.distance_proj(hidden_ND).float().gather(1, buckets)


def number_values(digit_token_ids: Tensor, vocab_size: int) -> Tensor:
    """[V] the value 0..999 of each number token id, -1 for every other id."""
    values = torch.full((vocab_size,), -1, dtype=torch.long, device=digit_token_ids.device)
    values[digit_token_ids.long()] = torch.arange(digit_token_ids.numel(), device=digit_token_ids.device)
    return values


def coordinate_positions(labels_BT: Tensor, values_V: Tensor, sep_id: int | Tensor,
                         decoder_doc_BT: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Where the labels are coordinate digits: (slot [B, T] SLOT_*, boundary [B, T], hi [B, T],
    previous [B, T]).

    A label is a ``hi`` digit when the label after it is ``:``, a ``lo`` digit when the one before
    it is (``:`` occurs only inside coordinates). ``boundary`` is the coordinate's value and
    ``hi`` its thousands, at both positions (-1 elsewhere); ``previous`` the value of the
    coordinate before it in the same document (0 for the first; with ``decoder_doc`` given, else
    in the same row).
    """
    labels = labels_BT.long()
    value = torch.where(labels >= 0, values_V[labels.clamp(min=0)], -1)
    sep = labels == sep_id
    after_sep = F.pad(sep[:, :-1], (1, 0), value=False)
    before_sep = F.pad(sep[:, 1:], (0, 1), value=False)
    lo_two_on = F.pad(value[:, 2:], (0, 2), value=-1)
    hi_two_back = F.pad(value[:, :-2], (2, 0), value=-1)
    is_hi = (value >= 0) & before_sep & (lo_two_on >= 0)
    is_lo = (value >= 0) & after_sep & (hi_two_back >= 0)
    slot = torch.where(is_hi, SLOT_HI, torch.where(is_lo, SLOT_LO, SLOT_NONE))
    hi = torch.where(is_hi, value, torch.where(is_lo, hi_two_back, -1))
    lo = torch.where(is_hi, lo_two_on, torch.where(is_lo, value, -1))
    boundary = torch.where(slot > 0, hi * COORD_BLOCK + lo, -1)
    # The coordinate before each hi position: the latest hi position strictly before it.
    columns = torch.arange(labels.shape[1], device=labels.device).expand_as(labels)
    hi_at = torch.where(is_hi, columns, -1)
    before = F.pad(torch.cummax(hi_at, dim=1).values[:, :-1], (1, 0), value=-1)
    found = before >= 0
    if decoder_doc_BT is not None:
        doc = decoder_doc_BT.long()
        found = found & (doc.gather(1, before.clamp(min=0)) == doc)
    previous_hi = torch.where(found, boundary.gather(1, before.clamp(min=0)), 0)
    # a lo position's previous coordinate is that of its own hi, two positions back
    previous = torch.where(is_hi, previous_hi, torch.where(is_lo, F.pad(previous_hi[:, :-2], (2, 0), value=0), 0))
    return slot, boundary, hi, previous


def document_windows(decoder_doc_BT: Tensor) -> Tensor:
    """[B, T] index of each decoder position's window among the batch's per-base windows (one
    per document, row by row in placement order; -1 on padding)."""
    doc = decoder_doc_BT.long()
    per_row = (doc.max(dim=1).values + 1).clamp(min=0)
    first = torch.cumsum(per_row, 0) - per_row
    return torch.where(doc >= 0, first[:, None] + doc, -1)


def soft_target_log_likelihood(log_probs_NL: Tensor, allowed_NL: Tensor, target_N: Tensor,
                               smoothing: float, sigma: float) -> Tensor:
    """[N] expected log-probability under the ordinal target (module docstring)."""
    exact = log_probs_NL.gather(1, target_N[:, None]).squeeze(1)
    if smoothing == 0:
        return exact
    radius = max(1, math.ceil(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, device=target_N.device)
    near = target_N[:, None] + offsets[None, :]
    inside = (near >= 0) & (near < log_probs_NL.shape[1])
    near = near.clamp(0, log_probs_NL.shape[1] - 1)
    ok = inside & allowed_NL.gather(1, near)
    weight = torch.exp(-(offsets.float() ** 2) / (2 * sigma**2))[None, :] * ok
    weight = weight / weight.sum(dim=1, keepdim=True).clamp(min=1e-12)
    spread = (weight * log_probs_NL.gather(1, near).masked_fill(~ok, 0.0)).sum(dim=1)
    return (1 - smoothing) * exact + smoothing * spread


def pointer_loss(pointer: CoordinatePointer, hidden_BTD: Tensor, labels_BT: Tensor, decoder_doc_BT: Tensor,
                 keys_WLP: Tensor, valid_WL: Tensor, values_V: Tensor, sep_id: int | Tensor,
                 smoothing: float, sigma: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(sum of the smoothed CE, sum of the plain CE, coordinate digits scored, their [B, T] mask)
    of a packed batch.

    Positions whose boundary lies past their window (a target that does not fit its bases) are
    left to the token head. One host sync (the positions per window).
    """
    slot, boundary, hi, previous = coordinate_positions(labels_BT, values_V, sep_id, decoder_doc_BT)
    window = document_windows(decoder_doc_BT)
    n_windows, n_boundaries = valid_WL.shape
    lengths = valid_WL.sum(dim=1) - 1
    w_safe = window.clamp(0, max(n_windows - 1, 0))
    fits = (slot > 0) & (window >= 0) & (window < n_windows) & (boundary <= lengths[w_safe])
    flat = fits.reshape(-1).nonzero().squeeze(1)
    zero = (hidden_BTD.sum() * 0.0).float()
    if flat.numel() == 0:
        return zero, zero, flat.new_zeros(()), fits
    win = window.reshape(-1)[flat]
    order = torch.argsort(win, stable=True)
    flat, win = flat[order], win[order]
    hidden = hidden_BTD.reshape(-1, hidden_BTD.shape[-1])[flat]
    queries = pointer.queries(hidden)
    length_logits = pointer.distance_proj(hidden).float()
    prior = previous.reshape(-1)[flat]
    target = boundary.reshape(-1)[flat]
    is_lo = slot.reshape(-1)[flat] == SLOT_LO
    block = hi.reshape(-1)[flat]
    windows, counts = torch.unique_consecutive(win, return_counts=True)
    smoothed_sum = exact_sum = zero
    first = 0
    boundary_index = torch.arange(n_boundaries, device=hidden_BTD.device)
    boundary_block = boundary_index[None, :] // COORD_BLOCK
    for w, n in zip(windows.tolist(), counts.tolist(), strict=True):
        part = slice(first, first + n)
        first += n
        scores = (queries[part] @ keys_WLP[w].T.to(queries.dtype)).float()  # [n, L + 1]
        buckets = distance_bucket(boundary_index[None, :] - prior[part, None])
        scores = scores + length_logits[part].gather(1, buckets)
        allowed = valid_WL[w][None, :] & ((boundary_block == block[part, None]) | ~is_lo[part, None])
        log_probs = torch.log_softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)
        log_probs = log_probs.masked_fill(~allowed, 0.0)
        exact = log_probs.gather(1, target[part, None]).squeeze(1)
        exact_sum = exact_sum - exact.sum()
        smoothed = soft_target_log_likelihood(log_probs, allowed, target[part], smoothing, sigma)
        smoothed_sum = smoothed_sum - smoothed.sum()
    return smoothed_sum, exact_sum, flat.new_tensor(flat.numel()), fits


def pointer_number_logits(pointer: CoordinatePointer, hidden_BD: Tensor, keys_BLP: Tensor, valid_BL: Tensor,
                          slot_B: Tensor, hi_B: Tensor, previous_B: Tensor, token_logits_BV: Tensor,
                          digit_ids: Tensor, bias_BL: Tensor | None = None,
                          range_B2: Tensor | None = None) -> Tensor:
    """Token logits [B, V] with the number tokens' columns replaced by the pointer's at coordinate
    slots (module docstring), ``previous_B`` each row's last written coordinate; other rows
    unchanged; float32. ``keys_BLP``'s L is a multiple of
    :data:`COORD_BLOCK`. ``bias_BL`` is added to every boundary's score first (head guidance,
    :mod:`genoforge.inference.head_guide`). ``range_B2``: each row's lowest and highest allowed
    value (ignored where highest < lowest); boundaries outside it get no share of a ``hi``
    digit's mass, so that digit cannot be won by boundaries the grammar forbids. No host sync
    (CUDA-graph safe)."""
    rows = hidden_BD.shape[0]
    scores = pointer.scores(hidden_BD, keys_BLP, previous_B)
    if bias_BL is not None:
        scores = scores + bias_BL
    valid = valid_BL
    if range_B2 is not None:
        boundary = torch.arange(valid_BL.shape[1], device=valid_BL.device)[None, :]
        low, high = range_B2[:, :1], range_B2[:, 1:]
        inside = (boundary >= low) & (boundary <= high)
        valid = valid & (inside | (high < low))
    scores = scores.masked_fill(~valid, float("-inf"))
    blocks = scores.view(rows, -1, COORD_BLOCK)  # [B, L / 1000, 1000]
    n_blocks = blocks.shape[1]
    hi_logits = torch.logsumexp(blocks, dim=-1)
    hi_logits = F.pad(hi_logits, (0, COORD_BLOCK - n_blocks), value=float("-inf"))
    pick = hi_B.clamp(0, n_blocks - 1)[:, None, None].expand(rows, 1, COORD_BLOCK)
    lo_logits = blocks.gather(1, pick).squeeze(1)
    numbers = token_logits_BV.float().index_select(1, digit_ids)
    slot = slot_B[:, None]
    numbers = torch.where(slot == SLOT_HI, hi_logits, torch.where(slot == SLOT_LO, lo_logits, numbers))
    out = token_logits_BV.float().clone()
    out.index_copy_(1, digit_ids, numbers)
    return out  # float32: a lo digit's scores must not be rounded to bf16
