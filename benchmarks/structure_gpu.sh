#!/usr/bin/env bash
# The structure-decoder quality run on one GPU: bake every shared genome, train the small preset's
# per-base head (and, with GEN_WEIGHT > 0, the generative decoder) for MINUTES, then predict every
# species' held-out regions with --decoder hmm and dump the per-base tracks for offline decoding.
#
#   bash benchmarks/structure_gpu.sh prepare       (here, where ../shared/data is)
#       .bench/gpu/: data/ (a copy of ../shared/data), tokenizer/ (`model init --preset small`
#       over the bundled DNABERT-2 tokenizer, weights dropped: re-made on the device), regions/
#       (quality.py --region_only: every species' validation regions, bake's default split).
#   bash benchmarks/structure_gpu.sh run [MINUTES]  (device call; carry .bench/gpu and .whl; BAKE_FLAGS, e.g.
#       --reverse_complement, go to bake; MODEL_TOML to model init; STEPS, LR, GEN_WEIGHT, EVAL_STEPS, TUNE_FLAGS to tune;
#       DECODER=generative predicts with the token decoder, PREDICT_BATCH and PREDICT_FLAGS to it;
#       PREDICT_SPECIES: a comma list (default all); PREDICT_MODEL=final predicts with final/ (tune's
#       --max_minutes MINUTES writes it when the time runs out first), not best/;
#       GUIDE_WEIGHTS and HMM_TOO: see predict_all; SKIP_TRACKS=1 skips the track dump)
#   bash benchmarks/structure_gpu.sh repredict  (device call, same machine still warm: predict again)
#       Leaves in $OUT: tune.log, metrics.jsonl, predict.log, preds.tar.gz (one GFF3 a species),
#       tracks.npz and tracks.signals.npz (benchmarks/base_tracks.py), summary.json.
#
# Then, here:  mkdir -p OUTDIR && tar xzf OUT/preds.tar.gz -C OUTDIR && python benchmarks/quality.py
#   --all_species --workdir .bench/quality-peers --predictions OUTDIR --model_label "genoforge small hmm"
set -uo pipefail
G=${BENCH_DIR:-.bench/gpu}
W=${WORK:-/tmp/structure-run}
PY=${PYTHON:-python3}
MODE=${1:-}
die() { echo "structure_gpu.sh: $*" >&2; exit 1; }

prepare() {
  local data=${DATA:-../shared/data}
  [ -d "$data" ] || die "$data not found"
  rm -rf "$G" && mkdir -p "$G"
  cp -r "$data" "$G/data"
  $PY -m genoforge model init --save_dir "$G/tokenizer" --dnabert_path ../shared/reference/dnabert2 \
    --preset small --seed 0 >"$G/model_init.log" 2>&1 || die "model init failed"
  rm -f "$G/tokenizer/model.safetensors"
  $PY benchmarks/quality.py --all_species --data "$data" --region_only --workdir "$G/regions" >/dev/null \
    || die "regions failed"
  find "$G/regions" -name '*.gff3' -delete
  du -sh "$G"
}

device_env() {
  export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
  mkdir -p "$OUT" /tmp/site /tmp/wheels
  # Install only the carried wheels whose module the image lacks.
  local wheel module
  for wheel in .whl/*.whl; do
    module=$(basename "$wheel" | cut -d- -f1)
    case "$module" in
      biopython) module=Bio ;; markdown_it_py) module=markdown_it ;; pygments) module=pygments ;;
    esac
    $PY -c "import $module" 2>/dev/null || cp "$wheel" /tmp/wheels/
  done
  if ls /tmp/wheels/*.whl >/dev/null 2>&1; then
    echo "installing: $(ls /tmp/wheels | cut -d- -f1 | tr '\n' ' ')"
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site /tmp/wheels/*.whl
  fi
  export PYTHONPATH=/tmp/site:$PWD
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no GPU"
}

# The steps both modes share. init_small DIR [TOML]; bake_all DIR TOKENIZER_DIR [BAKE_FLAG ...];
# tune_head BAKE_DIR RUN_DIR INIT_DIR MINUTES LOG (the per-base head's training, TUNE_FLAGS appended).
init_small() {
  $PY -m genoforge model init --save_dir "$1" --dnabert_path "$G/tokenizer" --preset small --seed 0 \
    ${2:+--config "$2"} >"$1.log" 2>&1 || { tail "$1.log"; die "model init failed"; }
}

bake_all() {
  local dir=$1 tokenizer=$2; shift 2
  $PY -m genoforge bake --raw_dir "$G/data" --output_dir "$dir" --tokenizer "$tokenizer" --n_workers 4 \
    --species_parallel 4 "$@" >"$dir.log" 2>&1 || { tail "$dir.log"; die "bake failed"; }
}

tune_head() {
  local bake_dir=$1 run_dir=$2 init_dir=$3 minutes=$4 log=$5
  # --max_minutes ends the run cleanly (final eval, checkpoint, final/); timeout only guards a hang
  timeout --foreground -s INT -k 60 "$(awk "BEGIN {print $minutes + 3}")m" $PY -m genoforge tune "$bake_dir/training.packed" \
    "$bake_dir/validation.packed" "$run_dir" "$init_dir" --device "${DEVICE:-cuda}" --epochs 1000 \
    --max_steps "${STEPS:-1000}" --generative_loss_weight "${GEN_WEIGHT:-0}" --base_loss_weight 1 --lr "${LR:-1e-3}" \
    --warmup_ratio 0.03 --encoder_row_len 6400 --decoder_row_len 9216 --max_batch_size 16 --token_budget 249856 \
    --grad_accum 1 --weight_decay 0.01 --max_grad_norm 1.0 --eval_steps "${EVAL_STEPS:-100}" --early_stopping 100 --max_minutes "$minutes" \
    --save_steps 100000 --log_steps 50 --num_workers 4 ${TUNE_FLAGS:-} >"$log" 2>&1
}

run() {
  local minutes=${1:-6}
  [ -d "$G/data" ] || die "$G is missing: run prepare here and carry it"
  device_env
  rm -rf "$W" && mkdir -p "$W/pred"
  local t0=$SECONDS
  init_small "$W/init" "${MODEL_TOML:-}"
  bake_all "$W/baked" "$W/init" ${BAKE_FLAGS:-}
  echo "init + bake: $((SECONDS - t0)) s"
  t0=$SECONDS
  tune_head "$W/baked" "$W/run" "$W/init" "$minutes" "$W/tune.log"
  echo "tune exit $? after $((SECONDS - t0)) s"
  grep -v '^\s*$' "$W/tune.log" | tail -n 12
  cp "$W/tune.log" "$W/run/metrics.jsonl" "$OUT/" 2>/dev/null
  local model=$W/run/${PREDICT_MODEL:-best}
  [ -d "$model" ] || die "no ${PREDICT_MODEL:-best}/ model"
  predict_all "$model"
  [ -n "${SKIP_TRACKS:-}" ] || $PY benchmarks/base_tracks.py "$model" "$OUT/tracks.npz" "$G"/regions/*/region.fa \
    --device "${DEVICE:-cuda}" >"$W/tracks.log" 2>&1 || tail "$W/tracks.log"
  ls -la "$OUT"
}

# Predict the held-out regions with MODEL into $W/pred, then $OUT/preds.tar.gz. DECODER=hmm (default)
# or generative; with GUIDE_WEIGHTS (e.g. 0,0.3,1) the generative decoder runs once per head-guidance
# weight (benchmarks/guide_sweep.py, species PREDICT_SPECIES as a comma list), into w<W>/ folders
# and sweep.json (BEAMS, e.g. 1,4: each weight at each beam width, into w<W>b<N>/); GUIDE_SOURCES=head,hmm also
# guides from the HMM's parse of each window (hmm-w<W>/); HMM_TOO=1 adds the hmm predictions under hmm/.
predict_all() {
  local model=$1 t0=$SECONDS dir species
  rm -rf "$W/pred" && mkdir -p "$W/pred"
  if [ -n "${GUIDE_WEIGHTS:-}" ]; then
    $PY benchmarks/guide_sweep.py "$model" --regions "$G/regions" --species "${PREDICT_SPECIES:-fly_chr2R}" \
      --weights "$GUIDE_WEIGHTS" --beams "${BEAMS:-1}" --sources "${GUIDE_SOURCES:-head}" --out "$W/pred" --batch_size "${PREDICT_BATCH:-64}" --device "${DEVICE:-cuda}" \
      ${PREDICT_FLAGS:-} >>"$W/predict.log" 2>&1 || { tail "$W/predict.log"; echo "guide sweep failed"; }
    grep '^{' "$W/predict.log"
  fi
  for dir in "$G"/regions/*/; do
    species=$(basename "$dir")
    case ",${PREDICT_SPECIES:-$species}," in *",$species,"*) ;; *) continue ;; esac
    if [ -n "${GUIDE_WEIGHTS:-}" ]; then
      [ -n "${HMM_TOO:-}" ] || continue
      mkdir -p "$W/pred/hmm"
      $PY -m genoforge predict "$model" "$dir/region.fa" -o "$W/pred/hmm/$species.gff3" --decoder hmm \
        --species "$species" --batch_size 32 --device "${DEVICE:-cuda}" >>"$W/predict.log" 2>&1 || echo "predict $species failed"
      continue
    fi
    if [ "${DECODER:-hmm}" = hmm ]; then
      $PY -m genoforge predict "$model" "$dir/region.fa" -o "$W/pred/$species.gff3" --decoder hmm \
        --species "$species" --batch_size 32 --device "${DEVICE:-cuda}" >>"$W/predict.log" 2>&1 || echo "predict $species failed"
    else
      $PY -m genoforge predict "$model" "$dir/region.fa" -o "$W/pred/$species.gff3" --decoder generative \
        --batch_size "${PREDICT_BATCH:-64}" --device "${DEVICE:-cuda}" ${PREDICT_FLAGS:-} >>"$W/predict.log" 2>&1 \
        || echo "predict $species failed"
    fi
  done
  echo "predict (${DECODER:-hmm}${GUIDE_WEIGHTS:+, guide weights $GUIDE_WEIGHTS}): $((SECONDS - t0)) s"
  grep -h "genes," "$W/predict.log"
  cp "$W/predict.log" "$OUT/"
  tar czf "$OUT/preds.tar.gz" -C "$W/pred" .
}

# Predict again with the model an earlier `run` left on this (still warm) machine.
repredict() {
  local model=$W/run/${PREDICT_MODEL:-best}
  [ -d "$model" ] || die "no $model here: the machine was given back; use run"
  device_env
  predict_all "$model"
}

# Several trainings in one device call, each dumping its tracks for offline decoding:
#   bash benchmarks/structure_gpu.sh variants MINUTES NAME[:BAKE_FLAG,...][:MODEL_TOML] ...
# BAKE_FLAG: e.g. --reverse_complement (bakes sharing their flags are made once); MODEL_TOML:
# a model-init config file carried in the tree (e.g. benchmarks/configs/x.toml). Leaves in $OUT:
# NAME.tune.log, NAME.metrics.jsonl, NAME.tracks.npz, NAME.tracks.signals.npz, NAME.gene_structure.json.
variants() {
  local minutes=$1; shift
  [ -d "$G/data" ] || die "$G is missing: run prepare here and carry it"
  device_env
  rm -rf "$W" && mkdir -p "$W"
  local spec name bake_flags toml bake_dir t0
  for spec in "$@"; do
    IFS=: read -r name bake_flags toml <<<"$spec"
    bake_flags=${bake_flags//,/ }
    t0=$SECONDS
    init_small "$W/$name.init" "$toml"
    bake_dir="$W/bake$(echo "$bake_flags" | tr -c 'a-z' '_')"
    [ -d "$bake_dir" ] || bake_all "$bake_dir" "$W/$name.init" $bake_flags
    echo "$name: init + bake $((SECONDS - t0)) s"
    t0=$SECONDS
    tune_head "$bake_dir" "$W/$name.run" "$W/$name.init" "$minutes" "$W/$name.tune.log"
    echo "$name: tune exit $? after $((SECONDS - t0)) s"
    grep -v '^\s*$' "$W/$name.tune.log" | tail -n 3
    cp "$W/$name.tune.log" "$OUT/"; cp "$W/$name.run/metrics.jsonl" "$OUT/$name.metrics.jsonl" 2>/dev/null
    [ -d "$W/$name.run/best" ] || { echo "$name: no best/ model"; continue; }
    cp "$W/$name.run/best/gene_structure.json" "$OUT/$name.gene_structure.json"
    t0=$SECONDS
    $PY benchmarks/base_tracks.py "$W/$name.run/best" "$OUT/$name.tracks.npz" "$G"/regions/*/region.fa \
      --device "${DEVICE:-cuda}" >"$W/$name.tracks.log" 2>&1 || tail "$W/$name.tracks.log"
    echo "$name: tracks $((SECONDS - t0)) s"
  done
  ls -la "$OUT"
}

case "$MODE" in
  prepare) prepare ;;
  run) shift; run "$@" ;;
  repredict) repredict ;;
  variants) shift; variants "$@" ;;
  *) die "usage: structure_gpu.sh prepare | run [MINUTES] | repredict | variants MINUTES SPEC ..." ;;
esac
