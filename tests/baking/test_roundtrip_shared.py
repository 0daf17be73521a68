"""THE round trip, on every genome in ../shared/data (DESIGN.md "Target text", requirement 1).

Each sequence is tiled with 10 kb windows at a 5 kb stride. For every window:
annotation -> encode_target -> token ids (a real tokenizer: DNABERT-2 + the inventory, as
``model init`` leaves it) -> decoded text (no spaces) -> parse_target_text must give back the
window's annotation exactly, partial (clipped) transcripts included. Every transcript wholly
inside a window is also compared with its genome model (exons, CDS span, phase, strand, biotype)
and gene grouping is checked both ways (same gene index <=> same gene). Transcripts longer than
the stride fit no tile; each gets a window fitted around it, so every transcript is checked.

Counts (transcripts checked wholly inside a window, of the annotation's total) are printed:
athal_chloroplast 85/85, fly_chr2R 924/924, oscillibacter_JAOQKG01 3195/3195,
yeast_chrI_chrII 606/606 (run with -s to see them with the window and record counts).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from genoforge.genes.annotation import load_annotation
from genoforge.genes.fasta import fasta_lengths
from genoforge.genes.target import (
    WindowAnnotation,
    WindowTranscript,
    canonicalize,
    encode_target,
    parse_target_text,
    window_records,
)

SPECIES = ("athal_chloroplast", "fly_chr2R", "oscillibacter_JAOQKG01", "yeast_chrI_chrII")
WINDOW = 10_000
STRIDE = 5_000
FIT_MARGIN = 100  # bp on each side of a transcript that fits no tile

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def tokenizer(baking_tokenizer_dir):
    from genoforge.tokenizer.core import GenoTokenizer

    return GenoTokenizer.load(baking_tokenizer_dir)


def _tiles(length: int):
    start = 0
    while True:
        yield start, min(start + WINDOW, length)
        if start + WINDOW >= length:
            return
        start += STRIDE


def _check_window(tokenizer, annotation, seqid, start, end, checked: set[str]) -> int:
    pairs = window_records(annotation, seqid, start, end)
    expected = WindowAnnotation(tuple(record for record, _ in pairs))
    ids = tokenizer.encode_target(encode_target(expected))
    text = tokenizer.decode(ids)
    back = parse_target_text(text, window_size=end - start)
    assert back == expected, f"{seqid}:{start}-{end}"
    assert canonicalize(back) == back
    genes: dict[int, str] = {}
    for record, (_, source) in zip(back.records, pairs):
        if not isinstance(record, WindowTranscript):
            assert (record.start + start, record.end + start) == (
                max(source.start, start), min(source.end, end))
            continue
        # same gene index <=> same gene
        assert genes.setdefault(record.gene, source.gene_id) == source.gene_id
        if source.start >= start and source.end <= end:
            assert record.partial == "."
            assert tuple((s + start, e + start) for s, e in record.exons) == source.exons
            cds = None if record.cds is None else (record.cds[0] + start, record.cds[1] + start)
            assert cds == source.cds
            assert record.cds_phase == source.cds_phase
            assert (record.strand, record.biotype) == (source.strand, source.biotype)
            checked.add(source.transcript_id)
        else:
            assert record.partial != "."
    assert len(set(genes.values())) == len(genes)
    return len(ids)


@pytest.mark.parametrize("species", SPECIES)
def test_round_trip_on_shared_genome(shared_data: Path, tokenizer, species: str) -> None:
    folder = shared_data / species
    lengths = fasta_lengths(folder / "genome.fa.gz")
    annotation = load_annotation(folder / "annotation.gff3.gz", lengths)
    assert annotation.n_transcripts > 0
    checked: set[str] = set()
    n_windows = n_tokens = 0
    for seqid, length in lengths.items():
        for start, end in _tiles(length):
            n_tokens += _check_window(tokenizer, annotation, seqid, start, end, checked)
            n_windows += 1
    n_tiled = len(checked)
    for seqid, transcripts in annotation.transcripts.items():
        for t in transcripts:
            if t.transcript_id not in checked:
                start = max(0, t.start - FIT_MARGIN)
                end = min(lengths[seqid], t.end + FIT_MARGIN)
                _check_window(tokenizer, annotation, seqid, start, end, checked)
    all_ids = {t.transcript_id for ts in annotation.transcripts.values() for t in ts}
    assert checked == all_ids
    print(f"\n{species}: {len(checked)}/{annotation.n_transcripts} transcripts round-tripped "
          f"exactly ({n_tiled} inside a {WINDOW} bp tile, the rest in fitted windows); "
          f"{n_windows} tiles, {n_tokens} target tokens")
