"""Intron hints: extrinsic evidence appended to a window's encoder input (``--hint_ratio``).

Which windows. With ``hint_ratio`` r > 0, a window carries hints when
``unit_hash("hints", seed, species, seqid, window_start) < r``: a fixed, seed-determined fraction
of windows, the same whatever the worker counts. Other windows are DNA only. ``r = 0`` (the
default) gives no hints and no ``[HIT]`` anywhere.

Format. A hinted window's input is its DNA tokens, then ``[HIT]``, then one record of 8 tokens
per distinct intron, in canonical order (start, end, strand)::

    intron_hc  STRAND  S_HI : S_LO  E_HI : E_LO

``STRAND`` is ``+`` or ``-`` (the transcript's strand); ``S``/``E`` are the intron's window-relative
0-based half-open start and end written as base-1000 coordinates like the target's (``hi : lo``,
value = hi * 1000 + lo). A hinted window with no intron still gets ``[HIT]`` (the model learns
that "hints on, none found" means no spliced gene). ``intron_lc`` (low-confidence evidence) is in
the inventory for hints from external aligners; the bake never writes it, since introns taken
from the reference annotation are certain.

Which introns. For each transcript of the window annotation, the gaps between its consecutive
exons (both exons at least partly in the window, so the intron lies wholly inside it). An intron
therefore never spans two genes. Isoforms sharing an intron give one record.
"""

from __future__ import annotations

from collections.abc import Iterable

from genoforge.genes import inventory
from genoforge.genes.split import unit_hash

INTRON_HINT = "intron_hc"
HINT_RECORD_LENGTH = 8


def coordinate_tokens(value: int) -> list[str]:
    """``value`` as the fixed-shape base-1000 pair ``hi : lo``."""
    if not 0 <= value <= inventory.MAX_NUMBER * 1000 + inventory.MAX_NUMBER:
        raise ValueError(f"coordinate {value} does not fit two base-1000 digits")
    high, low = divmod(value, 1000)
    return [str(high), inventory.COORD_SEP, str(low)]


def wants_hints(seed: int, species: str, seqid: str, window_start: int, hint_ratio: float) -> bool:
    """Whether this window carries hints (deterministic in its arguments)."""
    if hint_ratio <= 0.0:
        return False
    return hint_ratio >= 1.0 or unit_hash("hints", seed, species, seqid, window_start) < hint_ratio


def window_introns(records: Iterable[object]) -> list[tuple[int, int, str]]:
    """Distinct ``(start, end, strand)`` introns of the window's transcripts, sorted.

    ``records`` are the window annotation's records; stand-alone features (no ``exons``) give none.
    """
    introns: set[tuple[int, int, str]] = set()
    for record in records:
        exons = getattr(record, "exons", None)
        if not exons:
            continue
        strand = record.strand  # type: ignore[attr-defined]
        for (_, left_end), (right_start, _) in zip(exons, exons[1:]):
            if right_start > left_end:
                introns.add((left_end, right_start, strand))
    return sorted(introns)


def hint_tokens(records: Iterable[object]) -> list[str]:
    """``[HIT]`` followed by the intron hint records of a window (format above)."""
    tokens = [inventory.HIT]
    for start, end, strand in window_introns(records):
        tokens.append(INTRON_HINT)
        tokens.append(strand)
        tokens += coordinate_tokens(start)
        tokens += coordinate_tokens(end)
    return tokens
