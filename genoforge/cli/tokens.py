"""`genoforge tokens`: the token inventory, offline BPE training, appending tokens, resizing.

Each command parses its arguments, calls one library function (genoforge.tokenizer) and renders
the result on stdout; progress goes to stderr.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from genoforge.cli._common import boundary, examples, flag, new_app
from genoforge.errors import InputError

app = new_app(
    "tokens",
    help="Tokenizers: write the token inventory, train a DNA BPE tokenizer, append tokens, "
    "resize a model's embeddings to its tokenizer.",
    epilog=examples(
        "genoforge tokens init data/new_tokens.txt",
        "genoforge tokens train genome.fa.gz -o tok/",
        "genoforge tokens append data/new_tokens.txt tok/tokenizer.json",
        "genoforge tokens resize ../model/init ../model/init",
    ),
)


@app.command(
    "init",
    help="Write the built-in token inventory to OUT.txt, one token per line.",
    epilog=examples(
        "genoforge tokens init data/new_tokens.txt",
        "genoforge tokens init data/new_tokens.txt --force",
    ),
)
@boundary
def init(
    out: Annotated[Path, typer.Argument(metavar="OUT.txt", help="Tokens file to write.")],
    force: Annotated[bool, typer.Option(*flag("force"), help="Overwrite OUT.txt if it exists.")] = False,
) -> None:
    """Write every built-in token (escaped: TAB as [\\t], NEWLINE as [\\n]), deterministically."""
    from genoforge.genes.inventory import builtin_tokens
    from genoforge.tokenizer.edit import write_tokens_file

    if out.is_dir():
        raise InputError("is a directory; pass a file path such as data/new_tokens.txt", out)
    if out.exists() and not force:
        raise InputError("already exists; pass --force to overwrite it", out)
    count = write_tokens_file(out, builtin_tokens())
    typer.echo(f"Wrote {count:,} tokens to {out}")


@app.command(
    "train",
    help="Train a DNABERT-2-style BPE tokenizer on genome FASTA files (offline).",
    epilog=examples(
        "genoforge tokens train genome.fa.gz -o tok/",
        "genoforge tokens train chr1.fa chr2.fa.gz -o tok/ --vocab_size 4096 --seed 7",
    ),
)
@boundary
def train(
    genomes: Annotated[
        list[Path],
        typer.Argument(metavar="GENOME.fa", help="Genome FASTA files: .fa, .fa.gz or bgzip (by content)."),
    ],
    output: Annotated[
        Path, typer.Option(*flag("output", "-o"), help="Directory to write (tokenizer.json + configs).")
    ],
    vocab_size: Annotated[
        int, typer.Option(*flag("vocab_size"), min=9, help="Tokens, incl. 5 specials and A C G T.")
    ] = 4096,
    seed: Annotated[int, typer.Option(*flag("seed"), help="Seed for chunk sampling.")] = 42,
    max_bases: Annotated[
        int,
        typer.Option(
            *flag("max_bases"),
            min=1000,
            help="Train on a seeded sample of this many bases when the input is larger (bounds memory).",
        ),
    ] = 20_000_000,
    overwrite: Annotated[
        bool, typer.Option(*flag("overwrite"), help="Replace OUTPUT if it exists.")
    ] = False,
) -> None:
    """Train with the `tokenizers` library; the result is byte-identical for the same inputs and seed."""
    from genoforge.io import atomic_dir
    from genoforge.tokenizer.core import GenoTokenizer
    from genoforge.tokenizer.train import train_dna_bpe_with_stats

    started = time.monotonic()
    if output.exists() and not overwrite:
        raise InputError("already exists; pass --overwrite or choose another path", output)
    tokenizer, stats = train_dna_bpe_with_stats(genomes, vocab_size=vocab_size, seed=seed, max_bases=max_bases)
    wrapped = GenoTokenizer(tokenizer)
    with atomic_dir(output, overwrite=overwrite) as tmp:
        wrapped.save(tmp)
    elapsed = time.monotonic() - started
    sample = " (seeded sample)" if stats.sampled else ""
    typer.echo(f"Wrote {output / 'tokenizer.json'}")
    typer.echo(f"  vocabulary   {wrapped.vocab_size:,} tokens")
    typer.echo(f"  trained on   {stats.bases_trained:,} of {stats.bases_read:,} bases{sample}, {stats.records:,} records")
    typer.echo(f"  content hash {wrapped.content_hash()}")
    typer.echo(f"  time         {elapsed:.1f} s")


# Tokens named in `tokens append`'s one-line summary (the rest with --verbose).
SUMMARY_TOKENS = 8


@app.command(
    "append",
    help="Append the tokens of TOKENS.txt that TOKENIZER lacks, ids after its highest.",
    epilog=examples(
        "genoforge tokens append data/new_tokens.txt ../model/init/tokenizer.json",
        "genoforge tokens append data/new_tokens.txt tok/ --dry_run",
        "genoforge tokens append data/new_tokens.txt tok/ --output tok2/",
        "genoforge tokens append data/new_tokens.txt tok/ --verbose",
    ),
)
@boundary
def append(
    tokens_file: Annotated[Path, typer.Argument(metavar="TOKENS.txt", help="One token per line.")],
    tokenizer: Annotated[
        Path, typer.Argument(metavar="TOKENIZER", help="A tokenizer.json or a directory holding one.")
    ],
    output: Annotated[
        Optional[Path],  # noqa: UP007 - typer needs Optional here for its type inspection
        typer.Option(*flag("output"), help="Write here (file or directory) instead of in place."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option(*flag("dry_run"), help="Show what would be added; write nothing.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option(*flag("verbose"), "-v", help="List every token added (id and token).")
    ] = False,
) -> None:
    """Add missing tokens de-duplicated in file order; keep the config files consistent."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from genoforge import console
    from genoforge.genes.inventory import escape_token
    from genoforge.tokenizer.edit import append_tokens, read_tokens_file

    parsed = read_tokens_file(tokens_file)
    if not parsed.tokens:
        raise InputError("lists no tokens; write one token per line (see `genoforge tokens init`)", tokens_file)
    for token, line in parsed.duplicates:
        console.warn(f"{tokens_file}:{line}: {escape_token(token)!r} is listed again; kept once")
    report = append_tokens(tokenizer, parsed.tokens, output=output, dry_run=dry_run)

    notes = []
    if report.decoder_fixed:
        notes.append("decoder " + ("would be" if dry_run else "was") + " set to join tokens without spaces")
    if not report.added:
        message = f"Nothing to add: all {report.already_present:,} tokens are already in {report.source}"
        typer.echo("; ".join([message, *notes]))
        if report.written:
            typer.echo(f"Wrote {report.output}")
        return

    verb = "Would add" if dry_run else "Added"
    ids = [token_id for _, token_id in report.added]
    if verbose:
        # Text, not markup: tokens such as [ATT] would otherwise be read as rich style tags.
        table = Table(title=Text(f"{verb} {len(report.added):,} tokens to {report.output}"))
        table.add_column("id", justify="right")
        table.add_column("token")
        for token, token_id in report.added:
            table.add_row(str(token_id), Text(escape_token(token)))
        Console(highlight=False).print(table)
    else:
        # One summary line: the built-in inventory alone is over a thousand tokens.
        shown = [escape_token(token) for token, _ in report.added[:SUMMARY_TOKENS]]
        more = len(report.added) - len(shown)
        sample = " ".join(shown) + (f" ... (+{more:,}; --verbose lists them)" if more else "")
        typer.echo(
            f"{verb} {len(report.added):,} tokens to {report.output}, ids {min(ids)}-{max(ids)}: "
            f"{sample}"
        )
    typer.echo(f"{report.already_present:,} already present" + "".join(f"; {note}" for note in notes))
    if dry_run:
        typer.echo("Dry run: nothing was written.")


# `tokens resize` lives with the model (genoforge/model/resize.py); it is registered here so that
# the recipe's `genoforge tokens resize ../model/init ../model/init` reads as written.
@app.command(
    "resize",
    help="Resize a model's token embeddings to a tokenizer (after `tokens append`).",
    epilog=examples(
        "genoforge tokens resize ../model/init ../model/init",
        "genoforge tokens resize ../model/init tok/tokenizer.json",
        "genoforge tokens resize ../model/init small_tok/ --allow_shrink",
    ),
)
@boundary
def resize(
    model_dir: Annotated[Path, typer.Argument(metavar="MODEL_DIR", help="A genoforge model directory.")],
    tokenizer: Annotated[
        Optional[Path],  # noqa: UP007 - typer needs Optional here for its type inspection
        typer.Argument(metavar="TOKENIZER", help="tokenizer.json or its directory (default: the model's own)."),
    ] = None,
    allow_shrink: Annotated[
        bool, typer.Option(*flag("allow_shrink"), help="Permit a smaller vocabulary (drops the highest ids).")
    ] = False,
) -> None:
    """Keep every old embedding row; new rows are seeded, so a resize is reproducible."""
    from genoforge.model.resize import resize_model

    report = resize_model(model_dir, tokenizer=tokenizer, allow_shrink=allow_shrink)
    if not report.changed:
        typer.echo(f"Nothing to do: {report.model_dir} already has {report.new_vocab_size:,} tokens")
        return
    typer.echo(f"Resized {report.model_dir}: {report.old_vocab_size:,} -> {report.new_vocab_size:,} tokens")
    if report.tokenizer_copied:
        typer.echo(f"Copied the tokenizer into {report.model_dir}")
