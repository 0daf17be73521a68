"""FlexAttention on CUDA: the compiled kernel (:func:`flex_attention_fn`) and its tile options.

Module state that benchmarks and tests change: :data:`ENCODER_KERNEL_OPTIONS`, and the compiled
function cached in ``_compiled_flex``.
"""

from __future__ import annotations

import torch

# FlexAttention's fused CUDA kernels tile queries/keys by up to 128; coarser mask blocks are fine,
# finer ones are not supported by the kernel, so they are rounded up on CUDA.
FLEX_MIN_CUDA_BLOCK = 128
# Compiled FlexAttention variants allowed before dynamo gives up on compiling (see flex_attention_fn).
FLEX_RECOMPILE_LIMIT = 64

_compiled_flex = None


def flex_attention_fn(device: torch.device):
    """flex_attention, compiled (fused kernel) on CUDA, eager elsewhere (CPU: forward only)."""
    from torch.nn.attention.flex_attention import flex_attention

    global _compiled_flex
    if device.type != "cuda" or torch.compiler.is_compiling():
        return flex_attention  # eager on CPU; inside a compiled region the caller's compile fuses it
    if _compiled_flex is None:
        # One compiled graph per attention kind, shape and grad mode: a training run with the
        # compressor needs 5 kinds x (training, evaluation) = 10, over dynamo's default limit of 8
        # per function, past which it silently falls back to the unfused kernel (94x slower,
        # and it materialises the scores: seen on an H100 in tune's first evaluation).
        config = torch._dynamo.config
        config.recompile_limit = max(config.recompile_limit, FLEX_RECOMPILE_LIMIT)
        _compiled_flex = torch.compile(flex_attention, dynamic=False)
    return _compiled_flex


# FlexAttention ``kernel_options`` of the encoder's self-attention (the only ALiBi attention) on
# CUDA. benchmarks/flex_options.py found these backward tiles 8% faster than torch's choice on
# the seed micro-batch's encoder alone (H100); in the whole seed model they took fwd+bwd from
# 181.9-184.2 ms to 175.8-178.6 ms on one H100 (benchmarks/RESULTS.md, "Model"). Without a
# prefix, num_warps and num_stages also apply to the forward kernel: that is the measured set.
# Measured on Hopper only, so other GPUs keep torch's choice (smaller shared memories may not fit).
ENCODER_TILES_SM90: dict = {"BLOCK_M1": 64, "BLOCK_N1": 128, "BLOCK_M2": 128, "BLOCK_N2": 64,
                            "num_warps": 8, "num_stages": 3}
# "auto": ENCODER_TILES_SM90 on compute capability 9.x GPUs, torch's choice elsewhere; None:
# torch's choice everywhere; a dict: these options on every CUDA GPU (benchmarks/model.py
# --encoder_kernel_options sets it).
ENCODER_KERNEL_OPTIONS: dict | str | None = "auto"


def encoder_kernel_options(device: torch.device) -> dict | None:
    """The FlexAttention kernel options of the encoder's self-attention on ``device``."""
    if device.type != "cuda":
        return None
    if ENCODER_KERNEL_OPTIONS != "auto":
        return ENCODER_KERNEL_OPTIONS  # type: ignore[return-value]
    # torch keeps each GPU's properties once read: no cache needed here.
    return dict(ENCODER_TILES_SM90) if torch.cuda.get_device_capability(device)[0] == 9 else None
