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
        help="Run the recipe (tiny preset) on the embedded yeast chromosome I, on a CPU.",
        epilog=examples("genoforge quickstart", "genoforge quickstart --workdir /tmp/gf"),
    )(quickstart)


@boundary
def quickstart(
    workdir: Annotated[
        Path, typer.Option(*flag("workdir"), help="Where every artifact is written.")
    ] = Path("genoforge-quickstart"),
    seed: Annotated[int, typer.Option(*flag("seed"), help="Seed for every random step.")] = 42,
) -> None:
    """Run every recipe step on the embedded example (S. cerevisiae chrI) and say where each
    artifact is."""
    from genoforge.quickstart import run_quickstart

    result = run_quickstart(workdir, seed=seed)
    table = Table(title="genoforge quickstart: artifacts")
    table.add_column("artifact")
    table.add_column("path")
    for name, path in result.artifacts.items():
        table.add_row(name, str(path))
    Console().print(table)
