"""Settings of ``genoforge predict`` (:class:`PredictConfig`, the one source of its defaults).

Imports no torch: the CLI reads these defaults to render ``predict --help``
(tests/cli/test_cli_startup.py, tests/cli/test_cli_defaults.py).

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
from dataclasses import dataclass
from pathlib import Path

from genoforge.errors import ConfigError
from genoforge.inference.windows import check_tiling
from genoforge.model.training_window import TRAINING_WINDOW_FILE, TrainingWindow

DECODERS = ("auto", "hmm", "generative")
GUIDE_SOURCES = ("head", "hmm")  # what head guidance reads (PredictConfig.guide_from)
DEFAULT_WINDOW_SIZE = 10_000  # the recipe's bake --window_size; for models that record no window
# The grammar's own limits; generous next to real windows (a 10 kb yeast window holds ~5 genes).
DEFAULT_MAX_RECORDS = 512
DEFAULT_MAX_EXONS = 1000
# max_new_tokens by default: one target token per window base, rounded up to a multiple of
# MAX_NEW_TOKENS_MULTIPLE, at least MIN_MAX_NEW_TOKENS. The densest windows of ../shared/data (a
# fly chr2R locus with many isoforms) hold 4,970 target tokens in 5 kb, 7,670 in 10 kb, 8,750 in
# 15 kb and 9,322 in 20 kb (bake tiling, a quarter overlap): about one token per bp at most, less
# in longer windows. The grammar's own caps (DEFAULT_MAX_RECORDS records of up to
# DEFAULT_MAX_EXONS exons) only end a window after millions of tokens, so this cap is what bounds
# a model that will not stop.
MAX_NEW_TOKENS_MULTIPLE = 1024
MIN_MAX_NEW_TOKENS = 8192
# A model without a decoder look-back window keeps every position in its decode cache (ring
# width = max_new_tokens + 1, read at every step); stream.check_max_new_tokens refuses more.
WINDOWLESS_MAX_NEW_TOKENS = 4096


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
    # generative: the grammar reads each window's bases (canonical splice sites, complete ORFs)
    signal_grammar: bool = True
    # generative: weight of the per-base head's guide terms (genoforge.inference.head_guide)
    guide_weight: float = 0.0
    # generative: what the guide terms are built from: the head's raw view, or the HMM's parse
    # of each window (genoforge.inference.hmm_anchor; needs gene_structure.json)
    guide_from: str = "head"
    beam: int = 1  # generative: hypotheses kept per window (genoforge.inference.beam); 1 = greedy
    species: str | None = None  # hmm: gene-structure parameters of this baked species
    taxon: str | None = None  # hmm: ... of this taxon's baked species
    # hmm: scale of the per-base head's scaled log-likelihoods and of the signal PWMs' log-odds;
    # chosen on the shared data's held-out regions (benchmarks/decode_tracks.py grid, RESULTS.md)
    emission_weight: float = 0.05
    signal_weight: float = 3.0
    head_signal_weight: float = 0.5  # ... and of the head's own site log-odds (models with them)
    # hmm: weight of the coding-content chain's log-odds at CDS bases (genoforge.genes.coding_content)
    content_weight: float = 1.0

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
        if not self.content_weight >= 0:
            raise ConfigError(f"--content_weight must be >= 0, got {self.content_weight}")
        if self.beam < 1:
            raise ConfigError(f"--beam must be >= 1, got {self.beam}")
        if not self.guide_weight >= 0:
            raise ConfigError(f"--guide_weight must be >= 0, got {self.guide_weight}")
        if self.guide_from not in GUIDE_SOURCES:
            raise ConfigError(f"--guide_from {self.guide_from!r}: use {', '.join(GUIDE_SOURCES)}")

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

