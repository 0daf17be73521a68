"""Gene-structure statistics for the Viterbi decoder (:mod:`genoforge.inference.hmm`).

Two objects, both JSON-serialisable:

* :class:`StructureCounts` is an additive accumulator: bake adds its sequences species by
  species (:meth:`StructureCounts.add_sequence`) and counts of several species merge by
  summation (:meth:`StructureCounts.merge`). Nothing in it is a ratio, so merging is exact.
* :class:`GeneStructureParams` is what the decoder reads, derived from counts with pseudocounts
  (:meth:`StructureCounts.to_params`): an empty accumulator gives usable prior values.

What is counted, per sequence (0-based half-open coordinates, as everywhere):

* **Class frequencies** (all bases): the 17 per-base classes of :func:`window_labels` on the
  representative protein-coding transcripts (one per gene: :func:`representative_transcripts`),
  i.e. exactly the labels the network is trained on. Their log frequencies are the class log-
  priors the decoder divides out (hybrid HMM). Runs of ``intergenic`` give the mean intergenic
  length; genes per bp is genes over all bases.
* **Gene models** (only representative transcripts whose CDS is a complete ORF: ATG first codon,
  a stop (TAA/TAG/TGA) last, coding length a multiple of 3, and every coding intron GT-AG,
  GC-AG or AT-AC; CDS includes the stop codon): 5' and 3' UTR exonic lengths (where present),
  coding exon (CDS piece) lengths, coding intron lengths (a histogram, for the minimum-intron
  percentile), coding exons per gene, genes with a coding intron, the intron dinucleotide classes,
  and base counts of four signal windows read on the transcript's strand:

  ==========  ====================================================  =======================
  signal      window (``before`` + ``after`` the boundary ``b``)      fixed bases (indices)
  ==========  ====================================================  =======================
  donor       3 exon + 6 intron bases, ``b`` = first intron base     GT at 3, 4
  acceptor    20 intron + 3 exon bases, ``b`` = first exon base      AG at 18, 19
  start       10 bases before + ATG + 3 bases, ``b`` = the A         ATG at 10-12
  stop        6 bases before + stop + 6 bases, ``b`` = the stop's    the stop at 6-8
              first base
  ==========  ====================================================  =======================

  Window bases outside the sequence, or not A/C/G/T, are not counted.

The position weight matrices are log-odds against the strand-symmetric base composition of the
counted sequences: ``log((c[k, b] + a * bg[b]) / (n[k] + a)) - log(bg[b])`` with ``a`` =
``PWM_PSEUDOCOUNT``, so a column without data scores 0. The decoder scores only the non-fixed
columns (the fixed bases are hard constraints there; their variants are priced by the
dinucleotide fractions instead).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from genoforge.errors import ConfigError
from genoforge.genes.classes import (
    INTERGENIC,
    N_CLASSES,
    N_CODE,
    encode_bases,
    representative_transcripts,
    window_labels,
)

PARAMS_FORMAT_VERSION = 1
COUNTS_FORMAT_VERSION = 1

# (bases before the boundary, bases from it on) of each signal window; see the module table.
DONOR_FLANK = (3, 6)
ACCEPTOR_FLANK = (20, 3)
START_FLANK = (10, 6)
STOP_FLANK = (6, 9)
# Window indices holding the signal's fixed bases (never scored by the decoder).
DONOR_FIXED = (3, 4)
ACCEPTOR_FIXED = (18, 19)
START_FIXED = (10, 11, 12)
STOP_FIXED = (6, 7, 8)

STOP_CODONS = ("TAA", "TAG", "TGA")
INTRON_CLASSES = ("GT-AG", "GC-AG", "AT-AC")  # (donor, acceptor) dinucleotide pairs accepted
INTRON_HISTOGRAM_BINS = 1000  # exact lengths 0..998, and one bin for >= 999
MIN_INTRON_FLOOR = 20
MIN_INTRON_PERCENTILE = 1.0

# Pseudocounts. Lengths: one pseudo-observation of a prior mean (plant/animal-typical values);
# fractions: Laplace (+1/+2); intron classes: a Dirichlet of strength 100 at the spliceosomal
# proportions (GT-AG ~98.9%, GC-AG ~1%, AT-AC ~0.1%; Burset et al. 2000, NAR 28:4364).
PRIOR_MEANS = {"intergenic": 10_000.0, "utr5": 150.0, "utr3": 250.0, "intron": 250.0,
               "coding_exon": 200.0}
PRIOR_EXONS_PER_GENE = 2.0
INTRON_CLASS_PRIOR = {"GT-AG": 98.9, "GC-AG": 1.0, "AT-AC": 0.1}
PWM_PSEUDOCOUNT = 2.0
MIN_MEAN_LENGTH = 10.0  # a geometric duration needs a mean well above 1 base

_PROTEIN_CODING = "protein_coding"  # tokenizer.inventory.PROTEIN_CODING (genes/ imports no stage)
_COMPLEMENT_CODE = np.array([3, 2, 1, 0, N_CODE], dtype=np.uint8)


def _zeros(rows: int, cols: int = 4) -> list[list[int]]:
    return [[0] * cols for _ in range(rows)]


@dataclass(kw_only=True)
class GeneStructureParams:
    """What the gene-structure decoder reads (derive with :meth:`StructureCounts.to_params`).

    Mean lengths are in bases and define geometric durations (self-transition ``1 - 1/mean``).
    ``class_log_prior`` has ``N_CLASSES`` natural-log frequencies; each PWM is a list of
    ``before + after`` rows (see the ``*_FLANK`` constants) of 4 log-odds (A, C, G, T).
    ``gcag_fraction``/``atac_fraction``: fractions of coding introns of those classes (the rest
    GT-AG); the decoder charges their log as the non-canonical penalty. ``min_intron``: the
    shortest intron the decoder may write (>= ``MIN_INTRON_FLOOR``). ``utr5_fraction``/
    ``utr3_fraction``: genes with a 5'/3' UTR; ``spliced_fraction``: genes with a coding intron.
    ``n_genes``: how many complete gene models the estimate saw (0: priors only).
    """

    format_version: int = PARAMS_FORMAT_VERSION
    mean_intergenic: float
    mean_utr5: float
    mean_utr3: float
    mean_intron: float
    mean_coding_exon: float
    mean_coding_exons_per_gene: float
    genes_per_bp: float
    utr5_fraction: float
    utr3_fraction: float
    spliced_fraction: float
    gcag_fraction: float
    atac_fraction: float
    min_intron: int
    class_log_prior: list[float]
    donor_pwm: list[list[float]]
    acceptor_pwm: list[list[float]]
    start_pwm: list[list[float]]
    stop_pwm: list[list[float]]
    n_genes: int = 0
    # Intron lengths as a mixture of two geometric durations past ``min_intron``: [[weight,
    # mean extra bases], ...] (fitted by :func:`fit_intron_lengths`); empty: one geometric of
    # mean ``mean_intron``. Short introns are sharply peaked in many clades (fly: half of them
    # 52-66 bp) while the rest run to kilobases; one geometric cannot say both.
    intron_length_mix: list[list[float]] = field(default_factory=list)

    @classmethod
    def default(cls) -> GeneStructureParams:
        """Prior-only parameters (an empty :class:`StructureCounts`): neutral PWMs, flat priors."""
        return StructureCounts().to_params()

    def to_json(self) -> str:
        """The parameters as one JSON object (every field, ``format_version`` first)."""
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str, source: str = "gene-structure parameters") -> GeneStructureParams:
        """Parse :meth:`to_json` output.

        Raises:
            ConfigError: not JSON, another ``format_version``, a missing or unknown field, or a
                list of the wrong shape (one line naming ``source`` and the defect).
        """
        data = _load_object(text, source, PARAMS_FORMAT_VERSION)
        _check_fields(cls, data, source)
        params = cls(**data)
        shapes = {"donor_pwm": sum(DONOR_FLANK), "acceptor_pwm": sum(ACCEPTOR_FLANK),
                  "start_pwm": sum(START_FLANK), "stop_pwm": sum(STOP_FLANK)}
        if len(params.class_log_prior) != N_CLASSES:
            raise ConfigError(f"{source}: class_log_prior has {len(params.class_log_prior)} "
                              f"values, expected {N_CLASSES}")
        for name, rows in shapes.items():
            matrix = getattr(params, name)
            if len(matrix) != rows or any(len(row) != 4 for row in matrix):
                raise ConfigError(f"{source}: {name} is not {rows} rows of 4 values")
        if params.min_intron < 2:
            raise ConfigError(f"{source}: min_intron {params.min_intron} < 2")
        return params

    def save(self, path: str | Path) -> None:
        """Write :meth:`to_json` to ``path`` (a temporary name, renamed when complete)."""
        _write_atomic(Path(path), self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> GeneStructureParams:
        """Read a file written by :meth:`save`.

        Raises:
            ConfigError: the file is unreadable or fails :meth:`from_json`'s checks.
        """
        return cls.from_json(_read(Path(path)), str(path))


@dataclass(kw_only=True)
class StructureCounts:
    """Additive gene-structure counts (see the module docstring for what each one counts)."""

    format_version: int = COUNTS_FORMAT_VERSION
    bases: int = 0
    base_counts: list[int] = field(default_factory=lambda: [0] * 4)
    class_counts: list[int] = field(default_factory=lambda: [0] * N_CLASSES)
    intergenic_runs: int = 0
    genes: int = 0  # representative protein-coding transcripts
    complete_genes: int = 0  # of those, complete ORFs (all counts below are over these)
    spliced_genes: int = 0
    utr5_genes: int = 0
    utr5_bases: int = 0
    utr3_genes: int = 0
    utr3_bases: int = 0
    coding_exons: int = 0
    coding_exon_bases: int = 0
    introns: int = 0
    intron_bases: int = 0
    intron_length_histogram: list[int] = field(default_factory=lambda: [0] * INTRON_HISTOGRAM_BINS)
    intron_classes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(INTRON_CLASSES, 0))
    donor_counts: list[list[int]] = field(default_factory=lambda: _zeros(sum(DONOR_FLANK)))
    acceptor_counts: list[list[int]] = field(default_factory=lambda: _zeros(sum(ACCEPTOR_FLANK)))
    start_counts: list[list[int]] = field(default_factory=lambda: _zeros(sum(START_FLANK)))
    stop_counts: list[list[int]] = field(default_factory=lambda: _zeros(sum(STOP_FLANK)))

    # --- accumulating ----------------------------------------------------------------------

    def add_sequence(self, sequence: str | np.ndarray, transcripts: Iterable) -> None:
        """Count one sequence and its transcripts (in its coordinates) into ``self``.

        Args:
            sequence: the bases (str, or uint8 codes of :func:`encode_bases`).
            transcripts: objects with ``strand``, ``exons``, ``cds`` (or None), ``gene_id`` and
                optionally ``biotype`` (only ``protein_coding`` counts when present).
        """
        codes = encode_bases(sequence) if isinstance(sequence, str) else np.asarray(sequence, dtype=np.uint8)
        length = int(codes.size)
        coding = [t for t in transcripts if getattr(t, "biotype", _PROTEIN_CODING) == _PROTEIN_CODING]
        reps = representative_transcripts(coding)
        self.bases += length
        composition = np.bincount(codes, minlength=N_CODE + 1)
        for b in range(4):
            self.base_counts[b] += int(composition[b])
        labels = window_labels(reps, 0, length)
        for c, n in enumerate(np.bincount(labels, minlength=N_CLASSES)[:N_CLASSES]):
            self.class_counts[c] += int(n)
        is_intergenic = labels == INTERGENIC
        if length:
            starts = np.flatnonzero(is_intergenic[1:] & ~is_intergenic[:-1])
            self.intergenic_runs += int(starts.size) + int(is_intergenic[0])
        self.genes += len(reps)
        rc = None
        for transcript in reps:
            if transcript.strand == "-":
                if rc is None:
                    rc = _COMPLEMENT_CODE[codes[::-1]]
                exons = tuple((length - e, length - s) for s, e in reversed(transcript.exons))
                cds = (length - transcript.cds[1], length - transcript.cds[0])
                self._add_model(rc, exons, cds)
            else:
                self._add_model(codes, tuple(transcript.exons), tuple(transcript.cds))

    def _add_model(self, codes: np.ndarray, exons: tuple, cds: tuple[int, int]) -> None:
        """Count one transcript given on its own strand's sequence (+ orientation)."""
        pieces = [(max(s, cds[0]), min(e, cds[1])) for s, e in exons if max(s, cds[0]) < min(e, cds[1])]
        if not pieces:
            return
        orf = np.concatenate([codes[s:e] for s, e in pieces])
        introns = [(pieces[i][1], pieces[i + 1][0]) for i in range(len(pieces) - 1)]
        classes = [intron_class(codes, s, e) for s, e in introns]
        if not is_complete_orf(orf) or None in classes:
            return
        self.complete_genes += 1
        self.spliced_genes += bool(introns)
        utr5 = sum(max(0, min(e, cds[0]) - s) for s, e in exons)
        utr3 = sum(max(0, e - max(s, cds[1])) for s, e in exons)
        if utr5:
            self.utr5_genes += 1
            self.utr5_bases += utr5
        if utr3:
            self.utr3_genes += 1
            self.utr3_bases += utr3
        self.coding_exons += len(pieces)
        self.coding_exon_bases += int(orf.size)
        for (s, e), cls in zip(introns, classes):
            self.introns += 1
            self.intron_bases += e - s
            self.intron_length_histogram[min(e - s, INTRON_HISTOGRAM_BINS - 1)] += 1
            self.intron_classes[cls] += 1
            _count_window(self.donor_counts, codes, s, DONOR_FLANK)
            _count_window(self.acceptor_counts, codes, e, ACCEPTOR_FLANK)
        _count_window(self.start_counts, codes, cds[0], START_FLANK)
        if pieces[-1][1] - pieces[-1][0] >= 3:  # a stop split by an intron has no contiguous context
            _count_window(self.stop_counts, codes, cds[1] - 3, STOP_FLANK)

    def merge(self, other: StructureCounts) -> StructureCounts:
        """The element-wise sum of ``self`` and ``other`` (a new object; both are unchanged)."""
        merged = StructureCounts()
        for f in fields(StructureCounts):
            if f.name == "format_version":
                continue
            a, b = getattr(self, f.name), getattr(other, f.name)
            if isinstance(a, int):
                value = a + b
            elif isinstance(a, dict):
                value = {k: a.get(k, 0) + b.get(k, 0) for k in a}
            elif a and isinstance(a[0], list):
                value = [[x + y for x, y in zip(ra, rb)] for ra, rb in zip(a, b)]
            else:
                value = [x + y for x, y in zip(a, b)]
            setattr(merged, f.name, value)
        return merged

    # --- deriving --------------------------------------------------------------------------

    def to_params(self) -> GeneStructureParams:
        """Parameters from these counts with the module's pseudocounts (see ``PRIOR_*``)."""
        def mean(name: str, total: int, n: int) -> float:
            return max(MIN_MEAN_LENGTH, (total + PRIOR_MEANS[name]) / (n + 1))

        def fraction(c: int, n: int) -> float:
            return (c + 1) / (n + 2)

        classes = np.asarray(self.class_counts, dtype=np.float64) + 1.0
        n_introns = sum(self.intron_classes.values())
        prior_total = sum(INTRON_CLASS_PRIOR.values())
        intron_fraction = {k: (self.intron_classes.get(k, 0) + INTRON_CLASS_PRIOR[k]) / (n_introns + prior_total)
                           for k in INTRON_CLASSES}
        counts = np.asarray(self.base_counts, dtype=np.float64)
        symmetric = counts + counts[::-1]  # A<->T, C<->G: windows are read on both strands
        background = (symmetric + 1.0) / (symmetric.sum() + 4.0)
        return GeneStructureParams(
            mean_intergenic=mean("intergenic", self.class_counts[INTERGENIC], self.intergenic_runs),
            mean_utr5=mean("utr5", self.utr5_bases, self.utr5_genes),
            mean_utr3=mean("utr3", self.utr3_bases, self.utr3_genes),
            mean_intron=mean("intron", self.intron_bases, self.introns),
            mean_coding_exon=mean("coding_exon", self.coding_exon_bases, self.coding_exons),
            mean_coding_exons_per_gene=max(1.0, (self.coding_exons + PRIOR_EXONS_PER_GENE) / (self.complete_genes + 1)),
            genes_per_bp=(self.genes + 1) / (self.bases + PRIOR_MEANS["intergenic"]),
            utr5_fraction=fraction(self.utr5_genes, self.complete_genes),
            utr3_fraction=fraction(self.utr3_genes, self.complete_genes),
            spliced_fraction=fraction(self.spliced_genes, self.complete_genes),
            gcag_fraction=intron_fraction["GC-AG"],
            atac_fraction=intron_fraction["AT-AC"],
            min_intron=self.min_intron(),
            class_log_prior=[float(x) for x in np.log(classes / classes.sum())],
            donor_pwm=_log_odds(self.donor_counts, background),
            acceptor_pwm=_log_odds(self.acceptor_counts, background),
            start_pwm=_log_odds(self.start_counts, background),
            stop_pwm=_log_odds(self.stop_counts, background),
            n_genes=self.complete_genes,
            intron_length_mix=fit_intron_lengths(self.intron_length_histogram, self.intron_bases, self.min_intron()),
        )

    def min_intron(self) -> int:
        """The ``MIN_INTRON_PERCENTILE`` percentile of coding intron lengths, at least the floor."""
        histogram = np.asarray(self.intron_length_histogram)
        total = int(histogram.sum())
        if total == 0:
            return MIN_INTRON_FLOOR
        at = int(np.searchsorted(np.cumsum(histogram), total * MIN_INTRON_PERCENTILE / 100.0))
        return max(MIN_INTRON_FLOOR, at)

    # --- files -----------------------------------------------------------------------------

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str, source: str = "gene-structure counts") -> StructureCounts:
        """Parse :meth:`to_json` output.

        Raises:
            ConfigError: not JSON, another ``format_version``, a missing or unknown field, or a
                table of the wrong shape (merging would silently truncate it).
        """
        data = _load_object(text, source, COUNTS_FORMAT_VERSION)
        _check_fields(cls, data, source)
        counts = cls(**data)
        shapes = {"base_counts": (4,), "class_counts": (N_CLASSES,),
                  "intron_length_histogram": (INTRON_HISTOGRAM_BINS,),
                  "donor_counts": (sum(DONOR_FLANK), 4), "acceptor_counts": (sum(ACCEPTOR_FLANK), 4),
                  "start_counts": (sum(START_FLANK), 4), "stop_counts": (sum(STOP_FLANK), 4)}
        for name, shape in shapes.items():
            table = getattr(counts, name)
            if not isinstance(table, list) or len(table) != shape[0] or (
                    len(shape) == 2 and any(not isinstance(row, list) or len(row) != shape[1] for row in table)):
                raise ConfigError(f"{source}: {name} is not {' x '.join(map(str, shape))} counts")
        if not isinstance(counts.intron_classes, dict) or set(counts.intron_classes) != set(INTRON_CLASSES):
            raise ConfigError(f"{source}: intron_classes must count exactly {', '.join(INTRON_CLASSES)}")
        return counts

    def save(self, path: str | Path) -> None:
        _write_atomic(Path(path), self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> StructureCounts:
        return cls.from_json(_read(Path(path)), str(path))


def estimate_structure_params(examples: Iterable[tuple[str, list]]) -> GeneStructureParams:
    """Gene-structure parameters of ``(sequence, transcripts)`` examples (module docstring).

    Args:
        examples: each a sequence and the transcripts on it, in its 0-based coordinates
            (``strand``, ``exons``, ``cds`` including the stop codon or None, ``gene_id``).
    """
    counts = StructureCounts()
    for sequence, transcripts in examples:
        counts.add_sequence(sequence, transcripts)
    return counts.to_params()


# --- sequence checks -------------------------------------------------------------------------

_STOP_CODES = {tuple(int(c) for c in encode_bases(codon)) for codon in STOP_CODONS}
_ATG = tuple(int(c) for c in encode_bases("ATG"))
_DINUCLEOTIDES = {cls: (tuple(int(c) for c in encode_bases(cls[:2])), tuple(int(c) for c in encode_bases(cls[3:])))
                  for cls in INTRON_CLASSES}


def is_complete_orf(orf: np.ndarray) -> bool:
    """ATG first, a stop codon last, length a multiple of 3 (base codes, read 5'->3')."""
    return (orf.size >= 6 and orf.size % 3 == 0 and tuple(int(c) for c in orf[:3]) == _ATG
            and tuple(int(c) for c in orf[-3:]) in _STOP_CODES)


def intron_class(codes: np.ndarray, start: int, end: int) -> str | None:
    """``"GT-AG"``, ``"GC-AG"``, ``"AT-AC"`` or None for the intron ``[start, end)`` (+ strand)."""
    if end - start < 4:
        return None
    donor = tuple(int(c) for c in codes[start:start + 2])
    acceptor = tuple(int(c) for c in codes[end - 2:end])
    for cls, pair in _DINUCLEOTIDES.items():
        if (donor, acceptor) == pair:
            return cls
    return None


def _count_window(table: list[list[int]], codes: np.ndarray, boundary: int, flank: tuple[int, int]) -> None:
    before, after = flank
    for k in range(before + after):
        at = boundary - before + k
        if 0 <= at < codes.size and codes[at] < 4:
            table[k][int(codes[at])] += 1


def _log_odds(table: list[list[int]], background: np.ndarray) -> list[list[float]]:
    counts = np.asarray(table, dtype=np.float64)
    freq = (counts + PWM_PSEUDOCOUNT * background) / (counts.sum(axis=1, keepdims=True) + PWM_PSEUDOCOUNT)
    return [[float(x) for x in row] for row in np.log(freq) - np.log(background)]


# --- JSON plumbing ----------------------------------------------------------------------------


def _load_object(text: str, source: str, version: int) -> dict:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"{source}: not valid JSON ({error.msg} at line {error.lineno})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a JSON object, found {type(data).__name__}")
    found = data.get("format_version")
    if found != version:
        raise ConfigError(f"{source}: format_version {found!r}, this genoforge reads {version}; "
                          "re-run bake to regenerate it")
    return data


MIN_INTRONS_FOR_MIX = 50  # fewer coding introns than this: one geometric (the mean is all we trust)
_MIX_ITERATIONS = 100


def fit_intron_lengths(histogram: list[int], intron_bases: int, min_intron: int) -> list[list[float]]:
    """Two geometric components of the intron lengths past ``min_intron - 1`` (EM), or [].

    Each intron of length L counts as ``k = L - min_intron + 1 >= 1`` positions of the looping
    intron state (the decoder's ENTRY base and chain cover the rest); a component of mean ``mu``
    gives ``k`` the probability ``(1 - 1/mu) ** (k - 1) / mu``. Lengths in the histogram's
    overflow bin count at the mean overflow length (from ``intron_bases``). Returns [[weight,
    mu], [weight, mu]], short component first; [] with fewer than ``MIN_INTRONS_FOR_MIX``
    introns or when the two components do not separate (means within a factor of 2).
    """
    counts = np.asarray(histogram, dtype=np.float64)
    total = counts.sum()
    if total < MIN_INTRONS_FOR_MIX:
        return []
    lengths = np.arange(counts.size, dtype=np.float64)
    overflow = counts[-1]
    if overflow:
        exact = float((counts[:-1] * lengths[:-1]).sum())
        lengths[-1] = max(float(counts.size - 1), (intron_bases - exact) / overflow)
    k = np.maximum(lengths - (min_intron - 1), 1.0)
    keep = counts > 0
    k, counts = k[keep], counts[keep]
    order = np.argsort(k)
    cumulative = np.cumsum(counts[order])
    median = k[order][np.searchsorted(cumulative, total / 2)]
    weight = np.array([0.5, 0.5])
    mean = np.array([max(1.5, median / 2), max(3.0, float((counts * k).sum() / total) * 2)])
    for _ in range(_MIX_ITERATIONS):
        log_p = np.log(weight)[:, None] + (k[None, :] - 1) * np.log1p(-1 / mean)[:, None] - np.log(mean)[:, None]
        resp = np.exp(log_p - np.logaddexp.reduce(log_p, axis=0))
        mass = (resp * counts).sum(axis=1)
        if np.any(mass <= 0):
            return []
        weight = mass / total
        mean = np.maximum((resp * counts * k).sum(axis=1) / mass, 1.0 + 1e-6)
    order = np.argsort(mean)
    weight, mean = weight[order], mean[order]
    if mean[1] < 2 * mean[0] or weight.min() < 0.02:
        return []
    return [[float(w), float(m)] for w, m in zip(weight, mean)]


def _check_fields(cls: type, data: dict, source: str) -> None:
    names = {f.name for f in fields(cls)}
    missing = sorted(names - set(data))
    unknown = sorted(set(data) - names)
    if missing:
        raise ConfigError(f"{source}: missing field(s) {', '.join(missing)}")
    if unknown:
        raise ConfigError(f"{source}: unknown field(s) {', '.join(unknown)}")


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read ({error.strerror or error})") from None


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

