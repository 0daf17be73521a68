#!/usr/bin/env bash
# The GPU measurement of benchmarks/RESULTS.md "Training", in one device call:
#   1 GPU, then (when the machine has 2) DDP over 2 GPUs, the recipe's per-micro-batch flags on the
#   seed preset. Needs .bench/seed (python benchmarks/tune.py prepare .bench/seed --preset seed)
#   and, where rich is missing, its wheels in .whl. Writes logs and metrics under $OUT.
#   Env: STEPS, ACCUM, LIMIT1, LIMIT2 (seconds), EXTRA (flags for every run), ONE_GPU=1 (skip DDP),
#   GPU (the card of the one-GPU run, 0; another card leaves GPU 0 to other benchmarks).
set -uo pipefail
OUT=${OUT:-/tmp/tune-bench}
source "$(dirname "$0")/device_env.sh"
STEPS=${STEPS:-6}
ACCUM=${ACCUM:-8}
FLAGS="--epochs 4 --lr 1e-4 --token_budget 63700 --max_batch_size 8 --grad_accum $ACCUM --weight_decay 0.01
 --warmup_ratio 0.03 --max_grad_norm 1.0 --label_smoothing 0.1 --early_stopping 2 --log_memory
 --empty_cache_steps 100 --memwatch --max_steps $STEPS --log_steps 1 --eval_max_batches 1"
run_one() {  # $1: run name, $2: seconds, rest: extra flags
  local name=$1 limit=$2; shift 2
  CUDA_VISIBLE_DEVICES=${GPU:-0} timeout "$limit" python3 benchmarks/tune.py run .bench/seed "$OUT/$name" $FLAGS "$@" \
    >"$OUT/$name.log" 2>&1
  local rc=$?
  tail -n 4 "$OUT/$name.log"
  return $rc
}
EXTRA=${EXTRA:-}  # e.g. EXTRA=--gradient_checkpointing where the card is known too small without it
if ! run_one one "${LIMIT1:-170}" $EXTRA; then
  if [ -z "$EXTRA" ] && grep -q "OutOfMemory\|out of memory" "$OUT/one.log"; then
    echo "one GPU: out of memory at the recipe's micro-batch; retrying with --gradient_checkpointing"
    EXTRA="--gradient_checkpointing"
    mv "$OUT/one.log" "$OUT/one-oom.log"; rm -rf "$OUT/one"
    run_one one "${LIMIT1:-150}" $EXTRA
  fi
fi
RUNS=("$OUT/one")
if [ -z "${ONE_GPU:-}" ] && [ "$(nvidia-smi -L | wc -l)" -ge 2 ]; then
  timeout "${LIMIT2:-170}" python3 -m torch.distributed.run --nproc_per_node 2 benchmarks/tune.py run .bench/seed \
    "$OUT/two" $FLAGS $EXTRA >"$OUT/two.log" 2>&1
  tail -n 4 "$OUT/two.log"
  RUNS+=("$OUT/two")
fi
rm -f "$OUT"/one/tune_config.json "$OUT"/two/tune_config.json  # at most 8 files come back
python3 benchmarks/tune.py summary "${RUNS[@]}" | tee "$OUT/summary.jsonl"
