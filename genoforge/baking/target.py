"""The target: one window's annotation <-> target tokens <-> target text (docs/target-format.md).

STUB: the API is final, the bodies are being filled in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from genoforge.baking.genes import Annotation


@dataclass(frozen=True, slots=True)
class WindowTranscript:
    """A transcript in window coordinates (0-based half-open, relative to the window start).

    ``gene`` is the gene index within the window (0, 1, ... in order of first appearance;
    isoforms share it). ``partial`` is one of ``. < > <>`` (cut at the left/right/both edges).
    ``cds`` is the clipped coding span or None; ``cds_phase`` the phase at its 5' end.
    """

    strand: str
    biotype: str
    gene: int
    partial: str
    exons: tuple[tuple[int, int], ...]
    cds: tuple[int, int] | None
    cds_phase: int = 0

    @property
    def start(self) -> int:
        return self.exons[0][0]

    @property
    def end(self) -> int:
        return self.exons[-1][1]


@dataclass(frozen=True, slots=True)
class WindowFeature:
    """A stand-alone feature in window coordinates."""

    type: str
    strand: str
    start: int
    end: int
    partial: str


WindowRecord = WindowTranscript | WindowFeature


@dataclass(frozen=True, slots=True)
class WindowAnnotation:
    """The records of one window in canonical order."""

    records: tuple[WindowRecord, ...]


def window_annotation(
    annotation: Annotation, seqid: str, window_start: int, window_end: int
) -> WindowAnnotation:
    """The annotation of ``[window_start, window_end)`` on ``seqid``, clipped and canonical."""
    raise NotImplementedError


def encode_target(wa: WindowAnnotation) -> list[str]:
    """Target tokens of a window, ``<bos>`` ... ``<eos>`` included."""
    raise NotImplementedError


def parse_target_tokens(tokens: Sequence[str], window_size: int | None = None) -> WindowAnnotation:
    """Inverse of :func:`encode_target`; raises TargetParseError naming the token position."""
    raise NotImplementedError


def parse_target_text(text: str, window_size: int | None = None) -> WindowAnnotation:
    """Parse the text form (tokens joined with no spaces)."""
    raise NotImplementedError


def target_text(tokens: Sequence[str]) -> str:
    """The text form of target tokens: joined with no spaces (what the tokenizer decodes to)."""
    return "".join(tokens)


def to_gff3_rows(
    wa: WindowAnnotation,
    seqid: str,
    window_start: int,
    source: str = "genoforge",
    id_prefix: str | None = None,
) -> list[str]:
    """GFF3 feature lines (no trailing newline) of a window annotation, in genome coordinates."""
    raise NotImplementedError
