"""The per-species quality benchmark (``benchmarks/quality.py --all_species``): every species folder
of ``--data``, its held-out regions, the peers stock and trained (benchmarks/peers.py) and the
genoforge rows, scored by one scorer into one table (usage in benchmarks/quality.py's docstring).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from quality import REPO, _pct, _run  # benchmarks/ is on sys.path as the script's folder

from genoforge.evaluation.compare import LEVELS, EvalResult, evaluate
from genoforge.io import atomic_write
from results_md import machine, write_section

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


if __name__ == "__main__":
    run_all_species(sys.argv[1:])
