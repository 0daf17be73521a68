# Sourced by the device-call scripts (gpu_check.sh, tune_gpu.sh): the environment every run on the
# lent GPU machine needs, then what card and torch it found. Expects OUT to be set.
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
mkdir -p "$OUT"
# The device image may lack rich: install the carried wheels (.whl) into a private folder.
python3 -c "import rich" 2>/dev/null || {
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__)"
