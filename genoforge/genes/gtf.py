"""GTF (GFF2 with gene_id/transcript_id) read as the GFF3 rows genoforge builds gene models from.

Which format a file holds is decided by its content, never by its name (a species folder's
``annotation.gff3.gz`` may hold GTF): :func:`sniff_format` reads the ``##gff-version`` directive
if there is one, else the attribute column of the first feature lines that tell (``key=value``
is GFF3, ``key "value";`` or ``key value;`` is GTF; a bare word, AUGUSTUS's ``g1`` on gene and
transcript rows, tells nothing). :func:`parse_annotation` then reads the file with the matching
parser.

Accepted GTF (GTF 2.2, https://mblab.wustl.edu/GTF22.html, and what AUGUSTUS, Ensembl, GENCODE,
gffread -T and gffcompare write):

- The eight leading columns, comments, ``##FASTA``, compression, encodings and line endings are
  those of :mod:`genoforge.genes.gff3` (same checks, same 1-based closed -> 0-based half-open
  conversion); the frame column is GFF3's phase by another name, and is required on CDS rows.
- Attributes are ``key "value";`` or ``key value;`` pairs separated by ``;`` (the last ``;`` may
  be missing); a key given twice (Ensembl's ``tag "basic"; tag "CCDS";``) collects its values.
  Inside quotes, ``\\"`` is a quote and ``;`` is text. A bare word with no value is allowed only
  on ``gene`` rows (it is the gene_id) and ``transcript``/``mRNA`` rows (the transcript_id), as
  AUGUSTUS writes them.

How rows become GFF3 rows (then :mod:`genoforge.genes.annotation` applies its rules unchanged):

- A row with a ``transcript_id`` that is not a transcript row is a part of that transcript
  (``Parent=<transcript_id>``): exon, CDS, start_codon, stop_codon, UTR, intron ... rows.
- Transcripts are named by ``transcript_id`` and hang from their ``gene_id`` (from the transcript
  row, else from its parts). A transcript with parts but no transcript row (older GTF, gffread)
  gets one spanning its parts, on the seqid and strand of its first part; a gene_id with no gene
  row gets a gene row spanning its transcripts. These rows carry the line of the first row they
  were made from, so messages still point into the file. A gene_id that is also a
  transcript_id (some prokaryote GTFs) is renamed ``gene:<gene_id>``, since GFF3 IDs share one
  namespace.
- Stop codons: AUGUSTUS, Ensembl and GENCODE CDS rows exclude the stop codon and give it as a
  separate ``stop_codon`` row (possibly split over an intron); as in GFF3, such a row is merged
  into the coding span, so the CDS includes the stop (genoforge's convention). A file whose CDS
  already include it (gffread -T) is taken as written.
- GENCODE's ``transcript_type``/``gene_type`` are read as ``transcript_biotype``/``gene_biotype``.
- Rows with neither ``transcript_id`` nor gene type (Ensembl's gene rows are genes; anything
  else) are passed on as they are and ignored or counted by the gene-model rules.

Errors (:class:`~genoforge.errors.GffFormatError`, ``file:line: what; fix``): those of
:mod:`genoforge.genes.gff3` for the columns, and an attribute column that is neither GTF pairs
nor an AUGUSTUS bare name.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from genoforge.errors import GffFormatError
from genoforge.genes.gff3 import Feature, feature_lines, parse_columns, parse_gff3
from genoforge.io import open_text

GFF3 = "gff3"
GTF = "gtf"
# Feature lines looked at before giving up and calling the file GFF3 (whose parser then names
# the first line it cannot read).
SNIFF_LINES = 1000

_GENE_TYPES = {"gene"}
_TRANSCRIPT_TYPES = {"transcript", "mrna"}
_GTF_PAIR = re.compile(r'\s*([^\s";=]+)\s+(?:"((?:[^"\\]|\\.)*)"|([^\s";]+))\s*(?:;|$)')
_BARE_WORD = re.compile(r"\s*([^\s\";=]+)\s*;?\s*")
_GFF3_FIRST_PAIR = re.compile(r"\s*[^\s\";=]+=")
_GTF_FIRST_PAIR = re.compile(r'\s*[^\s";=]+\s+("|[^\s";=]+\s*(;|$))')
_BIOTYPE_ALIASES = {"transcript_type": "transcript_biotype", "gene_type": "gene_biotype"}


def sniff_format(path: str | Path) -> str:
    """``"gtf"`` or ``"gff3"``, from the content (see the module docstring); GFF3 if undecided.

    Raises:
        InputError: the file does not exist or cannot be read.
    """
    seen = 0
    try:
        with open_text(path) as handle:
            for raw in handle:
                line = raw.rstrip("\r\n").removeprefix("\ufeff")
                if line.startswith("##gff-version"):
                    version = line.split()[1:2]
                    return GFF3 if version and version[0].startswith("3") else GTF
                if line.startswith("##FASTA"):
                    break
                if not line.strip() or line.startswith("#"):
                    continue
                columns = line.split("\t")
                if len(columns) == 9:
                    attributes = columns[8]
                    if _GFF3_FIRST_PAIR.match(attributes):
                        return GFF3
                    if _GTF_FIRST_PAIR.match(attributes):
                        return GTF
                seen += 1
                if seen >= SNIFF_LINES:
                    break
    except (UnicodeDecodeError, GffFormatError):
        pass  # the GFF3 parser names the bad line
    except OSError:
        pass  # e.g. a truncated gzip stream: likewise
    return GFF3


def parse_annotation(path: str | Path) -> list[Feature]:
    """The feature rows of a GFF3 or GTF file (told apart by :func:`sniff_format`), as GFF3 rows.

    Raises:
        GffFormatError: a row breaks the accepted format of the file's dialect.
        InputError: the file does not exist or cannot be read.
    """
    if sniff_format(path) == GTF:
        return parse_gtf(path)
    return list(parse_gff3(path))


def parse_gtf(path: str | Path) -> list[Feature]:
    """The rows of a GTF file as GFF3 rows with ID/Parent (rules in the module docstring)."""
    rows = list(feature_lines(path, _parse_gtf_line))
    return list(_as_gff3(rows))


def _parse_gtf_line(line: str, path: str | Path, line_no: int) -> Feature:
    seqid, source, ftype, start, end, score, strand, phase, attr_text = parse_columns(
        line, path, line_no, dialect="GTF"
    )
    attributes = _gtf_attributes(attr_text, ftype, path, line_no)
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
        id=None,
        parents=(),
    )


def _gtf_attributes(
    text: str, ftype: str, path: str | Path, line_no: int
) -> dict[str, tuple[str, ...]]:
    attributes: dict[str, tuple[str, ...]] = {}
    if text.strip() in (".", ""):
        return attributes
    kind = ftype.lower()
    if kind in _GENE_TYPES | _TRANSCRIPT_TYPES:
        bare = _BARE_WORD.fullmatch(text)
        if bare:  # AUGUSTUS: `g1` on the gene row, `g1.t1` on the transcript row
            key = "gene_id" if kind in _GENE_TYPES else "transcript_id"
            return {key: (bare.group(1),)}
    position = 0
    while position < len(text):
        if not text[position:].strip():
            break
        match = _GTF_PAIR.match(text, position)
        if match is None or match.end() == position:
            shown = text[position:].strip()
            raise GffFormatError(
                f"GTF attribute {shown[:60]!r} is not key \"value\"; write each attribute as "
                'key "value"; (GFF3 would be key=value on every row)',
                path,
                line_no,
            )
        key = match.group(1)
        if match.group(2) is not None:
            value = match.group(2).replace('\\"', '"')
        else:
            value = match.group(3)
        key = _BIOTYPE_ALIASES.get(key, key)
        attributes[key] = attributes.get(key, ()) + (value,)
        position = match.end()
    return attributes


def _first(row: Feature, key: str) -> str | None:
    values = row.attributes.get(key, ())
    return values[0] if values else None


def _as_gff3(rows: list[Feature]) -> Iterator[Feature]:
    """GTF rows -> GFF3 rows: IDs, Parents, and the transcript/gene rows the file left out."""
    transcript_rows: dict[str, Feature] = {}
    gene_rows: dict[str, Feature] = {}
    parts: dict[str, list[Feature]] = {}
    gene_of: dict[str, str] = {}  # transcript_id -> gene_id
    for row in rows:
        kind = row.type.lower()
        transcript_id = _first(row, "transcript_id")
        gene_id = _first(row, "gene_id")
        if kind in _GENE_TYPES and gene_id is not None:
            gene_rows.setdefault(gene_id, row)
        elif transcript_id is not None:
            if kind in _TRANSCRIPT_TYPES:
                transcript_rows.setdefault(transcript_id, row)
            else:
                parts.setdefault(transcript_id, []).append(row)
            if gene_id is not None:
                gene_of.setdefault(transcript_id, gene_id)
    transcript_ids = set(transcript_rows) | set(parts)
    gene_key = {g: (f"gene:{g}" if g in transcript_ids else g) for g in set(gene_of.values())}
    gene_key.update({g: (f"gene:{g}" if g in transcript_ids else g) for g in gene_rows})

    # Made-up transcript rows stand where their first part stood; gene rows where their first
    # transcript stood (order matters only for messages: models are sorted afterwards).
    made_transcripts: dict[int, Feature] = {}
    for transcript_id, members in parts.items():
        if transcript_id in transcript_rows:
            continue
        first = min(members, key=lambda r: r.line)
        made_transcripts[first.line] = _span_row(
            members, first, "transcript", {"transcript_id": (transcript_id,)}
        )
        transcript_rows[transcript_id] = made_transcripts[first.line]
    transcripts_of: dict[str, list[Feature]] = {}
    for transcript_id, row in transcript_rows.items():
        gene_id = gene_of.get(transcript_id)
        if gene_id is not None:
            transcripts_of.setdefault(gene_id, []).append(row)
    made_genes: dict[int, Feature] = {}
    for gene_id, members in transcripts_of.items():
        if gene_id in gene_rows:
            continue
        first = min(members, key=lambda r: r.line)
        made_genes[first.line] = _span_row(members, first, "gene", {"gene_id": (gene_id,)})

    for row in rows:
        if row.line in made_genes:
            yield _with_ids(made_genes[row.line], gene_key[_first(made_genes[row.line], "gene_id")])
        if row.line in made_transcripts:
            made = made_transcripts[row.line]
            transcript_id = _first(made, "transcript_id")
            yield _transcript(made, transcript_id, gene_of, gene_key)
        kind = row.type.lower()
        transcript_id = _first(row, "transcript_id")
        gene_id = _first(row, "gene_id")
        if kind in _GENE_TYPES and gene_id is not None:
            if gene_rows[gene_id] is row:
                yield _with_ids(row, gene_key[gene_id])
            else:
                yield row  # a second gene row for one gene_id: left unnamed (and ignored)
        elif transcript_id is not None and kind in _TRANSCRIPT_TYPES:
            if transcript_rows[transcript_id] is row:
                yield _transcript(row, transcript_id, gene_of, gene_key)
            else:
                yield row
        elif transcript_id is not None:
            yield _with_ids(row, None, (transcript_id,))
        else:
            yield row


def _transcript(
    row: Feature, transcript_id: str, gene_of: dict[str, str], gene_key: dict[str, str]
) -> Feature:
    gene_id = gene_of.get(transcript_id)
    parents = (gene_key[gene_id],) if gene_id is not None else ()
    return _with_ids(row, transcript_id, parents)


def _with_ids(row: Feature, feature_id: str | None, parents: tuple[str, ...] = ()) -> Feature:
    attributes = dict(row.attributes)
    if feature_id is not None:
        attributes["ID"] = (feature_id,)
    if parents:
        attributes["Parent"] = parents
    return Feature(
        seqid=row.seqid,
        source=row.source,
        type=row.type,
        start=row.start,
        end=row.end,
        score=row.score,
        strand=row.strand,
        phase=row.phase,
        attributes=attributes,
        line=row.line,
        id=feature_id,
        parents=parents,
    )


def _span_row(
    members: list[Feature], first: Feature, ftype: str, attributes: dict[str, tuple[str, ...]]
) -> Feature:
    """A row of type ``ftype`` spanning ``members``, on the seqid and strand of ``first``."""
    same = [m for m in members if m.seqid == first.seqid]
    return Feature(
        seqid=first.seqid,
        source=first.source,
        type=ftype,
        start=min(m.start for m in same),
        end=max(m.end for m in same),
        score=None,
        strand=first.strand,
        phase=None,
        attributes=attributes,
        line=first.line,
        id=None,
        parents=(),
    )
