"""The worker side of a bake: a chunk of windows in, its samples out.

A :class:`ChunkTask` holds consecutive windows of one chromosome, the sequence they cover and the
gene models that overlap it; :func:`bake_chunk` (run in a worker process, or inline with one
worker) drops the windows that are mostly N and the intergenic ones not sampled
(:mod:`~genoforge.baking.windows`), and turns each other window into input ids (DNA tokens, plus
hints, :mod:`~genoforge.baking.hints`), target ids (:mod:`~genoforge.genes.target`) and per-base
classes; with ``reverse_complement`` a training window also gives its reverse-complement view
(:mod:`~genoforge.baking.reverse`). Every task and result is picklable; each worker process loads
the tokenizer once (:func:`share_tokenizer` seeds that cache so forked workers inherit it).
"""

from __future__ import annotations

import multiprocessing
from dataclasses import dataclass, field
from typing import Any

from genoforge.baking import hints as hints_module
from genoforge.baking.windows import is_mostly_n, keep_intergenic
from genoforge.genes.manifest import SplitCounts
from genoforge.genes.split import SPLITS


@dataclass(frozen=True)
class WindowSettings:
    """What a worker needs to turn windows into samples (all picklable)."""

    species: str
    tokenizer: str
    token_dtype: str
    seed: int
    max_n_ratio: float
    intergenic_rate: float
    hint_ratio: float
    reverse_complement: bool = False  # also bake each training window's reverse complement


@dataclass
class ChunkTask:
    """Consecutive windows of one chromosome and everything needed to bake them."""

    settings: WindowSettings
    seqid: str
    offset: int  # genome coordinate of sequence[0]
    sequence: str
    windows: list[tuple[str, int, int]]  # (split, start, end), sorted by start
    annotation: Any  # genes.Annotation restricted to what overlaps the chunk


@dataclass
class ChunkResult:
    """The samples of a chunk in window order, and the windows that were dropped, per split."""

    seqid: str
    # (split, start, end, input ids, target ids, intergenic, hinted, bases, base labels)
    samples: list[tuple] = field(default_factory=list)
    dropped: dict[str, SplitCounts] = field(default_factory=lambda: {s: SplitCounts() for s in SPLITS})


_TOKENIZERS: dict[str, Any] = {}


def share_tokenizer(path: str, tokenizer: Any) -> None:
    """Make ``tokenizer`` this process's tokenizer for ``path`` (forked workers inherit it)."""
    _TOKENIZERS[path] = tokenizer


def _tokenizer(path: str) -> Any:
    """The worker process's tokenizer for ``path`` (loaded once per process)."""
    tok = _TOKENIZERS.get(path)
    if tok is None:
        from genoforge.tokenizer.core import GenoTokenizer

        tok = _TOKENIZERS[path] = GenoTokenizer.load(path)
    return tok


def bake_chunk(task: ChunkTask) -> ChunkResult:
    """Filter, annotate and tokenize the windows of one chunk (runs in a worker process)."""
    import numpy as np

    from genoforge.baking import reverse
    from genoforge.genes.classes import (
        encode_bases,
        representative_transcripts,
        window_labels,
    )
    from genoforge.genes.packed_format import TOKEN_DTYPES
    from genoforge.genes.target import encode_target
    from genoforge.genes.window_models import window_annotation

    settings = task.settings
    tok = _tokenizer(settings.tokenizer)
    dtype = np.dtype(TOKEN_DTYPES[settings.token_dtype])
    result = ChunkResult(task.seqid)
    # Per-base classes of the whole chunk from whole transcripts (so a window cutting a gene
    # still gets its true codon positions), sliced per window below.
    chunk_end = task.offset + len(task.sequence)
    coding = representative_transcripts(task.annotation.transcripts_overlapping(task.seqid, task.offset, chunk_end))
    chunk_labels = window_labels(coding, task.offset, chunk_end)
    chunk_bases = encode_bases(task.sequence)
    for split, start, end in task.windows:
        sequence = task.sequence[start - task.offset : end - task.offset]
        if is_mostly_n(sequence, settings.max_n_ratio):
            result.dropped[split].dropped_mostly_n += 1
            continue
        annotated = window_annotation(task.annotation, task.seqid, start, end)
        intergenic = not annotated.records
        if intergenic and not keep_intergenic(
            settings.seed, settings.species, task.seqid, start, settings.intergenic_rate
        ):
            result.dropped[split].dropped_intergenic += 1
            continue
        hinted = hints_module.wants_hints(settings.seed, settings.species, task.seqid, start, settings.hint_ratio)
        local = slice(start - task.offset, end - task.offset)
        views = [(sequence, annotated, chunk_bases[local], chunk_labels[local])]
        if settings.reverse_complement and split == "training":
            views.append((reverse.reverse_complement_dna(sequence),
                          reverse.reverse_complement_annotation(annotated, end - start),
                          reverse.reverse_complement_codes(chunk_bases[local]),
                          reverse.reverse_complement_labels(chunk_labels[local])))
        for view_sequence, view_annotation, view_bases, view_labels in views:
            target_ids = np.asarray(tok.encode_target(encode_target(view_annotation)), dtype=dtype)
            input_ids = tok.encode_dna(view_sequence)
            if hinted:
                input_ids += tok.encode_target(hints_module.hint_tokens(view_annotation.records))
            input_array = np.asarray(input_ids, dtype=dtype)
            result.samples.append((split, start, end, input_array, target_ids, intergenic, hinted,
                                   view_bases, view_labels))
    return result


def process_context() -> multiprocessing.context.BaseContext:
    """The start method of every bake process: fork where the platform has it."""
    # fork is cheap (the tokenizer and modules are inherited) and pools are created before any
    # progress thread starts; elsewhere (macOS, Windows) the platform default, spawn, also works:
    # every task and its worker state are picklable and the tokenizer is loaded per process.
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else methods[0])


__all__ = ["ChunkResult", "ChunkTask", "WindowSettings", "bake_chunk", "process_context", "share_tokenizer"]
