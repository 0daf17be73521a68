"""The target: one window's annotation <-> target tokens <-> target text.

The format is specified, with worked examples, in docs/target-format.md. In short::

    target           := <bos> record* <eos>
    record           := transcript_block | feature_line
    transcript_block := tx_line exon_line+ cds_line?
    tx_line          := transcript TAB STRAND TAB BIOTYPE TAB GENE TAB PARTIAL NEWLINE
    exon_line        := exon TAB COORD TAB COORD NEWLINE
    cds_line         := cds TAB COORD TAB COORD TAB PHASE NEWLINE
    feature_line     := FEATURE_TYPE TAB FSTRAND TAB COORD TAB COORD TAB PARTIAL NEWLINE
    COORD            := NUM : NUM        (hi : lo, value hi * 1000 + lo)

Coordinates are 0-based half-open and window-relative (start inclusive, end exclusive). Every
token string comes from :mod:`genoforge.tokenizer.inventory`.

What the parser checks beyond the shape of each line (the grammar automaton in
:mod:`genoforge.baking.grammar` enforces exactly the same, so constrained decoding always parses):
coordinates within the window (starts < W, ends <= W; W = 999,999 when no window size is given),
start < end on every line, exons strictly increasing with at least one intron base between them,
CDS start and CDS end - 1 inside exons, gene indices numbered 0, 1, ... in order of first
appearance, and (when given) limits on records and exons per transcript. It does not require
canonical record order (a model may write records in any order; :func:`canonicalize` restores it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from genoforge.baking.gene_models import (
    Annotation,
    ExonChain,
    RegionFeature,
    Transcript,
    cds_pieces,
    piece_phases,
)
from genoforge.errors import ConfigError, TargetParseError
from genoforge.tokenizer import inventory as inv

COORD_BASE = inv.MAX_NUMBER + 1  # 1000: a coordinate is two base-1000 digits
MAX_COORD = COORD_BASE * COORD_BASE - 1  # 999,999: the largest window end the format can write
MAX_GENES = inv.MAX_NUMBER + 1  # gene indices are one NUM token
PHASES = ("0", "1", "2")

_NUMBER_VALUE = {token: value for value, token in enumerate(inv.NUMBERS)}
_BIOTYPES = frozenset(inv.TRANSCRIPT_BIOTYPES)
_FEATURE_TYPES = frozenset(inv.FEATURE_TYPES)
_FEATURE_STRANDS = (inv.PLUS, inv.MINUS, inv.DOT)
_COORD_SPLIT = re.compile(f"({re.escape(inv.COORD_SEP)})")


@dataclass(frozen=True, slots=True)
class WindowTranscript(ExonChain):
    """A transcript in window coordinates (0-based half-open, relative to the window start).

    ``gene`` is the gene index within the window (0, 1, ... in order of first appearance;
    isoforms share it). ``partial`` is one of ``. < > <>`` (the transcript extends past the
    left/right/both window edges). ``exons`` are the exons clipped to the window; ``cds`` is the
    clipped coding span or None; ``cds_phase`` the GFF3 phase at its 5' end (0 without a CDS).
    """

    strand: str
    biotype: str
    gene: int
    partial: str
    exons: tuple[tuple[int, int], ...]
    cds: tuple[int, int] | None
    cds_phase: int = 0


@dataclass(frozen=True, slots=True)
class WindowFeature:
    """A stand-alone feature in window coordinates."""

    type: str
    strand: str
    start: int
    end: int
    partial: str


WindowRecord = WindowTranscript | WindowFeature


@dataclass(frozen=True, slots=True)
class WindowAnnotation:
    """The records of one window, in canonical order when built by :func:`window_annotation`."""

    records: tuple[WindowRecord, ...] = ()

    @property
    def transcripts(self) -> list[WindowTranscript]:
        return [r for r in self.records if isinstance(r, WindowTranscript)]

    @property
    def features(self) -> list[WindowFeature]:
        return [r for r in self.records if isinstance(r, WindowFeature)]


# --- annotation -> window -----------------------------------------------------------------------


def _partial(cut_left: bool, cut_right: bool) -> str:
    if cut_left and cut_right:
        return inv.PARTIAL_BOTH
    if cut_left:
        return inv.PARTIAL_LEFT
    if cut_right:
        return inv.PARTIAL_RIGHT
    return inv.PARTIAL_NONE


def clip_transcript(t: Transcript, window_start: int, window_end: int, gene: int = 0):
    """``t`` clipped to the window, in window coordinates; None if no exon reaches into it.

    Exons are clipped to ``[0, W)`` and those wholly outside dropped (a window that falls inside
    an intron shows nothing of the transcript). The CDS is clipped to its exonic bases inside
    the window, and its phase is recomputed at the clipped 5' end: removing r coding bases from
    the 5' end turns phase p into ``(p - r) mod 3``, so every CDS piece inside the window keeps
    its GFF3 phase. ``partial`` marks the sides where the transcript's span leaves the window.
    """
    exons = tuple(
        (max(s, window_start) - window_start, min(e, window_end) - window_start)
        for s, e in t.exons
        if s < window_end and e > window_start
    )
    if not exons:
        return None
    cds = None
    cds_phase = 0
    pieces = cds_pieces(t.exons, t.cds)
    inside = [(max(s, window_start), min(e, window_end)) for s, e in pieces]
    inside = [(s, e) for s, e in inside if s < e]
    if inside:
        cds = (inside[0][0] - window_start, inside[-1][1] - window_start)
        if t.strand == "+":
            removed = sum(max(0, min(e, window_start) - s) for s, e in pieces)
        else:
            removed = sum(max(0, e - max(s, window_end)) for s, e in pieces)
        cds_phase = (t.cds_phase - removed) % 3
    return WindowTranscript(
        strand=t.strand,
        biotype=t.biotype,
        gene=gene,
        partial=_partial(t.start < window_start, t.end > window_end),
        exons=exons,
        cds=cds,
        cds_phase=cds_phase,
    )


def clip_feature(f: RegionFeature, window_start: int, window_end: int) -> WindowFeature:
    """``f`` clipped to the window (it must overlap it), in window coordinates."""
    return WindowFeature(
        type=f.type,
        strand=f.strand,
        start=max(f.start, window_start) - window_start,
        end=min(f.end, window_end) - window_start,
        partial=_partial(f.start < window_start, f.end > window_end),
    )


def _record_key(record: WindowRecord) -> tuple:
    """Canonical order: by start, end, then transcripts before features, strand, type, content."""
    if isinstance(record, WindowTranscript):
        return (record.start, record.end, 0, record.strand, record.biotype, record.exons,
                record.cds or (-1, -1), record.cds_phase, record.partial)
    return (record.start, record.end, 1, record.strand, record.type, (), (-1, -1), 0,
            record.partial)


def _order_and_number(items: list[tuple[WindowRecord, Any, Any]]) -> list[tuple[WindowRecord, Any]]:
    """Sort ``(record, gene_key, source)`` canonically and number genes by first appearance.

    Records equal in every field but the gene (identical isoforms of different genes) are
    ordered by the index their gene already has, then, for genes not seen yet, by ``gene_key``
    (genome gene ID, or the input gene index in :func:`canonicalize`). Gene indices thus increase
    along every run of equal records, so ordering an already canonical target changes nothing.
    """
    items = sorted(items, key=lambda item: _record_key(item[0]))
    genes: dict[Any, int] = {}
    out: list[tuple[WindowRecord, Any]] = []
    first = 0
    while first < len(items):
        last = first + 1
        key = _record_key(items[first][0])
        while last < len(items) and _record_key(items[last][0]) == key:
            last += 1
        run = items[first:last]
        if len(run) > 1:
            run.sort(
                key=lambda item: (0, genes[item[1]], "") if item[1] in genes else (1, 0, item[1])
            )
        for record, gene_key, source in run:
            if isinstance(record, WindowTranscript):
                gene = genes.setdefault(gene_key, len(genes))
                if gene >= MAX_GENES:
                    raise ConfigError(
                        f"a window holds more than {MAX_GENES} genes, more than a gene index "
                        "token can number; use a smaller window size"
                    )
                record = replace(record, gene=gene)
            out.append((record, source))
        first = last
    return out


def window_records(
    annotation: Annotation, seqid: str, window_start: int, window_end: int
) -> list[tuple[WindowRecord, Transcript | RegionFeature]]:
    """The window's records in canonical order, each with the genome model it came from.

    Gene indices are assigned 0, 1, ... in canonical order of first appearance. Uses the
    annotation's sorted overlap index, so tiling a chromosome costs O(records) per window.

    Raises:
        ConfigError: the window is longer than the format can address (999,999 bp) or holds
            more than 1000 genes.
    """
    if not 0 <= window_start < window_end or window_end - window_start > MAX_COORD:
        raise ConfigError(
            f"window [{window_start}, {window_end}) is empty or longer than {MAX_COORD:,} bp, "
            "the most a two-token coordinate can address; use a smaller window size"
        )
    items: list[tuple[WindowRecord, Any, Any]] = []
    for t in annotation.transcripts_overlapping(seqid, window_start, window_end):
        clipped = clip_transcript(t, window_start, window_end)
        if clipped is not None:
            items.append((clipped, t.gene_id, t))
    for f in annotation.features_overlapping(seqid, window_start, window_end):
        items.append((clip_feature(f, window_start, window_end), "", f))
    return _order_and_number(items)


def window_annotation(
    annotation: Annotation, seqid: str, window_start: int, window_end: int
) -> WindowAnnotation:
    """The annotation of ``[window_start, window_end)`` on ``seqid``, clipped and canonical.

    See :func:`clip_transcript` for clipping and :func:`window_records` for the order.
    """
    return WindowAnnotation(
        tuple(record for record, _ in window_records(annotation, seqid, window_start, window_end))
    )


def canonicalize(wa: WindowAnnotation) -> WindowAnnotation:
    """Sort records canonically and renumber genes in order of first appearance.

    Idempotent, and the identity on the output of :func:`window_annotation`; use it on decoded
    model output, whose records may come in any order.
    """
    items = [
        (r, r.gene if isinstance(r, WindowTranscript) else -1, None) for r in wa.records
    ]
    return WindowAnnotation(tuple(record for record, _ in _order_and_number(items)))


# --- window <-> tokens --------------------------------------------------------------------------


def _coord(value: int) -> list[str]:
    if not 0 <= value <= MAX_COORD:
        raise ValueError(f"coordinate {value} outside 0..{MAX_COORD}")
    return [inv.NUMBERS[value // COORD_BASE], inv.COORD_SEP, inv.NUMBERS[value % COORD_BASE]]


def encode_target(wa: WindowAnnotation) -> list[str]:
    """Target tokens of a window, ``<bos>`` ... ``<eos>`` included (records in the given order)."""
    tab, nl = inv.TAB, inv.NEWLINE
    tokens = [inv.BOS]
    for r in wa.records:
        if isinstance(r, WindowTranscript):
            tokens += [inv.LINE_TRANSCRIPT, tab, r.strand, tab, r.biotype, tab,
                       inv.NUMBERS[r.gene], tab, r.partial, nl]
            for start, end in r.exons:
                tokens += [inv.LINE_EXON, tab, *_coord(start), tab, *_coord(end), nl]
            if r.cds is not None:
                tokens += [inv.LINE_CDS, tab, *_coord(r.cds[0]), tab, *_coord(r.cds[1]), tab,
                           PHASES[r.cds_phase], nl]
        else:
            tokens += [r.type, tab, r.strand, tab, *_coord(r.start), tab, *_coord(r.end), tab,
                       r.partial, nl]
    tokens.append(inv.EOS)
    return tokens


class _TokenReader:
    """Cursor over target tokens; every failure names the token position and what was expected."""

    def __init__(self, tokens: Sequence[str], window_size: int | None):
        self.tokens = tokens
        self.i = 0
        self.max_end = window_size if window_size is not None else MAX_COORD

    def fail(self, expected: str, at: int | None = None) -> TargetParseError:
        at = self.i if at is None else at
        found = repr(self.tokens[at]) if at < len(self.tokens) else "the end of the sequence"
        return TargetParseError(
            f"target token {at}: expected {expected}, found {found} "
            "(the sequence does not follow docs/target-format.md)"
        )

    def peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, allowed: Iterable[str] | str, expected: str) -> str:
        token = self.peek()
        ok = token == allowed if isinstance(allowed, str) else token in allowed
        if token is None or not ok:
            raise self.fail(expected)
        self.i += 1
        return token

    def number(self, expected: str) -> int:
        token = self.peek()
        if token not in _NUMBER_VALUE:
            raise self.fail(expected)
        self.i += 1
        return _NUMBER_VALUE[token]

    def coord(self, what: str, low: int, high: int) -> int:
        """A ``hi : lo`` coordinate whose value must lie in ``[low, high]``."""
        at = self.i
        hi = self.number(f"the thousands of {what} (a number 0..999)")
        self.take(inv.COORD_SEP, f"':' inside {what}")
        lo = self.number(f"the units of {what} (a number 0..999)")
        value = hi * COORD_BASE + lo
        if not low <= value <= high:
            raise self.fail(f"{what} in {low}..{high}, got {value}", at)
        return value


def parse_target_tokens(
    tokens: Sequence[str],
    window_size: int | None = None,
    max_records: int | None = None,
    max_exons: int | None = None,
) -> WindowAnnotation:
    """Inverse of :func:`encode_target` (checks listed in the module docstring).

    Args:
        tokens: target token strings, ``<bos>`` first and ``<eos>`` last.
        window_size: W; coordinates must satisfy start < W and end <= W (default 999,999).
        max_records, max_exons: optional limits (the grammar's decoding limits).

    Raises:
        TargetParseError: naming the token position, what was expected and what was found.
    """
    if window_size is not None and not 1 <= window_size <= MAX_COORD:
        raise ConfigError(f"window size {window_size} outside 1..{MAX_COORD}")
    r = _TokenReader(tokens, window_size)
    tab, nl = inv.TAB, inv.NEWLINE
    w = r.max_end
    r.take(inv.BOS, "<bos>")
    records: list[WindowRecord] = []
    n_genes = 0
    record_starts = (inv.LINE_TRANSCRIPT, *inv.FEATURE_TYPES, inv.EOS)
    while True:
        head = r.peek()
        if head == inv.EOS:
            r.i += 1
            break
        if max_records is not None and len(records) >= max_records:
            raise r.fail(f"<eos> (at most {max_records} records)")
        if head == inv.LINE_TRANSCRIPT:
            r.i += 1
            r.take(tab, "TAB")
            strand = r.take(inv.STRANDS, "a strand (+ or -)")
            r.take(tab, "TAB")
            biotype = r.take(_BIOTYPES, "a transcript biotype")
            r.take(tab, "TAB")
            at = r.i
            gene = r.number("a gene index")
            if gene > n_genes:
                raise r.fail(f"gene index at most {n_genes} (genes are numbered in order of "
                             "first appearance)", at)
            n_genes = max(n_genes, gene + 1)
            r.take(tab, "TAB")
            partial = r.take(inv.PARTIAL_MARKS, "a partial mark (. < > <>)")
            r.take(nl, "NEWLINE")
            exons: list[tuple[int, int]] = []
            while r.peek() == inv.LINE_EXON or not exons:
                if max_exons is not None and len(exons) >= max_exons:
                    raise r.fail(f"cds or the next record (at most {max_exons} exons)")
                r.take(inv.LINE_EXON, "an exon line")
                r.take(tab, "TAB")
                low = exons[-1][1] + 1 if exons else 0
                start = r.coord("exon start", low, w - 1)
                r.take(tab, "TAB")
                end = r.coord("exon end", start + 1, w)
                r.take(nl, "NEWLINE")
                exons.append((start, end))
            cds = None
            phase = 0
            if r.peek() == inv.LINE_CDS:
                r.i += 1
                r.take(tab, "TAB")
                at = r.i
                cds_start = r.coord("CDS start", exons[0][0], exons[-1][1] - 1)
                if not any(s <= cds_start < e for s, e in exons):
                    raise r.fail(f"CDS start inside an exon, got {cds_start}", at)
                r.take(tab, "TAB")
                at = r.i
                cds_end = r.coord("CDS end", cds_start + 1, exons[-1][1])
                if not any(s < cds_end <= e for s, e in exons):
                    raise r.fail(f"CDS end inside an exon, got {cds_end}", at)
                r.take(tab, "TAB")
                phase = int(r.take(PHASES, "a phase (0, 1 or 2)"))
                r.take(nl, "NEWLINE")
                cds = (cds_start, cds_end)
            records.append(
                WindowTranscript(strand, biotype, gene, partial, tuple(exons), cds, phase)
            )
        elif head in _FEATURE_TYPES:
            r.i += 1
            r.take(tab, "TAB")
            strand = r.take(_FEATURE_STRANDS, "a strand (+ - .)")
            r.take(tab, "TAB")
            start = r.coord("feature start", 0, w - 1)
            r.take(tab, "TAB")
            end = r.coord("feature end", start + 1, w)
            r.take(tab, "TAB")
            partial = r.take(inv.PARTIAL_MARKS, "a partial mark (. < > <>)")
            r.take(nl, "NEWLINE")
            records.append(WindowFeature(head, strand, start, end, partial))
        else:
            raise r.fail("a record (" + ", ".join(record_starts) + ")")
    if r.i != len(tokens):
        raise r.fail("nothing after <eos>")
    return WindowAnnotation(tuple(records))


def target_text(tokens: Sequence[str]) -> str:
    """The text form of target tokens: joined with no spaces (what the tokenizer decodes to)."""
    return "".join(tokens)


def split_target_text(text: str) -> tuple[list[str], list[int]]:
    """Split target text back into tokens, with the 1-based text line of each token.

    The split is structural and exact: NEWLINE ends a line, TAB separates fields, ':' splits a
    coordinate field, and no other target token contains any of the three. ``<bos>`` is read at
    the start of the text and ``<eos>`` at the start of a line. Unknown pieces become tokens of
    their own, for the parser to reject with their position.
    """
    tokens: list[str] = []
    lines: list[int] = []

    def emit(token: str, line_no: int) -> None:
        tokens.append(token)
        lines.append(line_no)

    body = text
    if body.startswith(inv.BOS):
        emit(inv.BOS, 1)
        body = body[len(inv.BOS):]
    pieces = body.split(inv.NEWLINE)
    for index, piece in enumerate(pieces):
        line_no = index + 1
        if piece.startswith(inv.EOS):
            emit(inv.EOS, line_no)
            piece = piece[len(inv.EOS):]
        if piece:
            for k, field in enumerate(piece.split(inv.TAB)):
                if k:
                    emit(inv.TAB, line_no)
                parts = [part for part in _COORD_SPLIT.split(field) if part] or [field]
                for part in parts:
                    emit(part, line_no)
        if index < len(pieces) - 1:
            emit(inv.NEWLINE, line_no)
    return tokens, lines


def parse_target_text(
    text: str,
    window_size: int | None = None,
    max_records: int | None = None,
    max_exons: int | None = None,
) -> WindowAnnotation:
    """Parse the text form of a target (tokens joined with no spaces, e.g. from ``decode``).

    Raises:
        TargetParseError: naming the text line and what was expected.
    """
    tokens, lines = split_target_text(text)
    try:
        return parse_target_tokens(tokens, window_size, max_records, max_exons)
    except TargetParseError as exc:
        message = str(exc)
        position = message.removeprefix("target token ").split(":", 1)[0]
        if position.isdigit() and int(position) < len(lines):
            message = f"target text line {lines[int(position)]}, {message}"
        raise TargetParseError(message) from None


# --- window -> GFF3 -----------------------------------------------------------------------------

_TRANSCRIPT_ROW_TYPE = {
    inv.PROTEIN_CODING: "mRNA",
    inv.TRANSPOSABLE_ELEMENT: "mRNA",
    inv.PSEUDOGENE: "pseudogenic_transcript",
    "lncRNA": "lnc_RNA",
}
_GENE_ROW_TYPE = {
    inv.PSEUDOGENE: "pseudogene",
    inv.TRANSPOSABLE_ELEMENT: "transposable_element_gene",
}
_PARTIAL_ATTRIBUTE = {
    inv.PARTIAL_LEFT: "left",
    inv.PARTIAL_RIGHT: "right",
    inv.PARTIAL_BOTH: "both",
}


def transcript_gff3_rows(
    t: WindowTranscript,
    seqid: str,
    offset: int,
    transcript_id: str,
    gene_id: str,
    source: str = "genoforge",
) -> list[str]:
    """The transcript row and its exon, CDS and UTR rows (window coordinates + ``offset``)."""

    def row(ftype: str, start: int, end: int, phase: str, attributes: str) -> str:
        return "\t".join((seqid, source, ftype, str(offset + start + 1), str(offset + end), ".",
                          t.strand, phase, attributes))

    extra = f";biotype={t.biotype}"
    if t.partial != inv.PARTIAL_NONE:
        side = _PARTIAL_ATTRIBUTE[t.partial]
        # NCBI's convention for incomplete ends (genome browsers and submission tools read it):
        # start_range=.,<start> when the lower end is cut, end_range=<end>,. when the upper one is.
        if side in ("left", "both"):
            extra += f";start_range=.,{offset + t.start + 1}"
        if side in ("right", "both"):
            extra += f";end_range={offset + t.end},."
        extra += f";partial={side}"
    ttype = _TRANSCRIPT_ROW_TYPE.get(t.biotype, t.biotype)
    rows = [row(ttype, t.start, t.end, ".", f"ID={transcript_id};Parent={gene_id}{extra}")]
    child = f"Parent={transcript_id}"
    rows += [row("exon", s, e, ".", child) for s, e in t.exons]
    pieces = cds_pieces(t.exons, t.cds)
    for (s, e), phase in zip(pieces, piece_phases(pieces, t.strand, t.cds_phase)):
        rows.append(row("CDS", s, e, str(phase), f"ID={transcript_id}.cds;{child}"))
    if t.cds is not None:
        left = "five_prime_UTR" if t.strand == "+" else "three_prime_UTR"
        right = "three_prime_UTR" if t.strand == "+" else "five_prime_UTR"
        for s, e in t.exons:
            if s < t.cds[0]:
                rows.append(row(left, s, min(e, t.cds[0]), ".", child))
            if e > t.cds[1]:
                rows.append(row(right, max(s, t.cds[1]), e, ".", child))
    return rows


def to_gff3_rows(
    wa: WindowAnnotation,
    seqid: str,
    window_start: int,
    source: str = "genoforge",
    id_prefix: str | None = None,
) -> list[str]:
    """GFF3 feature lines (no trailing newline) of a window annotation, in genome coordinates.

    One gene row per gene index (``pseudogene`` / ``transposable_element_gene`` for those
    biotypes, else ``gene``, so that :func:`~genoforge.baking.genes.load_annotation` reads the
    rows back to the same models), then per
    transcript its row (``mRNA``, ``pseudogenic_transcript``, ``lnc_RNA`` or the RNA type),
    exon rows, CDS rows with their GFF3 phases on either strand, and UTR rows; stand-alone
    features as single rows. IDs are ``{id_prefix}.g{gene}`` and ``{id_prefix}.g{gene}.t{k}``
    (default prefix ``{seqid}.w{window_start}``); partial models carry ``partial=left|right|both``.
    Blocks are ordered by start.
    """
    prefix = id_prefix if id_prefix is not None else f"{seqid}.w{window_start}"
    by_gene: dict[int, list[WindowTranscript]] = {}
    for t in wa.transcripts:
        by_gene.setdefault(t.gene, []).append(t)
    blocks: list[tuple[int, list[str]]] = []
    for gene, transcripts in by_gene.items():
        gene_id = f"{prefix}.g{gene}"
        start = min(t.start for t in transcripts)
        end = max(t.end for t in transcripts)
        first = transcripts[0]
        gtype = _GENE_ROW_TYPE.get(first.biotype, "gene")
        rows = ["\t".join((seqid, source, gtype, str(window_start + start + 1),
                           str(window_start + end), ".", first.strand, ".",
                           f"ID={gene_id};biotype={first.biotype}"))]
        for k, t in enumerate(transcripts):
            rows += transcript_gff3_rows(t, seqid, window_start, f"{gene_id}.t{k}", gene_id, source)
        blocks.append((start, rows))
    for k, f in enumerate(wa.features):
        attributes = f"ID={prefix}.f{k}"
        if f.partial != inv.PARTIAL_NONE:
            attributes += f";partial={_PARTIAL_ATTRIBUTE[f.partial]}"
        blocks.append((f.start, ["\t".join((seqid, source, f.type, str(window_start + f.start + 1),
                                            str(window_start + f.end), ".", f.strand, ".",
                                            attributes))]))
    blocks.sort(key=lambda block: block[0])
    return [line for _, rows in blocks for line in rows]
