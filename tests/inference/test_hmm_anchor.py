"""HMM anchors: the structure decoder's parse of each window as the generative decoder's guide.

Two halves, each against planted genes (random DNA with known gene models,
``tests/inference/planted_genes.py``): the anchor's Viterbi path of a near one-hot head is the
planted genes' class track, windows of several lengths decoded together; and guided by a parse,
a decoder with random weights writes exactly the parse's gene models (exons, CDS, strand) on
both strands, and every CDS it writes is a complete ORF with canonical introns.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genoforge.genes import inventory as inv
from genoforge.genes.classes import (
    INTRON_MINUS,
    INTRON_PLUS,
    N_CLASSES,
    N_SIGNALS,
    window_labels,
)
from genoforge.inference.decode import GrammarCache
from genoforge.inference.hmm_anchor import (
    ANCHOR_CONFIDENCE,
    ANCHOR_SITE,
    ViterbiAnchor,
    anchor_view,
)
from genoforge.inference.stream import decode_stream
from genoforge.model.base_signals import signal_targets
from tests.inference.planted_genes import (
    DEFAULT,
    EACH_PHASE,
    check_transcript,
    make_gene,
    near_one_hot,
    plant,
)
from tests.tiny import build_debug_model, write_tokenizer_dir

_POOL = np.arange(N_CLASSES)
_POOL[list(INTRON_PLUS)] = INTRON_PLUS[0]
_POOL[list(INTRON_MINUS)] = INTRON_MINUS[0]


def _windows(seed: int = 5):
    """Three windows (two of one length, one of another), genes on both strands."""
    rng = np.random.default_rng(seed)
    specs = [(700, [(150, "+", make_gene(rng, *EACH_PHASE))]),
             (700, [(200, "-", make_gene(rng, (60, 45), (80,)))]),
             (900, [(100, "+", make_gene(rng, (90,))), (500, "-", make_gene(rng, (36, 30, 60), (70, 90)))])]
    windows = []
    for length, genes in specs:
        seq, transcripts = plant(rng, length, genes)
        windows.append((seq, transcripts, window_labels(transcripts, 0, length).astype(np.int64)))
    return windows


def _models(transcripts) -> list[tuple]:
    return sorted((t.strand, tuple(t.exons), tuple(t.cds)) for t in transcripts)


def test_anchor_view_is_the_label_track_in_the_head_s_form() -> None:
    _, _, labels = _windows()[0]
    labels_WL = torch.from_numpy(np.stack([labels, np.where(np.arange(labels.size) < 600, labels, -1)]))
    probs, sites = anchor_view(labels_WL)
    assert probs.shape == (2, labels.size, N_CLASSES) and sites.shape == (2, labels.size, N_SIGNALS)
    assert torch.equal(probs[0].argmax(-1), labels_WL[0])
    assert torch.allclose(probs.sum(-1), torch.ones(2, labels.size))
    assert torch.allclose(probs[0].max(-1).values, torch.full((labels.size,), ANCHOR_CONFIDENCE))
    assert torch.allclose(probs[1, 600:], torch.full((labels.size - 600, N_CLASSES), 1 / N_CLASSES))
    targets, _ = signal_targets(labels_WL[:1])
    assert targets.sum() >= 8  # start, stop, 3 donors and 3 acceptors of the planted gene
    assert torch.equal(sites[0] > 0, targets[0] > 0) and set(sites.abs().unique().tolist()) == {ANCHOR_SITE}


def test_the_anchor_s_path_of_a_near_one_hot_head_is_the_planted_class_track() -> None:
    windows = _windows()
    width = max(len(seq) for seq, _, _ in windows) + 13  # padded past every window
    logits = torch.zeros(len(windows), width, N_CLASSES)
    for w, (seq, _, labels) in enumerate(windows):
        logits[w, : len(seq)] = torch.from_numpy(near_one_hot(labels.astype(np.uint8))).float()
    lengths = [len(seq) for seq, _, _ in windows]
    path = ViterbiAnchor(DEFAULT).path_labels(logits, lengths, [seq for seq, _, _ in windows])
    assert path.shape == (len(windows), width)
    for w, (seq, _, labels) in enumerate(windows):
        # the decoder pools intron phases (it reads the phase from the frame): compare pooled
        assert np.array_equal(_POOL[path[w, : len(seq)]], _POOL[labels]), w
        assert np.all(path[w, len(seq):] == -1)


class _PlantedAnchor:
    """An anchor whose parse is the planted genes' class track (the decode side alone)."""

    def __init__(self, labels: list[np.ndarray], bases: list[str]):
        self.labels = labels
        self._bases = bases

    def guide_inputs(self, head_logits_WLK, lengths, bases, keys=None):
        track = torch.full(head_logits_WLK.shape[:2], -1, dtype=torch.long)
        for w, n in enumerate(lengths):
            index = next(i for i, labels in enumerate(self.labels) if labels.size == n and
                         bases[w] == self._bases[i])
            track[w, :n] = torch.from_numpy(self.labels[index])
        return anchor_view(track)


@pytest.fixture(scope="module")
def model_and_tokenizer(tmp_path_factory):
    from genoforge.tokenizer.core import GenoTokenizer

    tokenizer = GenoTokenizer.load(write_tokenizer_dir(tmp_path_factory.mktemp("tok")))
    return build_debug_model(tokenizer, 3).eval(), tokenizer


@pytest.mark.parametrize("weight", [3.0, 30.0])
def test_guided_by_a_parse_random_weights_write_exactly_its_gene_models(model_and_tokenizer, weight) -> None:
    model, tokenizer = model_and_tokenizer
    windows = _windows()
    anchor = _PlantedAnchor([labels for _, _, labels in windows], [seq for seq, _, _ in windows])
    items = [(w, tokenizer.encode_dna(seq), len(seq), seq) for w, (seq, _, _) in enumerate(windows)]
    out = dict(decode_stream(model, tokenizer, items, batch_size=len(items), max_new_tokens=400,
                             grammars=GrammarCache(tokenizer), pad_encoder_rows=True, guide_weight=weight,
                             anchor=anchor))
    for w, (seq, planted, _) in enumerate(windows):
        written = out[w].annotation.transcripts
        assert _models(written) == _models(planted), (w, [(t.strand, t.exons, t.cds) for t in written])
        assert all(t.biotype == inv.PROTEIN_CODING and t.partial == inv.PARTIAL_NONE for t in written)
        for transcript in written:
            check_transcript(seq, transcript, min_intron=DEFAULT.min_intron)


def test_guided_windows_cut_inside_an_intron_stitch_back_into_the_parse_s_gene(model_and_tokenizer) -> None:
    """A gene whose intron spans a whole window overlap (each window sees one side of it): the
    window that the intron leaves must end the transcript at its last exon, not invent an exon
    at a splice site near its edge, so that stitching joins the two sides (a bug seen on fly).
    Both strands; the parse is the planted genes' track, cut from the contig as predict does."""
    from genoforge.inference.stitch import WindowResult, stitch_contig
    from genoforge.inference.windows import GenomeWindow, tile_contig

    model, tokenizer = model_and_tokenizer
    rng = np.random.default_rng(11)
    length, size, overlap = 3300, 1200, 300
    tiles = tile_contig(length, size, overlap)  # overlaps [900, 1200), [1800, 2100), [2100, 3000)
    seq, planted = plant(rng, length, [(600, "+", make_gene(rng, (90, 60), (560,))),
                                       (1650, "-", make_gene(rng, (63, 45), (520,), utr5=12, utr3=20))])
    assert planted[0].exons[0][1] < 900 and planted[0].exons[1][0] > 1200
    assert planted[1].exons[0][1] < 1800 and planted[1].exons[1][0] > 2100
    anchor = ViterbiAnchor(DEFAULT)
    anchor.contig_labels["chrT"] = window_labels(planted, 0, length)
    windows = [GenomeWindow("chrT", length, i, len(tiles), start, end, seq[start:end])
               for i, (start, end) in enumerate(tiles)]
    items = [(w, tokenizer.encode_dna(w.sequence), w.length, w.sequence) for w in windows]
    grammars = GrammarCache(tokenizer, signals=True, clip_in_introns=True)  # as predict builds it
    out = dict(decode_stream(model, tokenizer, items, batch_size=len(items), max_new_tokens=400,
                             grammars=grammars, pad_encoder_rows=True, guide_weight=3.0, anchor=anchor))
    stitched = stitch_contig("chrT", length, [WindowResult(w.start, w.end, out[w].annotation) for w in windows])
    assert _models(stitched.transcripts) == _models(planted), [(t.strand, t.exons, t.cds) for t in stitched.transcripts]
    assert not any(t.partial_left or t.partial_right for t in stitched.transcripts)
    assert len({t.gene for t in stitched.transcripts}) == 2 and all(t.cds_phase == 0 for t in stitched.transcripts)
    for transcript in stitched.transcripts:
        check_transcript(seq, transcript, min_intron=DEFAULT.min_intron)
