"""How fast the Viterbi gene-structure decoder (genoforge/inference/hmm.py) runs on a CPU.

Run: python benchmarks/hmm_speed.py [--length 1000000] [--repeats 3] [--seed 0] [--max_batch 12]
    [--intron_durations 1|2] [--min_internal_exon 1|2|3]
Decodes a random contig (uniform A/C/G/T) with random posteriors (a Dirichlet(0.5) per base, so
genes do get decoded) under the default parameters (with fly's two intron durations and
shortest internal exon unless told otherwise) and chunking, and prints one JSON line:
device (CPU model from /proc/cpuinfo, cores), date, bases, seconds (best of the repeats), bp/s,
genes decoded and peak RSS. The posterior track is float32, as predict hands it over. Building
the inputs is not timed. Three runs of 1 Mb take well under a minute on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import resource
import time
from pathlib import Path

import numpy as np

from genoforge.genes.classes import N_CLASSES
from genoforge.genes.structure import GeneStructureParams
from genoforge.inference.hmm import DEFAULT_MAX_BATCH, decode_genes


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--length", type=int, default=1_000_000, help="contig length in bases")
    parser.add_argument("--repeats", type=int, default=3, help="runs; the best one is reported")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--intron_durations", type=int, choices=(1, 2), default=2,
                        help="1: one intron state per type; 2: a short and a long one (as fitted for fly)")
    parser.add_argument("--min_internal_exon", type=int, choices=(1, 2, 3), default=3,
                        help="the shortest internal exon: 3 (as baked for fly, athal and C. elegans) adds "
                             "two young exon steps to the decoder's graph; 1: none")
    parser.add_argument("--max_batch", type=int, default=DEFAULT_MAX_BATCH, help="chunks decoded at once")
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    codes = rng.integers(0, 4, args.length, dtype=np.uint8)
    log_probs = np.log(rng.dirichlet(np.full(N_CLASSES, 0.5), size=args.length)).astype(np.float32)
    np.maximum(log_probs, -30.0, out=log_probs)
    params = GeneStructureParams.default()
    if args.intron_durations == 2:
        params = dataclasses.replace(params, intron_length_mix=[[0.67, 15.4], [0.33, 1629.0]])
    params = dataclasses.replace(params, min_internal_exon=args.min_internal_exon)

    best, genes = float("inf"), 0
    for _ in range(args.repeats):
        started = time.perf_counter()
        annotation = decode_genes(codes, log_probs, params, seqid="random", max_batch=args.max_batch)
        best = min(best, time.perf_counter() - started)
        genes = len(annotation.transcripts)
    print(json.dumps({
        "benchmark": "hmm_speed",
        "device": f"{cpu_model()}, {os.cpu_count()} cores",
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "numpy": np.__version__,
        "bases": args.length,
        "intron_durations": args.intron_durations,
        "min_internal_exon": args.min_internal_exon,
        "max_batch": args.max_batch,
        "seconds": round(best, 2),
        "bp_per_s": round(args.length / best),
        "genes": genes,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }))


if __name__ == "__main__":
    main()
