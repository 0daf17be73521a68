"""Will the model train on this device? An estimate from config.json, checked before any weight loads.

``genoforge tune`` of the seed preset (2.9B parameters) on a 16 GB laptop used to grow past 17 GB
while loading and be killed by the kernel's OOM killer, with no message. :func:`check_training_memory`
refuses such a run in a second, with one line, before a weight is read.

The estimate, per process, for a model of P parameters (counted on the meta device from the model
directory's config.json, a tied matrix once; :func:`genoforge.model.info.parameter_breakdown`):

* model state: P x 16 bytes (:data:`genoforge.model.info.ADAMW_BYTES_PER_PARAM`): fp32 weights 4,
  fp32 gradients 4, AdamW's two fp32 moments 8. Training keeps fp32 master weights on every
  device (CUDA's bf16 is autocast). Under ``--strategy fsdp`` each of W processes holds 1/W of it;
* bf16 expert copies: 2 bytes per expert parameter on CUDA without FSDP (the trainer's
  ``enable_bf16_expert_copies``);
* an activation allowance of :data:`ACTIVATION_FRACTION` of the model state, at least
  :data:`ACTIVATION_FLOOR_BYTES`. It is a floor, not a forecast: activations grow with
  ``--token_budget`` (the recipe's 63,700-position micro-batch needs tens of GB), so the check
  refuses runs that cannot fit and passes some that will still run out of memory later (that error
  names the knobs, see ``Trainer._out_of_memory``).

What the device has (:func:`available_memory`): on a CPU, ``MemAvailable`` of /proc/meminfo,
lowered to what a cgroup memory limit leaves (containers: limit - usage + inactive file cache),
shared by the processes torchrun starts on the host (``LOCAL_WORLD_SIZE``); without /proc, the
physical memory from ``os.sysconf`` (an upper bound: a refusal is still right). On CUDA,
``torch.cuda.mem_get_info`` of the process's device (free bytes, read before the model is placed).
Where neither can be read the check is skipped.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from genoforge.errors import DeviceMemoryError

BYTES_PER_PARAM = 16  # = genoforge.model.info.ADAMW_BYTES_PER_PARAM (not imported: that module imports torch)
EXPERT_COPY_BYTES_PER_PARAM = 2  # bf16 copies of the expert weights (CUDA, not FSDP)
ACTIVATION_FRACTION = 0.10
ACTIVATION_FLOOR_BYTES = 256 * 2**20
SKIP_FLAG = "--skip_memory_check"


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes one training process needs (see the module docstring for each term)."""

    parameters: int
    state_bytes: int  # weights + gradients + AdamW moments held by this process
    expert_copy_bytes: int
    activation_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.state_bytes + self.expert_copy_bytes + self.activation_bytes


@dataclass(frozen=True)
class AvailableMemory:
    """What one training process may use, and what the figure is (for the message)."""

    bytes: int
    what: str  # e.g. "RAM available on this host", "free on cuda:0"


def estimate_training_memory(config, *, device_type: str, fsdp_shards: int = 1) -> MemoryEstimate:
    """The training memory of one process for a ModelConfig (no weights are built).

    Args:
        config: the model's :class:`genoforge.model.config.ModelConfig`.
        device_type: ``"cpu"`` or ``"cuda"`` (CUDA adds the bf16 expert copies unless sharded).
        fsdp_shards: processes the model state is sharded over (1: not sharded).
    """
    from genoforge.model.info import parameter_breakdown

    rows = {row.block: row.total for row in parameter_breakdown(config)}
    parameters = sum(rows.values())
    state = -(-parameters * BYTES_PER_PARAM // max(fsdp_shards, 1))
    copies = rows.get("experts", 0) * EXPERT_COPY_BYTES_PER_PARAM if device_type == "cuda" and fsdp_shards == 1 else 0
    activations = max(int(ACTIVATION_FRACTION * state), ACTIVATION_FLOOR_BYTES)
    return MemoryEstimate(parameters=parameters, state_bytes=state, expert_copy_bytes=copies,
                          activation_bytes=activations)


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # cgroup v2 writes "max" for no limit


def _stat_value(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key and value.strip().isdigit():
                return int(value)
    except OSError:
        pass
    return 0


def _meminfo_available(meminfo: Path) -> tuple[int, int] | None:
    """(MemAvailable, MemTotal) in bytes from /proc/meminfo, or None."""
    values = {}
    try:
        for line in meminfo.read_text().splitlines():
            name, _, rest = line.partition(":")
            parts = rest.split()
            if name in ("MemAvailable", "MemTotal") and parts and parts[0].isdigit():
                values[name] = int(parts[0]) * 1024  # the file counts kB (KiB)
    except OSError:
        return None
    if "MemAvailable" not in values:
        return None
    return values["MemAvailable"], values.get("MemTotal", values["MemAvailable"])


def _cgroup_headroom(root: Path) -> int | None:
    """What the cgroup memory limit still allows (bytes), or None without a limit.

    Usage counts the page cache; its inactive part is reclaimed before the OOM killer strikes, so
    it is counted as free (the kubelet's "working set" rule).
    """
    for limit_file, usage_file, stat_key in (
        (root / "memory.max", root / "memory.current", "inactive_file"),  # cgroup v2
        (root / "memory" / "memory.limit_in_bytes", root / "memory" / "memory.usage_in_bytes",
         "total_inactive_file"),  # cgroup v1
    ):
        limit, usage = _read_int(limit_file), _read_int(usage_file)
        if limit is None or usage is None or limit >= 2**60:  # v1 writes ~2**63 for no limit
            continue
        inactive = _stat_value(limit_file.parent / "memory.stat", stat_key)
        return max(limit - usage + inactive, 0)
    return None


def host_available_memory(*, meminfo: Path = Path("/proc/meminfo"),
                          cgroup_root: Path = Path("/sys/fs/cgroup")) -> AvailableMemory | None:
    """RAM this host can still give (see the module docstring), or None when it cannot be read."""
    found = _meminfo_available(meminfo)
    if found is not None:
        available, total = found
        headroom = _cgroup_headroom(cgroup_root)
        if headroom is not None and headroom < available:
            return AvailableMemory(headroom, "of RAM left under this container's memory limit")
        return AvailableMemory(available, f"of RAM available (of {_gb(total)})")
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
    return AvailableMemory(total, "of physical RAM") if total > 0 else None


def available_memory(device) -> AvailableMemory | None:
    """What one process on ``device`` may use, or None when it cannot be read."""
    if device.type == "cuda":
        import torch

        try:
            free, _ = torch.cuda.mem_get_info(device)
        except RuntimeError:
            return None
        return AvailableMemory(int(free), f"free on {device}")
    if device.type != "cpu":
        return None
    host = host_available_memory()
    if host is None:
        return None
    processes = max(int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1), 1)
    if processes > 1:  # every process of this host draws on the same RAM
        return AvailableMemory(host.bytes // processes, f"{host.what}, shared by {processes} processes")
    return host


def _gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB"


def _params(n: float) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(int(n))


def smaller_presets(config, parameters: int, *, device_type: str, fsdp_shards: int = 1) -> list[tuple[str, MemoryEstimate]]:
    """The presets (``genoforge.model.config.PRESETS``) with fewer parameters than ``parameters``,
    sized at the model's vocabulary, smallest first, each with its estimate."""
    from genoforge.model.config import PRESETS, preset

    found = []
    for name in PRESETS:
        candidate = dataclasses.replace(preset(name), vocab_size=config.vocab_size, pad_token_id=config.pad_token_id)
        estimate = estimate_training_memory(candidate, device_type=device_type, fsdp_shards=fsdp_shards)
        if estimate.parameters < parameters:
            found.append((name, estimate))
    return sorted(found, key=lambda item: item[1].parameters)


def memory_error(model_dir, estimate: MemoryEstimate, available: AvailableMemory, presets, *,
                 device_type: str, fsdp_shards: int) -> DeviceMemoryError:
    """The one-line refusal: the estimate and its terms, the available figure, what to do."""
    sharded = f" / {fsdp_shards} FSDP shards" if fsdp_shards > 1 else ""
    terms = [f"{_params(estimate.parameters)} parameters x {BYTES_PER_PARAM} B{sharded} for fp32 weights, "
             f"gradients and AdamW moments = {_gb(estimate.state_bytes)}"]
    if estimate.expert_copy_bytes:
        terms.append(f"{_gb(estimate.expert_copy_bytes)} bf16 expert copies")
    terms.append(f"{_gb(estimate.activation_bytes)} activation allowance")
    if presets:
        listed = ", ".join(f"{name} {_params(e.parameters)} parameters ~{_gb(e.total_bytes)}" for name, e in presets)
        fix = f"use a smaller preset (genoforge model init --preset NAME): {listed}"
    else:
        fix = "no preset is smaller; use a device with more memory"
    if device_type == "cuda" and fsdp_shards == 1:
        fix += ", or shard the model over several GPUs with torchrun ... --strategy fsdp"
    return DeviceMemoryError(
        f"{model_dir}: training this model needs about {_gb(estimate.total_bytes)} ({' + '.join(terms)}), "
        f"more than the {_gb(available.bytes)} {available.what}; {fix}; or pass {SKIP_FLAG} to try anyway"
    )


def check_training_memory(model_dir, device, *, world_size: int = 1, strategy: str = "ddp",
                          available: AvailableMemory | None = None) -> MemoryEstimate:
    """Refuse, before loading weights, a model whose training state cannot fit ``device``.

    Args:
        model_dir: a model directory (its config.json is read, not its weights).
        device: the process's torch.device.
        world_size, strategy: the run's processes and ``--strategy`` (fsdp shards the state).
        available: what the device has (default: :func:`available_memory`; tests inject it).

    Returns:
        The estimate (also when nothing could be compared).

    Raises:
        DeviceMemoryError: the estimate exceeds the available memory (one line: both figures,
            the smaller presets and their sizes, the skip flag).
        CheckpointError: config.json is missing or unreadable (genoforge.model.io).
    """
    from genoforge.model.io import read_model_config

    config = read_model_config(model_dir)
    shards = world_size if strategy == "fsdp" and world_size > 1 else 1
    estimate = estimate_training_memory(config, device_type=device.type, fsdp_shards=shards)
    if available is None:
        available = available_memory(device)
    if available is not None and estimate.total_bytes > available.bytes:
        presets = smaller_presets(config, estimate.parameters, device_type=device.type, fsdp_shards=shards)
        raise memory_error(model_dir, estimate, available, presets, device_type=device.type, fsdp_shards=shards)
    return estimate
