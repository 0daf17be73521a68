"""``genoforge predict``: annotate a genome FASTA with a trained model and write GFF3.

Pipeline (one module per step):

1. validate the FASTA and read every contig's length (:func:`genoforge.genes.fasta.fasta_lengths`,
   one streaming pass), then stream overlapping windows (:mod:`genoforge.inference.windows`):
   memory is bounded by the window and the batch, never by a contig;
2. per batch of windows: encode, then greedy decoding under the target grammar with the KV cache
   (:mod:`genoforge.inference.decode`); a window with no A/C/G/T base (a run of N) is not
   decoded: it holds no gene;
3. once all windows of a contig are decoded: stitch them (:mod:`genoforge.inference.stitch`) and
   append the contig's rows to ``<output>.partial``
   (:func:`genoforge.inference.gff_writer.open_partial_gff`), which is renamed to the output only
   when every contig is done.

A run that stops early (SIGTERM, Ctrl-C, an error) keeps ``<output>.partial`` with the contigs
completed and its record ``<output>.partial.json``; ``resume=True`` (``--resume``) continues it
when the record's run (:func:`run_record`: the genome FASTA's path, size and modification time,
the model directory's files, the decoder and every setting that shapes the output) is this one,
skipping the contigs done. Gene IDs are numbered per contig (``<seqid>.g<n>``), so the resumed
file is byte for byte the one an uninterrupted run writes.

Progress is reported in bases (a rich bar on a terminal, plain lines otherwise, on stderr).

The parts live in their own modules, re-exported here: the settings and their model-dependent
defaults (:mod:`genoforge.inference.predict_config`), device, dtype and batch resolution
(:mod:`genoforge.inference.device`), the generative :class:`Predictor`
(:mod:`genoforge.inference.predictor`), and the run record and resumable output
(:mod:`genoforge.inference.resume`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from genoforge import console
from genoforge.errors import InputError
from genoforge.genes.target import WindowAnnotation
from genoforge.inference.device import (
    CPU_BATCH_SIZE,
    CUDA_BATCH_SIZE,
    CUDA_LENGTH_MULTIPLE,
    check_cuda_graphs,
    default_batch_size,
    load_for_inference,
    resolve_device,
    resolved_dtype,
    use_cuda_graphs,
)
from genoforge.inference.predict_config import (
    DECODERS,
    DEFAULT_WINDOW_SIZE,
    MAX_NEW_TOKENS_MULTIPLE,
    MIN_MAX_NEW_TOKENS,
    WINDOWLESS_MAX_NEW_TOKENS,
    PredictConfig,
    default_max_new_tokens,
    describe_window,
)
from genoforge.inference.predictor import Predictor
from genoforge.inference.resume import (
    collect_counts,
    open_output,
    remaining_regions,
    run_record,
)
from genoforge.inference.stitch import WindowResult, stitch_contig
from genoforge.inference.windows import GenomeWindow, stream_windows, tile_contig
from genoforge.model.training_window import read_training_window

# The public names of predict before it was split, importable from here as they were.
__all__ = [
    "CPU_BATCH_SIZE", "CUDA_BATCH_SIZE", "CUDA_LENGTH_MULTIPLE", "DECODERS", "DEFAULT_WINDOW_SIZE",
    "MAX_NEW_TOKENS_MULTIPLE", "MIN_MAX_NEW_TOKENS", "WINDOWLESS_MAX_NEW_TOKENS", "PredictConfig",
    "PredictResult", "Predictor", "check_cuda_graphs", "collect_counts", "default_batch_size",
    "default_max_new_tokens", "describe_window", "load_for_inference", "open_output", "predict_genome",
    "remaining_regions", "resolve_device", "resolved_dtype", "run_record", "use_cuda_graphs",
]


@dataclass
class PredictResult:
    """What a run did. ``contigs``, ``bases``, ``genes``, ``transcripts`` and ``features`` count
    the whole output, ``resumed_contigs`` / ``resumed_bases`` the part a resumed run found done;
    ``bp_per_second`` counts the bases decoded by this run over its decoding time."""

    output: Path
    device: str
    batch_size: int
    contigs: int = 0
    bases: int = 0
    windows: int = 0
    decoded_windows: int = 0
    truncated_windows: int = 0
    genes: int = 0
    transcripts: int = 0
    features: int = 0
    seconds: float = 0.0
    target_tokens: int = 0
    truncated_where: list[str] = field(default_factory=list)
    resumed_contigs: int = 0
    resumed_bases: int = 0

    @property
    def bp_per_second(self) -> float:
        return (self.bases - self.resumed_bases) / self.seconds if self.seconds > 0 else 0.0


@dataclass
class _Contig:
    seqid: str
    length: int
    n_windows: int
    results: list[WindowResult] = field(default_factory=list)


def predict_genome(
    model_dir: str | Path,
    genome: str | Path,
    output: str | Path,
    config: PredictConfig | None = None,
    predictor: Predictor | None = None,
    *,
    resume: bool = False,
) -> PredictResult:
    """Annotate every contig (or ``config.seqids``) of ``genome`` and write GFF3 to ``output``.

    Args:
        model_dir: a model directory (``genoforge model init`` / ``tune`` output).
        genome: FASTA, plain, gzip or bgzip.
        output: the GFF3 path. It grows contig by contig as ``<output>.partial`` and appears
            only when complete; a run stopped by an exception (a signal, an error) keeps the
            partial and its record ``<output>.partial.json`` (module docstring).
        config: run settings (defaults: :class:`PredictConfig`; window settled by
            :meth:`PredictConfig.for_model` from ``model_dir``'s record, or the predictor's).
        predictor: an already loaded model to use instead of loading ``model_dir``.
        resume: continue ``<output>.partial`` where a stopped run left it (its record must match
            this run, :func:`run_record`); without it an existing partial is replaced.

    Raises:
        FastaFormatError: the FASTA is malformed (file:line and fix).
        InputError: a requested seqid is not in the FASTA; another run is writing ``output``.
        ConfigError: ``resume`` and the partial was written with other inputs or settings.
        CheckpointError, TokenizerError, ConfigError, DependencyError: model, flags or device.
    """
    from genoforge.genes.fasta import fasta_lengths

    record = predictor.training_window if predictor is not None else None
    if config is None and predictor is not None:
        config = predictor.config  # settled when the predictor was built
        window_note = (f"{config.resolved_window_size:,} bp windows, overlap {config.resolved_overlap:,} bp "
                       "(the predictor's settings)")
    else:
        config = config or PredictConfig()
        if record is None and config.window_size is None:
            record = read_training_window(model_dir)
        window_note = describe_window(config, record, model_dir)
    config = config.for_model(record)
    config.validate()
    lengths = fasta_lengths(genome)
    wanted = None
    if config.seqids is not None:
        missing = [s for s in config.seqids if s not in lengths]
        if missing:
            raise InputError(
                f"--seqids names {', '.join(repr(s) for s in missing)}, not in the FASTA "
                f"(it has {len(lengths)} sequences, e.g. {', '.join(list(lengths)[:3])}); check the names",
                genome,
            )
        wanted = frozenset(config.seqids)
    regions = [(s, n) for s, n in lengths.items() if wanted is None or s in wanted]
    decoder = "generative" if predictor is not None else config.resolved_decoder(model_dir)
    if resume:  # a partial of another run fails here, before the model is loaded
        from genoforge.inference.gff_writer import check_resumable

        device = predictor.device if predictor is not None else resolve_device(config.device)
        batch_size = predictor.batch_size if predictor is not None else default_batch_size(config, device)
        check_resumable(output, run_record(model_dir, genome, config, decoder=decoder, device=device,
                                           batch_size=batch_size), complete=False)
    if decoder == "hmm":
        from genoforge.inference.structure_predict import predict_genome_hmm

        result = PredictResult(output=Path(output), device="", batch_size=0)
        return predict_genome_hmm(model_dir, genome, output, config, result, regions, lengths, window_note,
                                  resume=resume)
    predictor = predictor or Predictor.from_dir(model_dir, config, training_window=record)
    console.info(f"predict: {window_note}; max_new_tokens {predictor.max_new_tokens:,}"
                 f"{'' if config.max_new_tokens is not None else ' (default for the window)'}")
    window_size, overlap = config.resolved_window_size, config.resolved_overlap
    result = PredictResult(output=Path(output), device=str(predictor.device), batch_size=predictor.batch_size)
    comments = [
        f"windows: {window_size} bp, overlap {overlap} bp; grammar-constrained greedy decoding, "
        f"max_new_tokens {predictor.max_new_tokens}; batch size {predictor.batch_size} on {predictor.device}",
    ]
    run = run_record(model_dir, genome, config, decoder="generative", device=predictor.device,
                     batch_size=predictor.batch_size, predictor=predictor)
    contigs: dict[str, _Contig] = {}  # in FASTA order; written in that order as they complete
    shares: dict[tuple[str, int], int] = {}  # bp each window adds to the progress bar

    def tracked(windows: Iterable[GenomeWindow]) -> Iterator[GenomeWindow]:
        for window in windows:
            if window.index == 0:
                contigs[window.seqid] = _Contig(window.seqid, window.contig_length, window.n_windows)
                tiling = tile_contig(window.contig_length, window_size, overlap)
                ends = [start for start, _ in tiling[1:]] + [window.contig_length]
                for k, ((start, _), share_end) in enumerate(zip(tiling, ends)):
                    shares[(window.seqid, k)] = share_end - start  # up to the next window's start
            yield window

    started = time.perf_counter()
    with open_output(output, model_dir, regions, comments, run, resume) as writer:
        todo = remaining_regions(regions, writer.done)

        def flush() -> None:
            while contigs:
                head = next(iter(contigs.values()))
                if len(head.results) < head.n_windows:
                    return
                writer.write_contig(stitch_contig(head.seqid, head.length, head.results), head.length)
                del contigs[head.seqid]

        with console.progress("Predicting", total=sum(n for _, n in todo), unit="bp") as bar:
            windows = tracked(stream_windows(genome, lengths, window_size, overlap,
                                             frozenset(seqid for seqid, _ in todo)))
            for window, prediction in predictor.stream(windows):
                result.windows += 1
                annotation = WindowAnnotation()
                if prediction is not None:
                    result.decoded_windows += 1
                    annotation = prediction.annotation
                    if prediction.truncated:
                        result.truncated_windows += 1
                        if len(result.truncated_where) < 5:
                            result.truncated_where.append(f"{window.seqid}:{window.start + 1}-{window.end}")
                contigs[window.seqid].results.append(WindowResult(window.start, window.end, annotation))
                bar.advance(shares.pop((window.seqid, window.index)))
                flush()
            flush()
        if contigs:  # cannot happen for a validated FASTA; never write a silently short file
            raise InputError(
                f"the FASTA ended inside {', '.join(contigs)}; was it changed while reading?", genome)
        collect_counts(result, writer)
    result.seconds = time.perf_counter() - started
    result.target_tokens = predictor.target_tokens
    if result.truncated_windows:
        console.warn(
            f"{result.truncated_windows} window(s) reached --max_new_tokens {predictor.max_new_tokens} "
            f"(e.g. {', '.join(result.truncated_where)}); their unfinished last record was dropped. "
            "Raise --max_new_tokens to keep every record."
        )
    return result
