"""Distributed setup and model wrapping, applied from outside the model.

One process per device, launched by ``torchrun`` (single- or multi-node: torchrun's rendezvous
flags, nothing genoforge-specific). ``torchrun`` sets RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and
MASTER_PORT; without them the run is one process and nothing here communicates.

* backend: NCCL on CUDA, gloo on CPU;
* ``ddp``: ``DistributedDataParallel`` (gradient all-reduce, averaged over ranks);
* ``fsdp``: FSDP2 ``fully_shard`` on every block of every ``nn.ModuleList`` of the model, then on the
  root (parameters, gradients and optimizer state sharded; full state dicts gathered to save).

Rank 0 alone writes logs, metrics and checkpoints; every rank reads the same plan and takes its
own micro-batches (``genoforge.training.data``).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

from genoforge.errors import ConfigError, DependencyError


@dataclass(frozen=True)
class DistEnv:
    """Who this process is, and its device."""

    rank: int
    local_rank: int
    world_size: int
    device: object  # torch.device
    backend: str | None  # None when not distributed

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(spec: str, local_rank: int = 0):
    """``auto`` -> cuda:LOCAL_RANK if CUDA is available else cpu; ``cuda`` -> cuda:LOCAL_RANK.

    Raises:
        DependencyError: CUDA was asked for but is not available.
        ConfigError: the spec is not a device.
    """
    import torch

    spec = spec.strip().lower()
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise DependencyError(f"--device {spec}: CUDA is not available here; use --device cpu")
    if spec == "cuda":
        spec = f"cuda:{local_rank}"
    try:
        return torch.device(spec)
    except RuntimeError as exc:
        raise ConfigError(f"--device {spec!r} is not a device ({exc}); use auto, cpu, cuda or cuda:N") from None


def init_distributed(device_spec: str) -> DistEnv:
    """Read torchrun's environment and start the process group when WORLD_SIZE > 1."""
    import torch
    import torch.distributed as dist

    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_spec, local_rank)
    if world_size <= 1:
        return DistEnv(rank=0, local_rank=0, world_size=1, device=device, backend=None)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        kwargs = {"device_id": device} if device.type == "cuda" else {}
        dist.init_process_group(backend=backend, **kwargs)
    return DistEnv(rank=rank, local_rank=local_rank, world_size=world_size, device=device, backend=backend)


def shutdown_distributed(env: DistEnv) -> None:
    import torch.distributed as dist

    if env.distributed and dist.is_initialized():
        dist.destroy_process_group()


def wrap_model(model, env: DistEnv, strategy: str):
    """Wrap ``model`` for ``strategy`` (no-op for one process). Returns the module to call."""
    if not env.distributed:
        return model
    if strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        ids = [env.device.index] if env.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids, broadcast_buffers=False)
    if strategy == "fsdp":
        return apply_fsdp(model)
    raise ConfigError(f"unknown --strategy {strategy!r}; use ddp or fsdp")


def apply_fsdp(model):
    """FSDP2: shard every block of every ModuleList, then the root (fp32 parameters; compute
    precision comes from autocast, so DDP and FSDP runs compute alike)."""
    from torch import nn

    try:
        from torch.distributed.fsdp import fully_shard
    except ImportError:  # torch < 2.6 keeps it under _composable
        try:
            from torch.distributed._composable.fsdp import fully_shard  # type: ignore[no-redef]
        except ImportError as exc:
            raise DependencyError("--strategy fsdp needs torch >= 2.4 (FSDP2 fully_shard)") from exc
    for module in list(model.modules()):
        if isinstance(module, nn.ModuleList):
            for block in module:
                fully_shard(block)
    fully_shard(model)
    return model


def unwrap(model):
    """The user's module inside a DDP wrapper (FSDP2 wraps in place)."""
    return getattr(model, "module", model)


def no_grad_sync(model, env: DistEnv, strategy: str, last_micro_batch: bool):
    """A context that skips the gradient reduction on all but the step's last micro-batch."""
    if not env.distributed or last_micro_batch:
        if env.distributed and strategy == "fsdp":
            model.set_requires_gradient_sync(True)
        return contextlib.nullcontext()
    if strategy == "ddp":
        return model.no_sync()
    model.set_requires_gradient_sync(False)
    return contextlib.nullcontext()


def all_reduce_sum(tensor, env: DistEnv):
    """Sum ``tensor`` over ranks in place (async on the device stream; no host sync) and return it."""
    if env.distributed:
        import torch.distributed as dist

        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather_objects(items: list, env: DistEnv) -> list:
    """Every rank's ``items`` (picklable), concatenated in rank order; ``items`` alone when not distributed."""
    if not env.distributed:
        return list(items)
    import torch.distributed as dist

    gathered: list = [None] * env.world_size
    dist.all_gather_object(gathered, list(items))
    return [item for part in gathered for item in part]


def any_rank(flag: bool, env: DistEnv) -> bool:
    """True when ``flag`` is set on any rank (one tiny all-reduce; a host sync)."""
    if not env.distributed:
        return flag
    import torch
    import torch.distributed as dist

    value = torch.tensor([1 if flag else 0], device=env.device if env.backend == "nccl" else "cpu")
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def barrier(env: DistEnv) -> None:
    if env.distributed:
        import torch.distributed as dist

        if env.backend == "nccl":
            dist.barrier(device_ids=[env.device.index])
        else:
            dist.barrier()


def full_state_dicts(model, optimizer, env: DistEnv) -> tuple[dict, dict]:
    """Full (unsharded, CPU) model and optimizer state dicts keyed by parameter name.

    Collective under FSDP: every rank must call it; only rank 0's result is complete.
    """
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    model_state = get_model_state_dict(model, options=options)
    optim_state = get_optimizer_state_dict(model, optimizer, options=options)
    return model_state, optim_state


def load_full_state_dicts(model, optimizer, model_state: dict, optim_state: dict | None) -> None:
    """Load full state dicts (every rank holds them) into a possibly sharded model/optimizer."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    options = StateDictOptions(full_state_dict=True, strict=True)
    set_model_state_dict(model, model_state, options=options)
    if optim_state is not None:
        set_optimizer_state_dict(model, optimizer, optim_state, options=options)


def apply_activation_checkpointing(model) -> int:
    """Wrap every block of every ModuleList in a non-reentrant activation checkpoint."""
    from torch import nn
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import (
        CheckpointImpl,
        apply_activation_checkpointing,
        checkpoint_wrapper,
    )

    blocks = {id(b) for m in model.modules() if isinstance(m, nn.ModuleList) for b in m}
    apply_activation_checkpointing(
        model,
        checkpoint_wrapper_fn=lambda m: checkpoint_wrapper(m, checkpoint_impl=CheckpointImpl.NO_REENTRANT),
        check_fn=lambda m: id(m) in blocks,
    )
    return len(blocks)


def compile_blocks(model) -> int:
    """torch.compile every block of every ModuleList (fixed row shapes keep one graph each)."""
    from torch import nn

    count = 0
    for module in list(model.modules()):
        if isinstance(module, nn.ModuleList):
            for block in module:
                block.compile()
                count += 1
    return count
