"""The root `genoforge` command: groups, top-level commands, --version and completion."""

from __future__ import annotations

from typing import Annotated

import typer

from genoforge import __version__
from genoforge.cli import bake as bake_cli
from genoforge.cli import eval as eval_cli
from genoforge.cli import model as model_cli
from genoforge.cli import predict as predict_cli
from genoforge.cli import quickstart as quickstart_cli
from genoforge.cli import tokens as tokens_cli
from genoforge.cli import tune as tune_cli
from genoforge.cli._common import CONTEXT, examples

app = typer.Typer(
    name="genoforge",
    help="Train transformer gene finders: genomic DNA in, GFF3 gene annotation out.",
    epilog=examples(
        "genoforge quickstart",
        "genoforge tokens init data/new_tokens.txt",
        "genoforge tokens train genome.fa.gz -o tok/",
    ),
    no_args_is_help=True,
    context_settings=CONTEXT,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"genoforge {__version__}")
        raise typer.Exit(0)


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", "-V", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Train transformer gene finders: genomic DNA in, GFF3 gene annotation out."""


app.add_typer(tokens_cli.app, name="tokens")
app.add_typer(model_cli.app, name="model")
app.add_typer(bake_cli.app, name="bake")
quickstart_cli.register(app)
eval_cli.register(app)
tune_cli.register(app)
predict_cli.register(app)


def main() -> None:
    app(prog_name="genoforge")
