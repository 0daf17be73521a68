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
token string comes from :mod:`genoforge.genes.inventory`.

What the parser checks beyond the shape of each line (the grammar automaton in
:mod:`genoforge.genes.grammar` enforces exactly the same, so constrained decoding always parses):
coordinates within the window (starts < W, ends <= W; W = 999,999 when no window size is given),
start < end on every line, exons strictly increasing with at least one intron base between them,
CDS start and CDS end - 1 inside exons, gene indices numbered 0, 1, ... in order of first
appearance, and (when given) limits on records and exons per transcript. It does not require
canonical record order (a model may write records in any order; :func:`canonicalize` restores it).

Where the code is: this module holds the tokens and text of a target (:func:`encode_target`,
:func:`parse_target_tokens`, :func:`parse_target_text`); the window records and how they are cut
from the genome's models are in :mod:`~genoforge.genes.window_models`, and their GFF3 rows in
:mod:`~genoforge.genes.target_gff3`. Those modules' names are re-exported here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from genoforge.errors import ConfigError, TargetParseError
from genoforge.genes import inventory as inv
from genoforge.genes.target_gff3 import to_gff3_rows, transcript_gff3_rows
from genoforge.genes.window_models import (
    COORD_BASE,
    MAX_COORD,
    MAX_GENES,
    WindowAnnotation,
    WindowFeature,
    WindowRecord,
    WindowTranscript,
    canonicalize,
    clip_feature,
    clip_transcript,
    window_annotation,
    window_records,
)

PHASES = ("0", "1", "2")

_NUMBER_VALUE = {token: value for value, token in enumerate(inv.NUMBERS)}
_BIOTYPES = frozenset(inv.TRANSCRIPT_BIOTYPES)
_FEATURE_TYPES = frozenset(inv.FEATURE_TYPES)
_FEATURE_STRANDS = (inv.PLUS, inv.MINUS, inv.DOT)
_COORD_SPLIT = re.compile(f"({re.escape(inv.COORD_SEP)})")


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


__all__ = [
    "COORD_BASE",
    "MAX_COORD",
    "MAX_GENES",
    "PHASES",
    "WindowAnnotation",
    "WindowFeature",
    "WindowRecord",
    "WindowTranscript",
    "canonicalize",
    "clip_feature",
    "clip_transcript",
    "encode_target",
    "parse_target_text",
    "parse_target_tokens",
    "split_target_text",
    "target_text",
    "to_gff3_rows",
    "transcript_gff3_rows",
    "window_annotation",
    "window_records",
]
