"""`genoforge predict`: annotate a genome FASTA with a trained model, writing GFF3.

Parses the flags, calls :func:`genoforge.inference.predict.predict_genome`, and prints a one-line
summary on stdout (the GFF3 goes to the ``-o`` file; progress goes to stderr). Every flag of a
PredictConfig field defaults to that field's default, and the help shows it: PredictConfig is the
one source of defaults.

SIGTERM and SIGINT (Ctrl-C) stop the run where it is: SIGTERM is raised in the main thread as
:class:`Terminated` (SIGINT already is, as KeyboardInterrupt), the writer keeps
``<output>.partial`` with the contigs completed, and one stderr line says how to resume; exit
codes 143 and 130 (128 + the signal), a traceback only with GENOFORGE_DEBUG=1.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from genoforge.cli._common import boundary, examples, flag

# Cheap: neither module imports torch (tests/cli/test_cli_startup.py checks `predict --help`).
from genoforge.inference.device import CPU_BATCH_SIZE, CUDA_BATCH_SIZE
from genoforge.inference.predict_config import (
    DECODERS,
    DEFAULT_WINDOW_SIZE,
    GUIDE_SOURCES,
    MAX_NEW_TOKENS_MULTIPLE,
    MIN_MAX_NEW_TOKENS,
    WINDOWLESS_MAX_NEW_TOKENS,
    PredictConfig,
    default_max_new_tokens,
)

DEFAULTS = PredictConfig()
# The structure decoder's options get a table of their own, whose columns fit --head_signal_weight
# at 80 columns (tests/cli/test_cli_help.py); beside --no_cuda_graphs it would be cut.
HMM_PANEL = "Structure decoder (--decoder hmm)"
GENERATIVE_PANEL = "Generative decoder"

SUMMARY = "Annotate a genome: FASTA in, GFF3 gene models out."


def register(app: typer.Typer) -> None:
    app.command(
        "predict",
        help=SUMMARY + "\n\nOverlapping windows over every contig, batched greedy decoding "
        "constrained by the target grammar (every output parses), genes stitched across window "
        "overlaps, GFF3 (gene/mRNA/exon/CDS/UTR).\n\nEach contig is appended to OUTPUT.partial "
        "as soon as it is done (FASTA order); OUTPUT appears, renamed, when all are. Stopped "
        "(SIGTERM, Ctrl-C, an error), a run keeps OUTPUT.partial and OUTPUT.partial.json (the "
        "contigs done, the inputs, the settings): the same command with --resume finishes it.",
        epilog=examples(
            "genoforge predict ../model/feb.3/best genome.fa.gz -o genome.gff3",
            "genoforge predict ../model/feb.3/best genome.fa.gz -o genome.gff3 --resume",
            "genoforge predict model/ genome.fa -o chr2.gff3 --seqids chr2 --batch_size 256",
            "genoforge predict model/ genome.fa -o out.gff3 --window_size 15000 --overlap 3750",
            "genoforge predict runs/r1/best genome.fa -o fly.gff3 --decoder hmm --species fly_chr2R",
        ),
    )(predict_command)


@boundary
def predict_command(
    model_dir: Annotated[Path, typer.Argument(help="Model directory (from `model init` or `tune`).")],
    genome: Annotated[Path, typer.Argument(help="Genome FASTA (plain, gzip or bgzip).")],
    output: Annotated[Path, typer.Option("-o", *flag("output"), help="GFF3 file to write.")],
    batch_size: Annotated[
        int, typer.Option(*flag("batch_size"), help=(
            f"Windows decoded together (0: {CPU_BATCH_SIZE} on CPU, {CUDA_BATCH_SIZE} on CUDA)."))
    ] = DEFAULTS.batch_size,
    device: Annotated[
        str, typer.Option(*flag("device"), help="auto, cpu, cuda or cuda:N (auto: CUDA when available).")
    ] = DEFAULTS.device,
    window_size: Annotated[
        int | None,
        typer.Option(*flag("window_size"), show_default=False, help=(
            "Window length in bp. Default: the training window (the bake's window size) that "
            f"tune recorded in MODEL_DIR, in training_window.json; {DEFAULT_WINDOW_SIZE} for a model "
            "without one (e.g. from `model init`). stderr says which one applies.")),
    ] = DEFAULTS.window_size,
    overlap: Annotated[
        int | None,
        typer.Option(*flag("overlap"), show_default=False, help=(
            "Bases shared by neighbouring windows, at most half a window. Default: the recorded "
            "training overlap when the window is the recorded one, else a quarter of the window.")),
    ] = DEFAULTS.overlap,
    max_new_tokens: Annotated[
        int | None,
        typer.Option(*flag("max_new_tokens"), show_default=False, help=(
            "Target tokens decoded per window at most (a window that reaches it loses its "
            f"unfinished last record). Default: the window size rounded up to a multiple of "
            f"{MAX_NEW_TOKENS_MULTIPLE}, at least {MIN_MAX_NEW_TOKENS} (10 kb windows: "
            f"{default_max_new_tokens(10_000)}); at most {WINDOWLESS_MAX_NEW_TOKENS} for a model with no "
            "decoder window (decoder window size 0).")),
    ] = DEFAULTS.max_new_tokens,
    seqids: Annotated[
        str | None,
        typer.Option(*flag("seqids"), help="Comma-separated contigs to annotate. \\[default: all]"),
    ] = None,  # as DEFAULTS.seqids (every contig); the flag is one string, the field a tuple
    cuda_graphs: Annotated[
        bool | None,
        typer.Option("--cuda_graphs/--no_cuda_graphs", help=(
            "Replay the batched decoder step from a captured CUDA graph: one launch instead of "
            "~1,600 per step, ~4x the bp/s on an H100. Default: on with CUDA when the model "
            "allows it (grouped-GEMM experts), else eager decoding; --no_cuda_graphs decodes "
            "eagerly; --cuda_graphs requires it (refused on a CPU).")),
    ] = DEFAULTS.cuda_graphs,
    decoder: Annotated[
        str,
        typer.Option(*flag("decoder"), autocompletion=lambda: list(DECODERS), help=(
            "hmm: the per-base head's class probabilities decoded by a Viterbi gene-structure "
            "model (every CDS a complete ORF, canonical splice sites); generative: the token "
            "decoder; auto: hmm when MODEL_DIR has gene_structure.json (every model tune "
            "exports), else generative.")),
    ] = DEFAULTS.decoder,
    signal_grammar: Annotated[
        bool,
        typer.Option("--signal_grammar/--no_signal_grammar", rich_help_panel=GENERATIVE_PANEL, help=(
            "generative: the decoding grammar reads each window's DNA, so every CDS it writes is "
            "a complete ORF (ATG to the first in-frame stop, or cut by the window) and every "
            "intron of a coding transcript sits at GT-AG, GC-AG or AT-AC.")),
    ] = DEFAULTS.signal_grammar,
    guide_weight: Annotated[
        float,
        typer.Option(*flag("guide_weight"), rich_help_panel=GENERATIVE_PANEL, help=(
            "generative: add this times the per-base head's view to the decoder's choices: the "
            "head's segment and site log-odds to each coordinate, its splice-site log-odds to "
            "writing another exon. 0 leaves the decoder alone.")),
    ] = DEFAULTS.guide_weight,
    guide_from: Annotated[
        str,
        typer.Option(*flag("guide_from"), autocompletion=lambda: list(GUIDE_SOURCES),
                     rich_help_panel=GENERATIVE_PANEL, help=(
            "generative: what --guide_weight's terms are built from. head: the per-base head's "
            "class probabilities and site log-odds; hmm: the structure decoder's best parse of "
            "each window (complete ORFs, canonical splice sites; needs gene_structure.json and "
            "reads the --species/--taxon and weight flags of the hmm decoder).")),
    ] = DEFAULTS.guide_from,
    beam: Annotated[
        int,
        typer.Option(*flag("beam"), rich_help_panel=GENERATIVE_PANEL, help=(
            "generative: keep this many hypotheses per window, scored by their log-probability "
            "(with --guide_weight, the head's terms included); 1 is greedy decoding. Each window "
            "then takes BEAM rows of --batch_size.")),
    ] = DEFAULTS.beam,
    species: Annotated[
        str | None,
        typer.Option(*flag("species"), rich_help_panel=HMM_PANEL, help=(
            "Use the gene-structure statistics (intron, exon, intergenic lengths; splice and "
            "start/stop PWMs) of this baked species. \\[default: all baked species pooled]")),
    ] = DEFAULTS.species,
    taxon: Annotated[
        str | None,
        typer.Option(*flag("taxon"), rich_help_panel=HMM_PANEL,
                     help="Gene-structure statistics of this taxon's baked species."),
    ] = DEFAULTS.taxon,
    emission_weight: Annotated[
        float,
        typer.Option(*flag("emission_weight"), rich_help_panel=HMM_PANEL, help=(
            "Weight of the network's per-base evidence against the gene-structure model "
            "(the head is overconfident: small weights score best on the held-out regions).")),
    ] = DEFAULTS.emission_weight,
    signal_weight: Annotated[
        float,
        typer.Option(*flag("signal_weight"), rich_help_panel=HMM_PANEL, help=(
            "Weight of the splice-site and start/stop position weight matrices.")),
    ] = DEFAULTS.signal_weight,
    head_signal_weight: Annotated[
        float,
        typer.Option(*flag("head_signal_weight"), rich_help_panel=HMM_PANEL, help=(
            "Weight of the per-base head's own splice-site and start/stop log-odds (models "
            "whose head has signal outputs).")),
    ] = DEFAULTS.head_signal_weight,
    content_weight: Annotated[
        float,
        typer.Option(*flag("content_weight"), rich_help_panel=HMM_PANEL, help=(
            "Weight of the coding-content model (a codon-position Markov chain of the baked "
            "species' genes against their non-coding DNA) at coding bases; 0 turns it off.")),
    ] = DEFAULTS.content_weight,
    resume: Annotated[
        bool,
        typer.Option(*flag("resume"), help=(
            "Continue the OUTPUT.partial a stopped run left: its contigs are kept, the rest "
            "decoded. Refused if the FASTA, model or flags differ. Without it, an old partial "
            "is replaced.")),
    ] = False,
) -> None:
    """Annotate a genome: FASTA in, GFF3 gene models out."""
    from genoforge.cli._common import require_file, require_model_dir

    require_model_dir(model_dir)  # before the torch import below: a typo fails in a blink
    require_file(genome)
    from genoforge.inference.predict import predict_genome

    names = None
    if seqids is not None:
        names = tuple(name.strip() for name in seqids.split(",") if name.strip())
        if not names:
            raise typer.BadParameter("give at least one sequence name", param_hint="--seqids")
    config = PredictConfig(
        window_size=window_size,
        overlap=overlap,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        device=device,
        seqids=names,
        cuda_graphs=cuda_graphs,
        decoder=decoder,
        signal_grammar=signal_grammar,
        guide_weight=guide_weight,
        guide_from=guide_from,
        beam=beam,
        species=species,
        taxon=taxon,
        emission_weight=emission_weight,
        signal_weight=signal_weight,
        head_signal_weight=head_signal_weight,
        content_weight=content_weight,
    )
    previous = _install_handlers()
    try:
        result = predict_genome(model_dir, genome, output, config, resume=resume)
    except (KeyboardInterrupt, Terminated) as exc:
        _install_handlers(signal.SIG_IGN)  # finish nothing more: report and exit
        _report_stop(exc, output)
        raise typer.Exit(143 if isinstance(exc, Terminated) else 130) from None
    finally:
        _restore_handlers(previous)
    resumed = ""
    if result.resumed_contigs:
        plural = "s" if result.resumed_contigs != 1 else ""
        resumed = (f"; {result.resumed_contigs:,} contig{plural} ({result.resumed_bases:,} bp) "
                   "resumed from the partial")
    typer.echo(
        f"{result.output}: {result.genes:,} genes, {result.transcripts:,} transcripts, "
        f"{result.features:,} other features on {result.contigs:,} contigs ({result.bases:,} bp); "
        f"{result.windows:,} windows, {result.bp_per_second:,.0f} bp/s on {result.device} "
        f"(batch size {result.batch_size}){resumed}"
    )


class Terminated(BaseException):
    """SIGTERM, raised where the main thread is (a BaseException, like KeyboardInterrupt, so that
    no ``except Exception`` swallows it)."""


def _on_sigterm(signum, frame) -> None:  # type: ignore[no-untyped-def]
    raise Terminated(signum)


def _install_handlers(handler=_on_sigterm) -> dict:  # type: ignore[no-untyped-def]
    """SIGTERM -> ``handler`` (default: raise :class:`Terminated`), and SIGINT too for SIG_IGN.
    Returns both signals' handlers before ({} off the main thread, where Python allows none)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    for sig in (signal.SIGTERM, signal.SIGINT) if handler is signal.SIG_IGN else (signal.SIGTERM,):
        signal.signal(sig, handler)
    return previous


def _restore_handlers(previous: dict) -> None:
    for sig, handler in previous.items():
        if handler is not None:  # None: set from outside Python; leave it
            signal.signal(sig, handler)


def _report_stop(exc: BaseException, output: Path) -> None:
    """One stderr line: what the partial holds and how to resume (the traceback with GENOFORGE_DEBUG=1)."""
    import traceback

    from rich.markup import escape

    from genoforge.cli._common import debug_enabled
    from genoforge.console import stderr
    from genoforge.inference.gff_writer import partial_status

    if debug_enabled():
        stderr.print(escape("".join(traceback.format_exception(exc))), soft_wrap=True)
    name = "SIGTERM" if isinstance(exc, Terminated) else "SIGINT"
    status = partial_status(output)
    if status is None:
        line = f"Stopped by {name}; there is no partial output to resume."
    else:
        line = (f"Stopped by {name}: {status.partial} holds {status.done:,} of {status.total:,} contigs; "
                "run the same command with --resume to finish it.")
    stderr.print(f"[yellow]{escape(line)}[/yellow]", soft_wrap=True)
