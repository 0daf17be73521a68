"""Decode dumped per-base tracks with the structure decoder and score them, for decoder settings.

    python benchmarks/decode_tracks.py TRACKS.npz GENE_STRUCTURE.json REGIONS_DIR
        [--emission_weight W ...] [--signal_weight W ...] [--head_signal_weight W ...]   (default: predict's)
        [--content_weight W ...]
        [--species fly_chr2R ...] [--out DIR]

TRACKS.npz comes from benchmarks/base_tracks.py (the GPU run writes it; TRACKS.signals.npz beside
it, where present, holds the head's signal log-odds), GENE_STRUCTURE.json from
the model directory, REGIONS_DIR from ``quality.py --region_only`` (``<species>/region.fa`` and
``region.reference.gff3``). Every combination of the weights is decoded per species with that
species' gene-structure parameters and scored with ``genoforge eval``'s scorer; one JSON line per
(species, setting) goes to stdout. ``--out DIR`` keeps the GFF3s (``DIR/<species>.gff3`` for the
first setting, the layout ``quality.py --predictions`` reads).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from base_tracks import dequantise, signals_path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tracks", type=Path)
    parser.add_argument("structure", type=Path)
    parser.add_argument("regions", type=Path)
    parser.add_argument("--emission_weight", type=float, nargs="+", default=None)
    parser.add_argument("--signal_weight", type=float, nargs="+", default=None)
    parser.add_argument("--head_signal_weight", type=float, nargs="+", default=None)
    parser.add_argument("--content_weight", type=float, nargs="+", default=None,
                        help="coding-content chain weights (default: predict's)")
    parser.add_argument("--isoforms", type=int, nargs="+", default=[1], help="transcripts per gene at most")
    parser.add_argument("--isoform_max_loss", type=float, nargs="+", default=[None],
                        help="nats below the best parse an isoform may score (default: the decoder's)")
    parser.add_argument("--species", nargs="+", default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    from genoforge.inference.predict_config import PredictConfig

    args.emission_weight = args.emission_weight or [PredictConfig.emission_weight]
    args.signal_weight = args.signal_weight or [PredictConfig.signal_weight]
    args.head_signal_weight = args.head_signal_weight or [PredictConfig.head_signal_weight]
    args.content_weight = args.content_weight or [PredictConfig.content_weight]

    from genoforge.evaluation.compare import evaluate
    from genoforge.genes.structure_set import GeneStructureSet
    from genoforge.inference.gff_writer import open_gff
    from genoforge.inference.structure_predict import decode_contig

    data = np.load(args.tracks)
    signal_file = signals_path(args.tracks)
    signal_data = np.load(signal_file) if signal_file.is_file() else data
    contigs: dict[str, list[str]] = {}
    for key in data.files:
        species, seqid, kind = key.rsplit("/", 2)
        if kind == "track":
            contigs.setdefault(species, []).append(seqid)
    structures = GeneStructureSet.load(args.structure)
    for species in sorted(contigs):
        if args.species and species not in args.species:
            continue
        params = structures.decoder_params(species=species) if species in structures.counts else structures.decoder_params()
        region = args.regions / species
        settings = itertools.product(args.emission_weight, args.signal_weight, args.head_signal_weight,
                                     args.content_weight, args.isoforms, args.isoform_max_loss)
        for number, (ew, sw, hw, cw, iso, loss) in enumerate(settings):
            started = time.perf_counter()
            with tempfile.TemporaryDirectory() as tmp:
                output = Path(tmp) / "pred.gff3"
                if args.out is not None and number == 0:
                    args.out.mkdir(parents=True, exist_ok=True)
                    output = args.out / f"{species}.gff3"
                lengths = [(s, int(data[f"{species}/{s}/sequence"].size)) for s in contigs[species]]
                with open_gff(output, "tracks", None, lengths) as writer:
                    for seqid in contigs[species]:
                        track = dequantise(data[f"{species}/{seqid}/track"])
                        if f"{species}/{seqid}/signals" in signal_data.files:
                            signals = signal_data[f"{species}/{seqid}/signals"].astype(np.float32)
                            track = np.concatenate([track, signals], axis=1)
                        codes = data[f"{species}/{seqid}/sequence"]
                        writer.write_contig(decode_contig(codes, track, params, seqid=seqid,
                                                          emission_weight=ew, signal_weight=sw,
                                                          head_signal_weight=hw, content_weight=cw, isoforms=iso,
                                                          isoform_max_loss=loss))
                seconds = time.perf_counter() - started
                result = evaluate(region / "region.reference.gff3", output, region / "region.fa")
                scores = {level: result.levels[level].f1 for level in result.levels}
                transcript = result.levels["transcript"]
                print(json.dumps({"species": species, "emission_weight": ew, "signal_weight": sw,
                                  "head_signal_weight": hw, "content_weight": cw, "isoforms": iso, "isoform_max_loss": loss,
                                  "transcript_sensitivity": transcript.sensitivity,
                                  "transcript_precision": transcript.precision,
                                  "isoforms_found": None if result.isoforms is None else result.isoforms.to_dict(),
                                  "genes": writer.genes, "seconds": round(seconds, 1), "f1": scores}), flush=True)


if __name__ == "__main__":
    main()
