"""Per-base class log-probabilities of whole contigs, from the model's per-base head.

Shape legend: W windows of a batch, L bases, K classes (``N_CLASSES``), S the head's signals
(``N_SIGNALS``, where the model has them).

Windows tile a contig as for the generative decoder (:mod:`genoforge.inference.windows`); each
is encoded (the encoder, then the per-base head, no decoder) and its class log-softmax kept, and
its signals' calibrated log-odds (:func:`genoforge.model.base_signals.calibrated_log_odds`) after
them where the head has signal outputs. Where
windows overlap, each base takes the window whose middle is nearest, i.e. the overlap is split
at its midpoint: a base is never judged from the edge of a window when a more central view
exists. Bases of windows with no A/C/G/T (runs of N) get a certain ``intergenic``.

The contig track is float32 [L, K] or [L, K + S] (68 or 100 bytes a base): what :func:`genoforge.inference.hmm.
decode_genes` reads. Memory grows with the longest contig, not the genome.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from genoforge.genes.classes import INTERGENIC, N_CLASSES, N_SIGNALS, encode_bases
from genoforge.inference.windows import GenomeWindow

_CERTAIN = 0.0
_IMPOSSIBLE = -30.0  # log-probability of the other classes on an all-N window


class BaseTrackPredictor:
    """Per-base log-probabilities of windows (batched) and their contig tracks."""

    def __init__(self, model, tokenizer, batch_size: int):
        import torch

        if model.base_head is None:
            from genoforge.errors import CheckpointError

            raise CheckpointError("the model has no per-base head (base_head_channels 0), so --decoder hmm "
                                  "cannot run; use --decoder generative or train a model with a base head")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.batch_size = max(1, batch_size)
        self.device = next(model.parameters()).device
        self.bp_lengths = np.asarray(tokenizer.bp_lengths())
        self.width = N_CLASSES + (N_SIGNALS if model.config.base_head_signals else 0)  # track columns
        self._torch = torch

    def window_log_probs(self, windows: list[GenomeWindow]) -> list[np.ndarray]:
        """float32 [length, width] track of each window (class log-probabilities, then the
        signals' log-odds), in order."""
        from genoforge.inference.decode import encoder_batch
        from genoforge.inference.stream import add_base_fields
        from genoforge.model.base_signals import LOG_ODDS_FLOOR, calibrated_log_odds
        from genoforge.model.model import split_head_logits

        torch = self._torch
        out: list[np.ndarray | None] = [None] * len(windows)
        todo = []
        for i, window in enumerate(windows):
            codes = encode_bases(window.sequence)
            if not (codes < 4).any():
                track = np.full((window.length, self.width), _IMPOSSIBLE, dtype=np.float32)
                track[:, INTERGENIC] = _CERTAIN
                track[:, N_CLASSES:] = LOG_ODDS_FLOOR
                out[i] = track
            else:
                todo.append((i, codes, self.tokenizer.encode_dna(window.sequence)))
        for first in range(0, len(todo), self.batch_size):
            chunk = todo[first : first + self.batch_size]
            ids = [token_ids for _, _, token_ids in chunk]
            batch = encoder_batch(ids, self.bp_lengths, self.tokenizer.pad_id, self.device)
            add_base_fields(batch, [codes for _, codes, _ in chunk], ids, self.bp_lengths, self.device)
            with torch.inference_mode():
                masks = self.model.build_masks(batch, with_decoder=False)
                hidden = self.model.encode_tokens(batch, masks)
                logits, signals = split_head_logits(self.model.base_logits(batch, hidden))
                parts = [torch.log_softmax(logits.float(), dim=-1)]
                if signals is not None:
                    parts.append(calibrated_log_odds(signals))
                log_probs = torch.cat(parts, dim=-1).cpu().numpy()
            for row, (i, codes, _) in enumerate(chunk):
                out[i] = log_probs[row, : codes.size]
        return out  # type: ignore[return-value]

    def contig_tracks(self, windows: Iterable[GenomeWindow]) -> Iterator[tuple[str, str, np.ndarray]]:
        """``(seqid, sequence, track)`` per contig, in FASTA order, as its last window is done.

        ``windows`` must come contig by contig in tiling order (as ``stream_windows`` yields).
        """
        pending: list[GenomeWindow] = []
        contig: _ContigTrack | None = None
        for window in windows:
            if contig is None or contig.seqid != window.seqid:
                contig = _ContigTrack(window.seqid, window.contig_length, self.width)
            pending.append(window)
            if len(pending) >= self.batch_size or window.index == window.n_windows - 1:
                for done, track in zip(pending, self.window_log_probs(pending)):
                    contig.add(done, track)
                pending = []
            if window.index == window.n_windows - 1:
                yield contig.seqid, contig.sequence(), contig.track
                contig = None


class _ContigTrack:
    """A contig's track being filled window by window (overlaps split at their midpoint)."""

    def __init__(self, seqid: str, length: int, width: int):
        self.seqid = seqid
        self.track = np.zeros((length, width), dtype=np.float32)
        self.pieces: list[str] = []
        self.filled = 0  # bases of the track settled so far (and of the sequence kept)
        self.previous_end = 0

    def add(self, window: GenomeWindow, track: np.ndarray) -> None:
        # This window owns [midpoint of the overlap with the previous window, its end); the next
        # window will overwrite from the midpoint of their overlap on.
        start = window.start if window.index == 0 else (window.start + self.previous_end) // 2
        start = max(start, 0)
        self.track[start : window.end] = track[start - window.start :]
        if window.end > self.filled:
            self.pieces.append(window.sequence[self.filled - window.start :])
            self.filled = window.end
        self.previous_end = window.end

    def sequence(self) -> str:
        return "".join(self.pieces)
