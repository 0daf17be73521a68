"""The quick length pass over a genome FASTA: :func:`quick_fasta_lengths`.

A bake needs every sequence length before it builds the gene models (models past a sequence end are
skipped), so the FASTA is read twice. This first pass counts bytes in the common case and hands
anything unusual to the validating reader, :func:`genoforge.genes.fasta.fasta_lengths`, so that it
always agrees with :func:`genoforge.genes.fasta.read_fasta`.
"""

from __future__ import annotations

from pathlib import Path

_WHITESPACE = b" \t\r\n\v\f"
# Bytes of a plain sequence line: the IUPAC codes fasta.py accepts, in either case.
_SEQUENCE_BYTES = b"ACGTURYSWKMBDHVNacgturyswkmbdhvn"
# Control bytes a header must not hold (TAB separates words; a trailing CR is a CRLF ending).
_HEADER_CONTROL = bytes([*range(9), *range(10, 32), 127])
_NOT_HEADER_CONTROL = bytes(b for b in range(256) if b not in _HEADER_CONTROL)


class _Unusual(Exception):
    """The quick length pass met something only the validating reader can judge."""


def quick_fasta_lengths(path: str | Path) -> dict[str, int]:
    """seqid -> sequence length, as :func:`genoforge.genes.fasta.read_fasta` will yield them.

    The gene models need every length before the first chromosome is baked, so the FASTA is read
    twice; this first pass counts bytes at several times the speed of the validating reader. It
    trusts only the common case: ASCII headers with a name, LF or CRLF line ends, sequence lines of
    IUPAC codes with whitespace at most at their ends, unique names, no empty record. At anything
    else (another encoding, a BOM, CR-only line ends, a bad character, a truncated stream, an
    empty file) it returns :func:`genoforge.genes.fasta.fasta_lengths`, the validating pass,
    which either agrees with ``read_fasta`` by construction or raises the file:line error, so a
    malformed FASTA is reported before the annotation is judged against its lengths.

    Raises:
        FastaFormatError, InputError: as ``fasta_lengths`` (only on unusual input).
    """
    import gzip

    from genoforge.genes.fasta import fasta_lengths
    from genoforge.io import is_gzip

    lengths: dict[str, int] = {}
    current: list = [None, 0]  # seqid, bases so far

    def take(line: bytes) -> None:
        if line[:1] == b">" or line[:1].isspace() and line.lstrip()[:1] == b">":
            header = line.strip()
            if current[0] is not None and current[1] == 0:
                raise _Unusual  # the previous record has no sequence
            if not header.isascii() or header.rstrip(b"\r").translate(None, _NOT_HEADER_CONTROL):
                raise _Unusual
            words = header[1:].split()
            if not words or words[0].decode() in lengths:
                raise _Unusual
            current[:] = [words[0].decode(), 0]
            lengths[current[0]] = 0
            return
        rest = line.translate(None, _SEQUENCE_BYTES)
        bases = len(line) - len(rest)
        if rest:
            # Whitespace is allowed at the ends only; a CR inside a line is a CR-only line end.
            if rest.translate(None, _WHITESPACE) or len(line.strip()) != bases:
                raise _Unusual
        if bases and current[0] is None:
            raise _Unusual  # sequence before the first header
        if bases:
            current[1] += bases
            lengths[current[0]] = current[1]

    carry = b""
    try:
        opener = gzip.open if is_gzip(path) else open
        with opener(path, "rb") as handle:  # type: ignore[operator]
            while block := handle.read(1 << 22):
                lines = (carry + block).split(b"\n")
                carry = lines.pop()
                for line in lines:
                    take(line)
        take(carry)
        if current[0] is None or current[1] == 0:
            raise _Unusual  # no header at all, or the last record has no sequence
    except (_Unusual, EOFError, OSError, UnicodeDecodeError):
        return fasta_lengths(path)
    return lengths


__all__ = ["quick_fasta_lengths"]
