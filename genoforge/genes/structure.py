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
  percentile and the two-geometric length model: :mod:`genoforge.genes.intron_lengths`), coding
  exons per gene, the CDS lengths of single-exon genes and the lengths of internal exons (two
  histograms, for the shortest of each the decoder writes), genes with a coding intron, the
  intron dinucleotide classes, and base counts of four signal windows read on the transcript's
  strand (the windows, and the position weight matrices derived from them:
  :mod:`genoforge.genes.signals`), and the coding bases of each ORF for the coding-content
  chain (:mod:`genoforge.genes.coding_content`; its non-coding side counts the intergenic and
  intron bases of every sequence, read on ``+``, made strand-symmetric when the table is
  derived).

Files written before the coding-content counts existed load with those counts empty (the chain
then has no say); files written before the single-exon and internal-exon histograms load with
them empty (no shortest single-exon gene or internal exon).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from genoforge.errors import ConfigError
from genoforge.genes import coding_content
from genoforge.genes.classes import (
    INTERGENIC,
    INTRON_MINUS,
    INTRON_PLUS,
    N_CLASSES,
    N_CODE,
    encode_bases,
    representative_transcripts,
    window_labels,
)
from genoforge.genes.intron_lengths import (
    INTRON_HISTOGRAM_BINS,
    MIN_INTRON_FLOOR,
    MIN_INTRON_PERCENTILE,
    MIN_INTRONS_FOR_MIX,
    fit_intron_lengths,
    length_percentile,
    min_intron_length,
)
from genoforge.genes.inventory import PROTEIN_CODING
from genoforge.genes.signals import (
    ACCEPTOR_FIXED,
    ACCEPTOR_FLANK,
    DONOR_FIXED,
    DONOR_FLANK,
    INTRON_CLASSES,
    PWM_PSEUDOCOUNT,
    START_FIXED,
    START_FLANK,
    STOP_CODONS,
    STOP_FIXED,
    STOP_FLANK,
    count_window,
    intron_class,
    is_complete_orf,
    pwm_log_odds,
)
from genoforge.genes.structure_json import (
    check_fields,
    load_versioned_object,
    read_text,
    write_atomic,
)

PARAMS_FORMAT_VERSION = 1
COUNTS_FORMAT_VERSION = 1

# The public names of this module before signals, intron lengths and the JSON helpers moved out,
# importable from here as they were.
__all__ = [
    "ACCEPTOR_FIXED", "ACCEPTOR_FLANK", "COUNTS_FORMAT_VERSION", "DONOR_FIXED", "DONOR_FLANK",
    "INTRON_CLASSES", "INTRON_CLASS_PRIOR", "INTRON_HISTOGRAM_BINS", "MIN_INTRONS_FOR_MIX",
    "MIN_INTRON_FLOOR", "MIN_INTRON_PERCENTILE", "MIN_MEAN_LENGTH", "PARAMS_FORMAT_VERSION",
    "PRIOR_EXONS_PER_GENE", "PRIOR_MEANS", "PWM_PSEUDOCOUNT", "START_FIXED", "START_FLANK",
    "STOP_CODONS", "STOP_FIXED", "STOP_FLANK", "GeneStructureParams", "StructureCounts",
    "estimate_structure_params", "fit_intron_lengths", "intron_class", "is_complete_orf",
]

# Pseudocounts. Lengths: one pseudo-observation of a prior mean (plant/animal-typical values);
# fractions: Laplace (+1/+2); intron classes: a Dirichlet of strength 100 at the spliceosomal
# proportions (GT-AG ~98.9%, GC-AG ~1%, AT-AC ~0.1%; Burset et al. 2000, NAR 28:4364).
PRIOR_MEANS = {"intergenic": 10_000.0, "utr5": 150.0, "utr3": 250.0, "intron": 250.0,
               "coding_exon": 200.0}
PRIOR_EXONS_PER_GENE = 2.0
INTRON_CLASS_PRIOR = {"GT-AG": 98.9, "GC-AG": 1.0, "AT-AC": 0.1}
SINGLE_CDS_HISTOGRAM_BINS = 3000  # exact CDS lengths 0..2998 bp, and one bin for >= 2999
MIN_SINGLE_CDS_PERCENTILE = 1.0
MIN_SINGLES_FOR_LIMIT = 20  # fewer baked single-exon genes than this: no shortest one
INTERNAL_EXON_HISTOGRAM_BINS = 100  # exact lengths 0..98 bp, and one bin for >= 99
MIN_INTERNAL_EXON_PERCENTILE = 1.0
MAX_MIN_INTERNAL_EXON = 3  # the structure decoder's young exon steps reach this far
MIN_EXONS_FOR_LIMIT = 50  # fewer baked internal exons than this: no shortest one
MIN_MEAN_LENGTH = 10.0  # a geometric duration needs a mean well above 1 base

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
    # The shortest CDS of a single-exon gene the decoder writes (bp, stop included): the
    # ``MIN_SINGLE_CDS_PERCENTILE`` percentile of the baked single-exon genes' CDS lengths; 0 (no
    # limit) with fewer than ``MIN_SINGLES_FOR_LIMIT`` of them or in files from before the count.
    # A short ORF the head calls coding is a poor single-exon gene: fly's shortest baked one is
    # 213 bp, and the decoder wrote 108-204 bp ones inside reference introns and beside genes.
    min_single_cds: int = 0
    # The shortest internal coding exon (between an acceptor and a donor) the decoder writes: the
    # 1st percentile of the baked internal exons' lengths, at most ``MAX_MIN_INTERNAL_EXON`` (the
    # decoder's young steps); 1 (no limit) with fewer than ``MIN_EXONS_FOR_LIMIT`` internal
    # exons or in files from before the count. No internal exon of the shared genomes is shorter
    # than 18 bp (8,000 of them), while the decoder wrote 1- and 2-bp ones where the head wavers.
    min_internal_exon: int = 1
    # The coding-content chain's log-odds table, flat ([3, 4 ** ORDER, 4] of
    # :func:`coding_content.log_odds_table`); empty: no coding-content term.
    coding_log_odds: list[float] = field(default_factory=list)

    def content_table(self) -> np.ndarray | None:
        """The coding-content log-odds as [3, contexts, 4], or None where there are none."""
        if not self.coding_log_odds:
            return None
        return np.asarray(self.coding_log_odds, dtype=np.float32).reshape(3, coding_content.N_CONTEXTS, 4)

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
        data = load_versioned_object(text, source, PARAMS_FORMAT_VERSION)
        data.setdefault("coding_log_odds", [])  # written before the coding-content chain
        data.setdefault("min_single_cds", 0)  # written before the single-exon histogram
        data.setdefault("min_internal_exon", 1)  # written before the internal-exon histogram
        check_fields(cls, data, source)
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
        if not isinstance(params.min_single_cds, int) or params.min_single_cds < 0:
            raise ConfigError(f"{source}: min_single_cds {params.min_single_cds!r} is not a length >= 0")
        if not isinstance(params.min_internal_exon, int) or params.min_internal_exon < 1:
            raise ConfigError(f"{source}: min_internal_exon {params.min_internal_exon!r} is not a length >= 1")
        if params.min_intron < 2:
            raise ConfigError(f"{source}: min_intron {params.min_intron} < 2")
        if params.coding_log_odds and len(params.coding_log_odds) != coding_content.CODING_SIZE:
            raise ConfigError(f"{source}: coding_log_odds has {len(params.coding_log_odds)} values, "
                              f"expected {coding_content.CODING_SIZE}")
        return params

    def save(self, path: str | Path) -> None:
        """Write :meth:`to_json` to ``path`` (a temporary name, renamed when complete)."""
        write_atomic(Path(path), self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> GeneStructureParams:
        """Read a file written by :meth:`save`.

        Raises:
            ConfigError: the file is unreadable or fails :meth:`from_json`'s checks.
        """
        return cls.from_json(read_text(Path(path)), str(path))


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
    single_cds_length_histogram: list[int] = field(default_factory=lambda: [0] * SINGLE_CDS_HISTOGRAM_BINS)
    internal_exon_length_histogram: list[int] = field(default_factory=lambda: [0] * INTERNAL_EXON_HISTOGRAM_BINS)
    intron_classes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(INTRON_CLASSES, 0))
    donor_counts: list[list[int]] = field(default_factory=lambda: _zeros(sum(DONOR_FLANK)))
    acceptor_counts: list[list[int]] = field(default_factory=lambda: _zeros(sum(ACCEPTOR_FLANK)))
    start_counts: list[list[int]] = field(default_factory=lambda: _zeros(sum(START_FLANK)))
    stop_counts: list[list[int]] = field(default_factory=lambda: _zeros(sum(STOP_FLANK)))
    coding_context_counts: list[int] = field(default_factory=lambda: [0] * coding_content.CODING_SIZE)
    noncoding_context_counts: list[int] = field(default_factory=lambda: [0] * coding_content.NONCODING_SIZE)

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
        coding = [t for t in transcripts if getattr(t, "biotype", PROTEIN_CODING) == PROTEIN_CODING]
        reps = representative_transcripts(coding)
        self.bases += length
        composition = np.bincount(codes, minlength=N_CODE + 1)
        for b in range(4):
            self.base_counts[b] += int(composition[b])
        labels = window_labels(reps, 0, length)
        for c, n in enumerate(np.bincount(labels, minlength=N_CLASSES)[:N_CLASSES]):
            self.class_counts[c] += int(n)
        noncoding = np.isin(labels, (INTERGENIC, *INTRON_PLUS, *INTRON_MINUS))
        coding_content.count_noncoding(self.noncoding_context_counts, codes, noncoding)
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
        if len(pieces) == 1:
            self.single_cds_length_histogram[min(int(orf.size), SINGLE_CDS_HISTOGRAM_BINS - 1)] += 1
        for s, e in pieces[1:-1]:
            self.internal_exon_length_histogram[min(e - s, INTERNAL_EXON_HISTOGRAM_BINS - 1)] += 1
        coding_content.count_coding(self.coding_context_counts, orf)
        for (s, e), cls in zip(introns, classes):
            self.introns += 1
            self.intron_bases += e - s
            self.intron_length_histogram[min(e - s, INTRON_HISTOGRAM_BINS - 1)] += 1
            self.intron_classes[cls] += 1
            count_window(self.donor_counts, codes, s, DONOR_FLANK)
            count_window(self.acceptor_counts, codes, e, ACCEPTOR_FLANK)
        count_window(self.start_counts, codes, cds[0], START_FLANK)
        if pieces[-1][1] - pieces[-1][0] >= 3:  # a stop split by an intron has no contiguous context
            count_window(self.stop_counts, codes, cds[1] - 3, STOP_FLANK)

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
            donor_pwm=pwm_log_odds(self.donor_counts, background),
            acceptor_pwm=pwm_log_odds(self.acceptor_counts, background),
            start_pwm=pwm_log_odds(self.start_counts, background),
            stop_pwm=pwm_log_odds(self.stop_counts, background),
            n_genes=self.complete_genes,
            intron_length_mix=fit_intron_lengths(self.intron_length_histogram, self.intron_bases, self.min_intron()),
            coding_log_odds=self._coding_log_odds(),
            min_single_cds=self.min_single_cds(),
            min_internal_exon=self.min_internal_exon(),
        )

    def _coding_log_odds(self) -> list[float]:
        if not any(self.coding_context_counts) or not any(self.noncoding_context_counts):
            return []
        table = coding_content.log_odds_table(self.coding_context_counts, self.noncoding_context_counts)
        return [float(x) for x in table.ravel()]

    def min_single_cds(self) -> int:
        """The ``MIN_SINGLE_CDS_PERCENTILE`` percentile of single-exon CDS lengths; 0 with fewer than
        ``MIN_SINGLES_FOR_LIMIT`` single-exon genes."""
        at = length_percentile(self.single_cds_length_histogram, MIN_SINGLE_CDS_PERCENTILE, MIN_SINGLES_FOR_LIMIT)
        return 0 if at is None else at

    def min_internal_exon(self) -> int:
        """The 1st percentile of internal exon lengths, within 1..``MAX_MIN_INTERNAL_EXON``; 1 with
        fewer than ``MIN_EXONS_FOR_LIMIT`` internal exons."""
        at = length_percentile(self.internal_exon_length_histogram, MIN_INTERNAL_EXON_PERCENTILE, MIN_EXONS_FOR_LIMIT)
        return 1 if at is None else max(1, min(MAX_MIN_INTERNAL_EXON, at))

    def min_intron(self) -> int:
        """The ``MIN_INTRON_PERCENTILE`` percentile of coding intron lengths, at least the floor."""
        return min_intron_length(self.intron_length_histogram)

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
        data = load_versioned_object(text, source, COUNTS_FORMAT_VERSION)
        for name, size in (("coding_context_counts", coding_content.CODING_SIZE),
                           ("noncoding_context_counts", coding_content.NONCODING_SIZE)):
            data.setdefault(name, [0] * size)  # written before the coding-content chain
        data.setdefault("single_cds_length_histogram", [0] * SINGLE_CDS_HISTOGRAM_BINS)  # and before this
        data.setdefault("internal_exon_length_histogram", [0] * INTERNAL_EXON_HISTOGRAM_BINS)  # and this
        check_fields(cls, data, source)
        counts = cls(**data)
        shapes = {"base_counts": (4,), "class_counts": (N_CLASSES,),
                  "intron_length_histogram": (INTRON_HISTOGRAM_BINS,),
                  "single_cds_length_histogram": (SINGLE_CDS_HISTOGRAM_BINS,),
                  "internal_exon_length_histogram": (INTERNAL_EXON_HISTOGRAM_BINS,),
                  "donor_counts": (sum(DONOR_FLANK), 4), "acceptor_counts": (sum(ACCEPTOR_FLANK), 4),
                  "start_counts": (sum(START_FLANK), 4), "stop_counts": (sum(STOP_FLANK), 4),
                  "coding_context_counts": (coding_content.CODING_SIZE,),
                  "noncoding_context_counts": (coding_content.NONCODING_SIZE,)}
        for name, shape in shapes.items():
            table = getattr(counts, name)
            if not isinstance(table, list) or len(table) != shape[0] or (
                    len(shape) == 2 and any(not isinstance(row, list) or len(row) != shape[1] for row in table)):
                raise ConfigError(f"{source}: {name} is not {' x '.join(map(str, shape))} counts")
        if not isinstance(counts.intron_classes, dict) or set(counts.intron_classes) != set(INTRON_CLASSES):
            raise ConfigError(f"{source}: intron_classes must count exactly {', '.join(INTRON_CLASSES)}")
        return counts

    def save(self, path: str | Path) -> None:
        write_atomic(Path(path), self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> StructureCounts:
        return cls.from_json(read_text(Path(path)), str(path))


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
