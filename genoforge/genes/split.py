"""Training / validation split: one held-out contiguous region per chromosome.

For a chromosome (any FASTA record) of length ``L`` the validation region has length
``V = round(val_fraction * L)`` and starts at ``u * (L - V + 1)`` rounded down, where ``u`` is a
uniform number in [0, 1) drawn from sha256 of ``(seed, species, seqid)`` (:func:`unit_hash`). The
choice therefore depends only on the seed and the names, never on worker counts or file order.
``V == 0`` (a tiny chromosome or ``val_fraction == 0``) means no validation region.

Everything outside the region is training: at most two training segments, ``[0, vs)`` and
``[ve, L)``. Windows are tiled inside each segment separately (:mod:`genoforge.baking.windows`),
so no training window overlaps the validation region, and validation windows are tiled with
exactly the same rule, in the same seqid's coordinates.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

TRAINING = "training"
VALIDATION = "validation"
SPLITS = (TRAINING, VALIDATION)


def unit_hash(*parts: object) -> float:
    """A deterministic uniform number in [0, 1) from ``parts`` (stable across runs and machines).

    Python's ``hash()`` is salted per process, so it cannot be used for anything that must be
    byte-identical between bakes.
    """
    text = "\x1f".join(str(part) for part in parts).encode("utf-8")
    value = int.from_bytes(hashlib.sha256(text).digest()[:8], "big")
    return value / 2**64


@dataclass(frozen=True)
class Segment:
    """A half-open stretch ``[start, end)`` of one chromosome assigned to ``split``."""

    split: str
    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start


def validation_region(
    species: str, seqid: str, length: int, val_fraction: float, seed: int
) -> tuple[int, int] | None:
    """The held-out ``(start, end)`` of one chromosome, or None when it is empty."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    held_out = round(val_fraction * length)
    if held_out <= 0:
        return None
    start = int(unit_hash("validation-region", seed, species, seqid) * (length - held_out + 1))
    return start, start + held_out


def split_chromosome(species: str, seqid: str, length: int, val_fraction: float, seed: int) -> list[Segment]:
    """The chromosome cut into training and validation segments, in coordinate order.

    Empty segments are left out; the segments are disjoint and cover ``[0, length)``.
    """
    region = validation_region(species, seqid, length, val_fraction, seed)
    if region is None:
        return [Segment(TRAINING, 0, length)] if length > 0 else []
    start, end = region
    segments = [Segment(TRAINING, 0, start), Segment(VALIDATION, start, end), Segment(TRAINING, end, length)]
    return [segment for segment in segments if segment.length > 0]
