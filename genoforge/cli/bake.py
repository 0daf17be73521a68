"""`genoforge bake`: genomes + annotations -> packed training data; `genoforge bake inspect`.

`bake` is a Typer group whose callback is the bake itself (run when no subcommand is named), so
both `genoforge bake --raw_dir ...` and `genoforge bake inspect DIR` work. Every option defaults to
None, meaning "not given", so that BakeConfig's defaults < --config FILE.toml < flags holds.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from genoforge.baking.config import BakeConfig
from genoforge.cli._common import boundary, examples, flag, new_app

DEFAULTS = BakeConfig()

RECIPE_LINE = (
    "genoforge bake --raw_dir ../raw --output_dir ../baked/5k4.5k --n_workers 5 "
    "--species_parallel 3 --tokenizer ../model/init --window_size 10000"
)

app = new_app(
    "bake",
    help="Bake raw_dir/<species>/ genomes + GFF3 into training.packed, validation.packed, manifest.json.",
    epilog=examples(
        RECIPE_LINE,
        "genoforge bake --raw_dir ../shared/data --output_dir baked --tokenizer model/init --species fly_chr2R",
        "genoforge bake --raw_dir ../shared/data --output_dir baked --tokenizer model/init --taxa my_genome=plants",
        "genoforge bake --config bake.toml --overwrite",
        "genoforge bake inspect baked --split validation --index 3 --gff",
    ),
)

# typer needs Optional[...] (not X | None) in these annotations for its type inspection.
OptPath = Optional[Path]  # noqa: UP007
OptInt = Optional[int]  # noqa: UP007
OptFloat = Optional[float]  # noqa: UP007
OptBool = Optional[bool]  # noqa: UP007
OptStr = Optional[str]  # noqa: UP007
OptStrs = Optional[list[str]]  # noqa: UP007


def _default(name: str) -> str:
    """``[default: X]`` for a help text, read from BakeConfig (the one source of defaults)."""
    return f"\\[default: {getattr(DEFAULTS, name)}]"


@app.callback(invoke_without_command=True)
@boundary
def bake(
    ctx: typer.Context,
    raw_dir: Annotated[
        OptPath, typer.Option(*flag("raw_dir"), help="Folder of <species>/ folders (FASTA + GFF3 each).")
    ] = None,
    output_dir: Annotated[OptPath, typer.Option(*flag("output_dir"), help="Baked folder to create.")] = None,
    tokenizer: Annotated[
        OptPath, typer.Option(*flag("tokenizer"), help="tokenizer.json, its folder, or a model dir (model init).")
    ] = None,
    window_size: Annotated[
        OptInt,
        typer.Option(*flag("window_size"), help=f"Window (bp) for species with no taxon. {_default('window_size')}"),
    ] = None,
    overlap_fraction: Annotated[
        OptFloat,
        typer.Option(
            *flag("overlap_fraction"), help=f"Share of a window its neighbour overlaps. {_default('overlap_fraction')}"
        ),
    ] = None,
    taxa: Annotated[
        OptStrs,
        typer.Option(
            *flag("taxa"),
            metavar="TOML|NAME=TAXON",
            help="Taxa table TOML, or NAME=TAXON giving species folder NAME a taxon of the table "
            "(repeatable; beats the table and the folder's `taxon` file). "
            "\\[default: the packaged configs/taxa.toml]",
        ),
    ] = None,
    species: Annotated[
        OptStr, typer.Option(*flag("species"), help="Bake only these species folders (a,b). \\[default: all]")
    ] = None,
    n_workers: Annotated[
        OptInt, typer.Option(*flag("n_workers"), help=f"Processes per species. {_default('n_workers')}")
    ] = None,
    species_parallel: Annotated[
        OptInt, typer.Option(*flag("species_parallel"), help=f"Species baked at once. {_default('species_parallel')}")
    ] = None,
    val_fraction: Annotated[
        OptFloat,
        typer.Option(*flag("val_fraction"), help=f"Held-out share of each chromosome. {_default('val_fraction')}"),
    ] = None,
    seed: Annotated[
        OptInt, typer.Option(*flag("seed"), help=f"Seed of every choice (split, sampling). {_default('seed')}")
    ] = None,
    hint_ratio: Annotated[
        OptFloat,
        typer.Option(*flag("hint_ratio"), help=f"Share of windows given intron hints. {_default('hint_ratio')}"),
    ] = None,
    max_n_ratio: Annotated[
        OptFloat,
        typer.Option(*flag("max_n_ratio"), help=f"Drop windows with more N than this. {_default('max_n_ratio')}"),
    ] = None,
    intergenic_rate: Annotated[
        OptFloat,
        typer.Option(*flag("intergenic_rate"), help=f"Share of gene-free windows kept. {_default('intergenic_rate')}"),
    ] = None,
    reverse_complement: Annotated[
        OptBool,
        typer.Option(*flag("reverse_complement"),
                     help=f"Also train on each window's reverse complement. {_default('reverse_complement')}"),
    ] = None,
    keep_going: Annotated[
        OptBool, typer.Option(*flag("keep_going"), help="Skip a species with bad input (recorded in the manifest).")
    ] = None,
    strict: Annotated[
        OptBool,
        typer.Option(
            *flag("strict"),
            help="A broken gene model (orphan Parent, duplicate ID, ...) is an error (file:line), not a skip.",
        ),
    ] = None,
    overwrite: Annotated[
        OptBool, typer.Option(*flag("overwrite"), help="Replace an existing baked output_dir.")
    ] = None,
    config: Annotated[
        OptPath, typer.Option(*flag("config"), help="TOML with any of these settings (flags win).")
    ] = None,
) -> None:
    """Bake raw genomes and annotations into packed, verifiable training data."""
    if ctx.invoked_subcommand is not None:
        return
    if config is None:
        required = (("--raw_dir", raw_dir), ("--output_dir", output_dir), ("--tokenizer", tokenizer))
        missing = [name for name, value in required if value is None]
        if missing:
            raise typer.BadParameter(f"{', '.join(missing)} required (as flags or in --config FILE.toml)")
    from genoforge.baking.bake import bake as run_bake
    from genoforge.baking.config import resolve_bake_config

    taxa_table, species_taxa = _split_taxa(taxa)
    flags = {
        "raw_dir": raw_dir,
        "output_dir": output_dir,
        "tokenizer": tokenizer,
        "window_size": window_size,
        "overlap_fraction": overlap_fraction,
        "taxa": taxa_table,
        "species_taxa": species_taxa,
        "species": species.split(",") if species is not None else None,
        "n_workers": n_workers,
        "species_parallel": species_parallel,
        "val_fraction": val_fraction,
        "seed": seed,
        "hint_ratio": hint_ratio,
        "max_n_ratio": max_n_ratio,
        "intergenic_rate": intergenic_rate,
        "reverse_complement": reverse_complement,
        "keep_going": keep_going,
        "strict": strict,
        "overwrite": overwrite,
    }
    flags = {key: (str(value) if isinstance(value, Path) else value) for key, value in flags.items()}
    resolved = resolve_bake_config(config, flags)
    summary = run_bake(resolved)
    _print_summary(summary.manifest, summary.output_dir)
    _print_skips(summary.manifest)


def _split_taxa(values: list[str] | None) -> tuple[str | None, list[str] | None]:
    """``--taxa`` values: at most one taxa table path, and NAME=TAXON assignments."""
    if not values:
        return None, None
    assignments = [v for v in values if "=" in v]
    tables = [v for v in values if "=" not in v]
    if len(tables) > 1:
        raise typer.BadParameter(f"several taxa tables ({', '.join(tables)}); give one", param_hint="--taxa")
    return (tables[0] if tables else None), (assignments or None)


def _print_skips(manifest: dict) -> None:
    """On stderr: the broken gene models each species skipped (count and first file:line per
    reason, one table), one line per species for the rows it does not model, and one line per
    species that had no taxon and so used --window_size."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from genoforge.baking.taxa import UNASSIGNED
    from genoforge.genes.gene_models import BROKEN_MODEL_REASONS

    console = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 160)
    table = Table(title=Text("Skipped gene models (bake --strict makes each an error)"))
    for column in ("species", "reason", "models", "first at"):
        table.add_column(column, justify="right" if column == "models" else "left")
    notes: list[str] = []
    for name, report in manifest["species"].items():
        first = report.get("skipped_first_line", {})
        by_count = sorted(report["skipped_features"].items(), key=lambda kv: (-kv[1], kv[0]))
        for reason, count in by_count:
            if reason in BROKEN_MODEL_REASONS:
                table.add_row(Text(name), Text(reason), f"{count:,}", Text(first.get(reason, "")))
        ignored = [(r.removeprefix("unsupported type "), n) for r, n in by_count if r not in BROKEN_MODEL_REASONS]
        if ignored:
            shown = ", ".join(f"{kind} {count:,}" for kind, count in ignored[:3])
            more = f" and {len(ignored) - 3} more kinds" if len(ignored) > 3 else ""
            notes.append(f"{name}: {sum(n for _, n in ignored):,} rows ignored, not gene models ({shown}{more})")
        if report["taxon"] == UNASSIGNED:
            notes.append(
                f"{name}: no taxon (not in the taxa table, no {name}/taxon file, no --taxa {name}=TAXON): "
                f"baked with the default window, --window_size {report['window_size']:,} bp"
            )
    if table.row_count:
        console.print(table)
    else:
        console.print("No gene model was skipped.")
    for note in notes:
        console.print(Text(note), soft_wrap=True)


def _print_summary(manifest: dict, output_dir: Path) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(f"Baked {output_dir}"))
    for column in ("species", "taxon", "window", "genes", "transcripts", "train windows", "val windows", "tokens"):
        table.add_column(column, justify="left" if column in ("species", "taxon") else "right")
    for name, report in manifest["species"].items():
        tokens = sum(report[s]["input_tokens"] + report[s]["target_tokens"] for s in ("training", "validation"))
        table.add_row(
            Text(name),
            Text(report["taxon"]),
            f"{report['window_size']:,}",
            f"{report['genes']:,}",
            f"{report['transcripts']:,}",
            f"{report['training']['windows']:,}",
            f"{report['validation']['windows']:,}",
            f"{tokens:,}",
        )
    # Not a terminal (a pipe, a log): wide enough that species names are not cut.
    Console(highlight=False, width=None if sys.stdout.isatty() else 160).print(table)
    for name, message in manifest["failed_species"].items():
        typer.echo(f"skipped {name} (--keep_going): {message}")
    for file_name, output in manifest["outputs"].items():
        typer.echo(f"{output_dir / file_name}  {output['samples']:,} samples  sha256 {output['sha256'][:16]}")


@app.command(
    "inspect",
    help="Show a baked folder's manifest summary and one sample decoded to target text (and GFF3).",
    epilog=examples(
        "genoforge bake inspect ../baked/5k4.5k",
        "genoforge bake inspect ../baked/5k4.5k --split validation --index 3 --gff",
    ),
)
@boundary
def inspect(
    baked_dir: Annotated[Path, typer.Argument(metavar="BAKED_DIR", help="A folder written by genoforge bake.")],
    split: Annotated[
        str, typer.Option(*flag("split"), help="Which shard: training or validation.")
    ] = "training",
    index: Annotated[int, typer.Option(*flag("index"), help="Sample index (negative counts from the end).")] = 0,
    gff: Annotated[bool, typer.Option(*flag("gff"), help="Also print the sample as GFF3 rows in genome coordinates.")] = False,
    tokenizer: Annotated[
        OptPath, typer.Option(*flag("tokenizer"), help="Tokenizer to decode with. \\[default: the one the manifest names]")
    ] = None,
) -> None:
    """Decode one baked sample back to readable text; results on stdout."""
    from genoforge.baking.inspect import inspect_baked

    if split not in ("training", "validation"):
        raise typer.BadParameter(f"{split!r} is not training or validation", param_hint="--split")
    typer.echo(inspect_baked(baked_dir, split=split, index=index, gff=gff, tokenizer=tokenizer), nl=False)
