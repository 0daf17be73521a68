#!/usr/bin/env bash
# The GPU quality run (issues 5 and 6): train the small preset on all four shared genomes for
# ~17 minutes, predict the fly validation region with the trained model, then score it locally
# next to AUGUSTUS and SNAP. Three modes, run from the repository root:
#
#   bash benchmarks/quality_gpu.sh prepare          (here, on the CPU machine that has ../shared/data)
#       Builds .bench/quality/ (git-ignored, ~20 MB) with the recipe's commands:
#         tokenizer/  `genoforge model init --dnabert_path zhihan1996/DNABERT-2-117M --preset small`
#                     offline (the bundled DNABERT-2 tokenizer + the built-in inventory), weights
#                     removed: 143 MB of small-preset weights would not fit the 64 MiB carry, and
#                     `start` re-creates them on the device from this same tokenizer;
#         baked/      `genoforge bake --raw_dir ../shared/data ... --window_size 10000` with bake's
#                     default split (--val_fraction 0.05 --seed 42), so the fly region is held out;
#         region/     the fly validation region as FASTA + reference GFF3 (quality.py --region_only).
#
#   start [GPU] [MINUTES]                            (device call 1, with OUT set; carry .bench/quality .whl)
#       `genoforge model init` of the preset over the carried tokenizer, then launches
#       `timeout -s INT MINUTES genoforge tune ...` detached (setsid nohup) on CUDA_VISIBLE_DEVICES=GPU,
#       logging to $RUN_ROOT/tune.log; returns once the first training step is logged (or it failed).
#       SIGINT makes tune save a checkpoint and exit 130 (genoforge/training/loop.py); best/ is the
#       model of the lowest validation loss among the evaluations done (--eval_steps).
#
#   wait [SECONDS]                                   (device calls in between, same warm machine)
#       Waits up to SECONDS (540) for the training to end and prints its progress; never stops it.
#       The lent machine is given back after a short idle time (status: idle_release_s, 30 s when
#       this was written), so chain the calls: start, then wait, wait, ... until it says "ended",
#       then finish, each issued as soon as the previous one returns.
#
#   finish                                           (last device call, same warm machine, OUT set)
#       Waits for the training to end, runs `genoforge predict RUN/best REGION.fa -o $OUT/pred.gff3
#       --batch_size 256` on GPU 0 and leaves 7 flat files in $OUT: metrics.jsonl, tune.log (tail),
#       tune_config.json, memory.csv, pred.gff3, predict.log, summary.json.
#
# Then, here: python benchmarks/quality.py --prediction OUT/pred.gff3 --run_summary OUT/summary.json
#   --model_label "genoforge small (H100, 17 min)"  and  python benchmarks/plot_curves.py OUT/metrics.jsonl
#
# Environment (defaults are the GPU run; the CPU dry run overrides them):
#   DEVICE (cuda)  PRESET (small)  RUN_ROOT (/tmp/quality-run)  TUNE_FLAGS (extra tune flags, appended
#   last so they win)  STEPS (--max_steps, sized to fit MINUTES; the timeout is the backstop)
#   PREDICT_BATCH (256)  PREDICT_FLAGS (extra predict flags, e.g. --max_new_tokens 256 for an untrained
#   CPU model)  FINISH_WAIT (seconds `finish` waits for the training, 400: a device call lasts <= 600 s)
set -uo pipefail
MODE=${1:-}
Q=.bench/quality
DEVICE=${DEVICE:-cuda}
PRESET=${PRESET:-small}
RUN_ROOT=${RUN_ROOT:-/tmp/quality-run}
RUN=$RUN_ROOT/run
PY=${PYTHON:-python3}
# bake's window for the fly (configs/taxa.toml: invertebrates 15000 bp); predict must use the same.
FLY_WINDOW=15000

die() { echo "quality_gpu.sh: $*" >&2; exit 1; }

region_fasta() { ls "$Q"/region/*.fa 2>/dev/null | head -n 1; }

prepare() {
  local data=${DATA:-../shared/data}
  [ -d "$data" ] || die "$data not found: prepare runs where the shared genomes are"
  rm -rf "$Q"
  mkdir -p "$Q"
  HF_HUB_OFFLINE=1 $PY -m genoforge model init --save_dir "$Q/tokenizer" \
    --dnabert_path zhihan1996/DNABERT-2-117M --preset "$PRESET" --tie_weights --seed 0 >"$Q/model_init.log" 2>&1 \
    || { cat "$Q/model_init.log"; die "model init failed"; }
  rm -f "$Q/tokenizer/model.safetensors"  # re-initialised on the device (see the header)
  $PY -m genoforge bake --raw_dir "$data" --output_dir "$Q/baked" --n_workers "${N_WORKERS:-2}" \
    --species_parallel 2 --tokenizer "$Q/tokenizer" --window_size 10000 2>"$Q/bake.log" \
    || { tail -n 20 "$Q/bake.log"; die "bake failed"; }
  $PY benchmarks/quality.py --data "$data" --region_only --workdir "$Q/region" || die "region failed"
  local kib
  kib=$(du -sk "$Q" | cut -f1)
  du -sh "$Q"/*
  echo "prepared $Q: $((kib / 1024)) MiB"
  [ "$kib" -lt $((50 * 1024)) ] || die "$Q is $((kib / 1024)) MiB; the carry limit is 64 MiB in all"
}

# The tune flags: the recipe's, scaled to the small preset and to this data (831 training windows,
# 2.4 M positions an epoch; the recipe's 64 x 63,700-position step would be 1.6 epochs):
# - the recipe's micro-batch (--token_budget 63700, --max_batch_size 8) as 8 fixed rows of 6400
#   encoder + 1536 decoder positions: two to three 15 kb windows a row, 88% real tokens. Left to
#   itself the planner sizes the decoder row for the longest sample (8,750 target tokens, a fly
#   locus with many isoforms) and pads every row to it; 5 such samples are dropped instead;
# - --grad_accum 4: ~10 optimizer steps an epoch; --lr 3e-4 (a 36 M-parameter model; the
#   recipe's 1e-4 is for the seed size); --epochs 1000 with --max_steps $STEPS (1000): ~223 k real
#   tokens a step, so at the ~260 k tokens/s gpu_check.sh measured for this preset the cosine
#   schedule ends after ~14.5 min + evaluations, inside the time limit; a faster card ends sooner
#   (final/ written), a slower one is stopped by the timeout with best/ from the last evaluations;
# - --eval_steps 100 with --generate_samples 8 (the first validation windows: 1 chloroplast + 7
#   fly windows of the scored region) up to 1024 new tokens (the validation targets have <= 860);
#   --early_stopping 3 (46 validation windows make a noisy loss; the recipe's 2 would stop early).
STEPS=${STEPS:-1000}
RECIPE_FLAGS="--epochs 1000 --max_steps $STEPS --lr 3e-4 --token_budget 63700 --max_batch_size 8
 --encoder_row_len 6400 --decoder_row_len 1536 --grad_accum 4 --weight_decay 0.01 --warmup_ratio 0.03
 --max_grad_norm 1.0 --label_smoothing 0.1 --early_stopping 3 --save_steps 500 --eval_steps 100
 --generate_samples 8 --generate_max_new_tokens 1024 --log_steps 10 --log_memory --empty_cache_steps 100
 --memwatch --num_workers 2"

# Runs detached (setsid nohup, see start): the timed training, its pid, times and exit status.
train() {
  local gpu=$1 minutes=$2
  date +%s.%N >"$RUN_ROOT/train.start"
  echo $RECIPE_FLAGS --device "$DEVICE" ${TUNE_FLAGS:-} >"$RUN_ROOT/tune.flags"  # for finish's summary
  # --foreground: the SIGINT goes to tune alone, not to its DataLoader workers (they must keep
  # feeding the step tune finishes before it saves); -k: SIGKILL if it has not exited 5 min later.
  # --preserve-status: the exit status is tune's own (130 after the SIGINT), not 124.
  CUDA_VISIBLE_DEVICES=$gpu timeout --foreground --preserve-status -s INT -k 300 "${minutes}m" \
    $PY -m genoforge tune "$Q/baked/training.packed" "$Q/baked/validation.packed" "$RUN" "$RUN_ROOT/init" \
    $RECIPE_FLAGS --device "$DEVICE" ${TUNE_FLAGS:-} >"$RUN_ROOT/tune.log" 2>&1 &
  echo $! >"$RUN_ROOT/timeout.pid"
  wait $!
  echo $? >"$RUN_ROOT/tune.rc.tmp" && mv "$RUN_ROOT/tune.rc.tmp" "$RUN_ROOT/tune.rc"
  date +%s.%N >"$RUN_ROOT/train.end"
}

running() { [ -f "$RUN_ROOT/timeout.pid" ] && [ ! -f "$RUN_ROOT/tune.rc" ]; }

first_records() {  # the first train and perf records, shortened
  $PY - "$RUN/metrics.jsonl" <<'PY'
import json, sys
seen = set()
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["kind"] in ("start", "train", "perf") and r["kind"] not in seen:
        seen.add(r["kind"])
        print(json.dumps({k: v for k, v in r.items() if k not in ("time",)})[:600])
PY
}

start() {
  local gpu=${1:-0} minutes=${2:-17}
  [ -d "$Q/baked" ] && [ -d "$Q/tokenizer" ] && [ -n "$(region_fasta)" ] || \
    die "$Q is incomplete: run 'bash benchmarks/quality_gpu.sh prepare' where ../shared/data is, carry $Q"
  running && die "a training run is already going ($RUN_ROOT); use finish"
  OUT=${OUT:-$RUN_ROOT/out}
  [ "$DEVICE" = cpu ] && export CUDA_VISIBLE_DEVICES="" || source "$(dirname "$0")/device_env.sh"
  rm -rf "$RUN_ROOT"
  mkdir -p "$RUN_ROOT"
  echo "$gpu $minutes $DEVICE $PRESET" >"$RUN_ROOT/start.args"
  # The weights the prepare step dropped: the same `model init`, over the carried tokenizer (a
  # tokenizer directory gives a random encoder of the preset's shape; its hash is the bake's).
  local t0=$SECONDS
  HF_HUB_OFFLINE=1 $PY -m genoforge model init --save_dir "$RUN_ROOT/init" --dnabert_path "$Q/tokenizer" \
    --preset "$PRESET" --tie_weights --seed 0 >"$RUN_ROOT/model_init.log" 2>&1 \
    || { tail -n 20 "$RUN_ROOT/model_init.log"; die "model init failed"; }
  echo "model init: $((SECONDS - t0)) s; $(grep -m1 TOTAL "$RUN_ROOT/model_init.log")"
  export Q RUN_ROOT RUN DEVICE PRESET PY STEPS
  setsid nohup bash "$0" _train "$gpu" "$minutes" >"$RUN_ROOT/train.nohup" 2>&1 </dev/null &
  local waited=0 limit=${START_WAIT:-420}
  while [ $waited -lt "$limit" ]; do
    sleep 5; waited=$((waited + 5))
    if [ -f "$RUN_ROOT/tune.rc" ]; then
      tail -n 25 "$RUN_ROOT/tune.log"
      die "tune ended at once with exit status $(cat "$RUN_ROOT/tune.rc") (log above)"
    fi
    if [ -f "$RUN/metrics.jsonl" ] && grep -q '"kind": "train"' "$RUN/metrics.jsonl"; then
      grep -v "^\s*$" "$RUN_ROOT/tune.log" | tail -n 6
      first_records
      echo "training on GPU $gpu for at most $minutes min (first step logged after ${waited} s); log $RUN_ROOT/tune.log"
      return 0
    fi
  done
  tail -n 25 "$RUN_ROOT/tune.log"
  echo "no training step logged after ${limit} s; still running: check again with finish" >&2
  return 0
}

finish() {
  [ -f "$RUN_ROOT/start.args" ] || die "no run under $RUN_ROOT: start it first (same warm machine)"
  OUT=${OUT:-$RUN_ROOT/out}
  [ "$DEVICE" = cpu ] && export CUDA_VISIBLE_DEVICES="" || source "$(dirname "$0")/device_env.sh"
  mkdir -p "$OUT"
  local waited=0 limit=${FINISH_WAIT:-400}
  while running && [ $waited -lt "$limit" ]; do sleep 5; waited=$((waited + 5)); done
  if running; then  # timeout forwards the SIGINT to tune, which saves a checkpoint and exits
    echo "training still running after ${limit} s more; sending SIGINT"
    kill -INT "$(cat "$RUN_ROOT/timeout.pid")"
    waited=0
    while running && [ $waited -lt 240 ]; do sleep 5; waited=$((waited + 5)); done
  fi
  running && die "training did not stop; see $RUN_ROOT/tune.log"
  local tune_rc
  tune_rc=$(cat "$RUN_ROOT/tune.rc")
  case "$tune_rc" in
    0) echo "tune exit status 0: finished (max_steps or early stopping); final/ written" ;;
    130) echo "tune exit status 130: stopped by the time limit (SIGINT), checkpoint saved" ;;
    *) echo "tune exit status $tune_rc: FAILED or killed; predicting with what was exported" ;;
  esac
  grep -v "^\s*$" "$RUN_ROOT/tune.log" | tail -n 4
  local model=$RUN/best
  [ -d "$model" ] || model=$RUN/final
  [ -d "$model" ] || die "neither $RUN/best nor $RUN/final exists: no evaluation finished"
  local region
  region=$(region_fasta)
  local t0 t1 rc predict_flags
  predict_flags="--batch_size ${PREDICT_BATCH:-256} --window_size $FLY_WINDOW --device $DEVICE ${PREDICT_FLAGS:-}"
  t0=$(date +%s.%N)
  CUDA_VISIBLE_DEVICES=0 $PY -m genoforge predict "$model" "$region" -o "$OUT/pred.gff3" $predict_flags \
    >"$OUT/predict.log" 2>&1
  rc=$?
  t1=$(date +%s.%N)
  tail -n 3 "$OUT/predict.log"
  cp "$RUN/metrics.jsonl" "$RUN/tune_config.json" "$OUT/" 2>/dev/null
  [ -f "$RUN/memory.csv" ] && cp "$RUN/memory.csv" "$OUT/"
  tail -n 400 "$RUN_ROOT/tune.log" >"$OUT/tune.log"
  local card
  card=$(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader -i 0 2>/dev/null || echo "cpu")
  $PY - "$RUN_ROOT" "$OUT" "$model" "$t0" "$t1" "$rc" "$card" "$predict_flags" <<'PY' | tee "$OUT/summary.json"
import csv, json, platform, sys
from pathlib import Path
root, out, model, t0, t1, predict_rc, card, predict_flags = sys.argv[1:]
root, out = Path(root), Path(out)
gpu, minutes, device, preset = (root / "start.args").read_text().split()
records = [json.loads(line) for line in (root / "run" / "metrics.jsonl").read_text().splitlines() if line.strip()]
kind = lambda k: [r for r in records if r["kind"] == k]  # noqa: E731
start, train, perf, evals, end = kind("start"), kind("train"), kind("perf"), kind("eval"), kind("end")
steady = perf[1:] or perf  # the first interval holds the warm-up (FlexAttention compilation)
seconds = sum(r["step_time_s"] for r in steady)
best = min(evals, key=lambda r: r["val_loss"]) if evals else None
memory = list(csv.DictReader(open(root / "run" / "memory.csv"))) if (root / "run" / "memory.csv").exists() else []
peak = lambda rows, key: max((float(r[key]) for r in rows if r.get(key) not in (None, "")), default=None)  # noqa: E731
try:
    import torch
    torch_version = torch.__version__
except ImportError:
    torch_version = None
train_start, train_end = (float((root / f"train.{w}").read_text()) for w in ("start", "end"))
pred = Path(out) / "pred.gff3"
summary = {
    "device": card, "gpu": gpu, "preset": preset, "time_limit_min": float(minutes), "torch": torch_version,
    "python": platform.python_version(), "tune_flags": " ".join((root / "tune.flags").read_text().split()),
    "tune_exit_status": int((root / "tune.rc").read_text()),
    "stopped": end[-1]["stopped"] if end else "interrupted (time limit)",
    "train_wall_s": round(train_end - train_start, 1),
    "steps": train[-1]["step"] if train else 0, "total_steps": start[0]["total_steps"] if start else None,
    "epochs_started": train[-1]["epoch"] + 1 if train else 0,
    "row_shape": start[0]["row_shape"] if start else None,
    "packing_efficiency": start[0]["packing_efficiency"] if start else None,
    "tokens_per_s": sum(r["tokens_per_s"] * r["step_time_s"] for r in steady) / seconds if seconds else None,
    "step_time_s": seconds / len(steady) if steady else None,
    "mfu": (sum(r["mfu"] for r in steady if r.get("mfu") is not None) / len(steady)) if steady and
           steady[0].get("mfu") is not None else None,
    "gpu_peak_allocated_gb": (peak(perf, "gpu_peak_mb") or 0) / 1024 or None,
    "gpu_peak_reserved_gb": (peak(perf, "gpu_reserved_mb") or 0) / 1024 or None,
    "memwatch_peak_allocated_gb": (peak(memory, "gpu_peak_allocated_mb") or 0) / 1024 or None,
    "host_rss_peak_gb": (peak(perf, "host_rss_mb") or 0) / 1024 or None,
    "first_loss": train[0]["loss"] if train else None, "last_loss": train[-1]["loss"] if train else None,
    "evaluations": len(evals),
    "best_val_loss": best["val_loss"] if best else None, "best_step": best["step"] if best else None,
    "best_eval": {k: v for k, v in best.items() if k.startswith("gen_")} if best else None,
    "last_eval": {k: v for k, v in evals[-1].items() if k != "time"} if evals else None,
    "predict_model": str(Path(model).relative_to(root)), "predict_flags": " ".join(predict_flags.split()),
    "predict_exit_status": int(predict_rc),
    "predict_wall_s": round(float(t1) - float(t0), 1),
    "predicted_genes": sum(1 for line in open(pred) if "\tgene\t" in line) if pred.exists() else None,
}
print(json.dumps(summary, indent=1))
PY
  ls "$OUT"
  [ "$rc" -eq 0 ] || die "predict failed (exit $rc): see predict.log"
}

wait_train() {
  local limit=${1:-540} waited=0
  [ -f "$RUN_ROOT/start.args" ] || die "no run under $RUN_ROOT: start it first (same warm machine)"
  while running && [ $waited -lt "$limit" ]; do sleep 10; waited=$((waited + 10)); done
  grep -v "^\s*$" "$RUN_ROOT/tune.log" | grep -E "^step |^eval |stopp|interrupted|Error" | tail -n 4
  if running; then
    echo "still training after $(( $(date +%s) - $(cut -d. -f1 "$RUN_ROOT/train.start") )) s: call wait (or finish) again now"
  else
    echo "training ended (exit status $(cat "$RUN_ROOT/tune.rc")): call finish now"
  fi
}

case "$MODE" in
  prepare) prepare ;;
  start) shift; start "$@" ;;
  wait) shift; wait_train "$@" ;;
  finish) finish ;;
  _train) shift; train "$@" ;;
  *) die "usage: $0 prepare | start [GPU] [MINUTES] | wait [SECONDS] | finish" ;;
esac
