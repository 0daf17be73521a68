"""The generative decoder's :class:`Predictor`: a loaded model that annotates windows.

What ``predict --decoder generative`` runs (:func:`genoforge.inference.predict.predict_genome`;
training-time validation decodes with :func:`genoforge.inference.stream.decode_windows`).
Windows are decoded with continuous batching (:mod:`genoforge.inference.stream`) under the
target grammar (:mod:`genoforge.inference.decode`); a window with no A/C/G/T base (a run of N)
is not decoded: it holds no gene.
"""

from __future__ import annotations

import dataclasses
import re
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from genoforge.errors import TokenizerError
from genoforge.genes.target import WindowAnnotation
from genoforge.inference.decode import GrammarCache, WindowPrediction
from genoforge.inference.device import (
    CUDA_LENGTH_MULTIPLE,
    check_cuda_graphs,
    default_batch_size,
    load_for_inference,
    resolve_device,
    use_cuda_graphs,
)
from genoforge.inference.hmm_anchor import ViterbiAnchor
from genoforge.inference.predict_config import PredictConfig, default_max_new_tokens
from genoforge.inference.stream import check_max_new_tokens, decode_stream
from genoforge.inference.windows import GenomeWindow
from genoforge.model.training_window import TrainingWindow, read_training_window

_HAS_BASE = re.compile(r"[ACGTUacgtu]")


class Predictor:
    """A loaded model ready to annotate windows (the generative decoder of predict_genome).

    Build with :meth:`from_dir`, or wrap a model and tokenizer already in memory
    (``training_window``: the model's record, if known, for the default window).
    ``self.config`` is the resolved configuration (window size settled); ``self.max_new_tokens``
    the token cap in force.
    """

    def __init__(self, model, tokenizer, config: PredictConfig | None = None,
                 training_window: TrainingWindow | None = None, anchor: ViterbiAnchor | None = None):
        self.training_window = training_window
        self.anchor = anchor  # guide terms from the HMM's parse (config.guide_from "hmm")
        self.config = (config or PredictConfig()).for_model(training_window)
        self.config.validate()
        self.max_new_tokens = self.config.max_new_tokens
        if self.max_new_tokens is None:
            self.max_new_tokens = default_max_new_tokens(self.config.resolved_window_size,
                                                         model.config.decoder_window_size)
        check_max_new_tokens(model.config, self.max_new_tokens)
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.device = next(model.parameters()).device
        if tokenizer.vocab_size > model.config.vocab_size:
            raise TokenizerError(
                f"the tokenizer has {tokenizer.vocab_size} tokens but the model only "
                f"{model.config.vocab_size} embeddings; run `genoforge tokens resize` on the model"
            )
        self.grammars = GrammarCache(tokenizer, self.config.max_records, self.config.max_exons,
                                     signals=self.config.signal_grammar,
                                     clip_in_introns=anchor is not None)  # a contig parse's pieces
        cuda = self.device.type == "cuda"
        self.batch_size = default_batch_size(self.config, self.device)
        self.length_multiple = CUDA_LENGTH_MULTIPLE if cuda else 1
        self.step = None  # decode_stream's default row_step, unless CUDA graphs are used
        if use_cuda_graphs(self.config, self.device, self.model):
            from genoforge.inference.cuda_graphs import GraphedRowStep

            self.step = GraphedRowStep(fallback=self.config.cuda_graphs is None)
        self.target_tokens = 0  # target tokens kept (after <bos>), all windows so far

    @classmethod
    def from_dir(cls, model_dir: str | Path, config: PredictConfig | None = None,
                 training_window: TrainingWindow | None = None) -> Predictor:
        """Load a model directory (config.json, weights, tokenizer) onto the configured device.

        ``training_window``: the directory's record when the caller already read it; otherwise
        it is read here when ``config`` leaves the window size open.

        Raises:
            CheckpointError: the model directory (or its training-window record) is unreadable.
        """
        config = config or PredictConfig()
        record = training_window
        if record is None and config.window_size is None:
            record = read_training_window(model_dir)
        config = config.for_model(record)
        config.validate()
        device = resolve_device(config.device)
        check_cuda_graphs(config, device)  # before loading the weights
        anchor = load_anchor(model_dir, config)  # before the weights: a missing file fails fast
        model, tokenizer = load_for_inference(model_dir, config, device)
        return cls(model, tokenizer, config, training_window=record, anchor=anchor)

    def stream(
        self, windows: Iterable[GenomeWindow]
    ) -> Iterator[tuple[GenomeWindow, WindowPrediction | None]]:
        """Decode windows with continuous batching (:mod:`genoforge.inference.stream`).

        Yields ``(window, prediction)`` in completion order, not input order; windows without an
        A/C/G/T base are not decoded and come back with None. Windows are read from ``windows``
        lazily, ``batch_size`` at a time.
        """
        skipped: deque[GenomeWindow] = deque()
        left: dict[str, int] = {}  # windows of each contig still to come back (an anchor's parses)

        def decodable() -> Iterator[tuple[GenomeWindow, list[int], int]]:
            for window in self._parsed(windows):
                if _HAS_BASE.search(window.sequence):
                    yield window, self.tokenizer.encode_dna(window.sequence), window.length, window.sequence
                else:  # kept without its bases: a long N run must not pile up sequence
                    skipped.append(dataclasses.replace(window, sequence=""))

        if self.config.beam > 1:
            from genoforge.inference.beam import decode_beam

            decoded = decode_beam(
                self.model, self.tokenizer, decodable(), beam=self.config.beam,
                windows_per_batch=max(1, self.batch_size // self.config.beam), max_new_tokens=self.max_new_tokens,
                grammars=self.grammars, length_multiple=self.length_multiple, step=self.step,
                guide_weight=self.config.guide_weight, anchor=self.anchor,
            )
        else:
            decoded = decode_stream(
                self.model, self.tokenizer, decodable(), batch_size=self.batch_size,
                max_new_tokens=self.max_new_tokens, grammars=self.grammars,
                length_multiple=self.length_multiple, pad_encoder_rows=self.device.type == "cuda",
                step=self.step, guide_weight=self.config.guide_weight, anchor=self.anchor,
            )
        def done(window: GenomeWindow) -> GenomeWindow:
            if self.anchor is not None:
                left[window.seqid] = left.get(window.seqid, window.n_windows) - 1
                if not left[window.seqid]:
                    self.anchor.release(window.seqid)
            return window

        try:
            for window, prediction in decoded:
                while skipped:
                    yield done(skipped.popleft()), None
                self.target_tokens += len(prediction.token_ids) - 1
                yield done(window), prediction
            while skipped:
                yield done(skipped.popleft()), None
        finally:
            if self.step is not None:
                self.step.release()  # the graph's buffers hold this stream's decode cache

    def _parsed(self, windows: Iterable[GenomeWindow]) -> Iterator[GenomeWindow]:
        """``windows``; with an HMM anchor, each contig's windows held back until the anchor has
        parsed the whole contig from its per-base head track (the track ``--decoder hmm``
        decodes), so that every window of a contig is guided by one parse: a gene longer than a
        window comes out of the windows in one frame. Memory: a contig's windows and track."""
        if self.anchor is None:
            yield from windows
            return
        from genoforge.inference.base_track import BaseTrackPredictor

        heads = BaseTrackPredictor(self.model, self.tokenizer, self.batch_size)
        held: list[GenomeWindow] = []

        def holding() -> Iterator[GenomeWindow]:
            for window in windows:
                held.append(window)
                yield window

        for seqid, sequence, track in heads.contig_tracks(holding()):
            self.anchor.parse_contig(seqid, sequence, track)
            yield from held
            held.clear()

    def annotate(self, windows: Sequence[GenomeWindow]) -> list[WindowAnnotation]:
        """The decoded annotation of each window, in input order (empty for all-N windows)."""
        position = {id(window): i for i, window in enumerate(windows)}
        out = [WindowAnnotation()] * len(windows)
        for window, prediction in self.stream(windows):
            if prediction is not None:
                out[position[id(window)]] = prediction.annotation
        return out


def load_anchor(model_dir: str | Path, config: PredictConfig) -> ViterbiAnchor | None:
    """The HMM anchor that guidance from the HMM's parse needs (``guide_from`` "hmm" with a
    guide weight), from the model directory's gene-structure parameters; else None.

    Raises:
        CheckpointError: the model directory has no ``gene_structure.json``.
    """
    if config.guide_from != "hmm" or not config.guide_weight > 0:
        return None
    from genoforge.inference.structure_predict import structure_params

    params, _ = structure_params(model_dir, config.species, config.taxon)
    return ViterbiAnchor(params, config.emission_weight, config.signal_weight, config.head_signal_weight,
                         config.content_weight)
