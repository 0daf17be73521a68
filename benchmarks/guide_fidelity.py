"""How faithfully the guided generative decoder writes a given contig parse (the HMM anchor's ceiling).

    python benchmarks/guide_fidelity.py MODEL_DIR REGION.fa PARSE.gff3 OUT.gff3 [--beam N] [--window_size N]

`predict --decoder generative --guide_weight 1 --guide_from hmm` guides every window by the HMM's
parse of its whole contig. Here that parse is replaced by PARSE.gff3's coding transcripts (one per
gene, the longest CDS), so what comes out measures the guide, the signal grammar and stitching
alone: a perfect guide path writes PARSE.gff3's CDS models exactly, whatever the head would say.
Prints one JSON line: parse and output coding transcripts, how many output CDS chains equal a
parse chain (exact exon/CDS structure and strand), and the parse chains missing from the output.
MODEL_DIR may hold random weights (the decoder's own scores then add noise only); it needs a
gene_structure.json (any `tune` output has one).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gene_checks import _coding, is_complete_orf


def _chain(transcript) -> tuple:
    """A coding transcript's identity here: seqid, strand and its CDS pieces."""
    return (transcript.seqid, transcript.strand, tuple(transcript.cds_pieces()))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("region", type=Path)
    parser.add_argument("parse", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--beam", type=int, default=1)
    parser.add_argument("--window_size", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    from genoforge.genes.classes import representative_transcripts, window_labels
    from genoforge.genes.fasta import read_fasta
    from genoforge.inference import hmm_anchor
    from genoforge.inference.predict import predict_genome
    from genoforge.inference.predict_config import PredictConfig

    parse = _coding(args.parse)
    chosen = representative_transcripts(parse, gene_of=lambda t: (t.seqid, t.gene_id))

    def parse_contig(self, seqid: str, sequence: str, track_LK) -> None:
        self.contig_labels[seqid] = window_labels([t for t in chosen if t.seqid == seqid], 0, len(sequence))

    hmm_anchor.ViterbiAnchor.parse_contig = parse_contig
    config = PredictConfig(decoder="generative", guide_weight=1.0, guide_from="hmm", beam=args.beam,
                           device=args.device, window_size=args.window_size)
    result = predict_genome(args.model, args.region, args.out, config)

    genome = {record.seqid: record.sequence for record in read_fasta(args.region)}
    want = {_chain(t) for t in chosen}
    got = _coding(args.out)
    got_chains = {_chain(t) for t in got}
    missing = sorted(want - got_chains)
    print(json.dumps({
        "parse_transcripts": len(want),
        "output_coding_transcripts": len(got),
        "exact": len(want & got_chains),
        "complete_orfs": sum(is_complete_orf(t, genome[t.seqid]) for t in got),
        "missing": [[seqid, strand, [list(p) for p in pieces]] for seqid, strand, pieces in missing][:20],
        "extra": len(got_chains - want),
        "windows": result.windows,
    }))


if __name__ == "__main__":
    main()
