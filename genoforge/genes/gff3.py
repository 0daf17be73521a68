"""Strict streaming GFF3 parser: the subset of GFF3 that genoforge accepts.

Accepted format (plain, gzip or bgzip; compression detected by magic bytes):

- Feature lines have exactly 9 TAB-separated columns: seqid, source, type, start, end, score,
  strand, phase, attributes (GFF3 spec, https://github.com/The-Sequence-Ontology/Specifications).
- ``start`` and ``end`` are 1-based, closed, positive integers with ``start <= end``. They become
  0-based half-open ``[start - 1, end)`` HERE, and nowhere else in genoforge.
- ``score`` is ``.`` or a number; ``strand`` is one of ``+ - . ?``; ``phase`` is ``.`` or
  ``0 1 2``, and is required on CDS rows (GFF3 makes it mandatory there).
- Attributes are ``key=value`` pairs separated by ``;`` (an empty pair, e.g. a trailing ``;``, is
  ignored). A value may hold several comma-separated values (``Parent=a,b``); each value and the
  seqid are percent-decoded (``%3B`` -> ``;``) after splitting, as the spec requires. A key given
  twice on one line has its values concatenated.
- ``#`` lines are comments or directives and are skipped; ``##FASTA`` ends the feature section
  (nothing after it is read). Blank lines are skipped. CRLF line endings are accepted (``\\r`` is
  stripped), so a CRLF file parses exactly like its LF twin.

The text is UTF-8 (a leading byte-order mark is dropped).

Errors (:class:`~genoforge.errors.GffFormatError`, ``file:line: what; fix``): wrong column count,
non-integer or non-positive coordinates, end before start, unknown strand, bad phase, CDS without
phase, bad score, malformed attribute, a ``>`` line without a ``##FASTA`` directive, a truncated
compressed stream, an empty file (no feature line at all), and a file that is not UTF-8 text
(binary data, a NUL byte, UTF-16 or another encoding: the first offending line is named). A file
that cannot be opened is an :class:`~genoforge.errors.InputError`.

Relations between rows (IDs, Parent, gene models) are checked by :mod:`genoforge.genes.annotation`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from genoforge.errors import GffFormatError, InputError
from genoforge.io import open_text

STRANDS = ("+", "-", ".", "?")
N_COLUMNS = 9


@dataclass(frozen=True, slots=True)
class Feature:
    """One GFF3 feature line.

    ``start``/``end`` are 0-based half-open. ``attributes`` maps each key to its percent-decoded
    values (``Parent=a,b`` -> ``("a", "b")``). ``id`` is the ``ID`` attribute (None if absent) and
    ``parents`` the ``Parent`` values. ``line`` is the 1-based line number, for error messages.
    """

    seqid: str
    source: str
    type: str
    start: int
    end: int
    score: float | None
    strand: str
    phase: int | None
    attributes: dict[str, tuple[str, ...]]
    line: int
    id: str | None
    parents: tuple[str, ...]


def parse_gff3(path: str | Path) -> Iterator[Feature]:
    """Yield the feature lines of a GFF3 file in file order, stopping at ``##FASTA``.

    Args:
        path: a plain, gzip or bgzip GFF3 file.

    Raises:
        GffFormatError: the file breaks the accepted format (see the module docstring).
        InputError: the file does not exist.
    """
    return feature_lines(path, _parse_line)


def feature_lines(
    path: str | Path, parse_line: Callable[[str, str | Path, int], Feature]
) -> Iterator[Feature]:
    """The line loop shared by GFF3 and GTF (:mod:`genoforge.genes.gtf`): comments, ``##FASTA``,
    encodings, truncation and empty files as the module docstring says; ``parse_line`` turns one
    feature line into a Feature."""
    n_features = 0
    line_no = 0
    try:
        handle = open_text(path)
    except PermissionError as exc:
        raise InputError(f"cannot be read ({exc.strerror}); check its permissions", path) from None
    with handle:
        try:
            for line_no, raw in enumerate(handle, start=1):
                line = raw.rstrip("\r\n")
                if line_no == 1:
                    line = line.removeprefix("\ufeff")  # a UTF-8 byte-order mark
                if "\x00" in line:
                    raise GffFormatError(
                        "NUL byte: this is binary data, not GFF3 text; check the path (a BAM, "
                        "an index, a compressed file of another kind?)",
                        path,
                        line_no,
                    )
                if not line.strip():
                    continue
                if line[0] == "#":
                    if line.startswith("##FASTA"):
                        break
                    continue
                if line[0] == ">":
                    raise GffFormatError(
                        "FASTA header inside the features; put a '##FASTA' line before the "
                        "sequences",
                        path,
                        line_no,
                    )
                yield parse_line(line, path, line_no)
                n_features += 1
        except GffFormatError:
            raise
        except UnicodeDecodeError:
            # The text layer decodes ahead in blocks: find the offending line in the bytes.
            raise _not_utf8(path) from None
        except InputError as exc:
            raise GffFormatError(
                f"compressed stream is truncated or corrupt after line {line_no}; "
                "re-download or recompress it",
                path,
                line_no + 1,
            ) from exc
    if n_features == 0:
        raise GffFormatError(
            "empty file: no feature lines found; check the path (is this the annotation?)",
            path,
            max(line_no, 1),
        )


def _not_utf8(path: str | Path) -> GffFormatError:
    """The error for a file that does not decode as UTF-8, naming its first bad line."""
    import gzip

    from genoforge.io import is_gzip

    opener = gzip.open if is_gzip(path) else open
    with opener(path, "rb") as handle:  # type: ignore[operator]
        head = handle.read(4)
        handle.seek(0)
        if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
            return GffFormatError(
                "UTF-16 text; GFF3 is read as UTF-8: convert it (iconv -f UTF-16 -t UTF-8)", path, 1
            )
        for line_no, raw in enumerate(handle, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                byte = raw[exc.start]
                return GffFormatError(
                    f"not UTF-8 text (byte 0x{byte:02x} at column {exc.start + 1}): binary data or "
                    "another encoding; check the path, or convert the file (iconv -f LATIN1 -t "
                    "UTF-8)",
                    path,
                    line_no,
                )
    return GffFormatError("not UTF-8 text; convert the file to UTF-8", path, 1)


def _parse_line(line: str, path: str | Path, line_no: int) -> Feature:
    seqid, source, ftype, start, end, score, strand, phase, attr_text = parse_columns(
        line, path, line_no
    )
    attributes = _attributes(attr_text, path, line_no)
    ids = attributes.get("ID", ())
    if len(ids) > 1:
        raise GffFormatError(f"ID has {len(ids)} values; give one ID per row", path, line_no)
    return Feature(
        seqid=seqid,
        source=source,
        type=ftype,
        start=start,
        end=end,
        score=score,
        strand=strand,
        phase=phase,
        attributes=attributes,
        line=line_no,
        id=ids[0] if ids else None,
        parents=attributes.get("Parent", ()),
    )


def parse_columns(
    line: str, path: str | Path, line_no: int, dialect: str = "GFF3"
) -> tuple[str, str, str, int, int, float | None, str, int | None, str]:
    """The first eight columns of a feature line, checked, and the raw attribute column.

    Returns ``(seqid, source, type, start, end, score, strand, phase, attributes_text)`` with
    ``start``/``end`` already 0-based half-open and the seqid percent-decoded. ``dialect`` names
    the format in messages (GTF calls the phase column "frame", with the same meaning).
    """
    columns = line.split("\t")
    if len(columns) != N_COLUMNS:
        raise GffFormatError(
            f"expected {N_COLUMNS} TAB-separated columns, found {len(columns)}; "
            "check for spaces instead of TABs or a missing column",
            path,
            line_no,
        )
    seqid, source, ftype, start_text, end_text, score_text, strand, phase_text, attr_text = columns
    if not seqid or not ftype:
        raise GffFormatError("empty seqid or type column; fill it in", path, line_no)
    start = _coordinate(start_text, "start", path, line_no)
    end = _coordinate(end_text, "end", path, line_no)
    if end < start:
        raise GffFormatError(
            f"{ftype} end {end} < start {start} (seqid {seqid}); swap or fix the coordinates",
            path,
            line_no,
        )
    if strand not in STRANDS:
        raise GffFormatError(
            f"unknown strand {strand!r}; use one of + - . ?", path, line_no
        )
    phase: int | None
    if phase_text == ".":
        phase = None
    elif phase_text in ("0", "1", "2"):
        phase = int(phase_text)
    else:
        column = "frame" if dialect == "GTF" else "phase"
        raise GffFormatError(f"bad {column} {phase_text!r}; use 0, 1, 2 or .", path, line_no)
    if ftype == "CDS" and phase is None:
        column = "frame" if dialect == "GTF" else "phase"
        raise GffFormatError(
            f"CDS without {column}; {dialect} requires {column} 0, 1 or 2 on every CDS row",
            path,
            line_no,
        )
    score: float | None = None
    if score_text != ".":
        try:
            score = float(score_text)
        except ValueError:
            raise GffFormatError(
                f"bad score {score_text!r}; use a number or .", path, line_no
            ) from None
    # 1-based closed -> 0-based half-open: the one conversion in genoforge
    return unquote(seqid), source, ftype, start - 1, end, score, strand, phase, attr_text


def _coordinate(text: str, name: str, path: str | Path, line_no: int) -> int:
    if not text.isdigit():
        raise GffFormatError(
            f"{name} {text!r} is not a positive integer; GFF3 coordinates are 1-based integers",
            path,
            line_no,
        )
    value = int(text)
    if value < 1:
        raise GffFormatError(f"{name} {value} < 1; GFF3 coordinates start at 1", path, line_no)
    return value


def _attributes(text: str, path: str | Path, line_no: int) -> dict[str, tuple[str, ...]]:
    attributes: dict[str, tuple[str, ...]] = {}
    if text in (".", ""):
        return attributes
    for pair in text.split(";"):
        pair = pair.strip()
        if not pair:
            continue
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise GffFormatError(
                f"attribute {pair!r} is not key=value; percent-encode ';' '=' ',' inside values",
                path,
                line_no,
            )
        values = tuple(unquote(v) for v in value.split(","))
        attributes[key] = attributes.get(key, ()) + values
    return attributes
