"""The training-memory check of `genoforge tune` (genoforge.training.memory_check).

The recipe's seed preset (2.9B parameters) on a 16 GB laptop grew past 17 GB while loading and was
OOM-killed with no message. The check reads config.json only: the huge model directory below holds
nothing else (no weights, no tokenizer), so a run that got past the check would fail on loading.
"""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from genoforge.cli.app import app
from genoforge.errors import DeviceMemoryError
from genoforge.model.config import preset
from genoforge.model.info import parameter_breakdown, summary
from genoforge.model.io import config_to_json, read_model_config
from genoforge.training import memory_check
from genoforge.training.memory_check import AvailableMemory, check_training_memory, estimate_training_memory

runner = CliRunner()
LAPTOP = AvailableMemory(16 * 10**9, "of RAM available (of 17.0 GB)")


@pytest.fixture
def huge_model_dir(tmp_path):
    """A model directory whose config.json is the seed preset (2.9B parameters), and nothing else."""
    directory = tmp_path / "seed_model"
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps(config_to_json(preset("seed"))))
    return directory


def invoke_tune(ws, out, model_dir, *flags):
    return runner.invoke(app, ["tune", str(ws.train), str(ws.validation), str(out), str(model_dir),
                               "--device", "cpu", *flags])


def test_a_model_too_big_for_the_ram_is_one_line_and_exit_1(tune_workspace, huge_model_dir, tmp_path,
                                                            monkeypatch):
    monkeypatch.setattr(memory_check, "available_memory", lambda device: LAPTOP)
    out = tmp_path / "run"
    result = invoke_tune(tune_workspace, out, huge_model_dir)
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    line = lines[0]
    assert "Traceback" not in result.output
    # The estimate with its terms, the available figure, the smaller presets with their sizes, the flag.
    assert f"{huge_model_dir}: training this model needs about 51.1 GB" in line
    assert "2.90B parameters x 16 B" in line and "46.5 GB" in line and "activation allowance" in line
    assert "more than the 16.0 GB of RAM available (of 17.0 GB)" in line
    assert "--preset NAME): debug 480.99K parameters" in line and "small 35.70M parameters" in line
    assert "seed" not in line.split("--preset NAME")[1]  # only smaller presets are offered
    assert "--skip_memory_check" in line
    assert not out.exists()  # nothing written: not even the run directory


def test_skip_memory_check_goes_on_to_load_the_model(tune_workspace, huge_model_dir, tmp_path,
                                                     monkeypatch):
    monkeypatch.setattr(memory_check, "available_memory", lambda device: LAPTOP)
    result = invoke_tune(tune_workspace, tmp_path / "run", huge_model_dir, "--skip_memory_check")
    # Past the check the loader finds no tokenizer in the config-only directory: another error.
    assert result.exit_code == 1
    assert "needs about" not in result.output and "no tokenizer.json" in result.stderr


def test_the_tiny_model_passes_and_its_estimate_counts_every_parameter(tune_workspace):
    estimate = check_training_memory(tune_workspace.model_dir, torch.device("cpu"),
                                     available=AvailableMemory(2 * 10**9, "of RAM available"))
    config = read_model_config(tune_workspace.model_dir)
    assert estimate.parameters == summary(config)["total_params"]
    assert estimate.state_bytes == 16 * estimate.parameters
    assert estimate.expert_copy_bytes == 0  # bf16 expert copies are made on CUDA only
    assert estimate.activation_bytes == memory_check.ACTIVATION_FLOOR_BYTES
    assert estimate.total_bytes < 2 * 10**9
    with pytest.raises(DeviceMemoryError, match="no preset is smaller"):
        check_training_memory(tune_workspace.model_dir, torch.device("cpu"),
                              available=AvailableMemory(10**6, "of RAM available"))


def test_the_tiny_model_passes_the_real_check_here(tune_workspace):
    check_training_memory(tune_workspace.model_dir, torch.device("cpu"))  # the test machine has > 300 MB


def test_cuda_counts_expert_copies_and_fsdp_divides_the_state():
    seed = preset("seed")
    cpu = estimate_training_memory(seed, device_type="cpu")
    cuda = estimate_training_memory(seed, device_type="cuda")
    experts = next(row.total for row in parameter_breakdown(seed) if row.block == "experts")
    assert cuda.expert_copy_bytes == 2 * experts and cpu.expert_copy_bytes == 0
    sharded = estimate_training_memory(seed, device_type="cuda", fsdp_shards=8)
    assert sharded.state_bytes == -(-cpu.state_bytes // 8) and sharded.expert_copy_bytes == 0


def test_cuda_availability_is_the_free_memory_of_the_device(monkeypatch, huge_model_dir):
    calls = []

    def mem_get_info(device):
        calls.append(device)
        return 40 * 10**9, 80 * 10**9

    monkeypatch.setattr(torch.cuda, "mem_get_info", mem_get_info)
    available = memory_check.available_memory(torch.device("cuda:1"))
    assert available == AvailableMemory(40 * 10**9, "free on cuda:1") and calls == [torch.device("cuda:1")]
    with pytest.raises(DeviceMemoryError) as info:
        check_training_memory(huge_model_dir, torch.device("cuda:1"))
    assert "more than the 40.0 GB free on cuda:1" in str(info.value) and "--strategy fsdp" in str(info.value)
    # Sharded over 8 GPUs the seed preset fits a 40 GB card.
    check_training_memory(huge_model_dir, torch.device("cuda:1"), world_size=8, strategy="fsdp")


def write_meminfo(path, available_kb, total_kb):
    path.write_text(f"MemTotal:       {total_kb} kB\nMemFree:         1000 kB\nMemAvailable:   {available_kb} kB\n")
    return path


def test_host_memory_is_memavailable_lowered_by_a_cgroup_limit(tmp_path):
    meminfo = write_meminfo(tmp_path / "meminfo", 8_000_000, 16_000_000)
    none = tmp_path / "no_cgroup"
    assert memory_check.host_available_memory(meminfo=meminfo, cgroup_root=none) == AvailableMemory(
        8_192_000_000, "of RAM available (of 16.4 GB)")
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "memory.max").write_text("4000000000\n")
    (v2 / "memory.current").write_text("3000000000\n")
    (v2 / "memory.stat").write_text("anon 2500000000\nfile 500000000\ninactive_file 400000000\n")
    # The limit leaves 1 GB, plus the 0.4 GB of inactive page cache the kernel reclaims first.
    assert memory_check.host_available_memory(meminfo=meminfo, cgroup_root=v2).bytes == 1_400_000_000
    (v2 / "memory.max").write_text("max\n")  # no limit
    assert memory_check.host_available_memory(meminfo=meminfo, cgroup_root=v2).bytes == 8_192_000_000
    v1 = tmp_path / "v1"
    (v1 / "memory").mkdir(parents=True)
    (v1 / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")  # v1's "no limit"
    (v1 / "memory" / "memory.usage_in_bytes").write_text("17840275456\n")
    assert memory_check.host_available_memory(meminfo=meminfo, cgroup_root=v1).bytes == 8_192_000_000


def test_without_proc_the_physical_memory_is_the_bound(tmp_path):
    available = memory_check.host_available_memory(meminfo=tmp_path / "absent", cgroup_root=tmp_path)
    assert available is not None and available.what == "of physical RAM" and available.bytes > 0


def test_local_processes_share_the_host_ram(monkeypatch):
    monkeypatch.setattr(memory_check, "host_available_memory", lambda: AvailableMemory(8 * 10**9, "of RAM available"))
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    available = memory_check.available_memory(torch.device("cpu"))
    assert available == AvailableMemory(2 * 10**9, "of RAM available, shared by 4 processes")
