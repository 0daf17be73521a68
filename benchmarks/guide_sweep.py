"""Predict held-out regions with the generative decoder at several head-guidance weights, loading
the model once (``genoforge predict --decoder generative --guide_weight W`` for each W).

    python benchmarks/guide_sweep.py MODEL_DIR --regions .bench/gpu/regions \\
        --species fly_chr2R,athal_snap_segments --weights 0,0.3,1 --out OUTDIR

With ``--beams 1,4`` every weight also runs with beam 4 (into w<W>b4/); with ``--sources
head,hmm`` every run also builds its guide from the HMM's parse of each window (``--guide_from
hmm``, into hmm-w<W>[b<N>]/).

Writes OUTDIR/w<W>/<species>.gff3 and OUTDIR/sweep.json (per run: weight, beam, species, bases,
seconds, bp/s, genes, transcripts, truncated windows, device). Score them here with
``genoforge eval REF PRED --genome REGION.fa`` or ``benchmarks/quality.py --predictions``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from genoforge.inference.predict import predict_genome
from genoforge.inference.predict_config import PredictConfig
from genoforge.inference.predictor import Predictor, load_anchor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir")
    parser.add_argument("--regions", required=True, help="one folder per species holding region.fa")
    parser.add_argument("--species", required=True, help="comma-separated species folders")
    parser.add_argument("--weights", default="0,0.3,1", help="comma-separated guide weights")
    parser.add_argument("--beams", default="1", help="comma-separated beam widths (each with every weight)")
    parser.add_argument("--sources", default="head", help="comma-separated guide sources (head, hmm)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--max_new_tokens", type=int, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no_signal_grammar", action="store_true")
    args = parser.parse_args()

    config = PredictConfig(decoder="generative", batch_size=args.batch_size, device=args.device,
                           max_new_tokens=args.max_new_tokens, signal_grammar=not args.no_signal_grammar)
    t0 = time.perf_counter()
    predictor = Predictor.from_dir(args.model_dir, config)
    print(f"loaded in {time.perf_counter() - t0:.1f} s on {predictor.device}", flush=True)
    out = Path(args.out)
    rows = []
    runs = [(source, float(w), int(b)) for source in args.sources.split(",") for b in args.beams.split(",")
            for w in args.weights.split(",")]
    done = set()
    for source, weight, beam in runs:
        if weight == 0 and source != "head":
            source = "head"  # no guide: the source does not matter
        name = ("hmm-" if source == "hmm" else "") + f"w{weight:g}" + (f"b{beam}" if beam > 1 else "")
        if name in done:
            continue
        done.add(name)
        predictor.config = dataclasses.replace(predictor.config, guide_weight=weight, beam=beam, guide_from=source)
        predictor.anchor = load_anchor(args.model_dir, predictor.config)
        for species in args.species.split(","):
            fasta = Path(args.regions) / species / "region.fa"
            target = out / name / f"{species}.gff3"
            target.parent.mkdir(parents=True, exist_ok=True)
            result = predict_genome(args.model_dir, fasta, target, predictor=predictor)
            row = {"source": source, "weight": weight, "beam": beam, "species": species, "bases": result.bases, "seconds": round(result.seconds, 2),
                   "bp_per_second": round(result.bp_per_second), "genes": result.genes,
                   "transcripts": result.transcripts, "windows": result.windows,
                   "truncated_windows": result.truncated_windows, "device": str(predictor.device)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    (out / "sweep.json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
