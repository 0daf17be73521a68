"""Annotation quality on held-out regions: genoforge next to AUGUSTUS, SNAP and Prodigal, one scorer for all.

Per-species benchmark (every species folder of ``--data``, peers stock and trained; benchmarks/peers.py):

     python benchmarks/quality.py --all_species [--workdir .bench/quality-peers]
         [--model RUN/best --model_label "genoforge small hmm" --predict_args "--decoder hmm"]...
         [--predictions GPU_OUT/ --model_label "genoforge small (H100)"]...
     python benchmarks/quality.py --all_species --region_only      (only cut the regions: what a GPU run carries)

  For each species: the regions ``bake`` holds out (one per FASTA record, val_fraction 0.05, seed 42)
  are pooled into ``WORKDIR/<species>/region.fa`` + ``region.reference.gff3``; every peer runs on
  that FASTA (stock: the nearest shipped parameters; trained: SNAP and AUGUSTUS trained on the
  species' protein-coding genes lying outside the regions); each genoforge row is ``genoforge predict
  MODEL region.fa`` (``--model``, flags from the ``--predict_args`` after it) or the GFF3 of a run
  made elsewhere (``--predictions DIR``: ``DIR/<species>.gff3`` or ``DIR/<species>/pred.gff3``,
  predicted on ``WORKDIR/<species>/region.fa``); ``--model_label`` names the row begun by the
  ``--model`` / ``--predictions`` before it. Several rows may be given. Peers' outputs are cached
  in the workdir (keyed by command and input checksums), so re-scoring a new model re-runs none.
  Scores: :func:`genoforge.evaluation.compare.evaluate` F1 at four levels, % complete ORFs and CDS
  boundary errors (benchmarks/gene_checks.py). Writes ``--json`` (default
  ``benchmarks/results/quality-<date>.json``) and replaces the ``## Quality: <label>`` section of
  ``--results``.

Single-region mode (the fly region of benchmarks/quality_gpu.sh):

Run: python benchmarks/quality.py [--model RUN/best --model_label "genoforge small"] [--species fly_chr2R]
     [--workdir DIR] [--json OUT.json] [--results benchmarks/RESULTS.md]
     python benchmarks/quality.py --prediction OUT/pred.gff3 --run_summary OUT/summary.json
     --model_label "genoforge small (H100, 17 min)"       (score the GPU run of benchmarks/quality_gpu.sh)
     python benchmarks/quality.py --region_only --workdir DIR     (only cut the region; quality_gpu.sh prepare)

What it does, for one species of ``--data`` (default ``../shared/data``, species ``fly_chr2R``):

1. Cuts the region ``bake`` held out for validation (``--val_fraction`` / ``--seed``: bake's defaults
   0.05 / 42, so a model baked with the defaults never saw it) into its own FASTA and reference GFF3
   (:func:`genoforge.evaluation.regions.write_region`).
2. Runs each predictor on the region FASTA, one process each, timed:
   - AUGUSTUS: ``augustus --species=fly --gff3=on REGION.fa`` (Debian package ``augustus``);
   - SNAP: ``snap D.melanogaster.hmm REGION.fa`` (Debian package ``snap``; its binary is
     ``/usr/lib/debian-med/bin/snap``, its parameter files ``/usr/share/snap/HMM``). SNAP writes
     ZFF; :func:`peers.zff_to_gff3` converts it (the package's ``zff2gff3.pl`` writes 8-column rows
     without phase or parents, which no GFF3 reader accepts);
   - genoforge, only with ``--model``: ``genoforge predict MODEL REGION.fa -o OUT.gff3``; or, with
     ``--prediction``, a GFF3 that ``genoforge predict`` wrote elsewhere (the GPU run of
     ``benchmarks/quality_gpu.sh``, whose ``summary.json`` ``--run_summary`` reads for the device,
     the training length and the predict time), scored here like the others.
3. Scores every prediction with :func:`genoforge.evaluation.compare.evaluate`, i.e. ``genoforge eval
   REFERENCE.gff3 PRED.gff3 --genome REGION.fa`` (the genome makes CDS written with and without
   the stop codon compare equal: SNAP's and AUGUSTUS's conventions differ from the reference's).
4. Prints a table, writes every score to ``--json`` and replaces the section "## Quality: <label>"
   of ``--results`` (``--results ''`` skips it).

Install the peers: ``apt-get update && apt-get install -y augustus snap``. They are benchmark-only
(no test runs them). Everything runs on one CPU core.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from genoforge.evaluation.compare import LEVELS, EvalResult, evaluate  # noqa: E402
from genoforge.evaluation.regions import HeldOutRegion, validation_regions, write_region  # noqa: E402
from genoforge.io import atomic_write  # noqa: E402
from peers import SNAP_HMM_DIRS, debian_version, find_snap, find_snap_hmm, zff_to_gff3  # noqa: E402
from results_md import machine, write_section  # noqa: E402  (benchmarks/ is on sys.path as the script's folder)

PENDING = "not run: give --model or --prediction"
FLY_WINDOW = 15000  # bake's window for the fly (configs/taxa.toml, invertebrates): predict's --window_size


@dataclass
class ToolRun:
    """One predictor's run on the region: its command, output, timing and scores."""

    tool: str
    version: str
    command: list[str]
    output: Path
    seconds: float | None = None
    result: EvalResult | None = None
    note: str = ""
    extra_commands: list[str] = field(default_factory=list)
    stdout_name: str | None = None  # the file the command's stdout is saved to, if it is the prediction
    details: list[str] = field(default_factory=list)  # sentences after the command (how the model was made)


# -- the peers -----------------------------------------------------------------------------------


def _run(command: list[str], stdout: Path, log: Path) -> float:
    """Run ``command`` with stdout to ``stdout`` and stderr to ``log``; returns wall seconds."""
    print(f"$ {shlex.join(command)} > {stdout}", file=sys.stderr, flush=True)
    started = time.monotonic()
    with open(stdout, "w") as out, open(log, "w") as err:
        subprocess.run(command, stdout=out, stderr=err, check=True)
    return time.monotonic() - started


def run_augustus(region_fasta: Path, workdir: Path, species: str) -> ToolRun:
    if shutil.which("augustus") is None:
        raise SystemExit("augustus not found; install it: apt-get update && apt-get install -y augustus")
    version = subprocess.run(["augustus", "--version"], capture_output=True, text=True)
    first = (version.stdout + version.stderr).strip().splitlines()[0]  # "AUGUSTUS (3.5.0) is a gene ..."
    number = first.split("(", 1)[1].split(")", 1)[0] if "(" in first else "unknown"
    run = ToolRun("AUGUSTUS", f"AUGUSTUS {number}, Debian augustus {debian_version('augustus')}",
                  ["augustus", f"--species={species}", "--gff3=on", str(region_fasta)], workdir / "augustus.gff3")
    run.stdout_name = run.output.name
    run.seconds = _run(run.command, run.output, workdir / "augustus.log")
    return run


def run_snap(region_fasta: Path, workdir: Path, hmm_name: str) -> ToolRun:
    binary = find_snap()
    if binary is None:
        raise SystemExit("SNAP not found; install it: apt-get update && apt-get install -y snap")
    hmm = find_snap_hmm(hmm_name)
    if hmm is None:
        raise SystemExit(f"SNAP parameter file {hmm_name} not found in {', '.join(map(str, SNAP_HMM_DIRS))}")
    zff = workdir / "snap.zff"
    run = ToolRun("SNAP", f"Debian snap {debian_version('snap')}, parameters {hmm.name}", [binary, str(hmm), str(region_fasta)],
                  workdir / "snap.gff3")
    run.stdout_name = zff.name
    run.seconds = _run(run.command, zff, workdir / "snap.log")
    genes = zff_to_gff3(zff, run.output)
    run.extra_commands.append(f"`zff_to_gff3` of benchmarks/peers.py -> {run.output.name} ({genes} genes)")
    return run


def run_genoforge(model: Path, region_fasta: Path, workdir: Path, predict_args: list[str], label: str) -> ToolRun:
    from genoforge import __version__

    output = workdir / "genoforge.gff3"
    command = [sys.executable, "-m", "genoforge", "predict", str(model), str(region_fasta), "-o", str(output),
               *predict_args]
    run = ToolRun(label, f"genoforge {__version__}, model {model}", command, output)
    run.seconds = _run(command, workdir / "genoforge.stdout", workdir / "genoforge.log")
    return run


def existing_prediction(prediction: Path, label: str, summary_path: Path | None) -> ToolRun:
    """The genoforge row from a GFF3 ``genoforge predict`` wrote on another machine.

    ``summary_path`` is the ``summary.json`` of ``benchmarks/quality_gpu.sh finish``: its predict time
    becomes the row's seconds and its device, training length and throughput the section's text.
    """
    from genoforge import __version__

    if not prediction.is_file():
        raise SystemExit(f"--prediction {prediction}: no such file")
    command = ["genoforge", "predict", "RUN/best", "REGION.fa", "-o", prediction.name, "--batch_size", "256",
               "--window_size", str(FLY_WINDOW)]
    run = ToolRun(label, f"genoforge {__version__}", command, prediction)
    if summary_path is None:
        run.details.append(f"scored from `{prediction}` (no --run_summary: device and training not recorded)")
        return run
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    run.command[2] = f"RUN/{summary.get('predict_model', 'run/best').split('/')[-1]}"
    if summary.get("predict_flags"):
        run.command[6:] = shlex.split(summary["predict_flags"])
    run.seconds = summary.get("predict_wall_s")
    run.version += f", {summary.get('preset', '?')} preset, torch {summary.get('torch', '?')}"
    run.details.append(_training_sentence(summary))
    return run


def _training_sentence(summary: dict) -> str:
    """How the scored model was trained and predicted, from quality_gpu.sh's summary.json."""
    def num(key: str, fmt: str) -> str:
        value = summary.get(key)
        return "?" if value is None else format(value, fmt)

    gen = summary.get("best_eval") or {}
    gen_text = ", ".join(f"{k[4:-3]} {100 * v:.1f}%" for k, v in gen.items() if k.endswith("_f1") and v is not None)
    return (
        f"trained and predicted on **{summary.get('device', '?')}** by `bash benchmarks/quality_gpu.sh start "
        f"{summary.get('gpu', 0)} {num('time_limit_min', 'g')}` then `... finish` (carrying `.bench/quality` from "
        "`bash benchmarks/quality_gpu.sh prepare`: the four shared genomes baked with the defaults): "
        f"`genoforge tune` of the `{summary.get('preset', '?')}` preset from random weights for "
        f"{num('train_wall_s', '.0f')} s wall ({summary.get('steps', '?')} of {summary.get('total_steps', '?')} "
        f"optimizer steps, {summary.get('epochs_started', '?')} epoch(s), stopped: {summary.get('stopped', '?')}), "
        f"{num('tokens_per_s', ',.0f')} tokens/s, peak GPU memory {num('gpu_peak_allocated_gb', '.1f')} GB "
        f"allocated; best validation CE {num('best_val_loss', '.4f')} at step {summary.get('best_step', '?')}"
        + (f" (generated validation windows' F1 there: {gen_text})" if gen_text else "")
        + f"; tune flags `{summary.get('tune_flags', '?')}`; predict took {num('predict_wall_s', '.1f')} s "
        "(model load included)"
    )


# -- report --------------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def table_rows(runs: list[ToolRun]) -> list[str]:
    header = "| tool | seconds | predicted genes | " + " | ".join(
        f"{level} Sn / Pr / F1" for level in LEVELS
    ) + " |"
    lines = [header, "| " + " | ".join(["---"] * (3 + len(LEVELS))) + " |"]
    for run in runs:
        if run.result is None:
            lines.append(f"| {run.tool} | - | - | " + " | ".join([run.note or "-"] + [""] * (len(LEVELS) - 1)) + " |")
            continue
        cells = [
            f"{_pct(s.sensitivity)} / {_pct(s.precision)} / {_pct(s.f1)}"
            for s in (run.result.levels[level] for level in LEVELS)
        ]
        seconds = "-" if run.seconds is None else f"{run.seconds:.1f}"
        lines.append(f"| {run.tool} | {seconds} | {run.result.prediction.genes} | " + " | ".join(cells) + " |")
    return lines


def section(label: str, region: HeldOutRegion, reference: EvalResult, runs: list[ToolRun], args,
            species_dir: Path) -> str:
    today = datetime.date.today().isoformat()
    invocation = "python benchmarks/quality.py " + shlex.join(sys.argv[1:]) if sys.argv[1:] else \
        "python benchmarks/quality.py"
    readme = species_dir.parent / "README.md"
    shown_readme = os.path.relpath(readme, REPO) if readme.is_file() else str(readme)
    chains, genes = reference.levels["transcript"].n_reference, reference.reference.genes
    lines = [
        f"## Quality: {label}",
        "",
        f"{today}, {machine()}; one core per tool, on a machine shared with other work (seconds are "
        f"indicative). Script: `{invocation}`.",
        "",
        f"Region: `{region.species}` {region.seqid}:{region.start + 1:,}-{region.end:,} "
        f"({region.length:,} bp; 0-based [{region.start}, {region.end})), the region `bake` holds out with "
        f"`--val_fraction {args.val_fraction} --seed {args.seed}` (its defaults), so a model baked with "
        "them never trained on it. Cut by `genoforge.evaluation.regions.write_region` into "
        f"`{region.name}.fa` (coordinates from 1) and `{region.name}.reference.gff3` (the annotation's "
        "models clipped to the region; models cut by its ends marked partial). Reference: "
        f"{genes} coding genes, {reference.reference.coding_transcripts} coding transcripts, {chains} distinct CDS "
        "chains (isoforms).",
        "",
        "Scoring: `genoforge eval REFERENCE.gff3 PRED.gff3 --genome REGION.fa` (library "
        "`genoforge.evaluation.compare.evaluate`) for every tool: strand-aware Sn / Pr / F1 in %, at CDS "
        "nucleotide, CDS exon (exact), transcript (exact CDS chain) and gene (any transcript exact) level; "
        "the genome normalises stop codons, so CDS written with and without the stop compare equal.",
        "",
        *table_rows(runs),
        "",
        "Commands (run in the work folder; `REGION.fa` is the region FASTA):",
        "",
    ]
    for run in runs:
        if run.result is None:
            continue
        command = ["genoforge", *run.command[3:]] if run.command[1:3] == ["-m", "genoforge"] else run.command
        shown = shlex.join(arg.replace(str(run.output.parent) + "/", "") for arg in command)
        if run.stdout_name:
            shown += f" > {run.stdout_name}"
        lines.append(f"- {run.tool} ({run.version}): `{shown}`" + "".join(f", then {c}" for c in run.extra_commands)
                     + "".join(f"; {d}" for d in run.details))
    if any(run.note == PENDING for run in runs):
        lines += [
            "- genoforge (pending): bake the four genomes with the defaults (`genoforge bake --raw_dir "
            "../shared/data ...`, val_fraction 0.05, seed 42), tune the small preset, predict the region "
            "(`benchmarks/quality_gpu.sh prepare | start | finish` does all three on a GPU), then `python "
            "benchmarks/quality.py --prediction OUT/pred.gff3 --run_summary OUT/summary.json --model_label "
            "'genoforge small'` scores it and fills the row.",
        ]
    lines += [
        "",
        f"Reading: the reference's {genes} genes carry {chains} distinct CDS chains (isoforms); a predictor "
        "that writes one transcript per gene, as AUGUSTUS and SNAP do here, finds at most "
        f"{genes}/{chains} = {100 * genes / chains:.1f}% of them, so transcript-level sensitivity is capped "
        "there; the gene level (a locus is found when any of its isoforms is exact) is the fairer "
        "whole-gene number.",
        "",
        "Caveat: the fly reference comes from protein alignments (Scipio alignments of FlyBase proteins, "
        f"AUGUSTUS tutorial data; see `{shown_readme}`) and is incomplete: genes "
        "a predictor finds that no aligned protein covers count as false positives, so every precision "
        "here underestimates the true precision (sensitivity is not affected). The reference has no UTRs; "
        "only CDS structure is scored (AUGUSTUS's UTR and transcription start/end rows are ignored). "
        "AUGUSTUS's `fly` and SNAP's `D.melanogaster.hmm` parameters were trained on D. melanogaster "
        "genes, which may include genes of this region; genoforge's model is scored on a region held "
        "out of its training.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data", help="bake's --raw_dir")
    parser.add_argument("--species", default="fly_chr2R", help="species folder (default fly_chr2R)")
    parser.add_argument("--seqid", default=None, help="chromosome whose held-out region to use (default: the first)")
    parser.add_argument("--val_fraction", type=float, default=0.05, help="bake's --val_fraction (default 0.05)")
    parser.add_argument("--seed", type=int, default=42, help="bake's --seed (default 42)")
    parser.add_argument("--workdir", type=Path, default=None, help="folder for region + predictions (default: temp)")
    parser.add_argument("--tools", default="augustus,snap", help="peers: augustus,snap ('' for none)")
    parser.add_argument("--augustus_species", default="fly")
    parser.add_argument("--snap_hmm", default="D.melanogaster.hmm", help="file name in /usr/share/snap/HMM, or a path")
    parser.add_argument("--model", type=Path, default=None, help="a genoforge model directory to predict with")
    parser.add_argument("--model_label", default="genoforge", help="the genoforge row's name, e.g. 'genoforge small'")
    parser.add_argument("--prediction", type=Path, default=None,
                        help="score this GFF3 from `genoforge predict` (e.g. the GPU run's pred.gff3) instead of --model")
    parser.add_argument("--run_summary", type=Path, default=None,
                        help="summary.json of benchmarks/quality_gpu.sh finish, for the section's device/training text")
    parser.add_argument("--predict_args", default="", help="extra flags for genoforge predict, e.g. '--batch_size 256'")
    parser.add_argument("--label", default="fly validation region", help="section title after 'Quality: '")
    parser.add_argument("--results", default=str(REPO / "benchmarks" / "RESULTS.md"), help="Markdown file ('' to skip)")
    parser.add_argument("--json", type=Path, default=None, help="write every score here as JSON")
    parser.add_argument("--region_only", action="store_true",
                        help="only cut the region FASTA + reference GFF3 into --workdir (what the GPU run carries)")
    args = parser.parse_args(argv)
    if args.prediction is not None and args.model is not None:
        parser.error("--prediction scores an existing GFF3 and --model runs predict: give one of them")
    if args.run_summary is not None and args.prediction is None:
        parser.error("--run_summary describes a --prediction; give both")

    regions = validation_regions(args.data, args.species, args.val_fraction, args.seed)
    if args.seqid is not None:
        regions = [r for r in regions if r.seqid == args.seqid]
    if not regions:
        raise SystemExit(f"{args.species}: no held-out region (seqid {args.seqid}, val_fraction {args.val_fraction})")
    region = regions[0]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix=f"quality-{args.species}-"))
    workdir.mkdir(parents=True, exist_ok=True)
    region_fasta, reference = write_region(region.fasta, region.annotation, region.seqid, region.start, region.end,
                                           workdir)
    print(f"region {region.seqid}:{region.start + 1}-{region.end} -> {region_fasta}, {reference}", file=sys.stderr)
    if args.region_only:
        return

    runs: list[ToolRun] = []
    tools = [t.strip().lower() for t in args.tools.split(",") if t.strip()]
    for tool in tools:
        if tool == "augustus":
            runs.append(run_augustus(region_fasta, workdir, args.augustus_species))
        elif tool == "snap":
            runs.append(run_snap(region_fasta, workdir, args.snap_hmm))
        else:
            raise SystemExit(f"--tools: unknown tool {tool!r}; use augustus and/or snap")
    if args.prediction is not None:
        runs.insert(0, existing_prediction(args.prediction, args.model_label, args.run_summary))
    elif args.model is not None:
        predict_args = shlex.split(args.predict_args)
        runs.insert(0, run_genoforge(args.model, region_fasta, workdir, predict_args, args.model_label))
    else:
        runs.insert(0, ToolRun("genoforge (small preset)", "", [], workdir / "genoforge.gff3", note=PENDING))

    reference_only = evaluate(reference, reference, region_fasta)  # the reference's own counts
    for run in runs:
        if run.note:
            continue
        run.result = evaluate(reference, run.output, region_fasta)

    print("\n".join(table_rows(runs)))
    document = {
        "date": datetime.date.today().isoformat(), "machine": machine(),
        "region": {"species": region.species, "seqid": region.seqid, "start": region.start, "end": region.end,
                   "val_fraction": args.val_fraction, "seed": args.seed},
        "workdir": str(workdir),
        "run_summary": json.loads(args.run_summary.read_text()) if args.run_summary is not None else None,
        "tools": {run.tool: {"version": run.version, "command": run.command, "seconds": run.seconds, "note": run.note,
                             "eval": None if run.result is None else run.result.to_dict()} for run in runs},
    }
    if args.json is not None:
        with atomic_write(args.json) as handle:
            json.dump(document, handle, indent=2)
    if args.results:
        text = section(args.label, region, reference_only, runs, args, Path(args.data) / args.species)
        write_section(Path(args.results), text, f"## Quality: {args.label}")
        print(f"wrote section '## Quality: {args.label}' of {args.results}", file=sys.stderr)


if __name__ == "__main__":
    if "--all_species" in sys.argv[1:] or any(a.startswith("--predictions") for a in sys.argv[1:]):
        from quality_all import run_all_species

        run_all_species(sys.argv[1:])
    else:
        main()
