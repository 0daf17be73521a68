"""Windows for prediction: overlapping tiles over every contig, streamed from the FASTA.

Tiling (:func:`tile_contig`), for a contig of length L, window size W and overlap O (O <= W / 2):

- L <= W: one window ``[0, L)`` (any length >= 1: short contigs are predicted, not skipped);
- otherwise starts ``0, S, 2S, ...`` with stride ``S = W - O`` while the window ends before L,
  then one last window aligned to end exactly at L (it overlaps its neighbour by at least O).
  Every window is then exactly W long, as in training (``genoforge.baking.windows.tile`` lays
  windows the same way, but drops short scraps, which prediction must not).

Because O <= W / 2, neighbouring windows overlap and a base lies in at most two windows, except
near the contig end, where the aligned last window may reach back into the window before its
neighbour; stitching (:mod:`genoforge.inference.stitch`) only ever relates consecutive windows.

Streaming (:func:`stream_windows`): the FASTA is read line by line and only the bases from the
current window's start onwards are held, so memory is bounded by the window size and the line
length, not by the contig (a human chromosome never sits in memory whole). The caller passes the
contig lengths (:func:`genoforge.genes.fasta.fasta_lengths`, a first validating pass), which fix
the tiling before the bases arrive.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from genoforge.errors import ConfigError
from genoforge.io import open_text


@dataclass(frozen=True, slots=True)
class GenomeWindow:
    """One window of one contig: ``sequence`` is the bases of ``[start, end)`` as written.

    ``index`` is the window's position in its contig's tiling and ``n_windows`` the tiling's
    size, so a consumer knows when a contig is complete.
    """

    seqid: str
    contig_length: int
    index: int
    n_windows: int
    start: int
    end: int
    sequence: str

    @property
    def length(self) -> int:
        return self.end - self.start


def check_tiling(window_size: int, overlap: int) -> None:
    """Raise ConfigError unless ``1 <= window_size <= 999,999`` and ``0 <= overlap <= W // 2``."""
    from genoforge.genes.window_models import MAX_COORD

    if not 1 <= window_size <= MAX_COORD:
        raise ConfigError(
            f"--window_size {window_size} is outside 1..{MAX_COORD:,} (the most a two-token "
            "target coordinate can address); use the window size the model was baked with"
        )
    if not 0 <= overlap <= window_size // 2:
        raise ConfigError(
            f"--overlap {overlap} must be in 0..{window_size // 2} (at most half of --window_size "
            f"{window_size}, so that only neighbouring windows overlap)"
        )


def tile_contig(length: int, window_size: int, overlap: int) -> list[tuple[int, int]]:
    """Window ``(start, end)`` pairs covering ``[0, length)`` (rules in the module docstring)."""
    check_tiling(window_size, overlap)
    if length <= 0:
        return []
    if length <= window_size:
        return [(0, length)]
    stride = window_size - overlap
    windows = []
    start = 0
    while start + window_size < length:
        windows.append((start, start + window_size))
        start += stride
    windows.append((length - window_size, length))
    return windows


def stream_windows(
    path: str | Path,
    lengths: Mapping[str, int],
    window_size: int,
    overlap: int,
    seqids: set[str] | frozenset[str] | None = None,
) -> Iterator[GenomeWindow]:
    """Yield the windows of every contig of a FASTA file, in file order, one at a time.

    Args:
        path: the FASTA (plain, gzip or bgzip); it must already have passed
            :func:`~genoforge.genes.fasta.fasta_lengths`, which validates it.
        lengths: seqid -> length, from that pass.
        window_size, overlap: the tiling (module docstring).
        seqids: predict only these contigs (None: all).
    """
    tilings = {
        seqid: tile_contig(length, window_size, overlap)
        for seqid, length in lengths.items()
        if seqids is None or seqid in seqids
    }
    with open_text(path) as handle:
        seqid: str | None = None
        tiling: list[tuple[int, int]] = []
        next_window = 0
        buffer: list[str] = []  # bases from buffer_start on, as lines
        buffered = 0
        buffer_start = 0
        for raw in handle:
            line = raw.strip()
            if not line:
                continue
            if line[0] == ">":
                seqid = line[1:].split()[0]
                tiling = tilings.get(seqid, [])
                next_window, buffer, buffered, buffer_start = 0, [], 0, 0
                continue
            if next_window >= len(tiling):
                continue  # contig not wanted, or all its windows are out
            buffer.append(line)
            buffered += len(line)
            # Emit every window the buffer now covers; keep only the bases later windows need.
            while next_window < len(tiling) and buffer_start + buffered >= tiling[next_window][1]:
                start, end = tiling[next_window]
                joined = "".join(buffer)
                assert seqid is not None
                yield GenomeWindow(
                    seqid=seqid,
                    contig_length=lengths[seqid],
                    index=next_window,
                    n_windows=len(tiling),
                    start=start,
                    end=end,
                    sequence=joined[start - buffer_start : end - buffer_start],
                )
                next_window += 1
                keep_from = tiling[next_window][0] if next_window < len(tiling) else buffer_start + buffered
                joined = joined[keep_from - buffer_start :]
                buffer, buffered, buffer_start = [joined], len(joined), keep_from
