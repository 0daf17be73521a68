#!/usr/bin/env bash
# One short device call that re-checks the GPU paths after a model change:
#   1. tests/gpu (FlexAttention vs the explicit-mask reference, grouped MoE vs the loop);
#   2. a short `tune` of the small preset (benchmarks/tune.py run), reporting per-step expert load
#      (min/max of tokens per expert over the mean), tokens/s and memory.
# Needs .bench/small (python benchmarks/tune.py prepare .bench/small --preset small --copies 20),
# carried with .whl (rich's wheels, for machines without rich). Writes logs under $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/gpu-check}
source "$(dirname "$0")/device_env.sh"
timeout "${LIMIT_TESTS:-170}" python3 -m pytest -q -p no:cacheprovider tests/gpu -rA >"$OUT/gpu_tests.log" 2>&1
echo "tests/gpu exit $?"; grep -E "passed|failed|PASSED|FAILED|Error" "$OUT/gpu_tests.log" | tail -8
timeout "${LIMIT_TUNE:-200}" python3 benchmarks/tune.py run .bench/small "$OUT/small" --max_steps "${STEPS:-40}" \
  --log_steps 5 --lr 3e-4 --warmup_ratio 0.1 --token_budget 32768 --max_batch_size 8 --eval_max_batches 1 \
  >"$OUT/small.log" 2>&1
echo "tune exit $?"; tail -n 3 "$OUT/small.log"
python3 - "$OUT/small/metrics.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("kind") == "perf":
        print(f"step {r['step']:>3}  tokens/s {r['tokens_per_s']:>10,.0f}  mfu {r.get('mfu')}  "
              f"expert load min {r.get('expert_load_min'):.2f} max {r.get('expert_load_max'):.2f}")
    elif r.get("kind") == "train" and r["step"] % 10 == 0:
        print(f"step {r['step']:>3}  loss {r['loss']:.3f}  aux {r['aux_loss']:.3f}")
PY
