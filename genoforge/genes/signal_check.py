"""Does a window's annotation keep to the splice and ORF signals of its DNA?

:func:`signal_violations` reads every ``protein_coding`` transcript of a
:class:`~genoforge.genes.window_models.WindowAnnotation` against the window's sequence and names
each intron whose ends are off the accepted classes and each CDS that is not a complete ORF, by
the rules that :class:`genoforge.genes.signal_grammar.SignalGrammar` enforces while decoding
(its module docstring). It is written directly on the sequence text, independently of that
automaton, so tests can check the one with the other:

* an intron ``dna[e:s]`` between consecutive exons is at least 4 bp and its (donor, acceptor)
  dinucleotides, read on the transcript's strand (reverse-complemented on ``-``), are a class;
* the CDS read 5'->3' over the spliced exons starts with ATG at phase 0 and ends with its first
  in-frame stop codon (the span includes it), unless the window edge clips it: a 5' end at the
  window edge of a transcript marked partial there, whose outer exon reaches the edge, may start
  with any phase and any codon; a 3' end clipped likewise may end at the edge with no stop (but
  no in-frame stop may come before it). With ``clip_in_introns`` the outer exon's end counts as
  the edge even where it stops short of it (the window edge falls in an intron).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from genoforge.genes import inventory as inv
from genoforge.genes.signals import INTRON_CLASSES, STOP_CODONS
from genoforge.genes.window_models import WindowAnnotation, WindowTranscript

_COMPLEMENT = str.maketrans("ACGT", "TGCA")


def _reverse_complement(sequence: str) -> str:
    return sequence.translate(_COMPLEMENT)[::-1]


def intron_signal(dna: str, start: int, end: int, strand: str) -> str:
    """The ``DONOR-ACCEPTOR`` dinucleotides of the intron ``dna[start:end]`` read on ``strand``
    (``dna`` upper case)."""
    low, high = dna[start:start + 2], dna[end - 2:end]
    if strand == inv.MINUS:
        return f"{_reverse_complement(high)}-{_reverse_complement(low)}"
    return f"{low}-{high}"


def orf_problem(transcript: WindowTranscript, dna: str, clip_in_introns: bool = False,
                intron_classes: Sequence[str] = INTRON_CLASSES) -> str | None:
    """Why the transcript's CDS is not a complete (or window-clipped) ORF, or None if it is one.

    ``dna`` is the window's sequence in upper case; the transcript has a CDS. With
    ``clip_in_introns`` a partial end may be clipped at an outer exon that stops short of the
    window edge where an intron of ``intron_classes`` may run from it past the edge (the edge
    falls in an intron: the exon's outer dinucleotide is a canonical intron end on the strand).
    """
    assert transcript.cds is not None
    cds_start, cds_end = transcript.cds
    window = len(dna)
    exons = transcript.exons
    coding = "".join(dna[max(s, cds_start):min(e, cds_end)] for s, e in exons
                     if s < cds_end and e > cds_start)
    low_edge = high_edge = None
    if clip_in_introns:
        pairs = [cls.upper().split("-") for cls in intron_classes]
        if transcript.strand == inv.MINUS:
            pairs = [(_reverse_complement(acceptor), _reverse_complement(donor)) for donor, acceptor in pairs]
        first, last = exons[0][0], exons[-1][1]
        # the edge may cut the dinucleotide itself: then its visible base must fit
        seen_low, seen_high = dna[max(first - 2, 0):first], dna[last:last + 2]
        low_edge = first if any(high.endswith(seen_low) for _, high in pairs) else None
        high_edge = last if any(low.startswith(seen_high) for low, _ in pairs) else None
    low_edge = 0 if low_edge is None or exons[0][0] == 0 else low_edge
    high_edge = window if high_edge is None or exons[-1][1] == window else high_edge
    low_clipped = "<" in transcript.partial and exons[0][0] == low_edge == cds_start
    high_clipped = ">" in transcript.partial and exons[-1][1] == high_edge == cds_end
    if transcript.strand == inv.MINUS:
        coding = _reverse_complement(coding)
        clipped5, clipped3 = high_clipped, low_clipped
    else:
        clipped5, clipped3 = low_clipped, high_clipped
    phase = transcript.cds_phase
    if not clipped5:
        if phase != 0:
            return f"phase {phase} at a 5' end that is not clipped by the window edge"
        if coding[:3] != "ATG":
            return f"starts with {coding[:3]!r}, not ATG"
    codons = [coding[i:i + 3] for i in range(phase, len(coding) - 2, 3)]
    whole = (len(coding) - phase) % 3 == 0
    stop_at = next((k for k, codon in enumerate(codons) if codon in STOP_CODONS), None)
    if stop_at is not None:
        if stop_at == len(codons) - 1 and whole:
            return None
        return (f"in-frame stop {codons[stop_at]} at coding base {phase + 3 * stop_at} of "
                f"{len(coding)}, before the CDS end")
    if clipped3:
        return None
    if not whole:
        return f"coding length {len(coding)} - phase {phase} is not a multiple of 3"
    return f"ends with {codons[-1] if codons else coding!r}, not a stop codon"


def signal_violations(
    annotation: WindowAnnotation,
    dna: str,
    intron_classes: Sequence[str] = INTRON_CLASSES,
    clip_in_introns: bool = False,
) -> list[str]:
    """One line per off-class intron and per CDS that is not a complete ORF, over the
    ``protein_coding`` transcripts of ``annotation`` (window coordinates into ``dna``, any
    case); empty when all is well. ``clip_in_introns`` as for :func:`orf_problem`."""
    dna = dna.upper()
    classes = {cls.upper() for cls in intron_classes}
    problems: list[str] = []
    for n, record in enumerate(annotation.records):
        if not isinstance(record, WindowTranscript) or record.biotype != inv.PROTEIN_CODING:
            continue
        where = f"record {n} (transcript {record.strand} gene {record.gene} {record.exons})"
        for (_, end), (start, _) in itertools.pairwise(record.exons):
            if start - end < 4:
                problems.append(f"{where}: intron [{end}, {start}) shorter than 4 bp")
                continue
            signal = intron_signal(dna, end, start, record.strand)
            if signal not in classes:
                problems.append(f"{where}: intron [{end}, {start}) reads {signal}, not one of "
                                f"{', '.join(sorted(classes))}")
        if record.cds is not None:
            problem = orf_problem(record, dna, clip_in_introns, intron_classes)
            if problem is not None:
                problems.append(f"{where}: CDS {record.cds} phase {record.cds_phase} {problem}")
    return problems
