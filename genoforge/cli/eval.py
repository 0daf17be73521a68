"""`genoforge eval`: score a predicted annotation against a reference (GFF3 or GTF).

Parses the arguments, calls :func:`genoforge.evaluation.compare.evaluate`, and renders the result
as a table (or JSON) on stdout. The level definitions live in genoforge/evaluation/compare.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from genoforge.cli._common import boundary, examples, flag

SUMMARY = "Score a predicted annotation against a reference (CDS base, exon, transcript, gene)."

LEVEL_LABELS = {
    "cds_nucleotide": "CDS base",
    "cds_exon": "CDS exon",
    "transcript": "transcript",
    "gene": "gene",
}


def register(app: typer.Typer) -> None:
    app.command(
        "eval",
        help=SUMMARY + "\n\nStrand-aware sensitivity, precision and F1 in the style of gffcompare; "
        "with --genome, CDS with and without the stop codon compare equal. GFF3 and GTF "
        "(AUGUSTUS, Ensembl) are told apart by content; a GTF's stop_codon rows join its CDS.",
        epilog=examples(
            "genoforge eval reference.gff3 predicted.gff3",
            "genoforge eval reference.gff3.gz predicted.gff3 --genome genome.fa.gz",
            "genoforge eval reference.gff3 predicted.gff3 --json > scores.json",
            "genoforge eval reference.gff3 augustus.gtf",
        ),
    )(eval_command)


@boundary
def eval_command(
    reference: Annotated[
        Path, typer.Argument(help="Reference annotation, GFF3 or GTF (plain, gzip or bgzip).")
    ],
    prediction: Annotated[Path, typer.Argument(help="Predicted annotation, GFF3 or GTF (e.g. AUGUSTUS output).")],
    genome: Annotated[
        Path | None,
        typer.Option(
            *flag("genome"),
            help="Genome FASTA: normalise every CDS to include its stop codon before comparing.",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option(*flag("json"), help="Print the scores as JSON instead of a table.")
    ] = False,
) -> None:
    """Score a predicted annotation against a reference (CDS base, exon, transcript, gene)."""
    from genoforge.evaluation.compare import evaluate

    result = evaluate(reference, prediction, genome)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    print_eval_table(result)


def print_eval_table(result) -> None:  # type: ignore[no-untyped-def]  # EvalResult, imported lazily
    from rich.console import Console
    from rich.table import Table

    from genoforge.evaluation.compare import LEVELS

    ref, pred = result.reference, result.prediction
    caption = "\n".join(
        [
            f"reference: {ref.genes:,} genes, {ref.coding_transcripts:,} coding transcripts",
            f"prediction: {pred.genes:,} genes, {pred.coding_transcripts:,} coding transcripts",
            "transcript = distinct CDS chain; gene = any chain matches",
        ]
    )
    iso = result.isoforms
    if iso is not None and (iso.n_reference or iso.n_prediction):
        shown = "-" if iso.sensitivity is None else f"{100 * iso.sensitivity:.1f}%"
        caption += (f"\nisoforms: {iso.tp_reference:,} of {iso.n_reference:,} reference chains of "
                    f"multi-isoform genes found ({shown}); {iso.tp_prediction:,} of "
                    f"{iso.n_prediction:,} predicted ones correct")
    if result.genome is not None:
        caption += (
            f"\nstop codons added: {ref.stops.extended:,} reference, "
            f"{pred.stops.extended:,} prediction"
        )
    # One column per level keeps the table within 80 columns whatever the counts.
    table = Table(title="genoforge eval", caption=caption)
    table.add_column("")
    for name in LEVELS:
        table.add_column(LEVEL_LABELS[name], justify="right")
    scores = [result.levels[name] for name in LEVELS]
    table.add_row("reference", *(f"{s.n_reference:,}" for s in scores))
    table.add_row("predicted", *(f"{s.n_prediction:,}" for s in scores))
    table.add_row("matched ref", *(f"{s.tp_reference:,}" for s in scores))
    table.add_row("matched pred", *(f"{s.tp_prediction:,}" for s in scores), end_section=True)
    table.add_row("sensitivity", *(_percent(s.sensitivity) for s in scores), style="bold")
    table.add_row("precision", *(_percent(s.precision) for s in scores), style="bold")
    table.add_row("F1", *(_percent(s.f1) for s in scores), style="bold")
    Console().print(table)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"
