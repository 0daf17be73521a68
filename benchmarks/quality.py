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
     ZFF; :func:`zff_to_gff3` converts it (the package's ``zff2gff3.pl`` writes 8-column rows
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
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from genoforge.evaluation.compare import LEVELS, EvalResult, evaluate  # noqa: E402
from genoforge.evaluation.regions import HeldOutRegion, validation_regions, write_region  # noqa: E402
from genoforge.io import atomic_write  # noqa: E402
from results_md import machine, write_section  # noqa: E402  (benchmarks/ is on sys.path as the script's folder)

SNAP_BINARIES = ("/usr/lib/debian-med/bin/snap", "snap")  # Debian hides it from PATH: /usr/bin/snap is snapd's
SNAP_HMM_DIRS = (Path("/usr/share/snap/HMM"), Path("/usr/share/snap"))
PENDING = "pending: needs the small preset trained ~30 min on one H100 (issue 6)"
FLY_WINDOW = 15000  # bake's window for the fly (configs/taxa.toml, invertebrates): predict's --window_size
ZFF_CODING = {"Einit", "Exon", "Eterm", "Esngl"}  # SNAP's coding exon labels


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


# -- SNAP's ZFF -> GFF3 --------------------------------------------------------------------------


def zff_to_gff3(zff: Path, gff3: Path, source: str = "SNAP") -> int:
    """Convert SNAP's ZFF prediction to GFF3 gene/mRNA/CDS rows with phases; returns the gene count.

    ZFF (SNAP's default output): ``>SEQID`` lines, then one line per exon ``LABEL BEGIN END STRAND
    SCORE 5'OVERHANG 3'OVERHANG FRAME GROUP``, 1-based closed, BEGIN <= END on both strands, the
    exons of a gene (GROUP) in 5'->3' order. LABEL is Einit / Exon / Eterm / Esngl; a gene cut by
    the sequence end starts or ends with ``Exon``. The 5' overhang is the number of bases at the
    exon's 5' end that finish a codon begun in the previous exon: exactly GFF3's phase (bases to
    skip to the first whole codon), so it is written as the phase.
    """
    genes: dict[tuple[str, str], list[tuple[int, int, str, int]]] = defaultdict(list)
    order: list[tuple[str, str]] = []
    seqid = None
    with open(zff, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, 1):
            if line.startswith(">"):
                seqid = line[1:].split()[0]
                continue
            fields = line.split()
            if not fields:
                continue
            if seqid is None or len(fields) != 9 or fields[0] not in ZFF_CODING:
                raise ValueError(f"{zff}:{line_no}: not a SNAP ZFF exon line: {line.strip()!r}")
            label, begin, end, strand, _score, overhang5, _overhang3, _frame, group = fields
            key = (seqid, group)
            if key not in genes:
                order.append(key)
            genes[key].append((int(begin), int(end), strand, int(overhang5)))
    with atomic_write(gff3) as out:
        out.write("##gff-version 3\n")
        for seqid, group in order:
            exons = genes[(seqid, group)]
            strand = exons[0][2]
            start, end = min(e[0] for e in exons), max(e[1] for e in exons)
            gene_id, mrna_id = group, f"{group}.t1"
            out.write(f"{seqid}\t{source}\tgene\t{start}\t{end}\t.\t{strand}\t.\tID={gene_id}\n")
            out.write(f"{seqid}\t{source}\tmRNA\t{start}\t{end}\t.\t{strand}\t.\tID={mrna_id};Parent={gene_id}\n")
            for begin, stop, _, phase in sorted(exons):
                out.write(f"{seqid}\t{source}\tCDS\t{begin}\t{stop}\t.\t{strand}\t{phase % 3}\t"
                          f"ID={mrna_id}.cds;Parent={mrna_id}\n")
    return len(order)


# -- the peers -----------------------------------------------------------------------------------


def _run(command: list[str], stdout: Path, log: Path) -> float:
    """Run ``command`` with stdout to ``stdout`` and stderr to ``log``; returns wall seconds."""
    print(f"$ {shlex.join(command)} > {stdout}", file=sys.stderr, flush=True)
    started = time.monotonic()
    with open(stdout, "w") as out, open(log, "w") as err:
        subprocess.run(command, stdout=out, stderr=err, check=True)
    return time.monotonic() - started


def _debian_version(package: str) -> str:
    try:
        text = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True)
    except FileNotFoundError:
        return "unknown"
    return f"Debian {package} {text.stdout.strip()}" if text.returncode == 0 else "unknown"


def find_snap() -> str | None:
    """SNAP the gene finder (not snapd): the first candidate whose usage names SNAP."""
    for candidate in SNAP_BINARIES:
        path = shutil.which(candidate) or (candidate if Path(candidate).is_file() else None)
        if path is None:
            continue
        usage = subprocess.run([path], capture_output=True, text=True)
        if "Semi-HMM" in usage.stdout + usage.stderr:
            return path
    return None


def find_snap_hmm(name: str) -> Path | None:
    if Path(name).is_file():
        return Path(name)
    return next((d / name for d in SNAP_HMM_DIRS if (d / name).is_file()), None)


def run_augustus(region_fasta: Path, workdir: Path, species: str) -> ToolRun:
    if shutil.which("augustus") is None:
        raise SystemExit("augustus not found; install it: apt-get update && apt-get install -y augustus")
    version = subprocess.run(["augustus", "--version"], capture_output=True, text=True)
    first = (version.stdout + version.stderr).strip().splitlines()[0]  # "AUGUSTUS (3.5.0) is a gene ..."
    number = first.split("(", 1)[1].split(")", 1)[0] if "(" in first else "unknown"
    run = ToolRun("AUGUSTUS", f"AUGUSTUS {number}, {_debian_version('augustus')}",
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
    run = ToolRun("SNAP", f"{_debian_version('snap')}, parameters {hmm.name}", [binary, str(hmm), str(region_fasta)],
                  workdir / "snap.gff3")
    run.stdout_name = zff.name
    run.seconds = _run(run.command, zff, workdir / "snap.log")
    genes = zff_to_gff3(zff, run.output)
    run.extra_commands.append(f"`zff_to_gff3` of benchmarks/quality.py -> {run.output.name} ({genes} genes)")
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



# -- the per-species benchmark (--all_species) ----------------------------------------------------

DEFAULT_WORKDIR = REPO / ".bench" / "quality-peers"
PEERS_SECTION = "peers on the held-out regions"
LEVEL_COLUMNS = (("cds_nucleotide", "CDS-nt F1"), ("cds_exon", "exon F1"), ("transcript", "transcript F1"),
                 ("gene", "gene F1"))


class _RowAction(argparse.Action):
    """Records --model / --predictions / --model_label / --predict_args in command-line order."""

    def __call__(self, parser, namespace, values, option_string=None):
        items = list(getattr(namespace, "genoforge_items", None) or [])
        items.append((self.dest, values))
        namespace.genoforge_items = items


@dataclass
class GenoforgeRow:
    label: str = ""
    model: Path | None = None
    predictions: Path | None = None
    predict_args: str = ""


def genoforge_rows(items: list[tuple[str, str]]) -> list[GenoforgeRow]:
    """Group the ordered options: --model or --predictions begins a row; --model_label and
    --predict_args set the latest row begun (or, before any, the first one)."""
    rows: list[GenoforgeRow] = []
    pending: dict[str, str] = {}
    for dest, value in items:
        dest = "label" if dest == "model_label" else dest
        if dest in ("model", "predictions"):
            row = GenoforgeRow(**{dest: Path(value)})
            for key, held in pending.items():
                setattr(row, key, held)
            pending = {}
            rows.append(row)
        elif rows and not getattr(rows[-1], dest):
            setattr(rows[-1], dest, value)
        else:
            pending[dest] = value
    for index, row in enumerate(rows):
        if not row.label:
            row.label = f"genoforge {index + 1}" if len(rows) > 1 else "genoforge"
    if len({r.label for r in rows}) != len(rows):
        raise SystemExit("give each --model / --predictions row its own --model_label")
    return rows


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text).strip("_") or "genoforge"


def _git_commit() -> str:
    out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def _score(output: Path, region_set, structure_report) -> tuple[EvalResult, dict]:
    result = evaluate(region_set.reference, output, region_set.fasta)
    return result, structure_report(output, region_set.reference, region_set.fasta)


def run_all_species(argv: list[str]) -> None:
    import peers as peer_lib
    from gene_checks import WITHIN_BP, structure_report

    parser = argparse.ArgumentParser(description="Per-species quality benchmark on the held-out regions "
                                     "(module docstring of benchmarks/quality.py).")
    parser.add_argument("--all_species", action="store_true", help="every species folder of --data")
    parser.add_argument("--species", default="", help="comma-separated species folders instead of all")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data", help="bake's --raw_dir")
    parser.add_argument("--val_fraction", type=float, default=0.05, help="bake's --val_fraction (default 0.05)")
    parser.add_argument("--seed", type=int, default=42, help="bake's --seed (default 42)")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR,
                        help=f"regions, training sets and cached peer outputs (default {DEFAULT_WORKDIR.relative_to(REPO)})")
    parser.add_argument("--peers", default=",".join(peer_lib.ALL_PEERS),
                        help=f"peers to run, comma-separated ('' for none; default {','.join(peer_lib.ALL_PEERS)})")
    parser.add_argument("--max_training_genes", type=int, default=peer_lib.MAX_TRAINING_GENES,
                        help="subsample the training genes to at most this many (default 1500)")
    parser.add_argument("--force_peers", action="store_true", help="re-run peers even when cached")
    parser.add_argument("--region_only", action="store_true", help="only cut the regions into --workdir")
    parser.add_argument("--model", action=_RowAction, help="a genoforge model directory: begins a row")
    parser.add_argument("--predictions", action=_RowAction,
                        help="a folder of <species>.gff3 (or <species>/pred.gff3) predicted elsewhere: begins a row")
    parser.add_argument("--model_label", action=_RowAction, help="the name of the row begun before it")
    parser.add_argument("--predict_args", action=_RowAction, help="genoforge predict flags of that row")
    parser.add_argument("--device", default="CPU (2 cores)", help="where the figures were measured (text)")
    parser.add_argument("--date", default=datetime.date.today().isoformat())
    parser.add_argument("--json", type=Path, default=None,
                        help="default benchmarks/results/quality-<date>.json")
    parser.add_argument("--results", default=str(REPO / "benchmarks" / "RESULTS.md"), help="Markdown file ('' to skip)")
    parser.add_argument("--label", default=None, help=f"section title after 'Quality: ' (default '{PEERS_SECTION}' "
                        "without genoforge rows, else 'genoforge and peers on the held-out regions')")
    args = parser.parse_args(argv)
    rows_wanted = genoforge_rows(getattr(args, "genoforge_items", None) or [])
    from genoforge.genes.discovery import discover_species

    if args.species:
        species_list = [s.strip() for s in args.species.split(",") if s.strip()]
    else:
        species_list = [folder.name for folder in discover_species(args.data)]
    peer_ids = [p.strip() for p in args.peers.split(",") if p.strip()]
    unknown = [p for p in peer_ids if p not in peer_lib.PEER_LABELS]
    if unknown:
        parser.error(f"--peers: unknown {', '.join(unknown)}; use {', '.join(peer_lib.ALL_PEERS)}")
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    started_all = time.monotonic()
    species_docs: dict[str, dict] = {}
    rows: list[dict] = []
    for species in species_list:
        species_dir = workdir / species
        print(f"== {species}", file=sys.stderr, flush=True)
        doc: dict = {"peers_config": dataclasses_asdict(peer_lib.peers_for(species))}
        species_docs[species] = doc
        try:
            region_set = peer_lib.prepare_regions(args.data, species, args.val_fraction, args.seed, species_dir)
        except Exception as error:  # noqa: BLE001  (one species' broken input must not stop the others)
            doc["error"] = f"regions not cut: {type(error).__name__}: {error}"
            print(f"  {doc['error']}", file=sys.stderr)
            continue
        doc["regions"] = [{"seqid": r.seqid, "start": r.start, "end": r.end, "name": r.name}
                          for r in region_set.regions]
        doc["bp"] = region_set.length
        doc["region_fasta"] = os.path.relpath(region_set.fasta, workdir)
        doc["reference_gff3"] = os.path.relpath(region_set.reference, workdir)
        if args.region_only:
            print(f"  {len(region_set.regions)} regions, {region_set.length:,} bp -> {region_set.fasta}", file=sys.stderr)
            continue
        ref_eval = evaluate(region_set.reference, region_set.reference, region_set.fasta)
        doc["reference"] = {"genes": ref_eval.reference.genes,
                            "coding_transcripts": ref_eval.reference.coding_transcripts,
                            "cds_chains": ref_eval.levels["transcript"].n_reference,
                            "cds_exons": ref_eval.levels["cds_exon"].n_reference,
                            "structure": structure_report(region_set.reference, region_set.reference,
                                                          region_set.fasta)}
        training = None
        if any(p.endswith("_trained") for p in peer_ids):
            training = peer_lib.prepare_training(region_set, species_dir / "training", args.max_training_genes,
                                                 args.seed)
            doc["training"] = {"genes": training.genes, "candidates": training.candidates, "note": training.note}
        for row in rows_wanted:
            rows.append(_genoforge_row(row, species, region_set, species_dir, workdir, _score, structure_report))
        for peer in peer_ids:
            try:
                run = peer_lib.run_peer(peer, region_set, training, species_dir, workdir, force=args.force_peers)
            except Exception as error:  # noqa: BLE001
                run = peer_lib.PeerRun(peer, peer_lib.PEER_LABELS[peer], None,
                                       note=f"failed: {type(error).__name__}: {error}")
            row = {"species": species, "predictor": run.label, "kind": "peer", **run.to_dict(), "cached": run.cached}
            if run.output is not None:
                result, structure = _score(run.output, region_set, structure_report)
                row.update(_scores(result), structure=structure, eval=result.to_dict())
            print(f"  {run.label}: " + _row_summary(row), file=sys.stderr, flush=True)
            rows.append(row)
    if args.region_only:
        return
    total = time.monotonic() - started_all
    label = args.label or (PEERS_SECTION if not rows_wanted else "genoforge and peers on the held-out regions")
    invocation = "python benchmarks/quality.py " + shlex.join(argv)
    document = {
        "date": args.date, "device": args.device, "machine": machine(), "git_commit": _git_commit(),
        "command": invocation, "wall_seconds": total, "val_fraction": args.val_fraction, "seed": args.seed,
        "workdir": str(workdir), "max_training_genes": args.max_training_genes, "boundary_within_bp": WITHIN_BP, "species": species_docs, "rows": rows,
    }
    json_path = args.json or REPO / "benchmarks" / "results" / f"quality-{args.date}.json"
    with atomic_write(json_path) as handle:
        json.dump(document, handle, indent=2)
    print(f"wrote {json_path}", file=sys.stderr)
    table = all_species_table(document)
    print("\n".join(table))
    if args.results:
        text = all_species_section(label, document, table, json_path)
        write_section(Path(args.results), text, f"## Quality: {label}")
        print(f"wrote section '## Quality: {label}' of {args.results}", file=sys.stderr)


def dataclasses_asdict(obj) -> dict:
    import dataclasses

    return dataclasses.asdict(obj)


def _scores(result: EvalResult) -> dict:
    return {"f1": {level: result.levels[level].f1 for level in LEVELS},
            "sensitivity": {level: result.levels[level].sensitivity for level in LEVELS},
            "precision": {level: result.levels[level].precision for level in LEVELS},
            "predicted_genes": result.prediction.genes,
            "predicted_transcripts": result.prediction.coding_transcripts}


def _row_summary(row: dict) -> str:
    if "f1" not in row:
        return row.get("note") or "-"
    f1 = row["f1"]
    return " ".join(f"{name} {_pct(f1[level])}" for level, name in LEVEL_COLUMNS) + \
        f", complete ORFs {_num(row['structure']['complete_orf_pct'])}%" + \
        (f", {row['seconds']:.1f} s" if row.get("seconds") is not None else "") + (" (cached)" if row.get("cached") else "")


def _genoforge_row(row: GenoforgeRow, species: str, region_set, species_dir: Path, workdir: Path, score,
                   structure_report) -> dict:
    from genoforge import __version__

    out = {"species": species, "predictor": row.label, "kind": "genoforge", "version": f"genoforge {__version__}",
           "seconds": None, "train_seconds": None, "note": "", "commands": []}
    if row.predictions is not None:
        candidates = [row.predictions / f"{species}.gff3", row.predictions / species / "pred.gff3"]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            out["note"] = f"no prediction in {row.predictions} ({species}.gff3 or {species}/pred.gff3)"
            return out
        out["output"] = str(found)
        timing = found.with_suffix(".json") if found.name != "pred.gff3" else found.parent / "summary.json"
        if timing.is_file():  # optional: {"predict_wall_s": ..., "device": ..., "command": ...}
            meta = json.loads(timing.read_text(encoding="utf-8"))
            out["seconds"] = meta.get("predict_wall_s")
            out["note"] = f"predicted on {meta['device']}" if meta.get("device") else ""
            out["commands"] = [meta["command"]] if meta.get("command") else []
        else:
            out["note"] = f"predicted elsewhere, scored from {found}"
        output = found
    else:
        output = species_dir / "genoforge" / f"{_slug(row.label)}.gff3"
        output.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "genoforge", "predict", str(row.model), str(region_set.fasta), "-o",
                   str(output), *shlex.split(row.predict_args)]
        try:
            out["seconds"] = _run(command, output.with_suffix(".stdout"), output.with_suffix(".log"))
        except subprocess.CalledProcessError as error:
            out["note"] = f"genoforge predict failed (exit {error.returncode}; see {output.with_suffix('.log')})"
            return out
        out["output"] = str(output)
        out["version"] += f", model {row.model}"
        out["commands"] = [shlex.join(["genoforge", "predict", str(row.model),
                                       os.path.relpath(region_set.fasta, species_dir), "-o",
                                       os.path.relpath(output, species_dir), *shlex.split(row.predict_args)])]
    result, structure = score(output, region_set, structure_report)
    out.update(_scores(result), structure=structure, eval=result.to_dict())
    print(f"  {row.label}: " + _row_summary(out), file=sys.stderr, flush=True)
    return out


def _num(value: float | None, fmt: str = ".1f") -> str:
    return "-" if value is None else format(value, fmt)


def all_species_table(document: dict) -> list[str]:
    lines = ["| species | predictor | " + " | ".join(name for _, name in LEVEL_COLUMNS)
             + " | % complete ORFs | boundary P50 / P90 (bp) | % boundaries within "
             f"{document['boundary_within_bp']} bp | predicted genes | predict s | train s |",
             "| " + " | ".join(["---"] * 12) + " |"]
    for species, doc in document["species"].items():
        if "error" in doc:
            lines.append(f"| {species} | - | {doc['error']} |" + " |" * 9)
            continue
        ref = doc["reference"]["structure"]
        lines.append(f"| {species} | *reference* ({doc['reference']['genes']} genes) | | | | | "
                     f"{_num(ref['complete_orf_pct'])} | | | {doc['reference']['genes']} | | |")
        for row in (r for r in document["rows"] if r["species"] == species):
            if "f1" not in row:
                lines.append(f"| {species} | {row['predictor']} | {row.get('note') or '-'} |" + " |" * 9)
                continue
            s = row["structure"]
            lines.append(
                f"| {species} | {row['predictor']} | "
                + " | ".join(_pct(row["f1"][level]) for level, _ in LEVEL_COLUMNS)
                + f" | {_num(s['complete_orf_pct'])} | {_num(s['boundary_p50'], '.0f')} / "
                f"{_num(s['boundary_p90'], '.0f')} | {_num(s['boundary_within_10bp_pct'])} | "
                f"{row['predicted_genes']} | {_num(row.get('seconds'))} | {_num(row.get('train_seconds'))} |")
    return lines


def all_species_section(label: str, document: dict, table: list[str], json_path: Path) -> str:
    species = document["species"]
    region_lines = ["| species | held-out regions | bp | reference genes / coding transcripts / CDS chains / CDS exons "
                    "| training genes (of candidates) | stock AUGUSTUS / SNAP |",
                    "| " + " | ".join(["---"] * 6) + " |"]
    for name, doc in species.items():
        if "error" in doc:
            region_lines.append(f"| {name} | {doc['error']} | | | | |")
            continue
        ref, cfg, training = doc["reference"], doc["peers_config"], doc.get("training", {})
        region_lines.append(
            f"| {name} | {len(doc['regions'])} | {doc['bp']:,} | {ref['genes']} / {ref['coding_transcripts']} / "
            f"{ref['cds_chains']} / {ref['cds_exons']} | {training.get('genes', '-')} ({training.get('candidates', '-')}) "
            f"| {cfg['augustus'] or '-'} / {cfg['snap_hmm'] or '-'} |")
    why = [f"- `{name}`: {doc['peers_config']['why']}." for name, doc in species.items() if doc["peers_config"]["why"]]
    # Each peer's commands once, from the first species it ran on (the others differ only in the species
    # name and the stock parameters of the table above; the JSON holds every species' commands).
    commands, shown_peers = [], set()
    for row in document["rows"]:
        if not row.get("commands") or row["predictor"] in shown_peers:
            continue
        shown_peers.add(row["predictor"])
        commands.append(f"- {row['predictor']} ({row['version']}), as run for `{row['species']}`: "
                        + "; ".join(f"`{c}`" for c in row["commands"]))
    minutes = document["wall_seconds"] / 60
    small = [n for n, doc in species.items() if "reference" in doc and doc["reference"]["genes"] < 20]
    lines = [
        f"## Quality: {label}",
        "",
        f"Measured {document['date']} on {document['device']} ({document['machine']}), git commit "
        f"`{document['git_commit']}`, {minutes:.0f} min wall for the whole command (peers run one at a time, "
        "one core each, on a machine shared with other work: seconds are indicative). Reproduce with "
        f"`{document['command']}` (raw figures: `{os.path.relpath(json_path, REPO)}`; peers' outputs are "
        "cached in the work folder, so adding a genoforge row re-runs no peer).",
        "",
        "Regions: for every species, the stretches `bake` holds out for validation with `--val_fraction "
        f"{document['val_fraction']} --seed {document['seed']}` (its defaults; one per FASTA record), each cut by "
        "`genoforge.evaluation.regions.write_region` and pooled into one multi-record `region.fa` and "
        "`region.reference.gff3` (models cut by a region end are kept, clipped and marked partial). Every "
        "predictor runs on that FASTA and is scored by `genoforge.evaluation.compare.evaluate` "
        "(`genoforge eval REFERENCE.gff3 PRED.gff3 --genome region.fa`: strand-aware F1 in %, stop codons "
        "normalised). Training genes: the protein-coding genes lying wholly outside the regions, one "
        "transcript each (the longest CDS), complete ORFs with canonical introns that overlap no other "
        f"coding gene, at most {document['max_training_genes']:,} (seeded sample), on the genome with the regions replaced by N; "
        "SNAP is trained with `fathom -categorize/-export 1000`, `forge`, `hmm-assembler.pl`; AUGUSTUS "
        "with `gff2gbSmallDNA.pl` (1,000 bp flanks), `new_species.pl`, `etraining` and the stop codon "
        "frequencies etraining reports (no `optimize_augustus.pl`).",
        "",
        *region_lines,
        "",
        "Columns: F1 at CDS nucleotide, exact CDS exon, exact transcript (CDS chain) and gene (any "
        "transcript exact) level; % complete ORFs: predicted coding transcripts whose spliced CDS starts "
        "with ATG, ends with TAA/TAG/TGA, has a length divisible by 3, no internal in-frame stop and only "
        "GT..AG / GC..AG / AT..AC introns (`benchmarks/gene_checks.py`; the *reference* row gives the "
        "region reference's own share, below 100 where regions cut models); boundary P50 / P90: for "
        "predicted transcripts overlapping a reference transcript on the same strand, the distance of each "
        "predicted CDS exon boundary to the nearest reference CDS exon boundary of the same side; predict "
        "s: wall seconds on `region.fa`; train s: wall seconds of the training steps.",
        "",
        *table,
        "",
        "Stock parameters: the nearest shipped with Debian's packages (table above)." + (" " if why else ""),
        *why,
        "",
        "Commands (run in `WORKDIR/<species>/`, `WORKDIR` being `--workdir`, default `.bench/quality-peers`; "
        "shown for one species each, every species' own in the JSON):",
        "",
        *commands,
        "",
        "Caveats: the fly_chr2R reference comes from protein alignments and is incomplete (precision "
        "there underestimates true precision); the stock AUGUSTUS and SNAP parameters were trained on "
        "genes of these very genomes (fly, worm, A. thaliana, yeast), which may include held-out ones, "
        "whereas the trained rows never saw them. The bacterium's and the plastid's genes may start with "
        "GTG/TTG, which the complete-ORF column (ATG only) counts as incomplete."
        + (f" Small samples: the regions of {', '.join(f'`{n}`' for n in small)} hold fewer than 20 reference "
           "genes (most cut by a region end), so their rows move by whole genes." if small else ""),
        "",
        "Peers: `apt-get install -y augustus snap prodigal` (Debian; AUGUSTUS's scripts in "
        "`/usr/share/augustus/scripts`, its config copied as links into `WORKDIR/augustus_config`, SNAP in "
        "`/usr/lib/debian-med/bin/snap` with `fathom`, `forge`, `hmm-assembler.pl` in `/usr/bin` and the "
        "HMMs in `/usr/share/snap/HMM`).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__" and "--all_species" in sys.argv[1:] or (
        __name__ == "__main__" and any(a.startswith("--predictions") for a in sys.argv[1:])):
    run_all_species(sys.argv[1:])
    sys.exit(0)


if __name__ == "__main__":
    main()
