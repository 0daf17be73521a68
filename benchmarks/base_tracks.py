"""Dump a model's per-base class log-probabilities on FASTA files, quantised, for offline decoding.

    python benchmarks/base_tracks.py MODEL_DIR OUT.npz REGION.fa [REGION.fa ...] [--device cuda]

Each contig of each FASTA becomes two arrays in OUT.npz, ``<name>/<seqid>/track`` (uint8: the
class log-probability in steps of ``STEP`` nats from 0 down to -255 * STEP, i.e. ``-q * STEP``) and
``<name>/<seqid>/sequence`` (uint8 base codes), where ``<name>`` is the FASTA's parent folder; and
where the head has signal outputs, ``<name>/<seqid>/signals`` (float16 [L, 8] log-odds) in a second
file beside it, OUT.signals.npz (each file then stays under the device's 16 MiB per returned file
for the shared regions).
The GPU run (benchmarks/structure_gpu.sh) writes it so the structure decoder's settings can be
tuned on a CPU without the weights: ``benchmarks/decode_tracks.py`` reads it back.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

STEP = 0.1  # nats per quantisation step: log-probabilities below -25.5 are clipped there


def quantise(log_probs: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(-log_probs / STEP), 0, 255).astype(np.uint8)


def dequantise(track: np.ndarray) -> np.ndarray:
    """float32 log-probabilities, renormalised per base (quantisation breaks the sum slightly)."""
    log_probs = -track.astype(np.float32) * STEP
    log_probs -= np.logaddexp.reduce(log_probs, axis=1, keepdims=True)
    return log_probs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("fasta", type=Path, nargs="+")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch_size", type=int, default=32)
    args = parser.parse_args(argv)

    from genoforge.genes.classes import N_CLASSES, encode_bases
    from genoforge.genes.fasta import fasta_lengths
    from genoforge.inference.base_track import BaseTrackPredictor
    from genoforge.inference.windows import stream_windows
    from genoforge.model.io import load_model
    from genoforge.model.training_window import read_training_window
    from genoforge.tokenizer.core import GenoTokenizer

    record = read_training_window(args.model)
    window = record.window_size if record is not None else 10_000
    import torch

    dtype = torch.bfloat16 if args.device.startswith("cuda") else None
    model = load_model(args.model, device=args.device, dtype=dtype)
    predictor = BaseTrackPredictor(model, GenoTokenizer.load(args.model), args.batch_size)
    arrays: dict[str, np.ndarray] = {}
    signals: dict[str, np.ndarray] = {}
    for fasta in args.fasta:
        lengths = fasta_lengths(fasta)
        for seqid, sequence, track in predictor.contig_tracks(stream_windows(fasta, lengths, window, window // 4)):
            key = f"{fasta.parent.name}/{seqid}"
            arrays[f"{key}/track"] = quantise(track[:, :N_CLASSES])
            if track.shape[1] > N_CLASSES:
                signals[f"{key}/signals"] = track[:, N_CLASSES:].astype(np.float16)
            arrays[f"{key}/sequence"] = encode_bases(sequence)
        print(f"{fasta}: {len(lengths)} contigs, {sum(lengths.values()):,} bp", flush=True)
    np.savez_compressed(args.out, **arrays)
    if signals:
        np.savez_compressed(signals_path(args.out), **signals)


def signals_path(tracks: Path) -> Path:
    """Where the signal log-odds of the tracks file ``tracks`` are (X.npz -> X.signals.npz)."""
    return tracks.with_name(tracks.name.removesuffix(".npz") + ".signals.npz")


if __name__ == "__main__":
    main()
