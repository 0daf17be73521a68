"""`genoforge quickstart`: the whole recipe on the embedded example genome."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from genoforge.cli._common import boundary, examples, flag


def register(app: typer.Typer) -> None:
    app.command(
        "quickstart",
        help="Run the recipe (debug preset) on the embedded yeast chromosome I, on a CPU.",
        epilog=examples("genoforge quickstart", "genoforge quickstart --workdir /tmp/gf"),
    )(quickstart)


@boundary
def quickstart(
    workdir: Annotated[
        Path, typer.Option(*flag("workdir"), help="Where every artifact is written.")
    ] = Path("genoforge-quickstart"),
    seed: Annotated[int, typer.Option(*flag("seed"), help="Seed for every random step.")] = 42,
    steps: Annotated[
        int, typer.Option(*flag("steps"), min=1, help="Optimizer steps of the tune step (~0.7 s each on 2 cores).")
    ] = 200,
) -> None:
    """Run every recipe step on the embedded example (S. cerevisiae chrI) and say where each
    artifact is."""
    from genoforge.quickstart import run_quickstart

    from genoforge.cli.eval import print_eval_table

    result = run_quickstart(workdir, seed=seed, tune_steps=steps)
    out = Console()
    table = Table(title="genoforge quickstart: the recipe's steps and their artifacts")
    table.add_column("step")
    table.add_column("artifact")
    table.add_column("seconds", justify="right")
    for name, path, seconds in result.steps:
        table.add_row(name, str(path), f"{seconds:.1f}")
    out.print(table)
    losses = Table(title="training (debug preset): loss by optimizer step")
    losses.add_column("step", justify="right")
    losses.add_column("train loss", justify="right")
    losses.add_column("validation loss", justify="right")
    validation = dict(result.losses.get("validation", []))
    train = result.losses.get("train", [])
    shown = train[:: max(len(train) // 8, 1)] + train[-1:]
    for step, loss in dict(shown).items():
        val = validation.get(step)
        losses.add_row(str(step), f"{loss:.3f}", "" if val is None else f"{val:.3f}")
    out.print(losses)
    print_eval_table(result.evaluation)
    out.print(
        f"Total {sum(s for _, _, s in result.steps):.0f} s. The debug model trained for minutes on a CPU: "
        "the table shows the pipeline working end to end, not a useful gene finder."
    )
