"""Where and how a predict run computes: the torch device, the dtype, the batch size, CUDA graphs.

Every torch import is inside a function, so that importing this module stays cheap.
"""

from __future__ import annotations

from pathlib import Path

from genoforge.errors import ConfigError, DependencyError
from genoforge.inference.predict_config import PredictConfig

CPU_BATCH_SIZE = 8
CUDA_BATCH_SIZE = 128
# On CUDA the encoder's compiled FlexAttention recompiles for every new shape: pad the encoder
# length to a multiple of this and the batch to --batch_size, so a genome needs a few shapes.
CUDA_LENGTH_MULTIPLE = 512


def default_batch_size(config: PredictConfig, device) -> int:
    """``config.batch_size``, or for 0 the device's default (CPU_BATCH_SIZE / CUDA_BATCH_SIZE)."""
    return config.batch_size or (CUDA_BATCH_SIZE if device.type == "cuda" else CPU_BATCH_SIZE)


def resolved_dtype(config: PredictConfig, device) -> str:
    """``config.dtype``, or for ``auto`` bfloat16 on CUDA and float32 on a CPU."""
    if config.dtype != "auto":
        return config.dtype
    return "bfloat16" if device.type == "cuda" else "float32"


def load_for_inference(model_dir: str | Path, config: PredictConfig, device):
    """The model (in ``config.dtype``; auto: bfloat16 on CUDA, float32 on a CPU) and tokenizer."""
    import torch

    from genoforge.model.io import load_model
    from genoforge.tokenizer.core import GenoTokenizer

    dtype = getattr(torch, resolved_dtype(config, device))
    model = load_model(model_dir, device=device, dtype=None if dtype == torch.float32 else dtype)
    return model, GenoTokenizer.load(model_dir)


def resolve_device(name: str):
    """A torch device from ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

    Raises:
        DependencyError: CUDA was asked for and is not available.
    """
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"--device {name!r} is not a device; use auto, cpu, cuda or cuda:N") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DependencyError(f"--device {name}: CUDA is not available here; use --device cpu")
    return device


def check_cuda_graphs(config: PredictConfig, device) -> None:
    """Refuse ``cuda_graphs`` asked for (True) off CUDA (a torch device ``device``).

    Raises:
        ConfigError: ``config.cuda_graphs`` is True and ``device`` is not a CUDA device.
    """
    if config.cuda_graphs is True and device.type != "cuda":
        raise ConfigError(
            f"--cuda_graphs captures the decoder step as a CUDA graph, but the model runs on {device} "
            f"(--device {config.device}); drop --cuda_graphs, or pass --device cuda on a machine with a GPU"
        )


def use_cuda_graphs(config: PredictConfig, device, model) -> bool:
    """Whether the decoder step is replayed from a CUDA graph (see :class:`PredictConfig`).

    Raises:
        ConfigError: ``config.cuda_graphs`` is True but ``device`` is not CUDA, or the model's
            experts run the per-expert loop (which syncs with the host and cannot be captured).
    """
    from genoforge.inference.cuda_graphs import check_capturable

    if config.cuda_graphs is False:
        return False
    check_cuda_graphs(config, device)
    if device.type != "cuda":
        return False
    try:
        check_capturable(model)
    except ConfigError:
        if config.cuda_graphs:
            raise
        return False
    return True

