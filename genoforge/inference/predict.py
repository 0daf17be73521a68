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

Defaults that depend on the model (:meth:`PredictConfig.for_model`, :func:`default_max_new_tokens`):

* window size and overlap: what ``tune`` recorded in the model directory
  (``training_window.json``, :mod:`genoforge.training.checkpoint`), so a model predicts on the
  windows it was trained on; without a record, :data:`DEFAULT_WINDOW_SIZE` and a quarter of the
  window. A window size given by the caller keeps a quarter of itself as the default overlap (the
  recorded overlap belongs to the recorded window);
* ``max_new_tokens``: from the window size (:func:`default_max_new_tokens`).
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from genoforge import __version__, console
from genoforge.baking.window_models import WindowAnnotation
from genoforge.errors import ConfigError, DependencyError, InputError, TokenizerError
from genoforge.inference.decode import (
    DEFAULT_MAX_EXONS,
    DEFAULT_MAX_RECORDS,
    GrammarCache,
    WindowPrediction,
)
from genoforge.inference.stitch import WindowResult, stitch_contig
from genoforge.inference.stream import decode_stream
from genoforge.inference.windows import (
    GenomeWindow,
    check_tiling,
    stream_windows,
    tile_contig,
)
from genoforge.model.training_window import (
    TRAINING_WINDOW_FILE,
    TrainingWindow,
    read_training_window,
)

DECODERS = ("auto", "hmm", "generative")
DEFAULT_WINDOW_SIZE = 10_000  # the recipe's bake --window_size; for models that record no window
# max_new_tokens by default: one target token per window base, rounded up to a multiple of
# MAX_NEW_TOKENS_MULTIPLE, at least MIN_MAX_NEW_TOKENS. The densest windows of ../shared/data (a
# fly chr2R locus with many isoforms) hold 4,970 target tokens in 5 kb, 7,670 in 10 kb, 8,750 in
# 15 kb and 9,322 in 20 kb (bake tiling, a quarter overlap): about one token per bp at most, less
# in longer windows. The grammar's own caps (decode.DEFAULT_MAX_RECORDS records of up to
# DEFAULT_MAX_EXONS exons) only end a window after millions of tokens, so this cap is what bounds
# a model that will not stop.
MAX_NEW_TOKENS_MULTIPLE = 1024
MIN_MAX_NEW_TOKENS = 8192
# A model without a decoder look-back window keeps every position in its decode cache (ring
# width = max_new_tokens + 1, read at every step); decode.greedy_decode refuses more than 4,096.
WINDOWLESS_MAX_NEW_TOKENS = 4096
CPU_BATCH_SIZE = 8
CUDA_BATCH_SIZE = 128
# On CUDA the encoder's compiled FlexAttention recompiles for every new shape: pad the encoder
# length to a multiple of this and the batch to --batch_size, so a genome needs a few shapes.
CUDA_LENGTH_MULTIPLE = 512
_HAS_BASE = re.compile(r"[ACGTUacgtu]")


def default_max_new_tokens(window_size: int, decoder_window_size: int | None = None) -> int:
    """The default token cap per window: ``window_size`` rounded up to a multiple of 1,024, at
    least 8,192 (10 kb -> 10,240; 15 kb -> 15,360); at most 4,096 for a model without a decoder
    look-back window (``decoder_window_size`` 0), whose decode cache grows with the cap.
    Constants and their source above."""
    tokens = max(MIN_MAX_NEW_TOKENS, -(-window_size // MAX_NEW_TOKENS_MULTIPLE) * MAX_NEW_TOKENS_MULTIPLE)
    if decoder_window_size == 0:
        tokens = min(tokens, WINDOWLESS_MAX_NEW_TOKENS)
    return tokens


@dataclass(kw_only=True)
class PredictConfig:
    """Settings of one prediction run (the CLI flags; defaults here only).

    ``window_size`` None means the model's recorded training window, else
    :data:`DEFAULT_WINDOW_SIZE` (resolved by :meth:`for_model`); ``overlap`` None means the
    recorded overlap when the window came from the record, else a quarter of the window, as bake
    lays training windows; ``max_new_tokens`` None means :func:`default_max_new_tokens` of the
    window (resolved by :class:`Predictor`, which knows the model); ``batch_size`` 0 means 8
    windows on a CPU, 128 on CUDA; ``device`` ``auto`` picks CUDA when available; ``dtype``
    ``auto`` is bfloat16 on CUDA and float32 on a CPU. ``cuda_graphs`` replays the batched decoder
    step from a captured CUDA graph (:class:`genoforge.inference.stream.GraphedRowStep`, ~4x the
    bp/s on an H100): None (the default) uses them on CUDA when the model's experts allow it and
    decodes eagerly otherwise (or if a capture fails, with a warning); True requires them (an
    error on a CPU or for per-expert-loop MoE); False never uses them.
    """

    window_size: int | None = None
    overlap: int | None = None
    batch_size: int = 0
    max_new_tokens: int | None = None
    max_records: int = DEFAULT_MAX_RECORDS
    max_exons: int = DEFAULT_MAX_EXONS
    device: str = "auto"
    dtype: str = "auto"
    seqids: tuple[str, ...] | None = None
    cuda_graphs: bool | None = None
    decoder: str = "auto"  # hmm, generative, or auto: hmm when the model directory supports it
    species: str | None = None  # hmm: gene-structure parameters of this baked species
    taxon: str | None = None  # hmm: ... of this taxon's baked species
    # hmm: scale of the per-base head's scaled log-likelihoods and of the signal PWMs' log-odds;
    # chosen on the shared data's held-out regions (benchmarks/decode_tracks.py grid, RESULTS.md)
    emission_weight: float = 0.02
    signal_weight: float = 3.0
    head_signal_weight: float = 1.0  # ... and of the head's own site log-odds (models with them)

    @property
    def resolved_window_size(self) -> int:
        return DEFAULT_WINDOW_SIZE if self.window_size is None else self.window_size

    @property
    def resolved_overlap(self) -> int:
        return self.resolved_window_size // 4 if self.overlap is None else self.overlap

    def for_model(self, record: TrainingWindow | None) -> PredictConfig:
        """A copy with the window size and overlap settled (rules in the module docstring).

        ``record``: the model directory's training window (:func:`read_training_window`), or None.
        A recorded overlap above half the window (bake allows it, the stitcher does not) becomes
        half the window.
        """
        if self.window_size is not None:
            return self
        if record is None:
            return dataclasses.replace(self, window_size=DEFAULT_WINDOW_SIZE)
        overlap = self.overlap
        if overlap is None and record.overlap is not None:
            overlap = min(record.overlap, record.window_size // 2)
        return dataclasses.replace(self, window_size=record.window_size, overlap=overlap)

    def validate(self) -> None:
        check_tiling(self.resolved_window_size, self.resolved_overlap)
        if self.batch_size < 0:
            raise ConfigError(f"--batch_size must be >= 1 (or 0 for automatic), got {self.batch_size}")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ConfigError(f"--max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise ConfigError(f"dtype {self.dtype!r}: use auto, float32, bfloat16 or float16")
        if self.decoder not in DECODERS:
            raise ConfigError(f"--decoder {self.decoder!r}: use {', '.join(DECODERS)}")
        if self.species is not None and self.taxon is not None:
            raise ConfigError("give --species or --taxon, not both")
        if not self.emission_weight > 0:
            raise ConfigError(f"--emission_weight must be > 0, got {self.emission_weight}")
        if not self.signal_weight >= 0:
            raise ConfigError(f"--signal_weight must be >= 0, got {self.signal_weight}")
        if not self.head_signal_weight >= 0:
            raise ConfigError(f"--head_signal_weight must be >= 0, got {self.head_signal_weight}")

    def resolved_decoder(self, model_dir: str | Path) -> str:
        """``hmm`` or ``generative``: ``auto`` is hmm when ``model_dir`` holds the bake's
        gene-structure file and the model has a per-base head (any model tune exported), else
        generative."""
        if self.decoder != "auto":
            return self.decoder
        from genoforge.genes.structure_set import GENE_STRUCTURE_FILE
        from genoforge.model.io import read_model_config

        if (Path(model_dir) / GENE_STRUCTURE_FILE).is_file() and read_model_config(model_dir).base_head_channels > 0:
            return "hmm"
        return "generative"


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


def default_batch_size(config: PredictConfig, device) -> int:
    """``config.batch_size``, or for 0 the device's default (CPU_BATCH_SIZE / CUDA_BATCH_SIZE)."""
    return config.batch_size or (CUDA_BATCH_SIZE if device.type == "cuda" else CPU_BATCH_SIZE)


def resolved_dtype(config: PredictConfig, device) -> str:
    """``config.dtype``, or for ``auto`` bfloat16 on CUDA and float32 on a CPU."""
    if config.dtype != "auto":
        return config.dtype
    return "bfloat16" if device.type == "cuda" else "float32"


def load_for_inference(model_dir: str | Path, config: PredictConfig, device):
    """The model (in ``config.dtype``; auto: bfloat16 on CUDA, float32 on a CPU) and tokenizer."""
    import torch

    from genoforge.model.io import load_model
    from genoforge.tokenizer.core import GenoTokenizer

    dtype = getattr(torch, resolved_dtype(config, device))
    model = load_model(model_dir, device=device, dtype=None if dtype == torch.float32 else dtype)
    return model, GenoTokenizer.load(model_dir)


def resolve_device(name: str):
    """A torch device from ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

    Raises:
        DependencyError: CUDA was asked for and is not available.
    """
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"--device {name!r} is not a device; use auto, cpu, cuda or cuda:N") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DependencyError(f"--device {name}: CUDA is not available here; use --device cpu")
    return device


def check_cuda_graphs(config: PredictConfig, device) -> None:
    """Refuse ``cuda_graphs`` asked for (True) off CUDA (a torch device ``device``).

    Raises:
        ConfigError: ``config.cuda_graphs`` is True and ``device`` is not a CUDA device.
    """
    if config.cuda_graphs is True and device.type != "cuda":
        raise ConfigError(
            f"--cuda_graphs captures the decoder step as a CUDA graph, but the model runs on {device} "
            f"(--device {config.device}); drop --cuda_graphs, or pass --device cuda on a machine with a GPU"
        )


def use_cuda_graphs(config: PredictConfig, device, model) -> bool:
    """Whether the decoder step is replayed from a CUDA graph (see :class:`PredictConfig`).

    Raises:
        ConfigError: ``config.cuda_graphs`` is True but ``device`` is not CUDA, or the model's
            experts run the per-expert loop (which syncs with the host and cannot be captured).
    """
    from genoforge.inference.stream import check_capturable

    if config.cuda_graphs is False:
        return False
    check_cuda_graphs(config, device)
    if device.type != "cuda":
        return False
    try:
        check_capturable(model)
    except ConfigError:
        if config.cuda_graphs:
            raise
        return False
    return True


def describe_window(config: PredictConfig, record: TrainingWindow | None, model_dir: str | Path) -> str:
    """Where ``config``'s window came from, for a stderr line (``config`` as given, unresolved)."""
    settled = config.for_model(record)
    window = f"{settled.resolved_window_size:,} bp windows, overlap {settled.resolved_overlap:,} bp"
    if config.window_size is not None:
        return f"{window} (--window_size given)"
    if record is None:
        return (f"{window} (default: {Path(model_dir) / TRAINING_WINDOW_FILE} not found, so the model "
                "records no training window; pass --window_size to match its bake)")
    overlap = "given" if config.overlap is not None else (
        "recorded" if record.overlap is not None else "a quarter of the window")
    return (f"{window} (window recorded by tune in {Path(model_dir) / TRAINING_WINDOW_FILE}; "
            f"overlap {overlap})")


class Predictor:
    """A loaded model ready to annotate windows (shared by predict and training-time validation).

    Build with :meth:`from_dir`, or wrap a model and tokenizer already in memory
    (``training_window``: the model's record, if known, for the default window).
    ``self.config`` is the resolved configuration (window size settled); ``self.max_new_tokens``
    the token cap in force.
    """

    def __init__(self, model, tokenizer, config: PredictConfig | None = None,
                 training_window: TrainingWindow | None = None):
        self.training_window = training_window
        self.config = (config or PredictConfig()).for_model(training_window)
        self.config.validate()
        self.max_new_tokens = self.config.max_new_tokens
        if self.max_new_tokens is None:
            self.max_new_tokens = default_max_new_tokens(self.config.resolved_window_size,
                                                         model.config.decoder_window_size)
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.device = next(model.parameters()).device
        if tokenizer.vocab_size > model.config.vocab_size:
            raise TokenizerError(
                f"the tokenizer has {tokenizer.vocab_size} tokens but the model only "
                f"{model.config.vocab_size} embeddings; run `genoforge tokens resize` on the model"
            )
        self.grammars = GrammarCache(tokenizer, self.config.max_records, self.config.max_exons)
        cuda = self.device.type == "cuda"
        self.batch_size = default_batch_size(self.config, self.device)
        self.length_multiple = CUDA_LENGTH_MULTIPLE if cuda else 1
        self.step = None  # decode_stream's default row_step, unless CUDA graphs are used
        if use_cuda_graphs(self.config, self.device, self.model):
            from genoforge.inference.stream import GraphedRowStep

            self.step = GraphedRowStep(fallback=self.config.cuda_graphs is None)
        self.target_tokens = 0  # target tokens kept (after <bos>), all windows so far

    @classmethod
    def from_dir(cls, model_dir: str | Path, config: PredictConfig | None = None,
                 training_window: TrainingWindow | None = None) -> Predictor:
        """Load a model directory (config.json, weights, tokenizer) onto the configured device.

        ``training_window``: the directory's record when the caller already read it; otherwise
        it is read here when ``config`` leaves the window size open.

        Raises:
            CheckpointError: the model directory (or its training-window record) is unreadable.
        """
        config = config or PredictConfig()
        record = training_window
        if record is None and config.window_size is None:
            record = read_training_window(model_dir)
        config = config.for_model(record)
        config.validate()
        device = resolve_device(config.device)
        check_cuda_graphs(config, device)  # before loading the weights
        model, tokenizer = load_for_inference(model_dir, config, device)
        return cls(model, tokenizer, config, training_window=record)

    def stream(
        self, windows: Iterable[GenomeWindow]
    ) -> Iterator[tuple[GenomeWindow, WindowPrediction | None]]:
        """Decode windows with continuous batching (:mod:`genoforge.inference.stream`).

        Yields ``(window, prediction)`` in completion order, not input order; windows without an
        A/C/G/T base are not decoded and come back with None. Windows are read from ``windows``
        lazily, ``batch_size`` at a time.
        """
        skipped: deque[GenomeWindow] = deque()

        def decodable() -> Iterator[tuple[GenomeWindow, list[int], int]]:
            for window in windows:
                if _HAS_BASE.search(window.sequence):
                    yield window, self.tokenizer.encode_dna(window.sequence), window.length
                else:  # kept without its bases: a long N run must not pile up sequence
                    skipped.append(dataclasses.replace(window, sequence=""))

        try:
            for window, prediction in decode_stream(
                self.model, self.tokenizer, decodable(), batch_size=self.batch_size,
                max_new_tokens=self.max_new_tokens, grammars=self.grammars,
                length_multiple=self.length_multiple, pad_encoder_rows=self.device.type == "cuda",
                step=self.step,
            ):
                while skipped:
                    yield skipped.popleft(), None
                self.target_tokens += len(prediction.token_ids) - 1
                yield window, prediction
            while skipped:
                yield skipped.popleft(), None
        finally:
            if self.step is not None:
                self.step.release()  # the graph's buffers hold this stream's decode cache

    def annotate(self, windows: Sequence[GenomeWindow]) -> list[WindowAnnotation]:
        """The decoded annotation of each window, in input order (empty for all-N windows)."""
        position = {id(window): i for i, window in enumerate(windows)}
        out = [WindowAnnotation()] * len(windows)
        for window, prediction in self.stream(windows):
            if prediction is not None:
                out[position[id(window)]] = prediction.annotation
        return out


def _file_stamp(path: Path) -> str | None:
    """``path`` with its size and modification time (what tells a changed file), or None."""
    try:
        stat = path.stat()
    except OSError:
        return None
    seconds, nanoseconds = divmod(stat.st_mtime_ns, 10**9)
    when = datetime.fromtimestamp(seconds).replace(microsecond=nanoseconds // 1000)
    return f"{path} ({stat.st_size:,} bytes, modified {when.isoformat(timespec='microseconds')})"


def run_record(model_dir: str | Path, genome: str | Path, config: PredictConfig, *, decoder: str,
               device, batch_size: int, predictor: Predictor | None = None) -> dict[str, Any]:
    """What a partial output's record must match for ``--resume`` to continue it.

    Keys are the names a user knows (a flag, ``genome FASTA``), so a mismatch names itself. The
    genome is told by path, size and modification time (a hash would read a whole genome again);
    the model by its directory and the size and time of the files that shape the output.
    ``config`` is settled (window resolved); ``device`` a torch device. The generative decoder's
    token cap and CUDA-graph use come from its ``predictor``: without one they are left out (the
    check before the model is loaded, :func:`~genoforge.inference.gff_writer.check_resumable`).
    """
    model_dir = Path(model_dir).resolve()
    files = ["config.json", "model.safetensors", "tokenizer.json"]
    if decoder == "hmm":
        from genoforge.genes.structure_set import GENE_STRUCTURE_FILE

        files.append(GENE_STRUCTURE_FILE)
        settings = {"--species": config.species, "--taxon": config.taxon,
                    "--emission_weight": config.emission_weight, "--signal_weight": config.signal_weight,
                    "--head_signal_weight": config.head_signal_weight}
    else:
        settings = {"max_records": config.max_records, "max_exons": config.max_exons}
        if predictor is not None:
            settings |= {"--max_new_tokens": predictor.max_new_tokens, "--cuda_graphs": predictor.step is not None}
    return {
        "genoforge version": __version__,
        "genome FASTA": _file_stamp(Path(genome).resolve()),
        "model directory": str(model_dir),
        **{f"model file {name}": _file_stamp(model_dir / name) for name in files},
        "--decoder": decoder,
        "--window_size": config.resolved_window_size,
        "--overlap": config.resolved_overlap,
        "--seqids": None if config.seqids is None else ",".join(sorted(set(config.seqids))),  # a set
        "--batch_size": batch_size,
        "--device": str(device),
        "dtype": resolved_dtype(config, device),
        **settings,
    }


def open_output(output: str | Path, model_dir: str | Path, regions: Sequence[tuple[str, int]],
                comments: Sequence[str], run: dict[str, Any], resume: bool):
    """A predict run's resumable GFF3 writer, header for ``regions`` included: a context manager
    (:func:`~genoforge.inference.gff_writer.open_partial_gff`)."""
    from genoforge.inference.gff_writer import header_lines, open_partial_gff

    header = header_lines(Path(model_dir).resolve().name, model_dir, regions, comments)
    total = sum(1 for _, length in regions if length > 0)
    return open_partial_gff(output, header, run, total, resume=resume)


def remaining_regions(regions: Sequence[tuple[str, int]], done: Iterable[str]) -> list[tuple[str, int]]:
    """The contigs (with bases) of ``regions`` not in ``done``, in order."""
    done = set(done)
    return [(seqid, length) for seqid, length in regions if length > 0 and seqid not in done]


def collect_counts(result: PredictResult, writer) -> None:
    """The whole output's counts, from a :class:`~genoforge.inference.gff_writer.PartialGffWriter`."""
    result.contigs, result.bases = len(writer.done), writer.bases
    result.resumed_contigs, result.resumed_bases = writer.resumed_contigs, writer.resumed_bases
    result.genes, result.transcripts, result.features = writer.genes, writer.transcripts, writer.features


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
