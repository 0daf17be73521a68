"""One species' bake: its FASTA and annotation in, one part shard per split out.

:func:`bake_species` reads the sequence lengths (:mod:`~genoforge.genes.fasta_lengths`), then the
gene models (:func:`genoforge.genes.annotation.load_annotation`), then one chromosome at a time: the
split into training and validation segments (:mod:`~genoforge.genes.split`), the windows of each
segment (:mod:`~genoforge.baking.windows`), and chunks of about :data:`CHUNK_BASES` bases of
windows, each a :class:`~genoforge.baking.chunks.ChunkTask` for a worker. Results are collected in
task order (never completion order), so the part shards do not depend on the worker count; at most
``2 * n_workers`` tasks are in flight, and only one chromosome is held in memory.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genoforge.baking.chunks import (
    ChunkResult,
    ChunkTask,
    WindowSettings,
    bake_chunk,
    process_context,
)
from genoforge.baking.windows import tile
from genoforge.genes.discovery import SpeciesInput
from genoforge.genes.fasta_lengths import quick_fasta_lengths
from genoforge.genes.manifest import SpeciesReport, SplitCounts
from genoforge.genes.split import SPLITS, split_chromosome

CHUNK_BASES = 500_000  # bases of windows per worker task: ~8 tasks on a 4 Mbp chromosome


@dataclass(frozen=True)
class SpeciesJob:
    """Everything one species' bake needs (picklable: it crosses into a species process)."""

    species: SpeciesInput
    raw_dir: str
    taxon: str
    window_size: int
    overlap: int
    val_fraction: float
    settings: WindowSettings
    tokenizer_hash: str
    parts_dir: str
    n_workers: int
    strict: bool = False


@dataclass
class SpeciesResult:
    """What one species' bake made: its manifest report, its part shards, its structure counts."""

    report: SpeciesReport
    parts: dict[str, str]  # split -> part shard path
    structure: Any = None  # genes.structure.StructureCounts of the training region


Reporter = Callable[[str, str, float], None]  # (species, event, amount)


def _no_report(species: str, event: str, amount: float) -> None:
    return None


def _chunk_tasks(
    job: SpeciesJob, annotation: Any, lengths: dict[str, int], counts: dict[str, SplitCounts],
    structure: Any = None,
) -> Iterator[tuple[ChunkTask | None, int]]:
    """Chunk tasks in canonical order, chromosome by chromosome (one chromosome in memory).

    Yields ``(task, bases)``: ``bases`` of progress to report once the task is done (a chromosome's
    last task also carries the bases no window covers); ``task`` is None for a chromosome that
    yields no window. Segments too short for a window are counted in ``counts`` as they are seen.
    Training segments and the transcripts wholly inside them are added to ``structure`` (a
    ``StructureCounts``) when given: validation regions never inform the decoder.
    """
    from genoforge.genes.fasta import read_fasta
    from genoforge.genes.gene_models import Annotation

    species = job.species.name
    stride = job.window_size - job.overlap
    windows_per_chunk = max(1, CHUNK_BASES // stride)
    for record in read_fasta(job.species.fasta):
        seqid, sequence = record.seqid, record.sequence
        if lengths.get(seqid) != len(sequence):
            raise AssertionError(f"{job.species.fasta}: quick length pass disagrees on {seqid!r}")
        windows: list[tuple[str, int, int]] = []
        for segment in split_chromosome(species, seqid, len(sequence), job.val_fraction, job.settings.seed):
            if structure is not None and segment.split == "training":
                _count_structure(structure, sequence, annotation, seqid, segment.start, segment.end)
            tiles = tile(segment.start, segment.end, job.window_size, job.overlap)
            if not tiles:
                counts[segment.split].dropped_short += 1
            windows += [(segment.split, start, end) for start, end in tiles]
        covered = 0
        for first in range(0, len(windows), windows_per_chunk):
            chunk = windows[first : first + windows_per_chunk]
            begin, end = chunk[0][1], max(w[2] for w in chunk)
            # Only the models the chunk's windows can see travel to the worker.
            sub = Annotation(
                transcripts={seqid: annotation.transcripts_overlapping(seqid, begin, end)},
                features={seqid: annotation.features_overlapping(seqid, begin, end)},
            )
            last = first + windows_per_chunk >= len(windows)
            done = (len(sequence) if last else end) - covered
            covered += done
            yield ChunkTask(job.settings, seqid, begin, sequence[begin:end], chunk, sub), done
        if not windows:
            yield None, len(sequence)


def _count_structure(structure: Any, sequence: str, annotation: Any, seqid: str, start: int, end: int) -> None:
    """Add ``sequence[start:end]`` and the transcripts wholly inside it to ``structure``."""
    from types import SimpleNamespace

    inside = [
        SimpleNamespace(gene_id=t.gene_id, biotype=t.biotype, strand=t.strand,
                        exons=tuple((a - start, b - start) for a, b in t.exons),
                        cds=None if t.cds is None else (t.cds[0] - start, t.cds[1] - start))
        for t in annotation.transcripts_overlapping(seqid, start, end)
        if t.exons[0][0] >= start and t.exons[-1][1] <= end
    ]
    structure.add_sequence(sequence[start:end], inside)


def bake_species(
    job: SpeciesJob, report: Reporter = _no_report, pool: ProcessPoolExecutor | None = None
) -> SpeciesResult:
    """Bake one species into part shards under ``job.parts_dir``.

    Args:
        job: the species and its settings.
        report: progress callback ``(species, event, amount)``; events ``total`` (genome bases),
            ``bases`` (done), ``windows`` (written).
        pool: a process pool for chunks; None: make one when ``job.n_workers > 1`` (in a species
            process), else bake inline.

    Raises:
        GenoforgeError: malformed input, naming the file, line and fix.
    """
    from genoforge.baking.packed_writer import PackedWriter
    from genoforge.genes.annotation import load_annotation
    from genoforge.genes.manifest import file_sha256
    from genoforge.genes.structure import StructureCounts

    species = job.species.name
    raw_dir = Path(job.raw_dir)
    lengths = quick_fasta_lengths(job.species.fasta)
    report(species, "total", float(sum(lengths.values())))
    annotation = load_annotation(
        job.species.annotation, seqid_lengths=lengths, strict=job.strict, require_models=True
    )
    annotation_name = _relative(job.species.annotation, raw_dir)
    species_report = SpeciesReport(
        name=species,
        taxon=job.taxon,
        window_size=job.window_size,
        overlap=job.overlap,
        fasta=_relative(job.species.fasta, raw_dir),
        annotation=_relative(job.species.annotation, raw_dir),
        fasta_sha256=file_sha256(job.species.fasta),
        annotation_sha256=file_sha256(job.species.annotation),
        seqids=len(lengths),
        bases=sum(lengths.values()),
        genes=annotation.n_genes,
        transcripts=annotation.n_transcripts,
        skipped_features=annotation.skipped.copy(),
        skipped_first_line={
            reason: f"{annotation_name}:{site.line}" for reason, site in annotation.skip_sites.items()
        },
    )
    counts = species_report.splits
    parts = {split: str(Path(job.parts_dir) / f"{species}.{split}.packed") for split in SPLITS}
    own_pool = None
    if pool is None and job.n_workers > 1:
        own_pool = pool = ProcessPoolExecutor(job.n_workers, mp_context=process_context())

    try:
        writers = {
            split: PackedWriter(
                parts[split], tokenizer_hash=job.tokenizer_hash, token_dtype=job.settings.token_dtype
            )
            for split in SPLITS
        }
        try:
            structure = StructureCounts()
            tasks = _chunk_tasks(job, annotation, lengths, counts, structure)
            for result, bases in _run_in_order(tasks, pool, job.n_workers):
                if result is not None:
                    for split, dropped in result.dropped.items():
                        counts[split].add(dropped)
                    for (split, start, end, input_ids, target_ids, intergenic, hinted,
                         window_bases, window_base_labels) in result.samples:
                        writers[split].add(input_ids, target_ids, species=species, seqid=result.seqid,
                                           window_start=start, window_end=end, bases=window_bases,
                                           base_labels=window_base_labels)
                        split_counts = counts[split]
                        split_counts.windows += 1
                        split_counts.bases += end - start
                        split_counts.input_tokens += int(input_ids.size)
                        split_counts.target_tokens += int(target_ids.size)
                        split_counts.intergenic_windows += int(intergenic)
                        split_counts.hinted_windows += int(hinted)
                    report(species, "windows", len(result.samples))
                report(species, "bases", bases)
        except BaseException:
            for writer in writers.values():
                writer.abort()
            raise
        for writer in writers.values():
            writer.close()
    finally:
        if own_pool is not None:
            own_pool.shutdown(cancel_futures=True)
    return SpeciesResult(species_report, parts, structure)


def _run_in_order(
    tasks: Iterator[tuple[ChunkTask | None, int]], pool: ProcessPoolExecutor | None, n_workers: int
) -> Iterator[tuple[ChunkResult | None, int]]:
    """Results of ``tasks`` in task order; at most ``2 * n_workers`` tasks in flight.

    Collecting in submission order (not completion order) is what makes the output independent
    of the worker count.
    """
    if pool is None:
        for task, bases in tasks:
            yield (bake_chunk(task) if task is not None else None), bases
        return
    pending: deque[tuple[Future | None, int]] = deque()
    try:
        for task, bases in tasks:
            pending.append((pool.submit(bake_chunk, task) if task is not None else None, bases))
            while len(pending) > 2 * n_workers:
                future, done = pending.popleft()
                yield (future.result() if future is not None else None), done
        while pending:
            future, done = pending.popleft()
            yield (future.result() if future is not None else None), done
    finally:
        for future, _ in pending:
            if future is not None:
                future.cancel()


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


__all__ = ["CHUNK_BASES", "Reporter", "SpeciesJob", "SpeciesResult", "bake_species"]
