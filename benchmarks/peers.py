"""The peer gene finders of benchmarks/quality.py, stock and trained, run on each species' held-out regions.

For one species folder of the shared data (``genome.fa.gz`` + ``annotation.gff3.gz``) this module

1. pools the regions ``bake`` holds out (one per FASTA record, ``--val_fraction 0.05 --seed 42``)
   into one multi-record ``region.fa`` and one ``region.reference.gff3``
   (:func:`prepare_regions`; each record cut by :func:`genoforge.evaluation.regions.write_region`);
2. builds the training set (:func:`prepare_training`): the genome with every held-out region
   replaced by N (``train.fa``), and the protein-coding genes lying wholly outside the regions,
   one transcript per gene (the longest CDS), kept only when it is a complete ORF with canonical
   introns (:func:`gene_checks.is_complete_orf`) and overlaps no other coding gene, at most
   ``max_genes`` of them (a seeded random sample), written as GTF (AUGUSTUS) and ZFF (SNAP);
3. runs the peers on ``region.fa`` (:func:`run_peer`), every output cached in the species'
   work folder under a key of its command and the SHA-256 of its inputs, so scoring a new
   genoforge model later re-runs nothing:

   - ``augustus``: ``augustus --species=<stock> --gff3=on region.fa`` (the nearest stock parameters);
   - ``snap``: ``snap <stock>.hmm region.fa`` (the nearest stock HMM), ZFF converted by :func:`zff_to_gff3`;
   - ``snap_trained``: ``fathom train.zff train.fa -categorize 1000``, ``fathom uni.ann uni.dna
     -export 1000 -plus``, ``forge export.ann export.dna``, ``hmm-assembler.pl``, then ``snap``;
   - ``augustus_trained``: ``gff2gbSmallDNA.pl train.gtf train.fa 1000 train.gb``,
     ``new_species.pl --species=gf_<species>``, ``etraining`` (no ``optimize_augustus.pl``), the stop
     codon frequencies etraining reports written into the parameters, then ``augustus``;
   - ``prodigal`` (prokaryotes and the plastid): ``prodigal -p meta`` (its pre-trained models), and
     ``prodigal_trained``: ``prodigal -p single -t gf.trn`` on ``train.fa``, then on the region
     (Prodigal learns from sequence alone, not from the training genes).

AUGUSTUS needs a writable config folder: ``<workdir>/augustus_config`` links Debian's
``/usr/share/augustus/config`` subfolders and stock species, and holds the trained ``gf_*``
species as real folders. Debian puts the training scripts in ``/usr/share/augustus/scripts``,
``etraining`` in ``/usr/bin``, SNAP in ``/usr/lib/debian-med/bin/snap`` (``/usr/bin/snap`` is
snapd's), ``fathom``/``forge``/``hmm-assembler.pl`` in ``/usr/bin`` and the HMMs in ``/usr/share/snap/HMM``.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import os
import random
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from gene_checks import is_complete_orf  # noqa: E402  (benchmarks/ is on sys.path as the script's folder)

from genoforge.evaluation.regions import HeldOutRegion, validation_regions, write_region
from genoforge.evaluation.stops import with_stop_codon
from genoforge.genes.annotation import load_annotation
from genoforge.genes.fasta import read_fasta
from genoforge.genes.gene_models import Transcript
from genoforge.io import atomic_write

AUGUSTUS_CONFIG = Path("/usr/share/augustus/config")
AUGUSTUS_SCRIPTS = Path("/usr/share/augustus/scripts")
SNAP_BINARIES = ("/usr/lib/debian-med/bin/snap", "/usr/lib/snap/snap", "snap")  # /usr/bin/snap is snapd's
SNAP_HMM_DIRS = (Path("/usr/share/snap/HMM"), Path("/usr/share/snap"))
ZFF_CODING = {"Einit", "Exon", "Eterm", "Esngl"}  # SNAP's coding exon labels
FLANK = 1000  # bp of DNA kept around each training gene (gff2gbSmallDNA.pl, fathom -categorize/-export)
MAX_TRAINING_GENES = 1500
CACHE_VERSION = 1  # bump to invalidate every cached peer output


@dataclass(frozen=True)
class SpeciesPeers:
    """Which stock parameters stand nearest to a species, and how to train on it."""

    augustus: str | None  # stock AUGUSTUS species (None: no model of the clade ships)
    snap_hmm: str | None  # stock SNAP HMM file name (None: none fits)
    prodigal: bool = False  # run Prodigal (prokaryote-like genomes)
    prokaryotic: bool = False  # AUGUSTUS's prokaryotic template for the trained species
    why: str = ""  # why these choices, for the report


SPECIES_PEERS = {
    "athal_chloroplast": SpeciesPeers(
        "arabidopsis", "A.thaliana.hmm", prodigal=True,
        why="the plastid has no model of its own: the nuclear A. thaliana ones, and Prodigal for its bacterial-like genes"),
    "athal_snap_segments": SpeciesPeers("arabidopsis", "A.thaliana.hmm"),
    "celegans_snap_segments": SpeciesPeers("caenorhabditis", "C.elegans.hmm"),
    "fly_chr2R": SpeciesPeers("fly", "D.melanogaster.hmm"),
    "fly_snap_segments": SpeciesPeers("fly", "D.melanogaster.hmm"),
    "oscillibacter_JAOQKG01": SpeciesPeers(
        None, None, prodigal=True, prokaryotic=True,
        why="no stock AUGUSTUS or SNAP model of a Firmicute ships: Prodigal stands in as the stock peer"),
    "yeast_chrI_chrII": SpeciesPeers(
        "saccharomyces_cerevisiae_S288C", "D.melanogaster.hmm",
        why="SNAP ships no fungal HMM: D. melanogaster's (an opisthokont, fungi's nearest clade with one)"),
    "yeast_genome": SpeciesPeers(
        "saccharomyces_cerevisiae_S288C", "D.melanogaster.hmm",
        why="SNAP ships no fungal HMM: D. melanogaster's (an opisthokont, fungi's nearest clade with one)"),
}
GENERIC = SpeciesPeers("generic", None)

# Peer ids in table order, with their row labels.
PEER_LABELS = {
    "augustus": "AUGUSTUS (stock)",
    "augustus_trained": "AUGUSTUS (trained)",
    "snap": "SNAP (stock)",
    "snap_trained": "SNAP (trained)",
    "prodigal": "Prodigal (meta)",
    "prodigal_trained": "Prodigal (trained)",
}
ALL_PEERS = tuple(PEER_LABELS)


def peers_for(species: str) -> SpeciesPeers:
    return SPECIES_PEERS.get(species, GENERIC)


def applicable_peers(species: str) -> dict[str, str]:
    """peer id -> '' when it runs on this species, else the reason it does not."""
    config = peers_for(species)
    return {
        "augustus": "" if config.augustus else "no stock AUGUSTUS model of this clade",
        "augustus_trained": "",
        "snap": "" if config.snap_hmm else "no stock SNAP HMM of this clade",
        "snap_trained": "",
        "prodigal": "" if config.prodigal else "eukaryote",
        "prodigal_trained": "" if config.prodigal else "eukaryote",
    }


# -- files and cache -----------------------------------------------------------------------------


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_key(parts: dict) -> str:
    return hashlib.sha256(json.dumps({"v": CACHE_VERSION, **parts}, sort_keys=True).encode()).hexdigest()


def load_cached(meta: Path, key: str) -> dict | None:
    if not meta.is_file():
        return None
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None
    return data if data.get("key") == key else None


def save_meta(meta: Path, data: dict) -> None:
    with atomic_write(meta) as handle:
        json.dump(data, handle, indent=2)


def run_logged(command: list[str], log: Path, stdout: Path | None = None, cwd: Path | None = None,
               env: dict | None = None) -> float:
    """Run ``command`` (stdout to ``stdout`` or the log, stderr to ``log``); returns wall seconds."""
    shown = shlex.join(command) + (f" > {stdout}" if stdout else "")
    print(f"  $ {shown}" + (f"   (in {cwd})" if cwd else ""), file=sys.stderr, flush=True)
    started = time.monotonic()
    with open(log, "a") as err:
        out = open(stdout, "w") if stdout else err
        try:
            completed = subprocess.run(command, stdout=out, stderr=err, cwd=cwd, env=env)
        finally:
            if stdout:
                out.close()
    if completed.returncode:
        raise RuntimeError(f"{shown} failed with exit {completed.returncode}; see {log}")
    return time.monotonic() - started


def debian_version(package: str) -> str:
    try:
        text = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True)
    except FileNotFoundError:
        return "unknown"
    return text.stdout.strip() if text.returncode == 0 else "unknown"


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


# -- regions -------------------------------------------------------------------------------------


@dataclass
class RegionSet:
    """A species' held-out regions pooled into one FASTA and one reference GFF3."""

    species: str
    regions: list[HeldOutRegion]
    fasta: Path
    reference: Path

    @property
    def length(self) -> int:
        return sum(r.length for r in self.regions)


def prepare_regions(data: Path, species: str, val_fraction: float, seed: int, out_dir: Path) -> RegionSet:
    """Cut every held-out region of ``species`` and pool them as ``region.fa`` + ``region.reference.gff3``.

    Records keep write_region's names (``{seqid}_{start + 1}-{end}``), in FASTA order; the GFF3 has
    every ``##sequence-region`` line first, then each record's rows. Cached: nothing is rewritten
    when ``regions.json`` names the same regions and inputs.
    """
    regions = validation_regions(data, species, val_fraction, seed)
    if not regions:
        raise RuntimeError(f"{species}: no held-out region (val_fraction {val_fraction})")
    out_dir.mkdir(parents=True, exist_ok=True)
    fasta, reference = out_dir / "region.fa", out_dir / "region.reference.gff3"
    meta = out_dir / "regions.json"
    described = [{"seqid": r.seqid, "start": r.start, "end": r.end} for r in regions]
    key = cache_key({"regions": described, "fasta": sha256(regions[0].fasta),
                     "annotation": sha256(regions[0].annotation)})
    if load_cached(meta, key) and fasta.is_file() and reference.is_file():
        return RegionSet(species, regions, fasta, reference)
    pieces = out_dir / "pieces"
    if pieces.exists():
        shutil.rmtree(pieces)
    written = [write_region(r.fasta, r.annotation, r.seqid, r.start, r.end, pieces) for r in regions]
    headers, rows = [], []
    for _, piece_gff in written:
        for line in piece_gff.read_text(encoding="utf-8").splitlines():
            if line.startswith("##sequence-region"):
                headers.append(line)
            elif line and not line.startswith("##gff-version"):
                rows.append(line)
    with atomic_write(reference) as handle:
        handle.write("##gff-version 3\n" + "".join(h + "\n" for h in headers) + "".join(r + "\n" for r in rows))
    with atomic_write(fasta) as handle:
        for piece_fa, _ in written:
            handle.write(piece_fa.read_text(encoding="utf-8"))
    shutil.rmtree(pieces)
    save_meta(meta, {"key": key, "species": species, "val_fraction": val_fraction, "seed": seed,
                     "regions": described, "bp": sum(r.length for r in regions)})
    return RegionSet(species, regions, fasta, reference)


# -- training set --------------------------------------------------------------------------------


@dataclass
class TrainingSet:
    fasta: Path  # the genome, held-out regions replaced by N
    gtf: Path  # training genes for gff2gbSmallDNA.pl
    zff: Path  # the same genes for fathom
    snap_fasta: Path  # the records of train.fa that hold training genes, in the ZFF's order (fathom pairs them)
    genes: int
    candidates: int  # protein-coding genes outside the regions before the ORF/overlap filters and subsampling
    note: str = ""


def prepare_training(region_set: RegionSet, out_dir: Path, max_genes: int = MAX_TRAINING_GENES,
                     seed: int = 42) -> TrainingSet:
    """The training genome and genes of a species (module docstring, step 2); cached in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    first = region_set.regions[0]
    paths = TrainingSet(out_dir / "train.fa", out_dir / "train.gtf", out_dir / "train.zff", out_dir / "train.snap.fa",
                        0, 0)
    meta = out_dir / "training.json"
    key = cache_key({"regions": [(r.seqid, r.start, r.end) for r in region_set.regions],
                     "fasta": sha256(first.fasta), "annotation": sha256(first.annotation),
                     "max_genes": max_genes, "seed": seed, "layout": 2})
    cached = load_cached(meta, key)
    if cached and all(p.is_file() for p in (paths.fasta, paths.gtf, paths.zff, paths.snap_fasta)):
        return dataclasses.replace(paths, genes=cached["genes"], candidates=cached["candidates"],
                                   note=cached.get("note", ""))

    held_out: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for region in region_set.regions:
        held_out[region.seqid].append((region.start, region.end))
    genome: dict[str, str] = {}
    with atomic_write(paths.fasta) as handle:
        for record in read_fasta(first.fasta):
            sequence = record.sequence
            for start, end in held_out.get(record.seqid, ()):
                sequence = sequence[:start] + "N" * (end - start) + sequence[end:]
            genome[record.seqid] = sequence
            handle.write(f">{record.seqid}\n")
            for offset in range(0, len(sequence), 80):
                handle.write(sequence[offset : offset + 80] + "\n")

    annotation = load_annotation(first.annotation, {s: len(q) for s, q in genome.items()})
    coding_spans: dict[str, list[tuple[int, int, str]]] = defaultdict(list)  # every coding gene, for overlaps
    by_gene: dict[tuple[str, str], list[Transcript]] = defaultdict(list)
    for transcripts in annotation.transcripts.values():
        for transcript in transcripts:
            if transcript.cds is not None and transcript.strand in ("+", "-"):
                by_gene[(transcript.seqid, transcript.gene_id)].append(transcript)
    spans = {key: (min(t.exons[0][0] for t in ts), max(t.exons[-1][1] for t in ts)) for key, ts in by_gene.items()}
    for (seqid, gene_id), (start, end) in spans.items():
        coding_spans[seqid].append((start, end, gene_id))
    for seqid in coding_spans:
        coding_spans[seqid].sort()

    def overlaps_other(seqid: str, gene_id: str, start: int, end: int) -> bool:
        return any(s < end and start < e and g != gene_id for s, e, g in coding_spans[seqid])

    candidates, chosen = 0, []
    for (seqid, gene_id), transcripts in by_gene.items():
        start, end = spans[(seqid, gene_id)]
        if any(s < end and start < e for s, e in held_out.get(seqid, ())):
            continue
        coding = [t for t in transcripts if t.biotype == "protein_coding"]
        if not coding:
            continue
        candidates += 1
        best = max(coding, key=lambda t: (sum(e - s for s, e in t.cds_pieces()), t.transcript_id))
        best = with_stop_codon(best, genome[seqid])
        if not is_complete_orf(best, genome[seqid]):
            continue
        # A gene in the flank is fine; one sharing bases with it confuses both trainers.
        if overlaps_other(seqid, gene_id, start, end):
            continue
        chosen.append(best)
    complete = len(chosen)
    note = f"{candidates} protein-coding genes outside the regions, {complete} complete ORFs overlapping no other gene"
    if len(chosen) > max_genes:
        chosen = random.Random(seed).sample(chosen, max_genes)
        note += f", {max_genes} sampled (seed {seed})"
    record_order = {seqid: index for index, seqid in enumerate(genome)}
    chosen.sort(key=lambda t: (record_order[t.seqid], t.cds[0]))
    gene_seqids = sorted({t.seqid for t in chosen}, key=record_order.__getitem__)
    with atomic_write(paths.gtf) as handle:
        for t in chosen:
            attrs = f'gene_id "{_safe(t.gene_id)}"; transcript_id "{_safe(t.transcript_id)}";'
            for start, end in t.cds_pieces():
                handle.write(f"{t.seqid}\tgenoforge\tCDS\t{start + 1}\t{end}\t.\t{t.strand}\t.\t{attrs}\n")
    with atomic_write(paths.zff) as handle:
        for seqid in gene_seqids:
            handle.write(f">{seqid}\n")
            for t in (t for t in chosen if t.seqid == seqid):
                pieces = t.cds_pieces() if t.strand == "+" else list(reversed(t.cds_pieces()))
                for index, (start, end) in enumerate(pieces):
                    if len(pieces) == 1:
                        label = "Esngl"
                    else:
                        label = "Einit" if index == 0 else "Eterm" if index == len(pieces) - 1 else "Exon"
                    begin, finish = (start + 1, end) if t.strand == "+" else (end, start + 1)
                    handle.write(f"{label}\t{begin}\t{finish}\t{_safe(t.transcript_id)}\n")
    with atomic_write(paths.snap_fasta) as handle:
        for seqid in gene_seqids:
            handle.write(f">{seqid}\n")
            for offset in range(0, len(genome[seqid]), 80):
                handle.write(genome[seqid][offset : offset + 80] + "\n")
    save_meta(meta, {"key": key, "genes": len(chosen), "candidates": candidates, "note": note})
    return dataclasses.replace(paths, genes=len(chosen), candidates=candidates, note=note)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.:-]", "_", name)


# -- converters ----------------------------------------------------------------------------------


def zff_to_gff3(zff: Path, gff3: Path, source: str = "SNAP") -> int:
    """Convert SNAP's ZFF prediction to GFF3 gene/mRNA/CDS rows with phases; returns the gene count.

    ZFF (SNAP's default output): ``>SEQID`` lines, then one line per exon ``LABEL BEGIN END STRAND
    SCORE 5'OVERHANG 3'OVERHANG FRAME GROUP``, 1-based closed, BEGIN <= END on both strands, the
    exons of a gene (GROUP) in 5'->3' order. LABEL is Einit / Exon / Eterm / Esngl; a gene cut by
    the sequence end starts or ends with ``Exon``. The 5' overhang is the number of bases at the
    exon's 5' end that finish a codon begun in the previous exon: exactly GFF3's phase (bases to
    skip to the first whole codon), so it is written as the phase. GROUP names repeat across
    records, so gene IDs are prefixed by the record.
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
    multi = len({s for s, _ in order}) > 1
    with atomic_write(gff3) as out:
        out.write("##gff-version 3\n")
        for seqid, group in order:
            exons = genes[(seqid, group)]
            strand = exons[0][2]
            start, end = min(e[0] for e in exons), max(e[1] for e in exons)
            gene_id = f"{seqid}.{group}" if multi else group
            mrna_id = f"{gene_id}.t1"
            out.write(f"{seqid}\t{source}\tgene\t{start}\t{end}\t.\t{strand}\t.\tID={gene_id}\n")
            out.write(f"{seqid}\t{source}\tmRNA\t{start}\t{end}\t.\t{strand}\t.\tID={mrna_id};Parent={gene_id}\n")
            for begin, stop, _, phase in sorted(exons):
                out.write(f"{seqid}\t{source}\tCDS\t{begin}\t{stop}\t.\t{strand}\t{phase % 3}\t"
                          f"ID={mrna_id}.cds;Parent={mrna_id}\n")
    return len(order)


def prodigal_to_gff3(raw: Path, gff3: Path) -> int:
    """Prodigal's GFF (one CDS row per gene, stop codon included) -> gene/mRNA/CDS GFF3; the gene count.

    A gene running off a sequence end (``partial=1x`` / ``x1``) starts mid-codon at its open 5'
    end; its phase is then set so that the 3' end stays in frame (the coding length minus the
    phase divisible by 3).
    """
    count = 0
    with open(raw, encoding="utf-8") as handle, atomic_write(gff3) as out:
        out.write("##gff-version 3\n")
        for line in handle:
            if line.startswith("#") or not line.strip():
                continue
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 9 or fields[2] != "CDS":
                continue
            seqid, _, _, start, end, score, strand, _, attributes = fields
            attrs = dict(a.split("=", 1) for a in attributes.strip(";").split(";") if "=" in a)
            partial = attrs.get("partial", "00")
            five_open = partial[0] == "1" if strand == "+" else partial[1] == "1"
            phase = (int(end) - int(start) + 1) % 3 if five_open else 0
            count += 1
            gene_id = f"{seqid}.prodigal{count}"
            mark = f";partial={partial}" if partial != "00" else ""
            out.write(f"{seqid}\tProdigal\tgene\t{start}\t{end}\t{score}\t{strand}\t.\tID={gene_id}{mark}\n")
            out.write(f"{seqid}\tProdigal\tmRNA\t{start}\t{end}\t{score}\t{strand}\t.\tID={gene_id}.t1;"
                      f"Parent={gene_id}\n")
            out.write(f"{seqid}\tProdigal\tCDS\t{start}\t{end}\t{score}\t{strand}\t{phase}\tID={gene_id}.t1.cds;"
                      f"Parent={gene_id}.t1\n")
    return count


# -- running the peers ---------------------------------------------------------------------------


@dataclass
class PeerRun:
    """One peer's prediction on a species' region set, as cached in ``<workdir>/<species>/<peer>/``."""

    peer: str
    label: str
    output: Path | None  # GFF3 on region.fa (None: not run)
    version: str = ""
    commands: list[str] = field(default_factory=list)  # shell lines, run in the species folder
    seconds: float | None = None  # predicting on region.fa
    train_seconds: float | None = None
    note: str = ""
    cached: bool = False

    def to_dict(self) -> dict:
        return {"peer": self.peer, "label": self.label, "output": None if self.output is None else str(self.output),
                "version": self.version, "commands": self.commands, "seconds": self.seconds,
                "train_seconds": self.train_seconds, "note": self.note}


def augustus_config(workdir: Path) -> Path:
    """A writable AUGUSTUS config folder: links to Debian's subfolders and stock species."""
    config = workdir / "augustus_config"
    species = config / "species"
    species.mkdir(parents=True, exist_ok=True)
    for sub in AUGUSTUS_CONFIG.iterdir():
        target = config / sub.name
        if sub.name != "species" and not target.exists():
            target.symlink_to(sub)
    for stock in (AUGUSTUS_CONFIG / "species").iterdir():
        target = species / stock.name
        if not target.exists() and not target.is_symlink():
            target.symlink_to(stock)
    return config


def augustus_version() -> str:
    if shutil.which("augustus") is None:
        raise RuntimeError("augustus not found; install it: apt-get update && apt-get install -y augustus")
    out = subprocess.run(["augustus", "--version"], capture_output=True, text=True)
    first = (out.stdout + out.stderr).strip().splitlines()[0]
    number = first.split("(", 1)[1].split(")", 1)[0] if "(" in first else "unknown"
    return f"AUGUSTUS {number} (Debian augustus {debian_version('augustus')})"


def run_peer(peer: str, region_set: RegionSet, training: TrainingSet | None, species_dir: Path,
             workdir: Path, force: bool = False) -> PeerRun:
    """Run (or fetch from the cache) one peer on ``region_set``; see the module docstring."""
    species = region_set.species
    config = peers_for(species)
    label = PEER_LABELS[peer]
    reason = applicable_peers(species)[peer]
    if reason:
        return PeerRun(peer, label, None, note=f"not run: {reason}")
    out_dir = species_dir / peer
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = out_dir / "run.json"
    inputs = {"region": sha256(region_set.fasta)}
    if peer.endswith("_trained"):
        assert training is not None
        inputs.update(train_fa=sha256(training.fasta), gtf=sha256(training.gtf), zff=sha256(training.zff),
                      snap_fa=sha256(training.snap_fasta))
    key = cache_key({"peer": peer, "inputs": inputs, "config": dataclasses.asdict(config)})
    cached = load_cached(meta, key)
    output = out_dir / "pred.gff3"
    if cached and not force and output.is_file():
        run = PeerRun(**{k: v for k, v in cached["run"].items() if k != "output"}, output=output)
        run.cached = True
        return run
    log = out_dir / "log.txt"
    log.write_text("")
    rel = lambda p: os.path.relpath(p, species_dir)  # noqa: E731  (commands are shown from the species folder)
    region = region_set.fasta
    run = PeerRun(peer, label, output)
    if peer in ("augustus", "augustus_trained"):
        cfg = augustus_config(workdir)
        env = {**os.environ, "AUGUSTUS_CONFIG_PATH": str(cfg)}
        run.version = augustus_version()
        if peer == "augustus":
            model = config.augustus
        else:
            model = f"gf_{species}"
            run.train_seconds, train_lines = train_augustus(model, training, cfg, out_dir, log, env, rel,
                                                            config.prokaryotic)
            run.commands += train_lines
        command = ["augustus", f"--species={model}", "--gff3=on", str(region)]
        run.seconds = run_logged(command, log, stdout=output, env=env)
        shown = shlex.join(["augustus", f"--species={model}", "--gff3=on", rel(region)]) + f" > {rel(output)}"
        run.commands.append(f"AUGUSTUS_CONFIG_PATH=augustus_config {shown}" if peer.endswith("_trained") else shown)
        if peer == "augustus":
            run.version += f", species {model}"
    elif peer in ("snap", "snap_trained"):
        binary = find_snap()
        if binary is None:
            raise RuntimeError("SNAP not found; install it: apt-get update && apt-get install -y snap")
        run.version = f"SNAP (Debian snap {debian_version('snap')})"
        if peer == "snap":
            hmm = find_snap_hmm(config.snap_hmm)
            if hmm is None:
                raise RuntimeError(f"SNAP parameter file {config.snap_hmm} not in {', '.join(map(str, SNAP_HMM_DIRS))}")
            run.version += f", {hmm.name}"
            shown_hmm = str(hmm)
        else:
            hmm, run.train_seconds, train_lines = train_snap(f"gf_{species}", training, out_dir, log, rel)
            run.commands += train_lines
            shown_hmm = rel(hmm)
        zff = out_dir / "pred.zff"
        run.seconds = run_logged([binary, str(hmm), str(region)], log, stdout=zff)
        run.commands.append(f"{shlex.join([binary, shown_hmm, rel(region)])} > {rel(zff)}")
        genes = zff_to_gff3(zff, output)
        run.commands.append(f"zff_to_gff3 (benchmarks/peers.py) {rel(zff)} -> {rel(output)} ({genes} genes)")
    elif peer in ("prodigal", "prodigal_trained"):
        if shutil.which("prodigal") is None:
            raise RuntimeError("prodigal not found; install it: apt-get update && apt-get install -y prodigal")
        run.version = f"Prodigal (Debian prodigal {debian_version('prodigal')})"
        raw = out_dir / "pred.prodigal.gff"
        if peer == "prodigal":
            command = ["prodigal", "-p", "meta", "-f", "gff", "-q", "-i", str(region), "-o", str(raw)]
            shown = ["prodigal", "-p", "meta", "-f", "gff", "-q", "-i", rel(region), "-o", rel(raw)]
        else:
            trn = out_dir / "gf.trn"
            train = ["prodigal", "-p", "single", "-m", "-q", "-i", str(training.fasta), "-t", str(trn)]
            run.train_seconds = run_logged(train, log, stdout=out_dir / "train.stdout")
            run.commands.append(shlex.join(["prodigal", "-p", "single", "-m", "-q", "-i", rel(training.fasta),
                                            "-t", rel(trn)]))
            command = ["prodigal", "-m", "-t", str(trn), "-f", "gff", "-q", "-i", str(region), "-o", str(raw)]
            shown = ["prodigal", "-m", "-t", rel(trn), "-f", "gff", "-q", "-i", rel(region), "-o", rel(raw)]
        run.seconds = run_logged(command, log)
        run.commands.append(shlex.join(shown))
        genes = prodigal_to_gff3(raw, output)
        run.commands.append(f"prodigal_to_gff3 (benchmarks/peers.py) {rel(raw)} -> {rel(output)} ({genes} genes)")
    else:
        raise ValueError(f"unknown peer {peer!r}; use one of {', '.join(ALL_PEERS)}")
    if peer.endswith("_trained") and training is not None:
        run.note = f"trained on {training.genes} genes ({training.note})" if peer != "prodigal_trained" else \
            "trained on the training sequence (held-out regions masked), not on genes"
    save_meta(meta, {"key": key, "inputs": inputs, "run": {k: v for k, v in run.to_dict().items()}})
    return run


def train_snap(name: str, training: TrainingSet, out_dir: Path, log: Path, rel) -> tuple[Path, float, list[str]]:
    """fathom -categorize / -export, forge, hmm-assembler.pl in ``out_dir/train``; the HMM, seconds, commands."""
    work = out_dir / "train"
    if work.exists():
        shutil.rmtree(work)
    params = work / "params"
    params.mkdir(parents=True)
    seconds = 0.0
    zff, fa = str(training.zff.resolve()), str(training.snap_fasta.resolve())
    steps = [
        (["fathom", zff, fa, "-gene-stats"], work, work / "gene-stats.txt"),
        (["fathom", zff, fa, "-validate"], work, work / "validate.txt"),
        (["fathom", zff, fa, "-categorize", str(FLANK)], work, None),
        (["fathom", "uni.ann", "uni.dna", "-export", str(FLANK), "-plus"], work, None),
        (["forge", "../export.ann", "../export.dna"], params, None),
    ]
    lines = [f"mkdir -p {rel(params)} && cd {rel(work)}"]
    for command, cwd, stdout in steps:
        seconds += run_logged(command, log, stdout=stdout, cwd=cwd)
        shown = [os.path.relpath(a, cwd) if a in (zff, fa) else a for a in command]
        line = shlex.join(shown) + (f" > {stdout.name}" if stdout else "")
        lines.append(f"(cd params && {line})" if cwd == params else line)
    hmm = work / f"{name}.hmm"
    seconds += run_logged(["hmm-assembler.pl", name, "params"], log, stdout=hmm, cwd=work)
    lines.append(f"hmm-assembler.pl {name} params > {hmm.name} && cd -")
    return hmm, seconds, lines


def train_augustus(species: str, training: TrainingSet, config: Path, out_dir: Path, log: Path, env: dict, rel,
                   prokaryotic: bool) -> tuple[float, list[str]]:
    """gff2gbSmallDNA.pl, new_species.pl, etraining, stop codon frequencies; seconds and commands."""
    gb = out_dir / "train.gb"
    seconds = run_logged(["perl", str(AUGUSTUS_SCRIPTS / "gff2gbSmallDNA.pl"), str(training.gtf),
                          str(training.fasta), str(FLANK), str(gb)], log)
    lines = [shlex.join([str(AUGUSTUS_SCRIPTS / "gff2gbSmallDNA.pl"), rel(training.gtf), rel(training.fasta),
                         str(FLANK), rel(gb)])]
    target = config / "species" / species
    if target.exists():
        shutil.rmtree(target)
    new_species = ["perl", str(AUGUSTUS_SCRIPTS / "new_species.pl"), f"--species={species}",
                   f"--AUGUSTUS_CONFIG_PATH={config}"] + (["--prokaryotic"] if prokaryotic else [])
    seconds += run_logged(new_species, log, env=env)
    lines.append(shlex.join([str(AUGUSTUS_SCRIPTS / "new_species.pl"), f"--species={species}",
                             "--AUGUSTUS_CONFIG_PATH=augustus_config"] + (["--prokaryotic"] if prokaryotic else [])))
    etrain_out = out_dir / "etraining.out"
    seconds += run_logged(["etraining", f"--species={species}", str(gb)], log, stdout=etrain_out, env=env)
    lines.append(f"AUGUSTUS_CONFIG_PATH=augustus_config etraining --species={species} {rel(gb)} > {rel(etrain_out)}")
    # The tutorial's step after etraining: the stop codon frequencies of the training genes.
    text = etrain_out.read_text(encoding="utf-8", errors="replace")
    freqs = {codon: float(m.group(1)) for codon in ("tag", "taa", "tga")
             if (m := re.search(rf"^{codon}:\s*\d+\s*\(([\d.]+)\)", text, re.M))}
    parameters = target / f"{species}_parameters.cfg"
    if len(freqs) == 3 and parameters.is_file():
        cfg = parameters.read_text(encoding="utf-8")
        for codon, key in (("tag", "amberprob"), ("taa", "ochreprob"), ("tga", "opalprob")):
            cfg = re.sub(rf"^(/Constant/{key}\s+)\S+", rf"\g<1>{freqs[codon]}", cfg, flags=re.M)
        parameters.write_text(cfg, encoding="utf-8")
        lines.append(f"stop codon frequencies of {rel(etrain_out)} (tag {freqs['tag']}, taa {freqs['taa']}, "
                     f"tga {freqs['tga']}) -> /Constant/amberprob, ochreprob, opalprob of {species}_parameters.cfg")
    return seconds, lines
