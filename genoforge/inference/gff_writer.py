"""GFF3 output of ``genoforge predict``: the subset of GFF3 version 3 written.

File layout::

    ##gff-version 3
    # genoforge <version>: genoforge predict
    # model: <name> (<model dir>)
    # <any further header comments the caller passes>
    ##sequence-region <seqid> 1 <length>      one per predicted contig, in FASTA order
    <feature rows, contig by contig, genes by start>

Rows (9 tab-separated columns, 1-based closed coordinates, source ``genoforge``, score ``.``):

- a gene row per gene: type ``gene``, or ``pseudogene`` / ``transposable_element_gene`` for those
  biotypes (so :func:`genoforge.baking.genes.load_annotation` reads the file back to the same
  models), ``ID=<seqid>.g<n>;biotype=<biotype>``;
- per transcript (``ID=<seqid>.g<n>.t<k>``): its row (``mRNA``, ``pseudogenic_transcript``,
  ``lnc_RNA`` or the RNA type), exon rows, CDS rows (one ID per transcript's CDS, as GFF3 allows
  for a discontinuous feature) with their phase on either strand, ``five_prime_UTR`` /
  ``three_prime_UTR`` rows; rows written by
  :func:`genoforge.baking.target.transcript_gff3_rows`, the same code that writes training
  targets back to GFF3. A transcript cut by a contig end (or left unjoined) carries
  ``partial=left|right|both`` and NCBI's ``start_range=.,<start>`` / ``end_range=<end>,.`` for
  the cut end(s);
- stand-alone features (``origin_of_replication``, ``mobile_genetic_element``) as single rows,
  ``ID=<seqid>.f<n>``.

Escaping: a seqid is percent-encoded in column 1 outside GFF3's allowed set
``[a-zA-Z0-9.:^*$@!+_?|-]``, and in attribute values ``;`` ``=`` ``&`` ``,`` ``%`` and control
characters are percent-encoded. IDs are unique in the file because seqids are unique in a FASTA.

The file is written to a temporary name beside the output and renamed into place when complete
(:func:`genoforge.io.atomic_write`): an interrupted run leaves no partial GFF3.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from genoforge import __version__
from genoforge.baking.target import WindowTranscript, transcript_gff3_rows
from genoforge.inference.stitch import ContigAnnotation, ContigTranscript
from genoforge.io import atomic_write
from genoforge.tokenizer import inventory as inv

SOURCE = "genoforge"
_GENE_ROW_TYPE = {inv.PSEUDOGENE: "pseudogene", inv.TRANSPOSABLE_ELEMENT: "transposable_element_gene"}
_SEQID_UNSAFE = re.compile(r"[^a-zA-Z0-9.:^*$@!+_?|\-]")
_ATTRIBUTE_UNSAFE = re.compile(r"[;=&,%\x00-\x1f\x7f]")


def escape_seqid(seqid: str) -> str:
    return _SEQID_UNSAFE.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), seqid)


def escape_attribute(value: str) -> str:
    return _ATTRIBUTE_UNSAFE.sub(lambda m: f"%{ord(m.group()):02X}", value)


def _partial_mark(left: bool, right: bool) -> str:
    if left and right:
        return inv.PARTIAL_BOTH
    if left:
        return inv.PARTIAL_LEFT
    if right:
        return inv.PARTIAL_RIGHT
    return inv.PARTIAL_NONE


def contig_rows(contig: ContigAnnotation) -> list[str]:
    """The feature rows of one stitched contig (no trailing newlines), genes ordered by start."""
    column1 = escape_seqid(contig.seqid)
    prefix = escape_attribute(contig.seqid)
    by_gene: dict[int, list[ContigTranscript]] = {}
    for t in contig.transcripts:
        by_gene.setdefault(t.gene, []).append(t)
    blocks: list[tuple[int, int, list[str]]] = []
    for gene, transcripts in by_gene.items():
        gene_id = f"{prefix}.g{gene}"
        first = transcripts[0]
        start, end = min(t.start for t in transcripts), max(t.end for t in transcripts)
        rows = ["\t".join((column1, SOURCE, _GENE_ROW_TYPE.get(first.biotype, "gene"), str(start + 1),
                           str(end), ".", first.strand, ".", f"ID={gene_id};biotype={first.biotype}"))]
        for k, t in enumerate(transcripts):
            window_view = WindowTranscript(
                strand=t.strand, biotype=t.biotype, gene=gene,
                partial=_partial_mark(t.partial_left, t.partial_right),
                exons=t.exons, cds=t.cds, cds_phase=t.cds_phase,
            )
            rows += transcript_gff3_rows(window_view, column1, 0, f"{gene_id}.t{k}", gene_id, SOURCE)
        blocks.append((start, 0, rows))
    for k, f in enumerate(contig.features):
        attributes = f"ID={prefix}.f{k}"
        if f.partial_left or f.partial_right:
            side = {(True, False): "left", (False, True): "right"}.get(
                (f.partial_left, f.partial_right), "both")
            attributes += f";partial={side}"
        blocks.append((f.start, 1, ["\t".join((column1, SOURCE, f.type, str(f.start + 1), str(f.end), ".",
                                               f.strand, ".", attributes))]))
    blocks.sort(key=lambda block: (block[0], block[1]))
    return [row for _, _, rows in blocks for row in rows]


class GffWriter:
    """Writes the header, then contigs as they are stitched (see :func:`open_gff`)."""

    def __init__(self, handle: IO[str]):
        self._handle = handle
        self.genes = 0
        self.transcripts = 0
        self.features = 0

    def write_contig(self, contig: ContigAnnotation) -> None:
        for row in contig_rows(contig):
            self._handle.write(row + "\n")
        self.genes += contig.n_genes
        self.transcripts += len(contig.transcripts)
        self.features += len(contig.features)


def header_lines(model_name: str, model_dir: str | Path | None, regions: Iterable[tuple[str, int]],
                 comments: Iterable[str] = ()) -> list[str]:
    """``##gff-version 3``, the provenance comments and one ``##sequence-region`` per contig."""
    lines = ["##gff-version 3", f"# genoforge {__version__}: genoforge predict"]
    where = f" ({model_dir})" if model_dir is not None else ""
    lines.append(f"# model: {model_name}{where}")
    lines += [f"# {' '.join(comment.split())}" for comment in comments]
    lines += [f"##sequence-region {escape_seqid(seqid)} 1 {length}"
              for seqid, length in regions if length > 0]
    return lines


@contextmanager
def open_gff(path: str | Path, model_name: str, model_dir: str | Path | None,
             regions: Iterable[tuple[str, int]], comments: Iterable[str] = ()) -> Iterator[GffWriter]:
    """Open ``path`` for writing atomically, with the header already written.

    Args:
        path: the GFF3 to write (renamed into place when the block ends without an error).
        model_name: the model's name for the header (e.g. its directory name).
        regions: ``(seqid, length)`` of every contig that will be predicted.
        comments: extra header comment lines (one line each; whitespace is collapsed).
    """
    with atomic_write(path) as handle:
        for line in header_lines(model_name, model_dir, regions, comments):
            handle.write(line + "\n")
        yield GffWriter(handle)
