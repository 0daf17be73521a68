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
  biotypes (so :func:`genoforge.genes.annotation.load_annotation` reads the file back to the same
  models), ``ID=<seqid>.g<n>;biotype=<biotype>``;
- per transcript (``ID=<seqid>.g<n>.t<k>``): its row (``mRNA``, ``pseudogenic_transcript``,
  ``lnc_RNA`` or the RNA type), exon rows, CDS rows (one ID per transcript's CDS, as GFF3 allows
  for a discontinuous feature) with their phase on either strand, ``five_prime_UTR`` /
  ``three_prime_UTR`` rows; rows written by
  :func:`genoforge.genes.target.transcript_gff3_rows`, the same code that writes training
  targets back to GFF3. A transcript cut by a contig end (or left unjoined) carries
  ``partial=left|right|both`` and NCBI's ``start_range=.,<start>`` / ``end_range=<end>,.`` for
  the cut end(s);
- stand-alone features (``origin_of_replication``, ``mobile_genetic_element``) as single rows,
  ``ID=<seqid>.f<n>``.

Escaping: a seqid is percent-encoded in column 1 outside GFF3's allowed set
``[a-zA-Z0-9.:^*$@!+_?|-]``, and in attribute values ``;`` ``=`` ``&`` ``,`` ``%`` and control
characters are percent-encoded. IDs are unique in the file because seqids are unique in a FASTA.

:func:`open_gff` writes the file to a temporary name beside the output and renames it into place
when complete (:func:`genoforge.io.atomic_write`): an interrupted write leaves no partial GFF3.

Resumable output (:func:`open_partial_gff`, what ``genoforge predict`` uses): the file grows as
``<output>.partial`` beside the output, one contig at a time, and is renamed to ``<output>`` when
every contig is done. Beside it, ``<output>.partial.json`` (:data:`PARTIAL_FORMAT`, written
atomically) records the run that writes it (``run``: the inputs and settings, each under the
name a user knows it by, e.g. ``--batch_size``), the contigs completed, in order, and the byte
length of the partial up to the end of the last of them. The record is rewritten when the file
is opened, after a contig once :data:`CHECKPOINT_SECONDS` have passed since the last rewrite, and
when the writer stops on an exception (a signal, an error): the partial is fsynced first, so the
record never claims bytes that are not on disk, and bytes after the recorded length (a contig
cut mid-write, contigs done after the last rewrite of a killed run) are dropped on resuming.
Resuming checks that the run is the recorded one and that the partial starts with the header
this run would write; the contigs recorded are then skipped and the rest appended, so the final
file is the one an uninterrupted run writes (IDs are numbered per contig: nothing carries over).
While a writer holds the partial it holds an exclusive ``flock`` on it: a second run writing the
same output is refused instead of interleaving.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from genoforge import __version__, console
from genoforge.errors import ConfigError, InputError
from genoforge.genes import inventory as inv
from genoforge.genes.target_gff3 import transcript_gff3_rows
from genoforge.genes.window_models import WindowTranscript
from genoforge.inference.stitch import ContigAnnotation, ContigTranscript
from genoforge.io import atomic_write, fsync_directory, remove_stale_temps, umask_mode

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; a second writer is not detected there
    fcntl = None  # type: ignore[assignment]

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


# --- resumable output -------------------------------------------------------------------------

PARTIAL_SUFFIX = ".partial"
RECORD_SUFFIX = ".partial.json"
PARTIAL_FORMAT = "genoforge-predict-partial"
PARTIAL_FORMAT_VERSION = 1
# The record is rewritten at most this often while contigs complete (and always on stopping):
# each rewrite fsyncs the partial, the record and the folder, which a genome of 100,000 short
# scaffolds cannot afford per contig. A run killed outright (SIGKILL) loses at most this much
# completed work; SIGTERM and SIGINT lose none.
CHECKPOINT_SECONDS = 2.0


def partial_paths(output: str | Path) -> tuple[Path, Path]:
    """``(<output>.partial, <output>.partial.json)``: the growing GFF3 and its record."""
    output = Path(output)
    return output.with_name(output.name + PARTIAL_SUFFIX), output.with_name(output.name + RECORD_SUFFIX)


@dataclass(frozen=True)
class PartialStatus:
    """What a partial's record says: ``done`` of ``total`` contigs are in ``partial``."""

    partial: Path
    record: Path
    done: int
    total: int


def partial_status(output: str | Path) -> PartialStatus | None:
    """The record beside ``output``'s partial, or None when there is no readable one with its partial."""
    partial, record_path = partial_paths(output)
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        done, total = len(record["contigs_done"]), int(record["contigs_total"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not partial.is_file():
        return None
    return PartialStatus(partial, record_path, done, total)


def _normalised(run: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(dict(run)))  # tuples -> lists, as the record reads back


@dataclass(frozen=True)
class _Written:
    """What the partial holds up to the end of its last complete contig. Replaced whole, by one
    assignment, so that a signal (raised between any two bytecodes) never finds it half-updated."""

    bytes: int = 0
    contigs: int = 0
    genes: int = 0
    transcripts: int = 0
    features: int = 0
    bases: int = 0


class PartialGffWriter:
    """Appends contigs to ``<output>.partial`` and keeps its record (see :func:`open_partial_gff`).

    ``done`` lists the contigs in the file (a resumed run's first); ``genes``, ``transcripts``,
    ``features`` and ``bases`` count everything in the file; ``resumed_contigs`` and
    ``resumed_bases`` what a resumed run found already done.
    """

    def __init__(self, output: Path, handle: IO[bytes], run: dict[str, Any], total: int,
                 record: Mapping[str, Any] | None = None):
        self.output = output
        self.partial, self.record_path = partial_paths(output)
        self._handle = handle
        self._run = run
        self.total = total
        record = record or {}
        self._done: list[str] = list(record.get("contigs_done", []))
        self._written = _Written(int(record.get("bytes", 0)), len(self._done),
                                 *(int(record.get(key, 0)) for key in ("genes", "transcripts", "features", "bases")))
        self.resumed_contigs, self.resumed_bases = self._written.contigs, self._written.bases
        self._last_checkpoint = -float("inf")

    @property
    def done(self) -> list[str]:
        return self._done[: self._written.contigs]

    @property
    def genes(self) -> int:
        return self._written.genes

    @property
    def transcripts(self) -> int:
        return self._written.transcripts

    @property
    def features(self) -> int:
        return self._written.features

    @property
    def bases(self) -> int:
        return self._written.bases

    def write_header(self, header: bytes) -> None:
        """The file's first bytes (a fresh partial only)."""
        self._handle.write(header)
        self._written = dataclasses.replace(self._written, bytes=len(header))

    def write_contig(self, contig: ContigAnnotation, length: int) -> None:
        """Append one finished contig (``length`` bases), then rewrite the record if it is due."""
        data = "".join(row + "\n" for row in contig_rows(contig)).encode("utf-8")
        w = self._written
        written = _Written(w.bytes + len(data), w.contigs + 1, w.genes + contig.n_genes,
                           w.transcripts + len(contig.transcripts), w.features + len(contig.features),
                           w.bases + length)
        del self._done[w.contigs:]  # a contig appended by a write that a signal cut short
        self._done.append(contig.seqid)
        self._handle.write(data)
        self._written = written  # the contig counts as done from here on
        self._handle.flush()  # cheap, and the partial on disk grows contig by contig
        if time.monotonic() - self._last_checkpoint >= CHECKPOINT_SECONDS:
            self.checkpoint()

    def checkpoint(self) -> None:
        """fsync the partial, then atomically rewrite the record of what it holds."""
        written = self._written
        self._handle.flush()
        os.fsync(self._handle.fileno())
        record = {
            "format": PARTIAL_FORMAT,
            "format_version": PARTIAL_FORMAT_VERSION,
            "partial": self.partial.name,
            "run": self._run,
            "contigs_total": self.total,
            "contigs_done": self._done[: written.contigs],
            "bytes": written.bytes,
            "genes": written.genes,
            "transcripts": written.transcripts,
            "features": written.features,
            "bases": written.bases,
        }
        with atomic_write(self.record_path) as handle:
            json.dump(record, handle, indent=1)
            handle.write("\n")
        self._last_checkpoint = time.monotonic()

    def stop(self) -> None:
        """Keep what is complete: drop a contig cut mid-write, record the rest, close.

        Runs while an exception (a signal, an error) unwinds: whatever goes wrong here, or a
        second signal, leaves the previous record, which is still consistent with the partial.
        """
        try:
            self._handle.flush()
            self._handle.truncate(self._written.bytes)
            self.checkpoint()
        except BaseException:  # noqa: BLE001 - see the docstring; the original exception goes on
            pass
        finally:
            self._handle.close()

    def finish(self) -> None:
        """Rename the complete partial to the output and remove its record."""
        self._handle.flush()
        os.fsync(self._handle.fileno())
        os.chmod(self.partial, umask_mode(0o666))  # as a plain write would give the output
        os.replace(self.partial, self.output)
        self.record_path.unlink(missing_ok=True)
        fsync_directory(self.output.parent)
        self._handle.close()


def _lock(handle: IO[bytes], partial: Path) -> None:
    if fcntl is None:
        return
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise InputError(
            "another genoforge predict is writing this file now; wait for it to finish, or give "
            "this run another -o", partial) from None


def _read_record(record_path: Path) -> dict[str, Any]:
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        if record.get("format") != PARTIAL_FORMAT or record.get("format_version") != PARTIAL_FORMAT_VERSION:
            raise ValueError(f"not a {PARTIAL_FORMAT} record of version {PARTIAL_FORMAT_VERSION}")
        for key in ("run", "contigs_done", "contigs_total", "bytes"):
            record[key]  # noqa: B018 - presence check
        return record
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"unreadable resume record ({exc}); rerun without --resume to start over",
                         record_path) from None


_RESUME_FIX = "rerun with the same inputs and flags as the interrupted run, or without --resume to start over"


def _compare_runs(recorded: Mapping[str, Any], run: Mapping[str, Any], partial: Path, complete: bool) -> None:
    keys = [k for k in recorded if k in run or complete] + [k for k in run if k not in recorded]
    for key in keys:
        old, new = recorded.get(key), run.get(key)
        if old != new:
            raise ConfigError(
                f"--resume: {partial} was written with {key} {old if old is not None else '(none)'}, "
                f"this run has {new if new is not None else '(none)'}; {_RESUME_FIX}")


def check_resumable(output: str | Path, run: Mapping[str, Any], complete: bool = True) -> None:
    """Raise if ``output``'s partial has a record of a run other than ``run`` (nothing without one).

    ``complete`` False compares only the keys ``run`` has: a check before every setting is known
    (:func:`open_partial_gff` checks them all).

    Raises:
        ConfigError: a value differs (the message names it and the fix).
        InputError: the record is unreadable.
    """
    partial, record_path = partial_paths(output)
    if partial.is_file() and record_path.is_file():
        _compare_runs(_read_record(record_path)["run"], _normalised(run), partial, complete)


def _check_resumable(record: dict[str, Any], run: dict[str, Any], header: bytes, partial: Path,
                     handle: IO[bytes]) -> None:
    """Raise ConfigError naming the first setting that differs, or InputError for a damaged partial."""
    _compare_runs(record["run"], run, partial, complete=True)
    size = os.fstat(handle.fileno()).st_size
    if size < int(record["bytes"]):
        raise InputError(f"holds {size:,} bytes but its record says {int(record['bytes']):,} were written; "
                         "rerun without --resume to start over", partial)
    handle.seek(0)
    if handle.read(len(header)) != header:
        raise ConfigError(f"--resume: {partial} starts with another header than this run writes; {_RESUME_FIX}")


@contextmanager
def open_partial_gff(output: str | Path, header: Iterable[str], run: Mapping[str, Any], total: int,
                     resume: bool = False) -> Iterator[PartialGffWriter]:
    """Write ``output`` through ``<output>.partial``, resumable (module docstring).

    Args:
        output: the GFF3 to write; it appears only when the block ends without an exception.
        header: the header lines (:func:`header_lines`), written first unless resuming.
        run: what must be equal for a partial to be resumed: JSON values under the name the user
            knows each by (``"--batch_size": 8``, ``"genome FASTA": "/data/g.fa (...)"``).
        total: the contigs the run will write.
        resume: continue ``<output>.partial`` if its record matches ``run``; without a partial
            (or with one whose run stopped before its first record), start from the first contig.
            Without ``resume`` an existing partial is replaced (one stderr line says so).

    On an exception the partial and its record are kept with the contigs completed
    (:meth:`PartialGffWriter.stop`) and the exception goes on.

    Raises:
        ConfigError: ``resume`` and the partial was written by another run (names what differs).
        InputError: another process is writing the partial, or it or its record is damaged.
    """
    output = Path(output)
    partial, record_path = partial_paths(output)
    run = _normalised(run)
    header_bytes = "".join(line + "\n" for line in header).encode("utf-8")
    output.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(output)  # .NAME.pid<PID>-*.tmp of killed writers of earlier versions
    existed = partial.exists()
    fd = os.open(partial, os.O_RDWR | os.O_CREAT, 0o666)  # the umask applies, as for open()
    handle = os.fdopen(fd, "r+b")
    _lock(handle, partial)
    record = None
    try:
        if resume and existed and record_path.is_file():
            record = _read_record(record_path)
            _check_resumable(record, run, header_bytes, partial, handle)
            console.info(f"predict --resume: {len(record['contigs_done']):,} of {total:,} contigs already in "
                         f"{partial}; decoding the rest")
        elif resume:
            why = (f"{partial} has no record of completed contigs ({record_path.name} is missing)"
                   if existed else f"no {partial} to resume")
            console.info(f"predict --resume: {why}; starting from the first contig")
        elif existed:
            console.info(f"predict: replacing {partial}, left by an interrupted run "
                         "(pass --resume to continue it instead)")
    except BaseException:
        handle.close()  # the partial stays as it was
        raise
    writer = PartialGffWriter(output, handle, run, total, record)
    try:
        if record is None:
            handle.truncate(0)
            writer.write_header(header_bytes)
        else:
            handle.truncate(writer._written.bytes)  # past it: a contig a killed run did not record
        handle.seek(0, os.SEEK_END)
        writer.checkpoint()
        yield writer
    except BaseException:
        writer.stop()
        raise
    writer.finish()
