"""`genoforge model`: create a model directory (init) and show its parameter table (info).

Each command parses its arguments, calls one library function (genoforge.model) and renders the
result on stdout; progress and warnings go to stderr.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from genoforge.cli._common import boundary, examples, flag, new_app
from genoforge.errors import ConfigError

from genoforge.model.config import FLAG_HELP as _H

app = new_app(
    "model",
    help="Models: create a model directory from DNABERT-2 (init), show its parameters (info).",
    epilog=examples(
        "genoforge model init --save_dir model/init --dnabert_path zhihan1996/DNABERT-2-117M",
        "genoforge model init --save_dir model/tiny --dnabert_path tok/ --preset debug",
        "genoforge model info model/init",
    ),
)

# On/off flags get a panel of their own: their --no_ column would otherwise narrow every other
# row of an 80-column help table until flag names are cut.
SWITCHES = "Switches"
# Short type names for ranged flags ("<float range> [0.0<=x<=0.99]" is wider than the flag names
# it would squeeze); the range itself is still shown and checked.
INT, FLOAT = "<int>", "<float>"
PRESET_HELP = "Size preset: debug (CPU, seconds), small (one GPU), seed (the recipe's full size; default)."


@app.command(
    "init",
    help="Create a model directory: DNABERT-2 encoder, latent compressor, MoE decoder, tokenizer.",
    epilog=examples(
        "genoforge model init --save_dir ../model/init --dnabert_path zhihan1996/DNABERT-2-117M "
        "--tie_weights --decoder_layers 12 --decoder_heads 12 --decoder_kv_heads 3 --use_moe "
        "--num_experts 32 --moe_top_k 2 --num_latents 1024",
        "genoforge model init --save_dir model/tiny --dnabert_path tok/ --preset debug",
        "genoforge model init --save_dir model/x --dnabert_path ./DNABERT-2-117M --config model.toml",
        "genoforge model init --save_dir model/x --dnabert_path tok/ --dry_run",
    ),
)
@boundary
def init(
    save_dir: Annotated[Path, typer.Option(*flag("save_dir"), help="Model directory to create.")],
    dnabert_path: Annotated[
        Optional[str],
        typer.Option(
            *flag("dnabert_path"),
            help="DNABERT-2 checkpoint dir (HF layout), Hugging Face id, or a tokenizer dir from "
            "`tokens train` (random encoder). Offline, a HF id falls back to a random encoder (warned).",
        ),
    ] = None,
    preset: Annotated[Optional[str], typer.Option(*flag("preset"), help=PRESET_HELP)] = None,
    new_tokens_file: Annotated[
        Optional[Path], typer.Option(*flag("new_tokens_file"), help="Extra tokens, one per line, added after the built-in ones.")
    ] = None,
    config: Annotated[
        Optional[Path], typer.Option(*flag("config"), help="TOML file of model settings (overridden by flags).")
    ] = None,
    overwrite: Annotated[bool, typer.Option(*flag("overwrite"), help="Replace an existing --save_dir.")] = False,
    seed: Annotated[int, typer.Option(*flag("seed"), help="Seed of the random initialisation.")] = 0,
    dry_run: Annotated[
        bool, typer.Option(*flag("dry_run"), help="Resolve the configuration and print the table; write nothing.")
    ] = False,
    tie_weights: Annotated[
        Optional[bool],
        typer.Option("--tie_weights/--no_tie_weights", help=_H["tie_weights"], rich_help_panel=SWITCHES),
    ] = None,
    decoder_layers: Annotated[Optional[int], typer.Option(*flag("decoder_layers"), min=1, metavar=INT, help=_H["decoder_layers"])] = None,
    decoder_heads: Annotated[Optional[int], typer.Option(*flag("decoder_heads"), min=1, metavar=INT, help=_H["decoder_heads"])] = None,
    decoder_kv_heads: Annotated[
        Optional[int], typer.Option(*flag("decoder_kv_heads"), min=1, metavar=INT, help=_H["decoder_kv_heads"])
    ] = None,
    decoder_ff_dim: Annotated[Optional[int], typer.Option(*flag("decoder_ff_dim"), min=1, metavar=INT, help=_H["decoder_ff_dim"])] = None,
    decoder_dim: Annotated[
        Optional[int], typer.Option(*flag("decoder_dim"), min=1, metavar=INT, help="Decoder (and compressor) width.")
    ] = None,
    decoder_dropout: Annotated[
        Optional[float], typer.Option(*flag("decoder_dropout"), min=0.0, metavar=FLOAT, help=_H["decoder_dropout"] + " Below 1.")
    ] = None,
    use_moe: Annotated[
        Optional[bool], typer.Option("--use_moe/--no_use_moe", help=_H["use_moe"], rich_help_panel=SWITCHES)
    ] = None,
    num_experts: Annotated[Optional[int], typer.Option(*flag("num_experts"), min=1, metavar=INT, help=_H["num_experts"])] = None,
    moe_top_k: Annotated[Optional[int], typer.Option(*flag("moe_top_k"), min=1, metavar=INT, help=_H["moe_top_k"])] = None,
    moe_aux_loss_coef: Annotated[
        Optional[float], typer.Option(*flag("moe_aux_loss_coef"), min=0.0, metavar=FLOAT, help="Weight of the Switch load-balancing loss.")
    ] = None,
    moe_z_loss_coef: Annotated[
        Optional[float], typer.Option(*flag("moe_z_loss_coef"), min=0.0, metavar=FLOAT, help="Weight of the router z-loss.")
    ] = None,
    init_std: Annotated[Optional[float], typer.Option(*flag("init_std"), min=0.0, metavar=FLOAT, help=_H["init_std"])] = None,
    init_embed_std: Annotated[Optional[float], typer.Option(*flag("init_embed_std"), min=0.0, metavar=FLOAT, help=_H["init_embed_std"])] = None,
    init_ffn_std: Annotated[Optional[float], typer.Option(*flag("init_ffn_std"), min=0.0, metavar=FLOAT, help=_H["init_ffn_std"])] = None,
    init_attn_std: Annotated[Optional[float], typer.Option(*flag("init_attn_std"), min=0.0, metavar=FLOAT, help=_H["init_attn_std"])] = None,
    init_moe_router_std: Annotated[
        Optional[float], typer.Option(*flag("init_moe_router_std"), min=0.0, metavar=FLOAT, help=_H["init_moe_router_std"])
    ] = None,
    encoder_block_size: Annotated[
        Optional[int], typer.Option(*flag("encoder_block_size"), min=1, metavar=INT, help=_H["encoder_block_size"])
    ] = None,
    encoder_window_size: Annotated[
        Optional[int], typer.Option(*flag("encoder_window_size"), min=0, metavar=INT, help=_H["encoder_window_size"])
    ] = None,
    decoder_block_size: Annotated[
        Optional[int], typer.Option(*flag("decoder_block_size"), min=1, metavar=INT, help=_H["decoder_block_size"])
    ] = None,
    decoder_window_size: Annotated[
        Optional[int], typer.Option(*flag("decoder_window_size"), min=0, metavar=INT, help=_H["decoder_window_size"])
    ] = None,
    num_latents: Annotated[Optional[int], typer.Option(*flag("num_latents"), min=0, metavar=INT, help=_H["num_latents"])] = None,
    pointer_dim: Annotated[Optional[int], typer.Option(*flag("pointer_dim"), min=0, metavar=INT, help=_H["pointer_dim"])] = None,
    compressor_layers: Annotated[
        Optional[int], typer.Option(*flag("compressor_layers"), min=0, metavar=INT, help="Self-attention layers among the latents.")
    ] = None,
) -> None:
    """Create a model directory (config.json, model.safetensors, tokenizer) and print its parameters."""
    from genoforge.model.info import format_table
    from genoforge.model.init import init_model

    if preset is not None and preset not in ("debug", "small", "seed"):
        raise typer.BadParameter(f"{preset!r} is not one of debug, small, seed", param_hint="--preset")
    flags = {
        "tie_weights": tie_weights,
        "decoder_layers": decoder_layers,
        "decoder_heads": decoder_heads,
        "decoder_kv_heads": decoder_kv_heads,
        "decoder_ff_dim": decoder_ff_dim,
        "decoder_dim": decoder_dim,
        "decoder_dropout": decoder_dropout,
        "use_moe": use_moe,
        "num_experts": num_experts,
        "moe_top_k": moe_top_k,
        "moe_aux_loss_coef": moe_aux_loss_coef,
        "moe_z_loss_coef": moe_z_loss_coef,
        "init_std": init_std,
        "init_embed_std": init_embed_std,
        "init_ffn_std": init_ffn_std,
        "init_attn_std": init_attn_std,
        "init_moe_router_std": init_moe_router_std,
        "encoder_block_size": encoder_block_size,
        "encoder_window_size": encoder_window_size,
        "decoder_block_size": decoder_block_size,
        "decoder_window_size": decoder_window_size,
        "num_latents": num_latents,
        "pointer_dim": pointer_dim,
        "compressor_layers": compressor_layers,
    }
    result = init_model(
        save_dir,
        dnabert_path=dnabert_path,
        flags=flags,
        preset_name=preset,
        config_file=config,
        new_tokens_file=new_tokens_file,
        overwrite=overwrite,
        seed=seed,
        dry_run=dry_run,
    )
    typer.echo(format_table(result.info))
    if dry_run:
        typer.echo(f"Dry run: nothing written (encoder: {result.source}).")
        return
    typer.echo(
        f"Wrote {result.save_dir} (encoder: {result.source}; vocabulary {result.config.vocab_size:,}, "
        f"{result.added_tokens:,} tokens added to the tokenizer)"
    )


@app.command(
    "info",
    help="Parameters per block (total, active per token) and memory for weights and AdamW training.",
    epilog=examples(
        "genoforge model info ../model/init",
        "genoforge model info ../model/init --json",
        "genoforge model info --preset seed",
    ),
)
@boundary
def info(
    model_dir: Annotated[
        Optional[Path], typer.Argument(metavar="MODEL_DIR", help="Model directory (reads config.json only).")
    ] = None,
    preset: Annotated[Optional[str], typer.Option(*flag("preset"), help="Show a preset instead of a directory.")] = None,
    as_json: Annotated[bool, typer.Option(*flag("json"), help="Print JSON instead of a table.")] = False,
) -> None:
    """Print the parameter table of a model directory or a preset."""
    from genoforge.cli._common import require_model_dir

    if (model_dir is None) == (preset is None):
        raise typer.BadParameter("give either MODEL_DIR or --preset", param_hint="MODEL_DIR")
    if model_dir is not None:
        require_model_dir(model_dir)  # before torch is imported (model.info, model.io)
    from genoforge.model.config import preset as preset_config
    from genoforge.model.info import format_table, summary
    from genoforge.model.io import read_model_config
    if model_dir is not None:
        config = read_model_config(model_dir)
    else:
        try:
            config = preset_config(str(preset))
        except ConfigError as exc:
            raise typer.BadParameter(str(exc), param_hint="--preset") from None
    result = summary(config)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        typer.echo(format_table(result))
