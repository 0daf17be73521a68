"""Parameter accounting per block: total, active per token, memory for weights and training.

Counting rules (the same as the MFU of benchmarks/RESULTS.md, "How the figures are measured",
and of :mod:`genoforge.training.flops`):

* total: distinct parameters (a tied matrix counts once, under "embeddings").
* active per token: parameters that take part in a matmul for one token of the row's stream:
  experts x ``moe_top_k / num_experts``; embeddings 0 (they are row lookups, no FLOPs); the
  output head V x D even when tied (it is a matmul). Encoder and memory rows are per input
  (DNA) token, compressor per latent (its cross-attention K/V per input token), decoder rows
  per target token, so the "active" sum mixes streams and is an upper bound per token.
* memory: weights in fp32 and bf16; AdamW training state 16 bytes/parameter (fp32 weights 4,
  gradients 4, Adam moments 8), activations not included.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from genoforge.model.config import ModelConfig

ADAMW_BYTES_PER_PARAM = 16

BLOCKS = (
    ("embeddings", "-"),
    ("encoder", "input token"),
    ("memory (bp offset)", "input token"),
    ("compressor", "latent"),
    ("decoder attention", "target token"),
    ("decoder FFN", "target token"),
    ("experts", "target token"),
    ("router", "target token"),
    ("head", "target token"),
)


@dataclass
class BlockRow:
    block: str
    total: int
    active: int
    stream: str


def block_of(name: str) -> str:
    """Which accounting block a parameter name belongs to."""
    if name in ("encoder.word_embeddings.weight", "encoder.token_type_embedding", "decoder.embed_tokens.weight"):
        return "embeddings"
    if name.startswith("encoder."):
        return "encoder"
    if name.startswith(("memory_proj", "bp_norm", "bp_proj")):
        return "memory (bp offset)"
    if name.startswith("compressor."):
        return "compressor"
    if name.startswith("decoder.lm_head"):
        return "head"
    if ".ffn.router" in name:
        return "router"
    if "_EDF" in name:
        return "experts"
    if ".ffn." in name:
        return "decoder FFN"
    return "decoder attention"  # attention projections and every decoder norm


def parameter_breakdown(config: ModelConfig) -> list[BlockRow]:
    """Rows in :data:`BLOCKS` order (blocks with no parameters omitted); built on the meta device."""
    from genoforge.model.model import GenoforgeModel

    with torch.device("meta"):
        model = GenoforgeModel(config)
    totals = {name: 0 for name, _ in BLOCKS}
    seen: set[int] = set()
    for name, param in model.named_parameters(remove_duplicate=False):
        if id(param) in seen:
            continue
        seen.add(id(param))
        totals[block_of(name)] += param.numel()
    active = dict(totals)
    active["embeddings"] = 0
    active["experts"] = totals["experts"] * config.moe_top_k // config.num_experts if config.use_moe else 0
    active["head"] = config.vocab_size * config.decoder_dim
    return [
        BlockRow(name, totals[name], active[name], stream)
        for name, stream in BLOCKS
        if totals[name] or active[name]
    ]


def summary(config: ModelConfig) -> dict[str, Any]:
    """Rows plus totals and memory, JSON-ready."""
    rows = parameter_breakdown(config)
    total = sum(r.total for r in rows)
    active = sum(r.active for r in rows)
    return {
        "blocks": [asdict(r) for r in rows],
        "total_params": total,
        "active_params_per_token": active,
        "active_non_embedding_decoder_params": sum(
            r.active for r in rows if r.stream == "target token"
        ),
        "weights_bytes_fp32": total * 4,
        "weights_bytes_bf16": total * 2,
        "adamw_training_state_bytes": total * ADAMW_BYTES_PER_PARAM,
        "notes": (
            "active: experts x top_k/num_experts, embeddings 0 (lookups), head V x D even when tied; "
            "AdamW state = 16 B/param (fp32 weights, grads, two moments), activations excluded"
        ),
    }


def human(n: float) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(int(n))


def human_bytes(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


def format_table(info: dict[str, Any]) -> str:
    """A plain-text table of :func:`summary` (stdout of ``model info`` / ``model init``)."""
    lines = [f"{'block':<20} {'total':>14} {'active/token':>14}  per"]
    for row in info["blocks"]:
        lines.append(f"{row['block']:<20} {row['total']:>14,} {row['active']:>14,}  {row['stream']}")
    lines.append(
        f"{'TOTAL':<20} {info['total_params']:>14,} {info['active_params_per_token']:>14,}  "
        f"({human(info['total_params'])} total, {human(info['active_non_embedding_decoder_params'])} "
        "active per target token)"
    )
    lines.append(
        f"weights: {human_bytes(info['weights_bytes_fp32'])} fp32, {human_bytes(info['weights_bytes_bf16'])} bf16; "
        f"AdamW training state: {human_bytes(info['adamw_training_state_bytes'])} (+ activations)"
    )
    lines.append(f"note: {info['notes']}")
    return "\n".join(lines)
