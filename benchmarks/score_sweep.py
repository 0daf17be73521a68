"""Score a guide_sweep.py output folder against the held-out references: one row per run folder
(w<W>[b<N>]/, hmm/) and species, with genoforge eval's CDS-nucleotide, CDS-exon, transcript and
gene F1 and benchmarks/gene_checks.py's ORF and boundary figures.

    python benchmarks/score_sweep.py PRED_DIR --workdir .bench/quality-peers [--json OUT.json]

PRED_DIR holds folders of <species>.gff3; the references are WORKDIR/<species>/region.reference.gff3
with region.fa beside them (benchmarks/quality.py --region_only writes that layout).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gene_checks import structure_report  # noqa: E402

from genoforge.evaluation.compare import evaluate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pred_dir")
    parser.add_argument("--workdir", default=".bench/quality-peers")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    rows = []
    for run in sorted(p for p in Path(args.pred_dir).iterdir() if p.is_dir()):
        for prediction in sorted(run.glob("*.gff3")):
            species = prediction.stem
            reference = Path(args.workdir) / species / "region.reference.gff3"
            fasta = Path(args.workdir) / species / "region.fa"
            if not reference.is_file():
                continue
            result = evaluate(reference, prediction, fasta)
            levels = {level: None if score.f1 is None else round(100 * score.f1, 1)
                      for level, score in result.levels.items()}
            levels["isoforms_found"] = None if result.isoforms is None else result.isoforms.tp_reference
            structure = structure_report(prediction, reference, fasta)
            row = {"run": run.name, "species": species, **levels,
                   "predicted_transcripts": structure["transcripts"],
                   "complete_orf_pct": structure["complete_orf_pct"],
                   "boundary_p50": structure["boundary_p50"], "boundary_p90": structure["boundary_p90"],
                   "within_10bp_pct": structure["boundary_within_10bp_pct"],
                   "exact_pct": structure["boundary_exact_pct"]}
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
