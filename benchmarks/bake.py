"""Bake throughput and memory, next to the floor: tokenizing the same sequence alone.

Run: python benchmarks/bake.py [--data ../shared/data] [--repeats 2] [--results benchmarks/RESULTS.md]

Inputs: the fly genome (fly_chr2R, 4 Mbp) alone, and all four genomes of ../shared/data together
(8.5 Mbp), with the tokenizer `genoforge model init` would give (bundled DNABERT-2 BPE + the
built-in inventory). For each input it measures, each run in a fresh child process:

- tokenizer only (the floor): ``encode_dna`` over the genome in non-overlapping 10 kb pieces, in one
  process, and in 2 processes (pieces split between them);
- the whole bake (``genoforge.baking.bake.bake``: parsing, windows, targets, tokens, writing) with
  ``n_workers`` 1 and 2 (and, for all four genomes, ``species_parallel`` 2);
- peak RSS: the main process's, and the largest worker's (``resource.getrusage``).

Mbp/s = genome bases / wall seconds (the bake tokenizes overlapping windows, so it encodes more
bases than the genome holds). The best of ``--repeats`` runs is kept: the machine may be shared.
With ``--results`` the "## bake" section of that Markdown file is replaced (or appended).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
PIECE = 10_000
SECTION = "## bake"


# -- child-side measurements (run in a fresh interpreter) ---------------------------------------


def _sequences(raw_dir: Path) -> list[str]:
    from genoforge.genes.discovery import discover_species, find_species_files
    from genoforge.genes.fasta import read_fasta

    return [
        record.sequence
        for folder in discover_species(raw_dir)
        for record in read_fasta(find_species_files(folder).fasta)
    ]


def _encode_pieces(tokenizer: str, pieces: list[str]) -> int:
    from genoforge.tokenizer.core import GenoTokenizer

    tok = GenoTokenizer.load(tokenizer)
    return sum(len(tok.encode_dna(piece)) for piece in pieces)


def _cpu_seconds() -> float:
    """User + system CPU of this process and its waited-for children so far."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def child_tokenize(raw_dir: Path, tokenizer: str, processes: int) -> dict:
    from concurrent.futures import ProcessPoolExecutor

    sequences = _sequences(raw_dir)  # read before the clock: the floor is tokenization alone
    pieces = [seq[i : i + PIECE] for seq in sequences for i in range(0, len(seq), PIECE)]
    bases = sum(len(seq) for seq in sequences)
    cpu = _cpu_seconds()
    started = time.perf_counter()
    if processes == 1:
        tokens = _encode_pieces(tokenizer, pieces)
    else:
        with ProcessPoolExecutor(processes) as pool:
            tokens = sum(pool.map(_encode_pieces, [tokenizer] * processes, [pieces[k::processes] for k in range(processes)]))
    seconds = time.perf_counter() - started
    return {"bases": bases, "seconds": seconds, "tokens": tokens, "cpu": _cpu_seconds() - cpu}


def child_bake(raw_dir: Path, tokenizer: str, n_workers: int, species_parallel: int) -> dict:
    from genoforge.baking.bake import BakeConfig, bake

    output = Path(tempfile.mkdtemp(prefix="bench-bake-")) / "baked"
    try:
        cpu = _cpu_seconds()
        started = time.perf_counter()
        summary = bake(
            BakeConfig(
                raw_dir=str(raw_dir),
                output_dir=str(output),
                tokenizer=tokenizer,
                n_workers=n_workers,
                species_parallel=species_parallel,
            )
        )
        seconds = time.perf_counter() - started
        cpu = _cpu_seconds() - cpu
    finally:
        shutil.rmtree(output.parent, ignore_errors=True)
    totals = summary.manifest["totals"]
    return {
        "bases": totals["bases"],
        "seconds": seconds,
        "cpu": cpu,
        "windowed_bases": totals["training"]["bases"] + totals["validation"]["bases"],
        "windows": totals["training"]["windows"] + totals["validation"]["windows"],
        "main_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "worker_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


# -- parent side ---------------------------------------------------------------------------------


def _run_child(args: list[str]) -> dict:
    output = subprocess.run(
        [sys.executable, __file__, "--child", *args], check=True, capture_output=True, text=True, cwd=REPO
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def _best(args: list[str], repeats: int) -> dict:
    runs = [_run_child(args) for _ in range(repeats)]
    return min(runs, key=lambda run: run["seconds"])


def _machine() -> str:
    from results_md import machine  # benchmarks/ is on sys.path as the script's folder

    return machine()


def make_tokenizer(directory: Path) -> str:
    from genoforge.tokenizer.core import dnabert2_tokenizer_path
    from genoforge.tokenizer.edit import ensure_builtin_tokens

    shutil.copy(dnabert2_tokenizer_path(), directory / "tokenizer.json")
    ensure_builtin_tokens(directory)
    return str(directory)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--results", type=Path, default=None, help="Markdown file whose '## bake' section to write.")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, raw_dir, tokenizer, *numbers = args.child
        if kind == "tokenize":
            result = child_tokenize(Path(raw_dir), tokenizer, int(numbers[0]))
        else:
            result = child_bake(Path(raw_dir), tokenizer, int(numbers[0]), int(numbers[1]))
        print(json.dumps(result))
        return

    if not args.data.is_dir():
        sys.exit(f"no data at {args.data}; pass --data DIR (the ../shared/data layout)")
    work = Path(tempfile.mkdtemp(prefix="bench-bake-inputs-"))
    try:
        tokenizer = make_tokenizer(work)
        fly = work / "fly"
        fly.mkdir()
        (fly / "fly_chr2R").symlink_to((args.data / "fly_chr2R").resolve())
        inputs = {"fly_chr2R": fly, "all four": args.data.resolve()}
        rows = []
        for name, raw_dir in inputs.items():
            floor1 = _best(["tokenize", str(raw_dir), tokenizer, "1"], args.repeats)
            floor2 = _best(["tokenize", str(raw_dir), tokenizer, "2"], args.repeats)
            setups = [(1, 1), (2, 1)] + ([(1, 2), (2, 2)] if name == "all four" else [])
            for n_workers, species_parallel in setups:
                run = _best(["bake", str(raw_dir), tokenizer, str(n_workers), str(species_parallel)], args.repeats)
                floor = floor1 if n_workers * species_parallel == 1 else floor2
                rows.append((name, n_workers, species_parallel, run, floor1, floor2, floor))
                print(f"{name}: n_workers {n_workers} species_parallel {species_parallel}: "
                      f"{run['bases'] / run['seconds'] / 1e6:.2f} Mbp/s", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = _report(rows, args.repeats)
    print(report)
    if args.results is not None:
        _write_section(args.results, report)


def _report(rows: list, repeats: int) -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        SECTION,
        "",
        f"`python benchmarks/bake.py` on {datetime.date.today().isoformat()}, {_machine()}; "
        f"best of {repeats} runs each, load average {load:.1f} at the end (the machine is shared).",
        "Throughput is genome bases / wall time. The floor is `encode_dna` alone over the same sequence "
        f"in {PIECE // 1000} kb pieces (1 process; 2 processes for the parallel rows).",
        "",
        "CPU s/Mbp counts user + system time of all processes (robust to a busy machine); "
        "CPU efficiency = tokenizer-only CPU / bake CPU.",
        "",
        "| input | n_workers | species_parallel | bake Mbp/s | tokenizer-only Mbp/s (1 / 2 proc) | bake / floor "
        "| bake CPU s/Mbp | tokenizer CPU s/Mbp | CPU efficiency | bases tokenized / genome "
        "| peak RSS main / largest worker (MB) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, n_workers, species_parallel, run, floor1, floor2, floor in rows:
        rate = run["bases"] / run["seconds"] / 1e6
        floor_rate = floor["bases"] / floor["seconds"] / 1e6
        bake_cpu = run["cpu"] / (run["bases"] / 1e6)
        floor_cpu = floor1["cpu"] / (floor1["bases"] / 1e6)
        worker = f"{run['worker_rss_mb']:.0f}" if run["worker_rss_mb"] else "-"
        lines.append(
            f"| {name} | {n_workers} | {species_parallel} | {rate:.2f} | "
            f"{floor1['bases'] / floor1['seconds'] / 1e6:.2f} / {floor2['bases'] / floor2['seconds'] / 1e6:.2f} | "
            f"{rate / floor_rate:.0%} | {bake_cpu:.2f} | {floor_cpu:.2f} | {floor_cpu / bake_cpu:.0%} | "
            f"{run['windowed_bases'] / run['bases']:.2f} | {run['main_rss_mb']:.0f} / {worker} |"
        )
    return "\n".join(lines) + "\n"


def _write_section(path: Path, section: str) -> None:
    from results_md import (
        write_section,  # benchmarks/ is on sys.path as the script's folder
    )

    write_section(path, section, SECTION)

if __name__ == "__main__":
    main()
