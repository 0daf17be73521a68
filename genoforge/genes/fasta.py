"""Streaming FASTA reader: the subset of FASTA that genoforge accepts.

Accepted format (plain, gzip or bgzip; compression detected by magic bytes in
:func:`genoforge.io.open_text`):

- A record is a header line ``>SEQID [description]`` followed by one or more sequence lines.
  The seqid is the first whitespace-delimited word of the header; the description is ignored.
- Sequence characters are the IUPAC nucleotide codes ``ACGTURYSWKMBDHVN`` in either case
  (lower case = soft-masked, kept as written; the tokenizer upper-cases). Leading/trailing
  whitespace on a line is ignored. Anything else (alignment gaps ``-``, stop ``*``, digits,
  ``.``, inner spaces) is rejected: a genome with gaps is an alignment, not an assembly.
- Blank lines are skipped anywhere. LF, CRLF and classic-Mac CR-only line endings are all
  accepted and read alike (``\\r`` is a line end, never sequence).
- The text is UTF-8 (headers may hold any UTF-8; sequence lines are ASCII by the alphabet rule);
  a leading byte-order mark is dropped.

Errors (:class:`~genoforge.errors.FastaFormatError`, message ``file:line: what; fix``): an empty
file, text before the first header, a header without a seqid, a record without sequence, a seqid
seen twice, a character outside the accepted alphabet (reported with its column), a truncated
compressed stream, and a file that is not UTF-8 text (binary data, a NUL byte, UTF-16, Latin-1:
the first offending line is named). A file that is missing or cannot be read is an
:class:`~genoforge.errors.InputError`.

The reader streams: one record is held at a time, so memory is bounded by the longest sequence.
It is an equivalent of Biopython's ``SimpleFastaParser`` loop written out so that every error can
name its line.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from genoforge.errors import FastaFormatError, InputError
from genoforge.io import first_non_utf8_line, open_text

IUPAC_NUCLEOTIDES = "ACGTURYSWKMBDHVN"
_ALPHABET = IUPAC_NUCLEOTIDES + IUPAC_NUCLEOTIDES.lower()
# str.translate with this table deletes every accepted character: what remains is invalid.
_DELETE_VALID = str.maketrans("", "", _ALPHABET)


@dataclass(frozen=True, slots=True)
class FastaRecord:
    """One sequence: ``seqid`` is the first word of the header, ``sequence`` as written."""

    seqid: str
    sequence: str


def read_fasta(path: str | Path) -> Iterator[FastaRecord]:
    """Yield the records of a FASTA file one at a time, in file order.

    Args:
        path: a plain, gzip or bgzip FASTA file.

    Raises:
        FastaFormatError: the file breaks the accepted format (see the module docstring).
        InputError: the file is missing, or its compressed stream is truncated.
    """
    for seqid, chunks in _records(path, keep_sequence=True):
        yield FastaRecord(seqid, "".join(chunks))


def fasta_lengths(path: str | Path) -> dict[str, int]:
    """Map each seqid to its sequence length, in file order, validating the file on the way.

    Streams without joining sequences, so memory stays at one line.
    """
    return {seqid: sum(chunks) for seqid, chunks in _records(path, keep_sequence=False)}


def _records(path: str | Path, keep_sequence: bool) -> Iterator[tuple[str, list]]:
    """Yield (seqid, chunks): chunks are the sequence lines, or their lengths without keep_sequence."""
    seen: set[str] = set()
    seqid: str | None = None
    header_line = 0
    chunks: list = []
    line_no = 0
    with open_text(path) as handle:
        try:
            for line_no, raw in enumerate(handle, start=1):
                line = raw.strip()
                if line_no == 1:
                    line = line.removeprefix("\ufeff").strip()  # a UTF-8 byte-order mark
                if not line:
                    continue
                if "\x00" in line:
                    raise FastaFormatError(
                        "NUL byte: this is binary data, not FASTA text; check the path (an index, "
                        "a compressed file of another kind?)",
                        path,
                        line_no,
                    )
                if line[0] == ">":
                    if seqid is not None:
                        _check_not_empty(path, seqid, header_line, chunks)
                        yield seqid, chunks
                    words = line[1:].split()
                    if not words:
                        raise FastaFormatError(
                            "header '>' without a sequence name; write '>NAME' on this line",
                            path,
                            line_no,
                        )
                    seqid = words[0]
                    if seqid in seen:
                        raise FastaFormatError(
                            f"duplicate sequence name {seqid!r}; sequence names must be unique",
                            path,
                            line_no,
                        )
                    seen.add(seqid)
                    header_line = line_no
                    chunks = []
                    continue
                if seqid is None:
                    raise FastaFormatError(
                        "sequence text before the first '>' header; is this a FASTA file?",
                        path,
                        line_no,
                    )
                bad = line.translate(_DELETE_VALID)
                if bad:
                    column = raw.removeprefix("\ufeff").index(bad[0]) + 1
                    raise FastaFormatError(
                        f"character {bad[0]!r} (column {column}) in sequence {seqid!r} is not an "
                        "IUPAC nucleotide code; replace gaps and other symbols with N",
                        path,
                        line_no,
                    )
                chunks.append(line if keep_sequence else len(line))
        except UnicodeDecodeError:
            # The text layer decodes ahead in blocks: find the offending line in the bytes.
            raise _not_utf8(path) from None
        except InputError as exc:
            if isinstance(exc, FastaFormatError):
                raise
            raise FastaFormatError(
                f"compressed stream is truncated or corrupt after line {line_no}; "
                "re-download or recompress it",
                path,
                line_no + 1,
            ) from exc
    if seqid is None:
        raise FastaFormatError("empty file: no '>' header found; check the path", path, max(line_no, 1))
    _check_not_empty(path, seqid, header_line, chunks)
    yield seqid, chunks


def _check_not_empty(path: str | Path, seqid: str, header_line: int, chunks: list) -> None:
    if not chunks:
        raise FastaFormatError(
            f"record {seqid!r} has no sequence; remove the header or add its sequence",
            path,
            header_line,
        )


def _not_utf8(path: str | Path) -> FastaFormatError:
    """The error for a file that does not decode as UTF-8, naming its first bad line."""
    where = first_non_utf8_line(path)
    if where is None:  # decoding failed, yet every line decodes: a multi-byte char cut by a block
        return FastaFormatError("not UTF-8 text; convert the file to UTF-8", path, 1)
    line_no, column, byte = where
    if line_no == 1 and column == 1 and byte in (0xFF, 0xFE):
        return FastaFormatError(
            "UTF-16 text; FASTA is read as UTF-8: convert it (iconv -f UTF-16 -t UTF-8)", path, 1
        )
    return FastaFormatError(
        f"not UTF-8 text (byte 0x{byte:02x} at column {column}): binary data or another encoding; "
        "check the path, or convert the file (iconv -f LATIN1 -t UTF-8)",
        path,
        line_no,
    )
